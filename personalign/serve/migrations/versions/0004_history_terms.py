"""The store's own BM25 index of history items (``history_terms``), deleted with its items; existing items are
indexed here.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

from personalign.serve.terms import TERM_CHARS, postings

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "history_terms", sa.Column("owner", sa.BigInteger, primary_key=True),
        sa.Column("term", sa.String(TERM_CHARS), primary_key=True),
        sa.Column("item_pk", sa.Integer, sa.ForeignKey("history_items.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("tf", sa.Integer), sa.Column("dl", sa.Integer), sqlite_with_rowid=False)
    op.create_index("ix_history_terms_item_pk", "history_terms", ["item_pk"])
    if op.get_bind().dialect.name == "postgresql":  # ranking reads the postings from the key alone (index-only)
        op.execute("ALTER TABLE history_terms DROP CONSTRAINT history_terms_pkey, "
                   "ADD PRIMARY KEY (owner, term, item_pk) INCLUDE (tf, dl)")
    items = op.get_bind().execute(sa.text("select pk, tenant_id, user_id, text from history_items"))
    while batch := items.fetchmany(1000):
        op.bulk_insert(table, [row for item in batch for row in postings(*item)])


def downgrade() -> None:
    op.drop_index("ix_history_terms_item_pk", "history_terms")
    op.drop_table("history_terms")
