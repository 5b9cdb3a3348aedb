"""Derived data: versioned per-user profile summaries (PAG's summary, built in the background), and the
summary version each answer used.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("user_summaries", sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id", ondelete="CASCADE")),
                    sa.Column("user_id", sa.String(256)), sa.Column("model_id", sa.String(256)),
                    sa.Column("text", sa.Text), sa.Column("item_pks", sa.JSON),
                    sa.Column("created_at", sa.DateTime(timezone=True)), sqlite_autoincrement=True)
    op.create_index("ix_summaries_user", "user_summaries", ["tenant_id", "user_id", "version"])
    with op.batch_alter_table("answers") as batch:
        batch.add_column(sa.Column("summary_version", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("summary_version")
    op.drop_index("ix_summaries_user", "user_summaries")
    op.drop_table("user_summaries")
