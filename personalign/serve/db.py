"""The service's store: SQLAlchemy tables, migrated by Alembic (SQLite in WAL mode by default, Postgres by URL).

Every row carries its tenant, and every query filters on it. A user's data is their history items and
the personalized answers made for them; an answer keeps the ids of the items it used, so deleting an
item also deletes the answers derived from it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from personalign.errors import ConfigError
from personalign.serve.terms import TERM_CHARS, postings

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


class HistoryTerm(Base):
    """Derived data: the store's own BM25 index of history items, one row per (user, term, item) and one per item
    with the empty term (its length). Written in the same flush as its item, deleted with it (ON DELETE CASCADE);
    ``personalign.serve.search`` ranks a user's items with it, so no request reads a whole history."""

    __tablename__ = "history_terms"
    owner: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # terms.owner_key(tenant, user)
    term: Mapped[str] = mapped_column(String(TERM_CHARS), primary_key=True)
    item_pk: Mapped[int] = mapped_column(ForeignKey("history_items.pk", ondelete="CASCADE"), primary_key=True,
                                         index=True)
    tf: Mapped[int] = mapped_column(Integer)  # the term's count in the item (its length on the '' row)
    dl: Mapped[int] = mapped_column(Integer)  # the item's length in terms
    __table_args__ = {"sqlite_with_rowid": False}  # the primary key is the whole row: no second copy of it


@event.listens_for(HistoryItem, "after_insert")
def _index_item(_mapper, connection, item: HistoryItem) -> None:  # type: ignore[no-untyped-def]
    """Index every new item in its own transaction (a failed insert leaves no index row)."""
    connection.execute(HistoryTerm.__table__.insert(), postings(item.pk, item.tenant_id, item.user_id, item.text))


SQLITE_BUSY_MS = 30_000  # how long an SQLite statement waits for a lock


def shown_url(url: str | URL) -> str:
    """A store URL as it may be printed or logged: any password replaced by ``***``."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """An SQLAlchemy engine; SQLite gets WAL, full fsync on commit, foreign keys and a busy timeout."""
    sqlite = url.startswith("sqlite")
    if sqlite and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    sqlite_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_MS / 1000}
    try:
        engine = create_engine(url, connect_args=sqlite_args if sqlite else {},
                               pool_pre_ping=not sqlite, hide_parameters=True)  # no stored text in an error's message
    except (ArgumentError, ModuleNotFoundError, ValueError) as exc:  # a malformed URL or port, an unknown dialect,
        try:                                                            # a driver not installed
            shown = shown_url(url)
        except (ArgumentError, ValueError):
            shown = url.rsplit("@", 1)[-1]  # unparsable: no password shown either
        raise ConfigError(f"store_url: cannot use {shown!r} ({type(exc).__name__}: {exc})") from None
    if sqlite:
        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")  # an add is acknowledged only once it is on disk
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA secure_delete=ON")  # a deleted row's bytes are overwritten with zeros
            cursor.close()

        @event.listens_for(engine, "checkout")
        def _durable(connection, _record, _proxy) -> None:  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA synchronous=FULL")  # whatever the last user set (``unsynced_commit``)
            cursor.close()
    return engine


def unsynced_commit(session: Session) -> None:
    """Commit this transaction without waiting for the disk (SQLite ``synchronous=NORMAL``: the WAL is not fsynced;
    PostgreSQL ``synchronous_commit off``): it survives a crash of the process but may be lost, whole, with the
    machine's power. For records that are re-made on request (answer traces), so that an fsync per personalized
    request does not hold the database's single write lock. Call it first in the transaction."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":  # pysqlite has begun no transaction yet: the pragma is allowed
        connection.exec_driver_sql("PRAGMA synchronous=NORMAL")
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def checkpoint(engine: Engine, attempts: int = 3, wait_ms: int = 500) -> bool:
    """SQLite: copy the WAL into the database file and truncate the WAL to 0 bytes (``wal_checkpoint(TRUNCATE)``).
    Each attempt waits up to ``wait_ms`` for readers of older snapshots; False (logged) if none completed, e.g.
    under a long read: the WAL keeps the deleted rows until a later checkpoint completes."""
    for attempt in range(attempts):
        with engine.connect() as connection:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait_ms)}")
            try:
                busy = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0]
            finally:
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
        if not busy:
            return True
        time.sleep(0.05 * (attempt + 1))
    logging.getLogger("personalign.serve").warning(
        "the WAL checkpoint after a delete was blocked by a reader; deleted rows stay in the WAL file until the "
        "next checkpoint completes (the next delete, or `personalign vacuum`)")
    return False


def migrate(engine: Engine) -> None:
    """Bring the schema to Alembic's head (a new store is created; an old one is upgraded in place)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _migration_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":  # processes starting together migrate one after another
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727001)")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _migration_lock(engine: Engine) -> AbstractContextManager:
    """A file lock beside an SQLite database file, so that processes starting together migrate one at a time."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return nullcontext()
    from filelock import FileLock

    return FileLock(f"{database}.migrate.lock")
