"""Execute a lab notebook top to bottom on the real kernel, with a topology of its own.

    python -m tests.nbrun labs/01-hello-xdp.ipynb [--keep]

The notebook's kernel gets XDPLAB_PREFIX/XDPLAB_NET of its own, so a running lab (``xl-``)
and other tests are untouched; the topology is removed afterwards. Any cell error fails.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from xdplab.net import topology
from xdplab.ui import workspace

ROOT = Path(__file__).resolve().parent.parent


def notebook_env(tag: int) -> dict:
    prefix = f"xn{os.getpid() % 100:02d}{tag}-"
    return {"XDPLAB_PREFIX": prefix, "XDPLAB_NET": str(200 + tag % 50)}


def run_notebook(path, tag: int = 0, timeout: int = 180, keep: bool = False):
    """Run ``path``; returns (notebook with outputs, seconds). Raises on a cell error."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    env = notebook_env(tag)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    os.environ["PYTHONPATH"] = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep)
    t0 = time.monotonic()
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name=workspace.KERNEL_NAME,
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not keep:
            topology.remove_all(env["XDPLAB_PREFIX"])
    return nb, time.monotonic() - t0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    for i, p in enumerate(args):
        nb, secs = run_notebook(p, tag=i, keep="--keep" in sys.argv)
        print(f"ok  {p}  {secs:.1f}s")
