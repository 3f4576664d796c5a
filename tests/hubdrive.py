"""Drive a workshop hub the way attendees do: log in with a password (the hub's login form),
start the server, make a token, open a notebook session and run cells in its kernel over
the single-user server's websocket. Used by tests/test_workshop.py and
benchmarks/bench_workshop.py."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
LAB01 = ROOT / "labs" / "01-hello-xdp.ipynb"


def start_hub(room: Path, attendees: int, port: int, prefix_base: str, net_base: int, log: Path):
    """``./lab workshop`` (python -m xdplab.ui.workshop) in the background; waits until the hub answers."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "xdplab.ui.workshop", "--attendees", str(attendees),
                             "--room", str(room), "--port", str(port), "--prefix-base", prefix_base,
                             "--net-base", str(net_base)],
                            env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 300
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the workshop exited: {log.read_text()[-3000:]}")
        try:
            if requests.get(f"{base}/hub/api/", timeout=3).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(1)
    else:
        raise RuntimeError("the hub did not come up in 300 s")
    return proc, base


def stop_hub(proc, timeout: float = 180) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    return proc.wait(timeout=timeout)


def passwords(room: Path) -> dict:
    out = {}
    for line in (room / "passwords.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            n, _, p = line.partition(" ")
            out[n] = p
    return out


def login(base: str, name: str, password: str) -> requests.Session:
    """The hub's login form, as a browser posts it. Raises if the hub refuses."""
    s = requests.Session()
    s.get(f"{base}/hub/login", timeout=60)
    r = s.post(f"{base}/hub/login", data={"username": name, "password": password,
                                           "_xsrf": s.cookies.get("_xsrf", "")}, timeout=60, allow_redirects=False)
    if r.status_code != 302:
        raise PermissionError(f"login of {name} refused: {r.status_code}")
    return s


def _xsrf(s: requests.Session, base: str) -> dict:
    """The XSRF token a logged-in page carries (JupyterHub ties it to the login session)."""
    if not getattr(s, "xsrf", None):
        import re
        page = s.get(f"{base}/hub/home", timeout=60).text
        s.xsrf = re.search(r'xsrf_token: "([^"]+)"', page).group(1)
    return {"X-XSRFToken": s.xsrf}


def start_server(s: requests.Session, base: str, name: str, timeout: float = 300) -> None:
    r = s.post(f"{base}/hub/api/users/{name}/server", headers=_xsrf(s, base), timeout=60)
    assert r.status_code in (201, 202, 400), (r.status_code, r.text)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = s.get(f"{base}/hub/api/users/{name}", headers=_xsrf(s, base), timeout=60).json()
        srv = m.get("servers", {}).get("")
        if srv and srv.get("ready"):
            return
        time.sleep(1)
    raise TimeoutError(f"server of {name} not ready in {timeout} s")


def make_token(s: requests.Session, base: str, name: str) -> str:
    r = s.post(f"{base}/hub/api/users/{name}/tokens", headers=_xsrf(s, base), json={"note": "workshop test"}, timeout=60)
    r.raise_for_status()
    return r.json()["token"]


class Kernel:
    """A notebook session's kernel on an attendee's server, reached through the hub's proxy."""

    def __init__(self, base: str, name: str, token: str, path: str = "labs/01-hello-xdp.ipynb"):
        self.base, self.name, self.token = base, name, token
        self.h = {"Authorization": f"token {token}"}
        r = requests.post(f"{base}/user/{name}/api/sessions", headers=self.h, timeout=120,
                          json={"path": path, "type": "notebook", "name": os.path.basename(path),
                                "kernel": {"name": "xdplab"}})
        r.raise_for_status()
        self.id = r.json()["kernel"]["id"]
        self.session = uuid.uuid4().hex

    def execute(self, code: str, timeout: float = 600) -> dict:
        """Run ``code``; returns {"ok", "text" (streams + results), "error"}."""
        return asyncio.run(self._execute(code, timeout))

    async def _execute(self, code: str, timeout: float) -> dict:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect
        url = f"{self.base.replace('http', 'ws', 1)}/user/{self.name}/api/kernels/{self.id}/channels"
        ws = await websocket_connect(HTTPRequest(url, headers=self.h, request_timeout=120, connect_timeout=120))
        mid = uuid.uuid4().hex
        await ws.write_message(json.dumps({
            "header": {"msg_id": mid, "username": self.name, "session": self.session,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        text, error, reply, idle = [], None, None, False
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        try:
            while reply is None or not idle:
                raw = await asyncio.wait_for(ws.read_message(), max(1, end - loop.time()))
                if raw is None:
                    raise ConnectionError("kernel websocket closed")
                if isinstance(raw, bytes):
                    continue
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != mid:
                    continue
                t, c = msg["header"]["msg_type"], msg["content"]
                if t == "stream":
                    text.append(c["text"])
                elif t in ("execute_result", "display_data"):
                    text.append(c.get("data", {}).get("text/plain", ""))
                elif t == "error":
                    error = f"{c['ename']}: {c['evalue']}"
                elif t == "execute_reply":
                    reply = c
                elif t == "status" and c.get("execution_state") == "idle":
                    idle = True
        finally:
            ws.close()
        return {"ok": reply.get("status") == "ok", "text": "".join(text), "error": error}


def lab01_cells() -> list[str]:
    nb = json.loads(LAB01.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def solved_exercise() -> str:
    """The exercise cell, as an attendee who solved it writes it."""
    src = (ROOT / "bpf" / "solutions" / "01-hello-xdp" / "drop_icmp_echo.c").read_text()
    return "%%xdp --no-attach --name mine\n" + src


def run_lab01(k: Kernel, solve: bool = True, upto_check: bool = True) -> list[dict]:
    """Lab 01's code cells in order (the exercise solved if ``solve``); stops at the first error."""
    out = []
    for src in lab01_cells():
        if src.startswith("%%xdp --no-attach --name mine") and solve:
            src = solved_exercise()
        if src.lstrip().startswith("# Check") and not upto_check:
            break
        r = k.execute(src)
        out.append(r)
        if not r["ok"]:
            break
    return out
