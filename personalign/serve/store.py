"""Tenant-scoped operations on the store. Every method takes the tenant and filters on it; nothing is cached
in the process, so several service processes can share one database."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from personalign.serve.db import (AnswerRecord, ApiKey, Base, HistoryItem, ItemEmbedding, Job, Tenant, UserSummary,
                                  checkpoint, make_engine, migrate, now, unsynced_commit)
from personalign.serve.terms import owner_key
from personalign.serve.validation import storable

LEASE_SECONDS = 300  # a running job not finished within this is taken over (its process died)
KEEP_VERSIONS = 2    # summary versions kept per user: the newest, and the one a request may still be reading
LOG = logging.getLogger("personalign.serve")


@dataclass(frozen=True)
class Vacuumed:
    """What ``Store.vacuum`` did: true when deleted rows are out of the store's files; otherwise ``problem`` says
    which step fell short and what to do about it."""

    done: bool
    problem: str = ""

    def __bool__(self) -> bool:
        return self.done


class StoreError(Exception):
    """A request the store refuses: ``status`` is the HTTP status, ``code`` the OpenAI-style error code."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.param = status, code, param


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def item_record(row: HistoryItem) -> dict[str, Any]:
    """An item as the API answers it (a ``HistoryItem`` or a row with its id, text and time)."""
    return {"id": row.item_id, "text": row.text, "created_at": row.created_at.isoformat()}


def _answer(row: AnswerRecord) -> dict[str, Any]:
    return {"request_id": row.request_id, "method": row.method, "query": row.query, "base_answer": row.base_answer,
            "retrieved_ids": row.retrieved_ids, "thinking": row.thinking, "final": row.final,
            "fallback": row.fallback, "summary_version": row.summary_version,
            "created_at": row.created_at.isoformat()}


class Store:
    """The history store behind ``personalign serve``."""

    def __init__(self, url: str, max_history_items: int = 10_000, derived: tuple[str, ...] = (),
                 vacuum_after_delete: bool = False):
        """``derived``: the kinds of derived data kept for every user ("embed"); a change enqueues their rebuild.
        ``vacuum_after_delete``: run ``vacuum()`` after every delete (PostgreSQL: see docs/serve.md)."""
        self.engine = make_engine(url)
        migrate(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.max_history_items, self.derived = max_history_items, derived
        self.vacuum_after_delete = vacuum_after_delete

    def ping(self) -> None:
        with self.sessions() as session:
            session.execute(select(1))

    # ---------------------------------------------------------------- tenants

    def add_tenant(self, tenant_id: str) -> str:
        """Create a tenant (if new) and a fresh API key for it; the key is returned once and stored hashed."""
        key = "pa-" + secrets.token_urlsafe(32)
        with self.sessions.begin() as session:
            if session.get(Tenant, tenant_id) is None:
                session.add(Tenant(id=tenant_id))
                session.flush()
            session.add(ApiKey(key_sha256=key_hash(key), tenant_id=tenant_id))
        return key

    def tenant_for_key(self, key: str) -> str | None:
        with self.sessions() as session:
            row = session.get(ApiKey, key_hash(key))
            return row.tenant_id if row else None

    # ---------------------------------------------------------------- history

    def add_items(self, tenant: str, user: str, items: list[dict[str, str]]) -> list[str]:
        """Add items in one transaction, committed (and fsynced on SQLite) before returning their ids."""
        ids = [item.get("id") or uuid.uuid4().hex[:16] for item in items]
        repeated = next((i for n, i in enumerate(ids) if i in ids[:n]), None)
        if repeated is not None:
            raise StoreError(f"item id {repeated!r} appears twice in the request", 409, "duplicate_item", "items")
        try:
            with self.sessions.begin() as session:
                self._lock_user(session, tenant, user)  # concurrent adds for one user count one after another
                count = self._count(session, tenant, user)
                if count + len(items) > self.max_history_items:
                    raise StoreError(f"the user would have {count + len(items)} history items; the limit is "
                                     f"{self.max_history_items}", 422, "history_limit_exceeded")
                taken = session.scalars(select(HistoryItem.item_id).where(
                    HistoryItem.tenant_id == tenant, HistoryItem.user_id == user, HistoryItem.item_id.in_(ids))).first()
                if taken is not None:
                    raise StoreError(f"the user already has an item with id {taken!r}", 409, "duplicate_item", "items")
                session.add_all(HistoryItem(tenant_id=tenant, user_id=user, item_id=i, text=item["text"])
                                for i, item in zip(ids, items))
                self._enqueue(session, tenant, user)  # in the same commit as the items
        except IntegrityError:  # a unique key the checks above did not see: never a 500, nothing of the text logged
            raise StoreError("the user already has an item with one of these ids", 409, "duplicate_item",
                             "items") from None
        return ids

    def _lock_user(self, session: Session, tenant: str, user: str) -> None:
        """Serialize writers of one user until the transaction ends: SQLite takes the database's write lock at
        once (BEGIN IMMEDIATE); PostgreSQL takes a transaction-scoped advisory lock on the (tenant, user) pair."""
        connection = session.connection()
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # pysqlite has not begun one: nothing was executed yet
        elif connection.dialect.name == "postgresql":
            connection.execute(sql_text("SELECT pg_advisory_xact_lock(:key)"), {"key": owner_key(tenant, user)})

    def _enqueue(self, session: Session, tenant: str, user: str) -> None:
        """Queue a rebuild of each derived kind for a user, unless one is already waiting (not yet claimed)."""
        waiting = set(session.scalars(select(Job.kind).where(Job.tenant_id == tenant, Job.user_id == user,
                                                             Job.status == "queued")))
        session.add_all(Job(tenant_id=tenant, user_id=user, kind=kind) for kind in self.derived if kind not in waiting)

    def _count(self, session: Session, tenant: str, user: str) -> int:
        query = select(func.count()).select_from(HistoryItem).where(HistoryItem.tenant_id == tenant,
                                                                    HistoryItem.user_id == user)
        return int(session.execute(query).scalar_one())

    def items(self, tenant: str, user: str, embeddings: str | None = None) -> list[dict[str, Any]]:
        """A user's history, oldest first; with ``embeddings`` (a model id), each embedded item's ``_embedding``."""
        with self.sessions() as session:
            query = (select(HistoryItem, ItemEmbedding.vector)
                     .outerjoin(ItemEmbedding, (ItemEmbedding.item_pk == HistoryItem.pk)
                                & (ItemEmbedding.model_id == (embeddings or "")))
                     .where(HistoryItem.tenant_id == tenant, HistoryItem.user_id == user).order_by(HistoryItem.pk))
            out = []
            for row, vector in session.execute(query):
                item = item_record(row)
                if embeddings:
                    item["embedded"] = vector is not None
                    if vector is not None:
                        item["_embedding"] = np.frombuffer(vector, dtype=np.float32)
                out.append(item)
            return out

    def users(self, tenant: str) -> list[dict[str, Any]]:
        with self.sessions() as session:
            rows = session.execute(select(HistoryItem.user_id, func.count()).where(HistoryItem.tenant_id == tenant)
                                   .group_by(HistoryItem.user_id).order_by(HistoryItem.user_id))
            return [{"user": user, "items": n} for user, n in rows]

    def delete_item(self, tenant: str, user: str, item_id: str) -> int:
        """Erase one item, its embedding, every summary built from it and every answer that used either (the
        answers' count is returned); a rebuild of the derived data without it is queued. 404 when it does not exist."""
        with self.sessions.begin() as session:
            self._lock_user(session, tenant, user)  # an answer or summary being stored from it waits, then sees it gone
            pk = session.scalars(select(HistoryItem.pk).where(
                HistoryItem.tenant_id == tenant, HistoryItem.user_id == user, HistoryItem.item_id == item_id)).first()
            if pk is None:
                raise StoreError(f"user {user!r} has no history item {item_id!r}", 404, "not_found")
            session.execute(delete(HistoryItem).where(HistoryItem.pk == pk))  # the embedding goes by cascade
            summaries = session.scalars(select(UserSummary).where(UserSummary.tenant_id == tenant,
                                                                  UserSummary.user_id == user))
            built_from = [s.version for s in summaries if pk in (s.item_pks or [])]
            if built_from:
                session.execute(delete(UserSummary).where(UserSummary.version.in_(built_from)))
            answers = session.scalars(select(AnswerRecord).where(AnswerRecord.tenant_id == tenant,
                                                                 AnswerRecord.user_id == user))
            derived = [a.pk for a in answers if item_id in (a.retrieved_ids or []) or a.summary_version in built_from]
            if derived:
                session.execute(delete(AnswerRecord).where(AnswerRecord.pk.in_(derived)))
            self._enqueue(session, tenant, user)
        self.purge()
        return len(derived)

    def delete_user(self, tenant: str, user: str) -> dict[str, int]:
        """Erase one user of one tenant: their items and answers. Other users and tenants are untouched."""
        with self.sessions.begin() as session:
            self._lock_user(session, tenant, user)
            items = session.execute(delete(HistoryItem).where(HistoryItem.tenant_id == tenant,
                                                              HistoryItem.user_id == user)).rowcount
            answers = session.execute(delete(AnswerRecord).where(AnswerRecord.tenant_id == tenant,
                                                                 AnswerRecord.user_id == user)).rowcount
            summaries = session.execute(delete(UserSummary).where(UserSummary.tenant_id == tenant,
                                                                  UserSummary.user_id == user)).rowcount
            session.execute(delete(Job).where(Job.tenant_id == tenant, Job.user_id == user))
        self.purge()
        return {"items": items, "answers": answers, "summaries": summaries}

    def purge(self) -> bool:
        """Make committed deletes leave the files: on SQLite (``secure_delete`` zeroes the deleted rows in the
        pages) copy the WAL into the database and truncate it to 0 bytes, so no page image holding a deleted row
        remains; with ``vacuum_after_delete``, also ``vacuum()``. False (logged) when a reader kept the WAL
        from being truncated; the next delete or ``personalign vacuum`` completes it."""
        if self.vacuum_after_delete:  # on SQLite it ends with the truncating checkpoint
            vacuumed = self.vacuum()
            if not vacuumed:
                LOG.warning(vacuumed.problem)
            return vacuumed.done
        return checkpoint(self.engine) if self.engine.dialect.name == "sqlite" else True

    def vacuum(self) -> Vacuumed:
        """Rewrite every table so that deleted rows leave the store's files. PostgreSQL: ``VACUUM FULL`` (each
        table, its TOAST table and indexes are written anew and the old files removed; it locks each table while
        it runs), then twice a WAL switch and a ``CHECKPOINT``, so the WAL segments written before are no longer
        needed and the server removes or recycles them (docs/serve.md: what stays, and ``wal_recycle``). Not done
        (``problem`` says why and what to do) when the role may not switch the WAL or checkpoint, or when the
        server has ``wal_recycle = on`` (a recycled segment keeps its old bytes). SQLite: ``VACUUM`` and a
        truncating WAL checkpoint (not done when a reader kept the WAL from being truncated)."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if self.engine.dialect.name != "postgresql":
                connection.exec_driver_sql("VACUUM")
                if self.engine.dialect.name == "sqlite" and not checkpoint(self.engine):  # logged by checkpoint
                    return Vacuumed(False, "VACUUM done, but a reader of the store kept the WAL file from being "
                                    "checkpointed and truncated, so it may still hold deleted rows; run it again "
                                    "when no long read is open")
                return Vacuumed(True)
            for table in Base.metadata.sorted_tables:
                connection.exec_driver_sql(f'VACUUM FULL "{table.name}"')
            try:
                for _ in range(2):
                    connection.exec_driver_sql("SELECT pg_switch_wal()")
                    connection.exec_driver_sql("CHECKPOINT")
            except DBAPIError as exc:  # neither superuser nor granted pg_checkpoint / pg_switch_wal
                return Vacuumed(False, f"VACUUM FULL done, but the WAL switch or CHECKPOINT was refused "
                                f"({type(exc.orig).__name__}): the WAL keeps deleted rows until the server's own "
                                "checkpoints recycle it; run it as a superuser, or grant the store's role "
                                "pg_checkpoint and EXECUTE on pg_switch_wal")
            if connection.exec_driver_sql("SHOW wal_recycle").scalar() != "off":
                return Vacuumed(False, "VACUUM FULL, WAL switch and CHECKPOINT done, but the server has "
                                "wal_recycle = on: old WAL segments are renamed for reuse and keep deleted rows "
                                "until overwritten; set wal_recycle = off (ALTER SYSTEM SET wal_recycle = off; "
                                "SELECT pg_reload_conf()) and run it again (docs/serve.md, \"Deletion on disk, "
                                "PostgreSQL\")")
        return Vacuumed(True)

    # ---------------------------------------------------------------- answers

    def add_answer(self, tenant: str, user: str, record: dict[str, Any]) -> bool:
        """Store an answer's trace, unless an item it retrieved or the summary it used was deleted while it was
        being made (the delete could not erase an answer not yet stored): False then, and nothing is stored."""
        record = {k: storable(v) if isinstance(v, str) else v for k, v in record.items()}  # a model's NUL
        used = set(record.get("retrieved_ids") or [])
        with self.sessions.begin() as session:
            unsynced_commit(session)  # no fsync under the write lock per personalized request (docs/serve.md)
            self._lock_user(session, tenant, user)
            present = session.scalar(select(func.count()).select_from(HistoryItem).where(
                HistoryItem.tenant_id == tenant, HistoryItem.user_id == user, HistoryItem.item_id.in_(used)))
            summary = record.get("summary_version")
            if present != len(used) or (summary is not None and session.get(UserSummary, summary) is None):
                return False
            session.add(AnswerRecord(tenant_id=tenant, user_id=user, **record))
        return True

    def answers(self, tenant: str, user: str, limit: int = 50) -> list[dict[str, Any]]:
        """A user's most recent personalized answers, newest first."""
        with self.sessions() as session:
            rows = session.scalars(select(AnswerRecord).where(AnswerRecord.tenant_id == tenant,
                                                              AnswerRecord.user_id == user)
                                   .order_by(AnswerRecord.pk.desc()).limit(limit))
            return [_answer(r) for r in rows]

    # ---------------------------------------------------------------- derived data and its queue

    def claim_job(self, owner: str) -> dict[str, Any] | None:
        """Take the oldest queued job (or one whose lease ran out); safe across processes sharing the store."""
        stale = now() - dt.timedelta(seconds=LEASE_SECONDS)
        with self.sessions.begin() as session:
            candidate = session.scalars(select(Job).where((Job.status == "queued") |
                                                          ((Job.status == "running") & (Job.claimed_at < stale)))
                                        .order_by(Job.id).limit(1)).first()
            if candidate is None:
                return None
            taken = session.execute(update(Job).where(Job.id == candidate.id, Job.status == candidate.status,
                                                      Job.owner == candidate.owner)
                                    .values(status="running", owner=owner, claimed_at=now(),
                                            attempts=Job.attempts + 1)).rowcount
            if not taken:
                return None
            return {"id": candidate.id, "tenant": candidate.tenant_id, "user": candidate.user_id,
                    "kind": candidate.kind, "attempts": candidate.attempts + 1}

    def finish_job(self, job_id: int, error: str = "", max_attempts: int = 3) -> None:
        with self.sessions.begin() as session:
            job = session.get(Job, job_id)
            if job is not None:
                job.status = "done" if not error else ("failed" if job.attempts >= max_attempts else "queued")
                job.error = error[:500]

    def missing_embeddings(self, tenant: str, user: str, model_id: str) -> list[tuple[int, str]]:
        """``(item pk, text)`` of a user's items without an embedding from ``model_id``."""
        with self.sessions() as session:
            done = select(ItemEmbedding.item_pk).where(ItemEmbedding.model_id == model_id)
            rows = session.execute(select(HistoryItem.pk, HistoryItem.text).where(
                HistoryItem.tenant_id == tenant, HistoryItem.user_id == user, HistoryItem.pk.not_in(done)))
            return [(pk, text) for pk, text in rows]

    def put_embeddings(self, model_id: str, rows: list[tuple[int, np.ndarray]]) -> int:
        """Store embeddings; an item deleted meanwhile is skipped (its row would be orphaned)."""
        stored = 0
        for pk, vector in rows:
            try:
                with self.sessions.begin() as session:
                    if session.get(HistoryItem, pk) is None:
                        continue
                    session.merge(ItemEmbedding(item_pk=pk, model_id=model_id,
                                                vector=np.asarray(vector, dtype=np.float32).tobytes()))
                stored += 1
            except IntegrityError:  # deleted between the check and the insert
                continue
        return stored

    def summary_source(self, tenant: str, user: str, limit: int) -> list[dict[str, Any]]:
        """A user's ``limit`` most recent items, oldest first, each with its store key ``_pk``."""
        with self.sessions() as session:
            rows = session.scalars(select(HistoryItem).where(HistoryItem.tenant_id == tenant,
                                                             HistoryItem.user_id == user)
                                   .order_by(HistoryItem.pk.desc()).limit(limit))
            return [{**item_record(row), "_pk": row.pk} for row in reversed(list(rows))]

    def put_summary(self, tenant: str, user: str, model_id: str, text: str, item_pks: list[int]) -> int | None:
        """Store a new summary version, built from ``item_pks``; its version, or None (and nothing stored) when
        one of those items was deleted meanwhile. Versions older than the newest ``KEEP_VERSIONS`` are dropped."""
        with self.sessions.begin() as session:
            self._lock_user(session, tenant, user)  # a delete of one of the items runs wholly before or after
            present = session.scalars(select(func.count()).select_from(HistoryItem)
                                      .where(HistoryItem.pk.in_(item_pks))).one()
            if present != len(set(item_pks)):
                return None
            row = UserSummary(tenant_id=tenant, user_id=user, model_id=model_id, text=text,
                              item_pks=sorted(set(item_pks)))
            session.add(row)
            session.flush()
            where = (UserSummary.tenant_id == tenant, UserSummary.user_id == user)
            kept = session.scalars(select(UserSummary.version).where(*where)
                                   .order_by(UserSummary.version.desc()).limit(KEEP_VERSIONS)).all()
            session.execute(delete(UserSummary).where(*where, UserSummary.version.not_in(kept)))
            version = row.version
        return version

    def summary(self, tenant: str, user: str, model_id: str | None = None) -> dict[str, Any] | None:
        """A user's newest complete summary (``text``, ``version``, ``created_at``), of ``model_id`` when given,
        or None before the first build."""
        where = [UserSummary.tenant_id == tenant, UserSummary.user_id == user]
        if model_id is not None:
            where.append(UserSummary.model_id == model_id)
        with self.sessions() as session:
            row = session.scalars(select(UserSummary).where(*where)
                                  .order_by(UserSummary.version.desc()).limit(1)).first()
            return None if row is None else {"text": row.text, "version": row.version, "model_id": row.model_id,
                                             "items": len(row.item_pks or []), "created_at": row.created_at.isoformat()}

    def queue(self) -> dict[str, Any]:
        """Queue depth and the age of the oldest waiting job (how stale derived data may be)."""
        with self.sessions() as session:
            counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
            oldest = session.execute(select(func.min(Job.created_at)).where(Job.status.in_(("queued", "running")))
                                     ).scalar_one()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.timezone.utc)
        return {"queued": counts.get("queued", 0), "running": counts.get("running", 0),
                "failed": counts.get("failed", 0),
                "oldest_seconds": (now() - oldest).total_seconds() if oldest is not None else 0.0}

    def export(self, tenant: str, user: str) -> dict[str, Any]:
        return {"user": user, "items": self.items(tenant, user), "summary": self.summary(tenant, user),
                "answers": self.answers(tenant, user, limit=10**9)}
