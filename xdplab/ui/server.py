"""Start JupyterLab for the lab: 127.0.0.1 only, a fresh token, ``labs/`` open.

``python -m xdplab.ui.server [--port N] [--ip ADDR]`` (``./lab start`` runs it). The kernels
it starts inherit PYTHONPATH, so notebooks import this checkout's xdplab.

The token opens a root terminal, so no other local user may see it: it is never on a
command line (``/proc/<pid>/cmdline`` is world-readable) nor in an environment. It goes
into a 0600 ``jupyter_server_config.json`` in a private 0700 directory
(``/run/xdplab/jupyter/server-*``), passed with ``--config``; the same directory holds
JupyterLab's runtime files (``jpserver-<pid>.json`` has the token too, kernel connection
files their keys) through ``JUPYTER_RUNTIME_DIR``, because Jupyter does not tighten a
runtime directory that already exists. The directory is removed when JupyterLab exits.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import paths
from ..kernel import procstate
from . import workspace

ROOT = paths.CHECKOUT
PRIVATE = procstate.SERVER_DIRS           # /run/xdplab/jupyter
CONFIG = "jupyter_server_config.json"


def _prune() -> None:
    """Remove private directories of servers that are gone (a kill -9 skips the cleanup)."""
    for d in procstate.dead_server_dirs():
        shutil.rmtree(d, ignore_errors=True)


def private_dir() -> Path:
    """A new 0700 directory under /run/xdplab/jupyter (itself 0700)."""
    PRIVATE.mkdir(parents=True, exist_ok=True)
    os.chmod(PRIVATE, 0o700)
    _prune()
    return Path(tempfile.mkdtemp(prefix="server-", dir=PRIVATE))   # mkdtemp: mode 0700


def jupyter_args(port: int = 8888, ip: str = "127.0.0.1", root: Path = ROOT) -> list[str]:
    """JupyterLab's options (nothing secret: they are on its command line)."""
    return [f"--ip={ip}", f"--port={port}", "--no-browser", "--allow-root",
            f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
            "--LabApp.default_url=/lab/tree/labs/00-welcome.ipynb", *workspace.jupyter_args(root)]


def command(port: int = 8888, ip: str = "127.0.0.1", token: str | None = None,
            root: Path = ROOT) -> tuple[list[str], str]:
    """The command that runs JupyterLab, and its token. ``root`` must hold ``labs/``.
    The token is written to a private config file; the command names only its directory."""
    token = token or secrets.token_hex(24)
    d = private_dir()
    config = {"IdentityProvider": {"token": token},
              # the open-browser page holds the token and is written with the umask's mode
              "ServerApp": {"open_browser": False, "no_browser_open_file": True}}
    fd = os.open(d / CONFIG, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f)
    argv = [sys.executable, "-m", "xdplab.ui.server", "--serve", str(d), "--",
            *jupyter_args(port, ip, root)]
    return argv, token


def serve(d: Path, args: list[str]) -> int:
    """Run JupyterLab with the config and runtime files in ``d``; remove ``d`` after."""
    d = Path(d)
    try:
        (d / "serve.pid").write_text(procstate.stamp())     # pid + start time
        runtime = d / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime))
        env.pop("JUPYTER_TOKEN", None)
        proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", f"--config={d / CONFIG}", *args],
                                env=env)

        def forward(sig, _frame):
            if proc.poll() is None:
                proc.send_signal(sig)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, forward)
        # Ctrl-C reaches JupyterLab from the terminal (same process group): it asks, as always
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return proc.wait()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--serve"]:
        rest = argv[3:] if argv[2:3] == ["--"] else argv[2:]
        sys.exit(serve(Path(argv[1]), rest))
    p = argparse.ArgumentParser(prog="./lab start")
    p.add_argument("--port", type=int, default=int(os.environ.get("XDPLAB_PORT", 8888)))
    p.add_argument("--ip", default="127.0.0.1", help="listen address (default: loopback only)")
    args = p.parse_args(argv)
    # the learner works on copies (~/xdplab-work or $XDPLAB_WORKDIR), never on labs/ itself
    workspace.install_kernelspec()
    for made in workspace.working_copies():
        print(f"  new working copy: {made}")
    cmd, token = command(args.port, args.ip, root=workspace.workdir())
    url = f"http://{args.ip}:{args.port}/lab/tree/labs/00-welcome.ipynb?token={token}"
    print(f"\n  xdplab is starting. Open:\n\n    {url}\n\n  (Ctrl-C stops JupyterLab; `./lab down` removes the lab hosts.)\n",
          flush=True)
    i = cmd.index("--serve")
    sys.exit(serve(Path(cmd[i + 1]), cmd[i + 3:]))


if __name__ == "__main__":
    main()
