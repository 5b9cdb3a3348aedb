"""The first schema: tenants, hashed API keys, history items, personalized answers.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("tenants", sa.Column("id", sa.String(64), primary_key=True),
                    sa.Column("created_at", sa.DateTime(timezone=True)))
    op.create_table("api_keys", sa.Column("key_sha256", sa.String(64), primary_key=True),
                    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True),
                    sa.Column("created_at", sa.DateTime(timezone=True)))
    op.create_table("history_items", sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id", ondelete="CASCADE")),
                    sa.Column("user_id", sa.String(256)), sa.Column("item_id", sa.String(128)),
                    sa.Column("text", sa.Text), sa.Column("created_at", sa.DateTime(timezone=True)))
    op.create_index("ix_history_user", "history_items", ["tenant_id", "user_id", "item_id"], unique=True)
    op.create_table("answers", sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id", ondelete="CASCADE")),
                    sa.Column("user_id", sa.String(256)), sa.Column("request_id", sa.String(64)),
                    sa.Column("method", sa.String(64)), sa.Column("query", sa.Text),
                    sa.Column("base_answer", sa.Text), sa.Column("retrieved_ids", sa.JSON),
                    sa.Column("thinking", sa.Text), sa.Column("final", sa.Text), sa.Column("fallback", sa.String(64)),
                    sa.Column("created_at", sa.DateTime(timezone=True)))
    op.create_index("ix_answers_user", "answers", ["tenant_id", "user_id", "created_at"])


def downgrade() -> None:
    for table in ("answers", "history_items", "api_keys", "tenants"):
        op.drop_table(table)
