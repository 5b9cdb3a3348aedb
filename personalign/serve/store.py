"""Tenant-scoped operations on the store. Every method takes the tenant and filters on it; nothing is cached
in the process, so several service processes can share one database."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from personalign.serve.db import AnswerRecord, ApiKey, HistoryItem, Tenant, make_engine, migrate


class StoreError(Exception):
    """A request the store refuses: ``status`` is the HTTP status, ``code`` the OpenAI-style error code."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request"):
        super().__init__(message)
        self.status, self.code = status, code


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _item(row: HistoryItem) -> dict[str, Any]:
    return {"id": row.item_id, "text": row.text, "created_at": row.created_at.isoformat()}


def _answer(row: AnswerRecord) -> dict[str, Any]:
    return {"request_id": row.request_id, "method": row.method, "query": row.query, "base_answer": row.base_answer,
            "retrieved_ids": row.retrieved_ids, "thinking": row.thinking, "final": row.final,
            "fallback": row.fallback, "created_at": row.created_at.isoformat()}


class Store:
    """The history store behind ``personalign serve``."""

    def __init__(self, url: str, max_history_items: int = 10_000):
        self.engine = make_engine(url)
        migrate(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.max_history_items = max_history_items

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
        with self.sessions.begin() as session:
            count = self._count(session, tenant, user)
            if count + len(items) > self.max_history_items:
                raise StoreError(f"user {user!r} would have {count + len(items)} history items; the limit is "
                                 f"{self.max_history_items}", 422, "history_limit_exceeded")
            ids = [item.get("id") or uuid.uuid4().hex[:16] for item in items]
            session.add_all(HistoryItem(tenant_id=tenant, user_id=user, item_id=i, text=item["text"])
                            for i, item in zip(ids, items))
            try:
                session.flush()
            except IntegrityError:
                raise StoreError(f"user {user!r} already has an item with one of the ids {ids}", 409,
                                 "duplicate_item") from None
        return ids

    def _count(self, session: Session, tenant: str, user: str) -> int:
        query = select(func.count()).select_from(HistoryItem).where(HistoryItem.tenant_id == tenant,
                                                                    HistoryItem.user_id == user)
        return int(session.execute(query).scalar_one())

    def items(self, tenant: str, user: str) -> list[dict[str, Any]]:
        """A user's history, oldest first."""
        with self.sessions() as session:
            rows = session.scalars(select(HistoryItem).where(HistoryItem.tenant_id == tenant, HistoryItem.user_id == user)
                                   .order_by(HistoryItem.pk))
            return [_item(r) for r in rows]

    def users(self, tenant: str) -> list[dict[str, Any]]:
        with self.sessions() as session:
            rows = session.execute(select(HistoryItem.user_id, func.count()).where(HistoryItem.tenant_id == tenant)
                                   .group_by(HistoryItem.user_id).order_by(HistoryItem.user_id))
            return [{"user": user, "items": n} for user, n in rows]

    def delete_item(self, tenant: str, user: str, item_id: str) -> int:
        """Erase one item and every answer that used it; 404 when it does not exist."""
        with self.sessions.begin() as session:
            gone = session.execute(delete(HistoryItem).where(
                HistoryItem.tenant_id == tenant, HistoryItem.user_id == user, HistoryItem.item_id == item_id)).rowcount
            if not gone:
                raise StoreError(f"user {user!r} has no history item {item_id!r}", 404, "not_found")
            answers = session.scalars(select(AnswerRecord).where(AnswerRecord.tenant_id == tenant,
                                                                 AnswerRecord.user_id == user))
            derived = [a.pk for a in answers if item_id in (a.retrieved_ids or [])]
            if derived:
                session.execute(delete(AnswerRecord).where(AnswerRecord.pk.in_(derived)))
            return len(derived)

    def delete_user(self, tenant: str, user: str) -> dict[str, int]:
        """Erase one user of one tenant: their items and answers. Other users and tenants are untouched."""
        with self.sessions.begin() as session:
            items = session.execute(delete(HistoryItem).where(HistoryItem.tenant_id == tenant,
                                                              HistoryItem.user_id == user)).rowcount
            answers = session.execute(delete(AnswerRecord).where(AnswerRecord.tenant_id == tenant,
                                                                 AnswerRecord.user_id == user)).rowcount
        return {"items": items, "answers": answers}

    # ---------------------------------------------------------------- answers

    def add_answer(self, tenant: str, user: str, record: dict[str, Any]) -> None:
        with self.sessions.begin() as session:
            session.add(AnswerRecord(tenant_id=tenant, user_id=user, **record))

    def answers(self, tenant: str, user: str, limit: int = 50) -> list[dict[str, Any]]:
        """A user's most recent personalized answers, newest first."""
        with self.sessions() as session:
            rows = session.scalars(select(AnswerRecord).where(AnswerRecord.tenant_id == tenant,
                                                              AnswerRecord.user_id == user)
                                   .order_by(AnswerRecord.pk.desc()).limit(limit))
            return [_answer(r) for r in rows]

    def export(self, tenant: str, user: str) -> dict[str, Any]:
        return {"user": user, "items": self.items(tenant, user), "answers": self.answers(tenant, user, limit=10**9)}
