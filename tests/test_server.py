"""./lab start's JupyterLab: loopback only, token required, the labs are there."""
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest


def test_listens_on_loopback_only(jupyter):
    base, _ = jupyter
    port = int(base.rsplit(":", 1)[1])
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
    local = {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines()}
    assert local == {"127.0.0.1"}, out


def test_requires_the_token(jupyter):
    base, token = jupyter
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{base}/api/contents/labs")
    assert e.value.code == 403
    listing = json.load(urllib.request.urlopen(f"{base}/api/contents/labs?token={token}"))
    names = {c["name"] for c in listing["content"]}
    assert "00-welcome.ipynb" in names and "01-hello-xdp.ipynb" in names


def test_serves_jupyterlab_with_bokeh_widget_extension(jupyter):
    base, token = jupyter
    page = urllib.request.urlopen(f"{base}/lab?token={token}").read().decode()
    assert "JupyterLab" in page
    ext = urllib.request.urlopen(f"{base}/lab/api/extensions?token={token}").read().decode()
    assert "jupyter_bokeh" in ext or "@bokeh/jupyter_bokeh" in ext


# --- the token is a root shell: nobody else may read it ----------------------------------

SCAN = r"""
import os, sys
token = sys.stdin.read().strip().encode()
assert os.getuid() != 0 and os.geteuid() != 0
found, read = [], 0
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    for name in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as f:
                data = f.read()
        except OSError:
            continue
        read += 1
        if token in data:
            found.append(f"/proc/{pid}/{name}")
for top in sys.argv[1:]:
    for dirpath, dirs, files in os.walk(top):
        for fn in files:
            p = os.path.join(dirpath, fn)
            try:
                if os.path.islink(p) or os.path.getsize(p) > 50 << 20:
                    continue
                with open(p, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            read += 1
            if token in data:
                found.append(p)
print(read)
print("\n".join(found))
"""


def _scan_as_nobody(token: str, dirs) -> tuple[int, list[str]]:
    """What user nobody can read that holds ``token``: every /proc/*/cmdline and environ,
    every file under ``dirs``. The token goes in on stdin (argv would leak it itself)."""
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        "/usr/bin/python3", "-c", SCAN, *map(str, dirs)],
                       input=token, capture_output=True, text=True, timeout=120, cwd="/")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    return int(lines[0]), [l for l in lines[1:] if l]


def _terminal(base, token=None):
    req = urllib.request.Request(f"{base}/api/terminals" + (f"?token={token}" if token else ""),
                                 data=b"{}", method="POST", headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=20))


def _run_in_terminal(base, token, name, cmd, expect, timeout=20.0) -> str:
    """Type ``cmd`` into terminal ``name`` over its websocket; the output once ``expect`` shows."""
    import asyncio

    from tornado.websocket import websocket_connect

    async def go():
        ws = await websocket_connect(f"{base.replace('http', 'ws', 1)}/terminals/websocket/{name}?token={token}")
        await ws.write_message(json.dumps(["stdin", cmd + "\r"]))
        out, end = "", asyncio.get_running_loop().time() + timeout
        while expect not in out:
            msg = await asyncio.wait_for(ws.read_message(), end - asyncio.get_running_loop().time())
            if msg is None:
                break
            kind, *data = json.loads(msg)
            if kind == "stdout":
                out += data[0]
        ws.close()
        return out
    return asyncio.run(go())


def test_token_is_readable_by_no_other_user(jupyter):
    """Issue 11.1: the token was on JupyterLab's command line; any local user read it from
    /proc and opened a root terminal with it. With a kernel and a terminal running, user
    nobody finds it in no process's cmdline or environ, and in no file under the Jupyter
    config and runtime dirs, /run/xdplab, /tmp or /var/log."""
    from jupyter_core import paths
    base, token = jupyter
    term = _terminal(base, token)["name"]
    req = urllib.request.Request(f"{base}/api/kernels?token={token}", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    kernel = json.load(urllib.request.urlopen(req, timeout=60))["id"]
    try:
        dirs = {paths.jupyter_runtime_dir(), paths.jupyter_data_dir(), *paths.jupyter_config_path(),
                "/run/xdplab", "/tmp", "/var/tmp", "/dev/shm", "/var/log"}
        dirs = sorted(d for d in dirs if os.path.isdir(d))
        read, found = _scan_as_nobody(token, dirs)
        assert read > 100, f"the scan read only {read} files: it proves nothing"
        assert found == [], f"user nobody can read the token in {found}"
        # the scan works: a world-readable file with the token in it is found
        with tempfile.NamedTemporaryFile("w", dir="/tmp", prefix="xdplab-canary-") as canary:
            canary.write(f"token={token}\n"); canary.flush()
            os.chmod(canary.name, 0o644)
            assert _scan_as_nobody(token, ["/tmp"])[1] == [canary.name]
    finally:
        for path in (f"api/kernels/{kernel}", f"api/terminals/{term}"):
            urllib.request.urlopen(urllib.request.Request(f"{base}/{path}?token={token}", method="DELETE"),
                                   timeout=20)


def test_terminal_needs_the_token_and_runs_as_root_with_it(jupyter):
    base, token = jupyter
    with pytest.raises(urllib.error.HTTPError) as e:
        _terminal(base)
    assert e.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as e:
        _terminal(base, "0" * 48)
    assert e.value.code == 403
    name = _terminal(base, token)["name"]
    try:
        out = _run_in_terminal(base, token, name, "echo uid=$(id -u)=", "uid=0=")
        assert "uid=0=" in out, out
    finally:
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/terminals/{name}?token={token}",
                                                      method="DELETE"), timeout=20)


def test_private_files_are_private_and_removed_on_exit():
    """The config file with the token is 0600 in a 0700 directory, JupyterLab's runtime
    files (jpserver-*.json holds the token) live in it too, and it is gone once
    JupyterLab stopped."""
    import socket
    import time
    from pathlib import Path

    from xdplab.ui import server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(tempfile.mkdtemp(prefix="xdplab-srv-"))
    (root / "labs").mkdir()
    argv, token = server.command(port=port, root=root)
    assert not any(token in a for a in argv)
    d = Path(argv[argv.index("--serve") + 1])
    assert d.stat().st_mode & 0o777 == 0o700 and d.parent.stat().st_mode & 0o777 == 0o700
    assert (d / server.CONFIG).stat().st_mode & 0o777 == 0o600
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, JUPYTER_TOKEN=""))
    try:
        deadline = time.monotonic() + 60
        while not list((d / "runtime").glob("jpserver-*.json")) and time.monotonic() < deadline:
            time.sleep(0.3)
        info = list((d / "runtime").glob("jpserver-*.json"))
        assert info and json.loads(info[0].read_text())["token"] == token
        assert (d / "runtime").stat().st_mode & 0o777 == 0o700
        assert info[0].stat().st_mode & 0o777 == 0o600
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    assert not d.exists()
