"""Derived data: item embeddings (deleted with their items) and the durable rebuild queue.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("item_embeddings",
                    sa.Column("item_pk", sa.Integer, sa.ForeignKey("history_items.pk", ondelete="CASCADE"),
                              primary_key=True),
                    sa.Column("model_id", sa.String(256)), sa.Column("vector", sa.LargeBinary),
                    sa.Column("created_at", sa.DateTime(timezone=True)))
    op.create_table("jobs", sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id", ondelete="CASCADE")),
                    sa.Column("user_id", sa.String(256)), sa.Column("kind", sa.String(32)),
                    sa.Column("status", sa.String(16), index=True), sa.Column("attempts", sa.Integer),
                    sa.Column("owner", sa.String(64)), sa.Column("error", sa.Text),
                    sa.Column("created_at", sa.DateTime(timezone=True)),
                    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_table("item_embeddings")
