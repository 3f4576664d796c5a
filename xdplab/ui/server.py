"""Start JupyterLab for the lab: 127.0.0.1 only, a fresh token, ``labs/`` open.

``python -m xdplab.ui.server [--port N] [--ip ADDR]`` (``./lab start`` runs it). The kernels
it starts inherit PYTHONPATH, so notebooks import this checkout's xdplab.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from .. import paths

ROOT = paths.CHECKOUT


def command(port: int = 8888, ip: str = "127.0.0.1", token: str | None = None,
            root: Path = ROOT) -> tuple[list[str], str]:
    """The JupyterLab command line and its token. ``root`` must hold ``labs/``."""
    token = token or secrets.token_hex(24)
    argv = [sys.executable, "-m", "jupyterlab", f"--ip={ip}", f"--port={port}", "--no-browser",
            "--allow-root", f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
            "--ServerApp.port_retries=0", "--LabApp.default_url=/lab/tree/labs/00-welcome.ipynb"]
    return argv, token


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="./lab start")
    p.add_argument("--port", type=int, default=int(os.environ.get("XDPLAB_PORT", 8888)))
    p.add_argument("--ip", default="127.0.0.1", help="listen address (default: loopback only)")
    args = p.parse_args(argv)
    cmd, token = command(args.port, args.ip)
    url = f"http://{args.ip}:{args.port}/lab/tree/labs/00-welcome.ipynb?token={token}"
    print(f"\n  xdplab is starting. Open:\n\n    {url}\n\n  (Ctrl-C stops JupyterLab; `./lab down` removes the lab hosts.)\n",
          flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
