"""``personalign serve`` (the OpenAI-compatible personalization service) and ``personalign tenant add``."""

from __future__ import annotations

import argparse


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from personalign.serve.app import create_app
    from personalign.serve.config import load_serve_config

    config = load_serve_config(args.config, {"host": args.host, "port": args.port})
    app = create_app(config)
    print(f"personalign serve: {app.state.personalizer.method_name} on {config.base_llm}, store {config.store()}, "
          f"http://{config.host}:{config.port}/v1 (viewer: /viewer)", flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level)
    return 0


def cmd_tenant(args: argparse.Namespace) -> int:
    from personalign.serve.config import load_serve_config
    from personalign.serve.store import Store

    config = load_serve_config(args.config)
    key = Store(config.store(), config.max_history_items).add_tenant(args.name)
    print(f"tenant {args.name}: API key {key}  (shown once; only its hash is stored)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sv = sub.add_parser("serve", help="the OpenAI-compatible personalization service (FastAPI under uvicorn)")
    sv.add_argument("--config", help="YAML with the service settings (see configs/serve/)")
    sv.add_argument("--host", help="(overrides the config)")
    sv.add_argument("--port", type=int, help="(overrides the config)")
    sv.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    sv.set_defaults(func=cmd_serve)

    tn = sub.add_parser("tenant", help="create a tenant and an API key in the service's store")
    tn.add_argument("action", choices=["add"])
    tn.add_argument("name")
    tn.add_argument("--config", help="the service's YAML (its store)")
    tn.set_defaults(func=cmd_tenant)
