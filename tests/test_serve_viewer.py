"""The trace viewer under stored script: headless Chromium, driven over the DevTools protocol, clicks a user whose
id, items, query and stored answer are script and quote-breaking payloads (issue 27; docs/serve.md, "Safety")."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fakes import FakeEchoLLM
from serve_helpers import running

from personalign.serve.app import create_app
from personalign.serve.config import ServeConfig
from personalign.serve.store import Store


class FakeEchoAllLLM(FakeEchoLLM):
    """FAKE base model: answers ``echo:`` and every message of the prompt, so an answer quotes what was retrieved."""

    def _generate(self, messages, params):  # type: ignore[no-untyped-def]
        completion = super()._generate(messages, params)
        completion.text = "echo: " + " | ".join(str(m.get("content")) for m in messages)
        return completion


PWN = "window.__pwned=(window.__pwned||0)+1;document.title='PWNED';console.log('PWNED')"
PAYLOAD_USER = f"x');{PWN};('"
PAYLOAD_ITEMS = [f'<img src=x onerror="{PWN}">', f'"><script>{PWN}</script>', f"x');{PWN};('",
                 f"</td></tr></table><svg onload=\"{PWN}\">"]
PAYLOAD_QUERY = f"<script>{PWN}</script> what do I like?"


class DevTools:
    """A minimal Chrome DevTools Protocol client on one page target (JSON over a websocket)."""

    def __init__(self, ws):  # type: ignore[no-untyped-def]
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, **params):  # type: ignore[no-untyped-def]
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message.get("result", {})
            self.events.append(message)

    def eval(self, expression: str):  # type: ignore[no-untyped-def]
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait(self, expression: str, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while not self.eval(expression):
            assert time.monotonic() < deadline, f"never true: {expression}"
            time.sleep(0.1)


def test_the_viewer_shows_stored_script_payloads_as_text_and_runs_none_of_them(tmp_path):
    """Headless Chromium clicks a user whose id, items, query and stored answer are script and quote-breaking
    payloads: none runs (no title change, no global, no console marker, no CSP violation: nothing even tried),
    each shows literally, and the key is kept in no storage."""
    connect = pytest.importorskip("websockets.sync.client").connect
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt install chromium)")
    config = ServeConfig(data_dir=str(tmp_path / "store"))
    store = Store(config.store())
    app, key = create_app(config, base_llm=FakeEchoAllLLM(), store=store), store.add_tenant("acme")
    auth = {"Authorization": f"Bearer {key}"}
    with running(app) as url:
        added = httpx.post(f"{url}/v1/users/{quote(PAYLOAD_USER, safe='')}/history", headers=auth,
                           json={"items": [{"text": t} for t in PAYLOAD_ITEMS]})
        assert added.status_code == 201, added.text
        httpx.post(f"{url}/v1/users/plain/history", headers=auth, json={"items": [{"text": "harmless"}]})
        answer = httpx.post(f"{url}/v1/chat/completions", headers=auth, json={
            "model": "m", "user": PAYLOAD_USER, "messages": [{"role": "user", "content": PAYLOAD_QUERY}]}).json()
        assert "<img src=x onerror=" in answer["choices"][0]["message"]["content"]  # the stored answer holds them
        page = httpx.get(f"{url}/viewer")
        csp = page.headers["content-security-policy"]
        for rule in ("script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
            assert rule in csp
        assert "unsafe-inline" not in csp and "<script>" not in page.text and "onclick" not in page.text
        profile = tmp_path / "chromium"
        browser = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                    "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            port = _devtools_port(browser, profile)
            target = next(t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page")
            with connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
                tab = DevTools(ws)
                state, shown, hole = _click_the_hostile_user(tab, url, key)
        finally:
            browser.terminate()
            browser.wait(timeout=20)
    store.engine.dispose()
    assert state == {"title": "Personalign trace viewer", "pwned": 0, "elements": 0, "stored": 0, "hash": "",
                     "key_in_dom": False, "key_in_input": False}
    for text in [PAYLOAD_USER, PAYLOAD_QUERY, *PAYLOAD_ITEMS]:
        assert text in shown  # each payload shown literally: history rows, the query, the retrieved items
    assert hole == 0
    console = [e for e in tab.events if e.get("method") == "Runtime.consoleAPICalled"]
    assert not [e for e in console if "PWNED" in json.dumps(e)]
    violations = [e for e in tab.events if e.get("method") == "Log.entryAdded"
                  and "Content Security Policy" in e["params"]["entry"].get("text", "")]
    assert len(violations) == 1  # only the hand-injected handler's: the page itself never tried inline script


def _click_the_hostile_user(tab: DevTools, url: str, key: str) -> tuple[dict, str, int]:
    """Open the viewer, click the payload user with real mouse events; the page's state, its detail text, and
    whether a handler injected by hand afterwards ran (the CSP's own check)."""
    for domain in ("Runtime", "Log", "Page"):
        tab.call(f"{domain}.enable")
    tab.call("Page.navigate", url=f"{url}/viewer#key={key}")
    tab.wait("document.querySelectorAll('button.user').length === 2")
    box = tab.eval("(() => { const b = [...document.querySelectorAll('button.user')]"
                   f".find(b => b.dataset.user === {json.dumps(PAYLOAD_USER)}); b.scrollIntoView();"
                   " const r = b.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    for kind in ("mousePressed", "mouseReleased"):  # a real click on the user's entry
        tab.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
    tab.wait("document.querySelectorAll('#detail tr').length >= 6")
    time.sleep(0.5)  # an onerror/onload would have fired by now
    shown = tab.eval("document.getElementById('detail').textContent")
    state = tab.eval("({title: document.title, pwned: window.__pwned || 0, "
                     "elements: document.querySelectorAll('#detail img, #detail script, #detail svg').length, "
                     "stored: sessionStorage.length + localStorage.length, hash: location.hash, "
                     f"key_in_dom: document.documentElement.outerHTML.includes({json.dumps(key)}), "
                     "key_in_input: document.getElementById('key').value !== ''})")
    # and the CSP itself: even markup injected by hand cannot run an inline handler
    tab.eval("document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=\"window.__csp_hole=1\">')")
    time.sleep(0.5)
    hole = tab.eval("window.__csp_hole || 0")
    return state, shown, hole


def _devtools_port(browser: subprocess.Popen, profile: Path) -> int:
    """The DevTools port Chromium chose (from DevToolsActivePort in its profile)."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not marker.exists() or not marker.read_text().strip():
        assert browser.poll() is None, browser.stderr.read() if browser.stderr else "chromium exited"
        assert time.monotonic() < deadline, "chromium did not open DevTools"
        time.sleep(0.1)
    return int(marker.read_text().split()[0])
