"""Screenshot the trace viewer in headless Chromium: a throwaway service with one example user.

    python tools/viewer_screenshot.py docs/img/viewer.png            # Debian's chromium, --headless --no-sandbox

The base model is the embedded SmolLM2 (llama.cpp) and the method RAG, so the trace is real.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main(out: str) -> None:
    import httpx
    import openai

    from personalign.serve.app import create_app
    from personalign.serve.config import ServeConfig
    from personalign.serve.store import Store
    from test_serve import running

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        config = ServeConfig(data_dir=tmp, base_llm_options={"n_ctx": 2048})
        store = Store(config.store())
        key = store.add_tenant("demo")
        with running(create_app(config, store=store)) as url:
            httpx.post(f"{url}/v1/users/harsh_hank/history", headers={"Authorization": f"Bearer {key}"},
                       json={"items": [{"text": "Strings went dead after two weeks. Expected more. (2/5)"},
                                       {"text": "Pedal is noisy. Returned it. (1/5)"}]})
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=key)
            client.chat.completions.create(model="personalign", user="harsh_hank", max_tokens=48, messages=[
                {"role": "user", "content": "Write a one-line review of a guitar tuner whose clip cracked."}])
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            "--window-size=1400,800", "--virtual-time-budget=8000", f"--screenshot={Path(out).resolve()}",
                            f"{url}/viewer#key={key}&user=harsh_hank"], check=True, capture_output=True, timeout=120)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img/viewer.png")
