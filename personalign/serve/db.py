"""The service's store: SQLAlchemy tables, migrated by Alembic (SQLite in WAL mode by default, Postgres by URL).

Every row carries its tenant, and every query filters on it. A user's data is their history items and
the personalized answers made for them; an answer keeps the ids of the items it used, so deleting an
item also deletes the answers derived from it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MIGRATIONS = Path(__file__).parent / "migrations"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class ApiKey(Base):
    """An API key, stored as its SHA-256 only."""

    __tablename__ = "api_keys"
    key_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class HistoryItem(Base):
    """One item of a user's history: a text they wrote or chose."""

    __tablename__ = "history_items"
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(256))
    item_id: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    __table_args__ = (Index("ix_history_user", "tenant_id", "user_id", "item_id", unique=True),)


class AnswerRecord(Base):
    """A personalized answer with its trace (base answer, retrieved item ids, thinking, final answer)."""

    __tablename__ = "answers"
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(256))
    request_id: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(64))
    query: Mapped[str] = mapped_column(Text)
    base_answer: Mapped[str] = mapped_column(Text, default="")
    retrieved_ids: Mapped[list] = mapped_column(JSON, default=list)
    thinking: Mapped[str] = mapped_column(Text, default="")
    final: Mapped[str] = mapped_column(Text, default="")
    fallback: Mapped[str] = mapped_column(String(64), default="")  # why the base answer was returned, if it was
    summary_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the profile summary it used
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    __table_args__ = (Index("ix_answers_user", "tenant_id", "user_id", "created_at"),)


class ItemEmbedding(Base):
    """Derived data: one history item's embedding; it goes when its item goes (ON DELETE CASCADE)."""

    __tablename__ = "item_embeddings"
    item_pk: Mapped[int] = mapped_column(ForeignKey("history_items.pk", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(256))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class UserSummary(Base):
    """Derived data, versioned: a user's profile summary, built in the background from the items in ``item_pks``.

    Rows are written whole in one transaction, so the newest row is the newest complete version. The
    version is the row's key, which never repeats (AUTOINCREMENT on SQLite). Deleting any item in
    ``item_pks`` deletes the row (``Store.delete_item``).
    """

    __tablename__ = "user_summaries"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(256))
    model_id: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    item_pks: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    __table_args__ = (Index("ix_summaries_user", "tenant_id", "user_id", "version"), {"sqlite_autoincrement": True})


class Job(Base):
    """The durable queue of derived-data rebuilds: any service process may claim a queued job."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)  # queued, running, done, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def make_engine(url: str) -> Engine:
    """An SQLAlchemy engine; SQLite gets WAL, full fsync on commit, foreign keys and a busy timeout."""
    sqlite = url.startswith("sqlite")
    if sqlite and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30} if sqlite else {},
                           pool_pre_ping=not sqlite)
    if sqlite:
        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")  # an add is acknowledged only once it is on disk
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to Alembic's head (a new store is created; an old one is upgraded in place)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
