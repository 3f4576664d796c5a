"""Kernel and file state that belongs to one process, named so that it is never taken
for another process's.

Some of what xdplab makes outlives a process that is killed (kill -9 skips atexit):
a tracefs instance (printk), a bpffs pin directory (redirect's DEVMAP_HASH hand-over), a
JupyterLab private directory. A pid alone does not name a process: pids are reused, and
a new process with a dead one's pid would adopt its leftovers (printk streamed a dead
program's lines that way). So these names carry the pid *and* the process's start time
(``/proc/<pid>/stat`` field 22, clock ticks since boot), ``<pid>-<start>``: a name is
live only while that very process runs.

``dead()`` lists what dead processes left; ``remove_dead()`` removes it (``xdplab down
--all``); ``xdplab doctor`` reports it.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
import time

from .tracefs import TRACEFS

TRACEFS_INSTANCES = TRACEFS / "instances"
BPFFS = Path("/sys/fs/bpf")
STATE_DIR = Path(os.environ.get("XDPLAB_STATE_DIR", "/run/xdplab"))
SERVER_DIRS = STATE_DIR / "jupyter"

INSTANCE_PREFIX = "xdplab-"         # instances/xdplab-<pid>-<start>
PIN_PREFIX = "xdplab-"              # /sys/fs/bpf/xdplab-<pid>-<start>-<n>
_NAME = re.compile(r"^(?P<pid>\d+)(?:-(?P<start>\d+))?(?:-.*)?$")


def starttime(pid: int | None = None) -> int | None:
    """The process's start time in clock ticks after boot, or None if it is not running."""
    try:
        with open(f"/proc/{pid or os.getpid()}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: count from the last ')'
    return int(stat[stat.rindex(b")") + 2:].split()[19])


def stamp(pid: int | None = None) -> str:
    """``<pid>-<start time>``: names this process and no other, ever (until reboot)."""
    pid = pid or os.getpid()
    return f"{pid}-{starttime(pid)}"


def alive(pid: int, start: int | None = None) -> bool:
    """Is process ``pid`` running, and (given ``start``) is it the one that started then?"""
    now = starttime(pid)
    return now is not None and (start is None or now == start)


def parse(stamped: str) -> tuple[int, int | None] | None:
    """``"123-4567"`` or ``"123-4567-rest"`` -> (123, 4567); an old pid-only name -> (123, None)."""
    m = _NAME.match(stamped)
    if not m:
        return None
    return int(m["pid"]), (int(m["start"]) if m["start"] else None)


def stamp_alive(stamped: str) -> bool:
    p = parse(stamped)
    return p is not None and alive(*p)


def _dead_named(directory: Path, prefix: str) -> list[Path]:
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    out = []
    for p in entries:
        if p.name.startswith(prefix) and parse(p.name[len(prefix):]) and not stamp_alive(p.name[len(prefix):]):
            out.append(p)
    return sorted(out)


def dead_instances() -> list[Path]:
    """tracefs instances of printk readers whose process is gone."""
    return _dead_named(TRACEFS_INSTANCES, INSTANCE_PREFIX)


def dead_pins() -> list[Path]:
    """bpffs pin directories of xdplab processes that are gone."""
    return _dead_named(BPFFS, PIN_PREFIX)


def dead_server_dirs() -> list[Path]:
    """JupyterLab private directories (they hold a token) whose server is gone."""
    out = []
    for d in sorted(SERVER_DIRS.glob("server-*")) if SERVER_DIRS.is_dir() else []:
        try:
            owner = (d / "serve.pid").read_text().strip()
        except OSError:        # made, never served: abandoned after 10 minutes
            try:
                if time.time() - d.stat().st_mtime > 600:
                    out.append(d)
            except OSError:
                pass
            continue
        if not stamp_alive(owner):
            out.append(d)
    return out


def dead() -> dict[str, list[Path]]:
    return {"tracefs instances": dead_instances(), "bpffs pins": dead_pins(),
            "server dirs": dead_server_dirs()}


def instance_kb(path: Path) -> int:
    try:
        return int((path / "buffer_total_size_kb").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def remove_instance(path: Path) -> None:
    """rmdir a tracefs instance (its buffers go with it); its events are switched off first."""
    try:
        (path / "events" / "enable").write_text("0\n")
    except OSError:
        pass
    path.rmdir()


def _remove_pin_dir(path: Path) -> None:
    if path.is_dir():
        for p in path.iterdir():
            p.unlink()
        path.rmdir()
    else:
        path.unlink()


def remove_dead() -> list[str]:
    """Remove everything ``dead()`` lists; returns what was removed (paths)."""
    removed = []
    for kind, paths in dead().items():
        for p in paths:
            try:
                if kind == "tracefs instances":
                    remove_instance(p)
                elif kind == "bpffs pins":
                    _remove_pin_dir(p)
                else:
                    shutil.rmtree(p)
                removed.append(str(p))
            except OSError:
                pass
    return removed
