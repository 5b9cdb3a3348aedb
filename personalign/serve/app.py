"""The FastAPI app: OpenAI-compatible completions, the per-user history API, health, metrics, trace viewer.

Clients change their OpenAI client's base URL and pass the standard ``user`` field. Every route but
``/healthz``, ``/metrics`` and the viewer page needs ``Authorization: Bearer <tenant key>``, and sees
only that tenant's users. Errors use the OpenAI shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from personalign.backends.base import LLM
from personalign.serve.config import ServeConfig
from personalign.serve.derived import DerivedWorker, EmbeddingBuilder, StoredDenseRetriever, SummaryBuilder
from personalign.serve.personalizer import Personalizer, Result, UpstreamError
from personalign.serve.store import Store, StoreError

VIEWER = Path(__file__).parent / "viewer.html"


class Metrics:
    """The service's Prometheus metrics, in the app's own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("personalign_request_seconds", "Request latency by route", ["route"],
                                 registry=self.registry)
        self.stage_requests = Counter("personalign_stage_requests_total", "LLM stages run, by stage", ["stage"],
                                      registry=self.registry)
        self.stage_seconds = Histogram("personalign_stage_seconds", "Seconds per stage of a completion: store_read, "
                                       "personalize (retrieval and LLM calls), store_write", ["stage"],
                                       registry=self.registry)
        self.fallbacks = Counter("personalign_fallbacks_total", "Base answers returned because personalization "
                                 "failed, by reason", ["reason"], registry=self.registry)
        self.upstream_errors = Counter("personalign_upstream_errors_total", "Base-model errors and timeouts",
                                       registry=self.registry)
        self.items = Counter("personalign_history_items_total", "History items added or deleted", ["op"],
                             registry=self.registry)
        self.derived_lookups = Counter(
            "personalign_derived_lookups_total", "Derived data a request found built (hit) or not yet (miss): "
            "per item for embed, per request for summary", ["kind", "result"], registry=self.registry)

    def track_queue(self, store: Store) -> None:
        """Gauges read from the store at scrape time: the derived-data queue and its oldest job's age."""
        Gauge("personalign_derived_queue_jobs", "Derived-data jobs waiting or running",
              registry=self.registry).set_function(lambda: (lambda q: q["queued"] + q["running"])(store.queue()))
        Gauge("personalign_derived_age_seconds", "Age of the oldest waiting derived-data job (0: all built)",
              registry=self.registry).set_function(lambda: store.queue()["oldest_seconds"])


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: Any = None


class ChatRequest(BaseModel):
    """The OpenAI chat-completions request; fields this service does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    user: str | None = None
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None

    def sampling(self) -> dict[str, Any]:
        """The sampling fields the request set (the others stay the method's: greedy by default)."""
        return {name: getattr(self, name) for name in ("temperature", "top_p", "seed") if getattr(self, name) is not None}


class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    id: str | None = Field(None, min_length=1, max_length=128)


class NewItems(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[NewItem] = Field(min_length=1)


def error(status: int, message: str, code: str, kind: str = "invalid_request_error", param: str | None = None
          ) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


def completion_body(result: Result, model: str) -> dict[str, Any]:
    return {"id": result.request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                      "total_tokens": result.prompt_tokens + result.completion_tokens},
            "personalign": trace_body(result)}


def trace_body(result: Result) -> dict[str, Any]:
    return {"base_answer": result.base_answer, "retrieved_ids": result.retrieved_ids, "thinking": result.thinking,
            "fallback": result.fallback, "stages": result.stages, "summary_version": result.summary_version,
            "seconds": round(result.seconds, 3), "timings": result.timings}


def stream_chunks(result: Result, model: str, size: int = 16):
    """Server-sent events as the OpenAI API sends them: a role chunk, content chunks, a stop chunk, [DONE]."""
    def event(delta: dict[str, Any], finish: str | None = None, extra: dict | None = None) -> str:
        body = {"id": result.request_id, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **(extra or {})}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    for start in range(0, len(result.text), size):
        yield event({"content": result.text[start:start + size]})
    yield event({}, "stop", {"personalign": trace_body(result)})
    yield "data: [DONE]\n\n"


def create_app(config: ServeConfig, base_llm: LLM | None = None, store: Store | None = None) -> FastAPI:
    """The service app; ``base_llm`` and ``store`` replace the configured ones (tests pass fakes for orchestration)."""
    metrics = Metrics()
    dense = config.retriever.partition(":")[0] == "dense"
    store = store or Store(config.store(), config.max_history_items)
    retriever, embeddings, builders = None, None, []
    if dense:  # embeddings are derived data: built in the background, stored per item, deleted with it
        from personalign.retrievers.dense import DenseRetriever

        encoder = DenseRetriever(config.retriever.partition(":")[2] or None)
        embeddings, retriever = encoder.model_id, StoredDenseRetriever(encoder)
        builders.append(EmbeddingBuilder(encoder))
    personalizer = Personalizer(config, base_llm=base_llm, metrics=metrics, retriever=retriever)
    if personalizer.derived_key:  # summaries, user models: derived data, versioned, built in the background
        builders.append(SummaryBuilder(personalizer))
    store.derived = tuple(builder.kind for builder in builders)
    worker = DerivedWorker(store, builders) if builders and config.derived_worker else None
    metrics.track_queue(store)
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        import anyio

        anyio.to_thread.current_default_thread_limiter().total_tokens = config.threads  # concurrent sync requests
        if worker:
            worker.start()
        yield
        if worker:
            worker.stop()
        personalizer.close()

    app = FastAPI(title="Personalign", version="0.1.0", lifespan=lifespan)
    app.state.store, app.state.personalizer, app.state.metrics, app.state.worker = store, personalizer, metrics, worker

    @app.exception_handler(StoreError)
    def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return error(exc.status, str(exc), exc.code)

    @app.exception_handler(RequestValidationError)
    def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return error(400, f"{where}: {first['msg']}", "invalid_request", param=where)

    @app.middleware("http")
    async def _limits_and_timing(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > config.max_request_bytes:
            return error(413, f"request body of {length} bytes is over the limit of {config.max_request_bytes}",
                         "request_too_large")
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.latency.labels(route=getattr(route, "path", "unmatched")).observe(time.perf_counter() - start)
        return response

    def tenant(authorization: str | None = Header(None)) -> str:
        key = (authorization or "").removeprefix("Bearer ").strip()
        found = store.tenant_for_key(key) if key else None
        if found is None:
            raise StoreError("invalid API key: pass a tenant key as 'Authorization: Bearer <key>'", 401,
                             "invalid_api_key")
        return found

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        store.ping()
        return {"status": "ok", "method": personalizer.method_name, "derived_queue": store.queue()}

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    def models(_: str = Depends(tenant)) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": config.served_model, "object": "model", "created": 0,
                                            "owned_by": "personalign"}]}

    def count_lookups(profile: list[dict[str, Any]], summary: dict[str, Any] | None) -> None:
        if embeddings:
            built = sum(bool(item.get("embedded")) for item in profile)
            metrics.derived_lookups.labels(kind="embed", result="hit").inc(built)
            metrics.derived_lookups.labels(kind="embed", result="miss").inc(len(profile) - built)
        if personalizer.derived_key:
            metrics.derived_lookups.labels(kind="summary", result="hit" if summary else "miss").inc()

    @app.post("/v1/chat/completions", response_model=None)
    def chat(body: ChatRequest, tenant_id: str = Depends(tenant)) -> Any:
        messages = [m.model_dump() for m in body.messages]
        start = time.perf_counter()
        profile = store.items(tenant_id, body.user, embeddings) if body.user else []
        summary = store.summary(tenant_id, body.user, personalizer.derived_id) if body.user and personalizer.derived_key else None
        timings = {"store_read": time.perf_counter() - start}
        if body.user:
            count_lookups(profile, summary)
        try:
            result = personalizer.answer(messages, profile, body.max_completion_tokens or body.max_tokens,
                                         personalize=body.user is not None, summary=summary, sampling=body.sampling())
        except UpstreamError as exc:
            metrics.upstream_errors.inc()
            return error(502, f"the base model failed: {exc}", "upstream_error", "api_error")
        timings["personalize"] = result.seconds
        start = time.perf_counter()
        for stage in result.stages:
            metrics.stage_requests.labels(stage=stage).inc()
        if body.user:
            store.add_answer(tenant_id, body.user, {
                "request_id": result.request_id, "method": personalizer.method_name,
                "query": messages[-1].get("content") if isinstance(messages[-1].get("content"), str) else "",
                "base_answer": result.base_answer, "retrieved_ids": result.retrieved_ids,
                "thinking": result.thinking, "final": result.text, "fallback": result.fallback,
                "summary_version": result.summary_version})
        timings["store_write"] = time.perf_counter() - start
        for stage, seconds in timings.items():
            metrics.stage_seconds.labels(stage=stage).observe(seconds)
        result.timings = {k: round(v, 4) for k, v in timings.items()}
        if body.stream:
            return StreamingResponse(stream_chunks(result, body.model), media_type="text/event-stream")
        return completion_body(result, body.model)

    @app.get("/v1/users")
    def users(tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        return {"users": store.users(tenant_id)}

    @app.post("/v1/users/{user}/history", status_code=201)
    def add_history(user: str, body: NewItems, tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        too_long = [i for i, item in enumerate(body.items) if len(item.text) > config.max_item_chars]
        if too_long:
            raise StoreError(f"items[{too_long[0]}].text is over {config.max_item_chars} characters", 413,
                             "item_too_large")
        ids = store.add_items(tenant_id, user, [item.model_dump() for item in body.items])
        metrics.items.labels(op="add").inc(len(ids))
        return {"user": user, "added": len(ids), "ids": ids}

    @app.get("/v1/users/{user}/history")
    def list_history(user: str, tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        items = [{k: v for k, v in item.items() if k != "_embedding"} for item in store.items(tenant_id, user, embeddings)]
        return {"user": user, "items": items}

    @app.delete("/v1/users/{user}/history/{item_id}")
    def delete_item(user: str, item_id: str, tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        answers = store.delete_item(tenant_id, user, item_id)
        metrics.items.labels(op="delete").inc()
        return {"user": user, "deleted": item_id, "answers_deleted": answers}

    @app.delete("/v1/users/{user}")
    def delete_user(user: str, tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        return {"user": user, "deleted": store.delete_user(tenant_id, user)}

    @app.get("/v1/users/{user}/export")
    def export(user: str, tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        return store.export(tenant_id, user)

    @app.get("/v1/users/{user}/answers")
    def answers(user: str, limit: int = 20, tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        return {"user": user, "answers": store.answers(tenant_id, user, max(1, min(limit, 500)))}

    @app.get("/viewer", response_class=HTMLResponse)
    def viewer() -> str:
        return VIEWER.read_text()

    return app
