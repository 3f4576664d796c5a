"""The learner's workspace: working copies of the labs, the Jupyter kernel the notebooks
name, and JupyterLab's settings for a lab.

The notebooks in ``labs/`` are the pristine lessons (tracked in git); ``./lab start``
gives the learner copies of them in ``$XDPLAB_WORKDIR`` (default ``~/xdplab-work``),
made the first time a lab is seen and never overwritten, and JupyterLab's root is there.
``./lab reset [LAB]`` puts a pristine copy back and keeps the learner's previous one
beside it (``01-hello-xdp.mine-20261129-221500.ipynb``).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from .. import paths
from ..errors import XDPLabError
import argparse

ROOT = paths.CHECKOUT or paths.PACKAGE.parent     # the labs live in a checkout
LABS = ROOT / "labs"
#: JupyterLab settings for the lab (overrides.json: no news popup, no update check)
SETTINGS = paths.JUPYTER / "settings"
#: prebuilt JupyterLab extensions shipped with xdplab (C highlighting in %%xdp cells)
LABEXTENSIONS = paths.JUPYTER / "labextensions"
#: the kernel the notebooks name (their metadata.kernelspec)
KERNEL_NAME = "xdplab"
KERNEL_DISPLAY = "Python 3 (xdplab)"


def workdir() -> Path:
    """Where the learner's copies live: $XDPLAB_WORKDIR, else ~/xdplab-work."""
    return Path(os.environ.get("XDPLAB_WORKDIR") or Path.home() / "xdplab-work").expanduser()


def shipped(labs: Path = LABS) -> list[Path]:
    return sorted(labs.glob("[0-9][0-9]-*.ipynb"))


def working_copies(dest: Path | None = None, labs: Path = LABS) -> list[Path]:
    """Copy every shipped lab that has no working copy yet into ``dest/labs``; an existing
    copy is never touched. Returns the copies made now."""
    target = (dest or workdir()) / "labs"
    target.mkdir(parents=True, exist_ok=True)
    made = []
    for src in shipped(labs):
        dst = target / src.name
        if not dst.exists():
            shutil.copyfile(src, dst)
            made.append(dst)
    return made


def find_lab(name: str, labs: Path = LABS) -> Path:
    """A shipped lab by number (``01``, ``1``), stem (``01-hello-xdp``) or file name."""
    key = name.strip().removeprefix("labs/").removesuffix(".ipynb")
    all_ = shipped(labs)
    for p in all_:
        num = p.stem[:2]
        if key in (p.stem, num) or (key.isdigit() and int(key) == int(num)):
            return p
    raise XDPLabError(f"no lab named {name!r}",
                      hint="one of: " + ", ".join(p.stem for p in all_) + " (or its number, e.g. 01)")


def reset(names=(), dest: Path | None = None, labs: Path = LABS) -> list[tuple[Path, Path | None]]:
    """Restore pristine copies of the labs ``names`` (all if empty). The learner's previous
    copy is renamed beside it (``<lab>.mine-<YYYYmmdd-HHMMSS>.ipynb``), never deleted.
    Returns (restored copy, kept previous copy or None) per lab."""
    srcs = [find_lab(n, labs) for n in names] if names else shipped(labs)
    target = (dest or workdir()) / "labs"
    target.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = []
    for src in srcs:
        dst = target / src.name
        kept = None
        if dst.exists():
            if dst.read_bytes() == src.read_bytes():
                out.append((dst, None))          # already pristine: nothing to keep
                continue
            kept = target / f"{src.stem}.mine-{stamp}.ipynb"
            n = 1
            while kept.exists():
                n += 1
                kept = target / f"{src.stem}.mine-{stamp}-{n}.ipynb"
            dst.rename(kept)
        shutil.copyfile(src, dst)
        out.append((dst, kept))
    return out


def kernelspec(python: str | None = None) -> dict:
    """The kernel.json of the kernel the notebooks name: this venv's python, this checkout
    importable (after whatever PYTHONPATH the server already has)."""
    return {"argv": [python or sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": KERNEL_DISPLAY, "language": "python",
            "env": {"PYTHONPATH": "${PYTHONPATH}" + os.pathsep + str(ROOT)},
            "metadata": {"debugger": True}}


def install_kernelspec(prefix: str | None = None) -> Path:
    """Install (or refresh) the ``xdplab`` kernelspec under ``prefix``/share/jupyter/kernels
    (default: this Python's prefix, i.e. the venv). Idempotent."""
    kdir = Path(prefix or sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    kdir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(kernelspec(), indent=1) + "\n"
    f = kdir / "kernel.json"
    if not f.exists() or f.read_text() != text:
        f.write_text(text)
    return kdir


def jupyter_args(root: Path | None = None) -> list[str]:
    """JupyterLab options for the lab: its settings (overrides.json), extensions, and the
    layout (open tabs) kept with the working copies in ``root``, not shared by servers."""
    args = [f"--LabApp.app_settings_dir={SETTINGS}"]
    if root is not None:
        args.append(f"--LabApp.workspaces_dir={Path(root) / '.jupyter-workspaces'}")
    if LABEXTENSIONS.is_dir():
        args.append(f"--LabApp.extra_labextensions_path={LABEXTENSIONS}")
    return args


def main(argv=None) -> int:
    """``xdplab reset [LAB ...]``"""
    p = argparse.ArgumentParser(prog="xdplab reset", description=reset.__doc__)
    p.add_argument("labs", nargs="*", help="labs to reset (default: all), e.g. 01 or 01-hello-xdp")
    args = p.parse_args(argv)
    for dst, kept in reset(args.labs):
        print(f"{dst}: pristine" + (f" (yours is kept as {kept.name})" if kept else " (was unchanged)"))
    return 0
