"""The FastAPI app: OpenAI-compatible completions, the per-user history API, health, metrics, trace viewer.

Clients change their OpenAI client's base URL and name the user (``user``, ``safety_identifier`` or a header:
``identity.py``). Every route but
``/healthz``, ``/metrics`` and the viewer page needs ``Authorization: Bearer <tenant key>``, and sees
only that tenant's users. Errors use the OpenAI shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from personalign.backends.base import LLM
from personalign.serve.config import ServeConfig
from personalign.serve.derived import DerivedWorker, EmbeddingBuilder, StoredDenseRetriever, SummaryBuilder
from personalign.serve.personalizer import Personalizer, Result, UpstreamError
from personalign.serve.search import StoredBM25Retriever, StoredProfile
from personalign.serve import errors, identity, openai_api, responses_api, validation
from personalign.serve.errors import error
from personalign.serve.logs import install_log_filters
from personalign.serve.metrics import MULTIPROC_ENV, Metrics
from personalign.serve.openai_api import ChatRequest
from personalign.serve.store import Store, StoreError
from personalign.serve.validation import InvalidField

VIEWER = Path(__file__).parent / "viewer.html"
# the viewer page: its own script and style only, no inline script, no plugins, no framing, no form posts
VIEWER_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
              "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
VIEWER_HEADERS = {"Content-Security-Policy": VIEWER_CSP, "X-Content-Type-Options": "nosniff",
                  "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


class ClosingStreamingResponse(StreamingResponse):
    """Server-sent events from generators that are closed as soon as the response ends, finished or not. A client
    that leaves mid-stream stops the answer at once: its generator holds the in-process model's lock (and an HTTP
    base's open stream), and left suspended it would keep them until the garbage collector found it."""

    def __init__(self, events: Iterator[str], *inner: Iterator[Any]):
        super().__init__(events, media_type="text/event-stream")
        self.generators = (events, *inner)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:  # no thread is inside the generators now: a cancelled to_thread call waits for its thread
            with anyio.CancelScope(shield=True):
                for generator in self.generators:
                    await anyio.to_thread.run_sync(getattr(generator, "close", lambda: None))


class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    id: str | None = Field(None, min_length=1, max_length=128)


class NewItems(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[NewItem] = Field(min_length=1)


def create_app(config: ServeConfig, base_llm: LLM | None = None, store: Store | None = None) -> FastAPI:
    """The service app; ``base_llm`` and ``store`` replace the configured ones (tests pass fakes for orchestration)."""
    metrics = Metrics(os.environ.get(MULTIPROC_ENV) if config.workers > 1 else None)
    dense = config.retriever.partition(":")[0] == "dense"
    store = store or Store(config.store(), config.max_history_items, vacuum_after_delete=config.vacuum_after_delete)
    retriever, embeddings, builders = (StoredBM25Retriever() if config.retriever == "bm25" else None), None, []
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
        anyio.to_thread.current_default_thread_limiter().total_tokens = config.threads  # concurrent sync requests
        install_log_filters()  # no ids in the access log, no exception messages in tracebacks
        if worker:
            worker.start()
        yield
        if worker:
            worker.stop()
        personalizer.close()
        metrics.process_exited()

    app = FastAPI(title="Personalign", version="0.1.0", lifespan=lifespan)
    errors.install(app)  # 404, 405, unreadable bodies and 500s in the OpenAI shape too
    app.state.store, app.state.personalizer, app.state.metrics, app.state.worker = store, personalizer, metrics, worker

    @app.exception_handler(StoreError)
    def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return error(exc.status, str(exc), exc.code, param=exc.param)

    @app.exception_handler(InvalidField)
    def _invalid_field(_: Request, exc: InvalidField) -> JSONResponse:
        return error(400, str(exc), "invalid_request", param=exc.param)

    @app.exception_handler(413)  # the body limiter counted more bytes than max_request_bytes (chunked or not)
    def _too_large(_: Request, __: Exception) -> JSONResponse:
        return error(413, f"request body is over the limit of {config.max_request_bytes} bytes", "request_too_large")

    @app.exception_handler(RequestValidationError)
    def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            return error(400, f"the request body is not valid JSON: {first['ctx']['error']}", "invalid_json")
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"  # the body itself: not an object
        return error(400, f"{where}: {first['msg']}", "invalid_request", param=where)

    # counts the body bytes as they are read, chunked or not; over the limit the route's read raises a 413
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=config.max_request_bytes)

    @app.middleware("http")
    async def _limits_and_timing(request: Request, call_next: Any) -> Response:
        start, status = time.perf_counter(), 500
        try:
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > config.max_request_bytes:
                response = error(413, f"request body of {length} bytes is over the limit of "
                                 f"{config.max_request_bytes}", "request_too_large")
            else:
                response = await call_next(request)
            status = response.status_code
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            metrics.latency.labels(route=route, status=str(status)).observe(time.perf_counter() - start)
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
        return {"status": "ok", "method": personalizer.method_name, "derived_queue": store.queue(), "pid": os.getpid()}

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.scrape(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    def models(_: str = Depends(tenant)) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": config.served_model, "object": "model", "created": 0,
                                            "owned_by": "personalign"}]}

    @app.get("/v1/models/{model_id:path}", response_model=None)
    def model(model_id: str, _: str = Depends(tenant)) -> Any:
        if model_id != config.served_model:
            return error(404, f"The model '{model_id}' does not exist: this service serves '{config.served_model}'",
                         "model_not_found", param="model")
        return {"id": config.served_model, "object": "model", "created": 0, "owned_by": "personalign"}

    def count_lookups(profile: list[dict[str, Any]], summary: dict[str, Any] | None) -> None:
        if embeddings:
            built = sum(bool(item.get("embedded")) for item in profile)
            metrics.derived_lookups.labels(kind="embed", result="hit").inc(built)
            metrics.derived_lookups.labels(kind="embed", result="miss").inc(len(profile) - built)
        if personalizer.derived_key:
            metrics.derived_lookups.labels(kind="summary", result="hit" if summary else "miss").inc()

    @app.post("/v1/chat/completions", response_model=None)
    def chat(body: ChatRequest, request: Request, tenant_id: str = Depends(tenant)) -> Any:
        return complete(body, request, tenant_id)

    @app.post("/v1/responses", response_model=None)
    def responses(body: responses_api.ResponsesRequest, request: Request, tenant_id: str = Depends(tenant)) -> Any:
        """OpenAI's Responses API (text, function tools, structured output), answered as a chat completion."""
        try:
            return complete(responses_api.chat_request(body), request, tenant_id, body)
        except RequestValidationError as exc:  # a chat field's refusal, named as the Responses field
            raise responses_api.responses_refusal(exc) from None

    def complete(body: ChatRequest, request: Request, tenant_id: str,
                 responses: responses_api.ResponsesRequest | None = None) -> Any:
        """A chat completion, rendered as one (or, with ``responses``, as the Responses API's answer)."""
        body.user = identity.request_user(body, request.headers)  # user, safety_identifier or a header: one user
        if body.user is not None:  # before any store or base-model call
            validation.user_id(body.user, "user")
        messages = [m.model_dump() for m in body.messages]
        validation.message_contents(messages)
        options = openai_api.check(body, messages, personalizer, personalized=body.user is not None)  # 400 by name
        start = time.perf_counter()
        profile = ((store.items(tenant_id, body.user, embeddings) if embeddings else StoredProfile(store, tenant_id, body.user))
                   if body.user else [])  # BM25 ranks in the store: a request reads k items, not the history
        summary = store.summary(tenant_id, body.user, personalizer.derived_id) if body.user and personalizer.derived_key else None
        timings = {"store_read": time.perf_counter() - start}
        if body.user:
            count_lookups(profile, summary)
        def record(result: Result) -> None:  # metrics and the stored answer, once the answer is complete
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

        def run(stream: bool):
            return personalizer.run(messages, profile, body.max_completion_tokens or body.max_tokens,
                                    personalize=body.user is not None, summary=summary, sampling=body.sampling(),
                                    options=options, stream=stream)

        def failed(exc: Exception) -> dict[str, Any]:  # an error after the stream began: OpenAI's error event
            if isinstance(exc, UpstreamError):
                metrics.upstream_errors.inc()
                return json.loads(errors.upstream_error(exc).body)
            return {"error": {"message": "internal error", "type": "api_error", "param": None, "code": "internal_error"}}

        try:
            if body.stream:
                stream = openai_api.primed(openai_api.events(body, run, record))
                events = (responses_api.responses_stream(responses, stream, failed) if responses
                          else openai_api.chat_stream(body, stream, failed))
                return ClosingStreamingResponse(events, stream)
            results = openai_api.choices(body, run, record)
            if responses:
                return responses_api.response_body(responses, results[0], "resp_" + results[0].request_id[9:],
                                                int(time.time()))
            return openai_api.completion_body(results, body.model)
        except UpstreamError as exc:
            metrics.upstream_errors.inc()
            return errors.upstream_error(exc)  # 429/503 with Retry-After, 504, 400 or 502 (docs/serve.md)

    @app.get("/v1/users")
    def users(tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        return {"users": store.users(tenant_id)}

    @app.post("/v1/users/{user}/history", status_code=201)
    def add_history(user: str, body: NewItems, tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        validation.user_id(user)
        for index, item in enumerate(body.items):
            validation.text(item.text, f"items.{index}.text")
            if item.id is not None:
                validation.item_id(item.id, f"items.{index}.id")
        too_long = [i for i, item in enumerate(body.items) if len(item.text) > config.max_item_chars]
        if too_long:
            raise StoreError(f"items[{too_long[0]}].text is over {config.max_item_chars} characters", 413,
                             "item_too_large")
        ids = store.add_items(tenant_id, user, [item.model_dump() for item in body.items])
        metrics.items.labels(op="add").inc(len(ids))
        return {"user": user, "added": len(ids), "ids": ids}

    @app.get("/v1/users/{user}/history")
    def list_history(user: str, tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        validation.user_id(user)
        items = [{k: v for k, v in item.items() if k != "_embedding"} for item in store.items(tenant_id, user, embeddings)]
        return {"user": user, "items": items}

    @app.delete("/v1/users/{user}/history/{item_id}")
    def delete_item(user: str, item_id: str, tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        validation.user_id(user)
        validation.item_id(item_id)
        answers = store.delete_item(tenant_id, user, item_id)
        metrics.items.labels(op="delete").inc()
        return {"user": user, "deleted": item_id, "answers_deleted": answers}

    @app.delete("/v1/users/{user}")
    def delete_user(user: str, tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        validation.user_id(user)
        deleted = store.delete_user(tenant_id, user)
        metrics.user_deletes.inc()
        metrics.items.labels(op="delete").inc(deleted["items"])
        return {"user": user, "deleted": deleted}

    @app.get("/v1/users/{user}/export")
    def export(user: str, tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        validation.user_id(user)
        return store.export(tenant_id, user)

    @app.get("/v1/users/{user}/answers")
    def answers(user: str, limit: int = 20, tenant_id: str = Depends(tenant)) -> dict[str, Any]:
        validation.user_id(user)
        return {"user": user, "answers": store.answers(tenant_id, user, max(1, min(limit, 500)))}

    @app.get("/viewer", response_class=HTMLResponse)
    def viewer() -> Response:
        return HTMLResponse(VIEWER.read_text(), headers=VIEWER_HEADERS)

    @app.get("/viewer.js")
    def viewer_script() -> Response:
        return Response(VIEWER.with_suffix(".js").read_text(), media_type="text/javascript", headers=VIEWER_HEADERS)

    @app.get("/viewer.css")
    def viewer_style() -> Response:
        return Response(VIEWER.with_suffix(".css").read_text(), media_type="text/css", headers=VIEWER_HEADERS)

    return app


CONFIG_ENV = "PERSONALIGN_SERVE_CONFIG"  # ``personalign serve --workers N``: each process's settings, as JSON


def app_from_env() -> FastAPI:
    """The app of one of ``personalign serve --workers N``'s processes (uvicorn's factory): the settings the
    parent validated, from ``CONFIG_ENV``. Processes share nothing but the store."""
    return create_app(ServeConfig.model_validate_json(os.environ[CONFIG_ENV]))
