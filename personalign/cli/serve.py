"""``personalign serve`` (the OpenAI-compatible personalization service), ``personalign tenant add`` and
``personalign vacuum``."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from personalign.serve.app import CONFIG_ENV, create_app
    from personalign.serve.config import load_serve_config
    from personalign.serve.db import shown_url
    from personalign.serve.metrics import MULTIPROC_ENV
    from personalign.serve.store import Store

    config = load_serve_config(args.config, {"host": args.host, "port": args.port, "workers": args.workers})
    where = (f"{config.base_llm}, store {shown_url(config.store())}, http://{config.host}:{config.port}/v1 "
             "(viewer: /viewer)")
    if config.workers > 1:  # N processes on one store: migrate it once here, then each process builds its app
        Store(config.store(), config.max_history_items).engine.dispose()
        os.environ[CONFIG_ENV] = config.model_dump_json()
        # the processes' metric files: a fresh private folder (0700) for this run, removed when it ends
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        os.environ[MULTIPROC_ENV] = metrics_dir = tempfile.mkdtemp(prefix="metrics-", dir=config.data_dir)
        print(f"personalign serve: {config.workers} processes, {config.method_name()} on {where}", flush=True)
        try:
            uvicorn.run("personalign.serve.app:app_from_env", factory=True, workers=config.workers,
                        host=config.host, port=config.port, log_level=args.log_level)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        return 0
    app = create_app(config)
    print(f"personalign serve: {app.state.personalizer.method_name} on {where}", flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level)
    return 0


def cmd_tenant(args: argparse.Namespace) -> int:
    from personalign.serve.config import load_serve_config
    from personalign.serve.store import Store

    config = load_serve_config(args.config)
    key = Store(config.store(), config.max_history_items).add_tenant(args.name)
    print(f"tenant {args.name}: API key {key}  (shown once; only its hash is stored)")
    return 0


def cmd_vacuum(args: argparse.Namespace) -> int:
    from personalign.serve.config import load_serve_config
    from personalign.serve.db import shown_url
    from personalign.serve.store import Store

    config = load_serve_config(args.config)
    store = Store(config.store(), config.max_history_items)
    vacuumed = store.vacuum()
    store.engine.dispose()
    print(f"vacuum of {shown_url(store.engine.url)}: "
          + ("done: deleted rows are out of the store's files" if vacuumed else f"not complete: {vacuumed.problem}"))
    return 0 if vacuumed else 1


def register(sub: argparse._SubParsersAction) -> None:
    sv = sub.add_parser("serve", help="the OpenAI-compatible personalization service (FastAPI under uvicorn)")
    sv.add_argument("--config", help="YAML with the service settings (see configs/serve/)")
    sv.add_argument("--host", help="(overrides the config)")
    sv.add_argument("--port", type=int, help="(overrides the config)")
    sv.add_argument("--workers", type=int, help="service processes sharing the store (overrides the config's "
                    "workers; default 1)")
    sv.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                    help="uvicorn's log level")
    sv.set_defaults(func=cmd_serve)

    tn = sub.add_parser("tenant", help="create a tenant and an API key in the service's store")
    tn.add_argument("action", choices=["add"], help="add: create the tenant and print its API key")
    tn.add_argument("name", help="the tenant's name")
    tn.add_argument("--config", help="the service's YAML (its store)")
    tn.set_defaults(func=cmd_tenant)

    vc = sub.add_parser("vacuum", help="rewrite the service's store so deleted rows leave its files (PostgreSQL: "
                        "VACUUM FULL, WAL switch, CHECKPOINT; SQLite: VACUUM; see docs/serve.md)")
    vc.add_argument("--config", help="the service's YAML (its store)")
    vc.set_defaults(func=cmd_vacuum)
