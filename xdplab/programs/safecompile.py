"""Compile in a forked child first, so that no C text can kill the process compiling it.

BCC compiles in-process with LLVM. Some C makes LLVM's BPF backend stop the whole process
with ``exit(1)`` (floating point, a call with more than 5 arguments such as ``bpf_printk``
with 4 values, a stack over 512 bytes, a variable-length array) or ``abort()`` (an
instruction it cannot select): in a notebook that is a dead kernel and no word why.

``precheck(text, cflags)`` runs the same ``BPF(text=...)`` in a child of this process
(``os.fork``; the child only compiles, with its fd 2 in a private file, and ``_exit``s).
The caller compiles for real only when the child finished; otherwise it gets the child's
fate and what the compiler printed. The child's maps die with it; nothing is loaded.

A source that compiled cleanly is remembered by a hash of (text, cflags, kernel release,
BCC version), in memory and in ``$XDPLAB_CACHE/safe-compiles`` (default
/var/cache/xdplab), so re-running an unchanged cell, a notebook or the tests pays the
second compile only once.
"""
from __future__ import annotations

import faulthandler
import hashlib
import os
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
import warnings
from .compile import FD2_LOCK as _fd2_lock
import time

CACHE_DIR = Path(os.environ.get("XDPLAB_CACHE", "/var/cache/xdplab"))
CACHE_FILE = CACHE_DIR / "safe-compiles"
CACHE_MAX = 4096              # lines kept in the file (the oldest are dropped)

#: child exit codes
OK, COMPILE_FAILED, CHILD_BROKE = 0, 3, 4

_safe: set[str] = set()
_loaded = False
_lock = threading.Lock()


@dataclass(frozen=True)
class Outcome:
    """What the child's compile did. ``ok``: compiled (or known good); ``failed``: BCC
    reported a compile error (the usual kind, in ``text``); ``died``: the compiler ended
    the process (``how``: "exit status 1", "signal 6 (SIGABRT)"), ``text`` is what it printed."""

    status: str            # "ok" | "failed" | "died" | "unknown" (the child could not tell)
    text: str = ""
    how: str = ""
    cached: bool = False


def _key(text: bytes, cflags) -> str:
    h = hashlib.sha256()
    for part in (text, "\0".join(map(str, cflags)).encode(), os.uname().release.encode(),
                 _bcc_version().encode()):
        h.update(part)
        h.update(b"\xff")
    return h.hexdigest()


source_key = _key                 # public: what the safe-compile cache records per source


def _bcc_version() -> str:
    try:
        import bcc
        return getattr(bcc, "__version__", "") or str(Path(bcc.__file__).stat().st_mtime)
    except Exception:
        return ""


def _load_cache() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    try:
        _safe.update(l.strip() for l in CACHE_FILE.read_text().splitlines() if len(l.strip()) == 64)
    except OSError:
        pass


def _remember(key: str) -> None:
    _safe.add(key)
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        lines = CACHE_FILE.read_text().splitlines() if CACHE_FILE.exists() else []
        if len(lines) >= CACHE_MAX:
            lines = lines[-(CACHE_MAX // 2):]
            tmp = CACHE_FILE.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text("\n".join(lines) + "\n")
            os.replace(tmp, CACHE_FILE)
        with open(CACHE_FILE, "a") as f:
            f.write(key + "\n")
    except OSError:
        pass                  # read-only cache dir: the in-memory set still works


def known_safe(text: bytes, cflags) -> bool:
    with _lock:
        _load_cache()
        return _key(text, cflags) in _safe


def _child(text: bytes, cflags, out_fd: int) -> None:
    """In the forked child: compile, report by exit status, never return."""
    code = CHILD_BROKE
    try:
        os.dup2(out_fd, 2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        # never write to the parent's Python streams (a Jupyter kernel's go through threads
        # that do not exist in this child)
        sys.stdout = sys.stderr = open(2, "w", closefd=False)
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)   # an interrupt ends the child at once
        except ValueError:
            pass
        warnings.simplefilter("ignore")
        faulthandler.disable()     # an LLVM abort is the answer here, not a crash to report
        from bcc import BPF
        try:
            BPF(text=text, cflags=list(cflags))
            code = OK
        except Exception:
            code = COMPILE_FAILED
    finally:
        os._exit(code)


def precheck(text: bytes, cflags) -> Outcome:
    """Compile ``text`` in a child; ``ok`` when it compiled (or compiled before)."""
    key = _key(text, cflags)
    with _lock:
        _load_cache()
        if key in _safe:
            return Outcome("ok", cached=True)
    with tempfile.TemporaryFile() as out:
        with _fd2_lock:            # no xdplab compile is half-way in another thread at the fork
            pid = os.fork()
        if pid == 0:                                   # pragma: no cover (the child)
            _child(text, cflags, out.fileno())
        try:
            status = _wait(pid)
        except BaseException:                          # KeyboardInterrupt: do not leave it running
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
            raise
        out.seek(0)
        printed = out.read().decode(errors="replace")
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == OK:
        with _lock:
            _remember(key)
        return Outcome("ok", printed)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == COMPILE_FAILED:
        return Outcome("failed", printed)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == CHILD_BROKE:
        return Outcome("unknown", printed)             # the child itself failed: no verdict
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        how = f"signal {sig} ({signal.Signals(sig).name})" if sig in signal.Signals._value2member_map_ else f"signal {sig}"
    else:
        how = f"exit status {os.WEXITSTATUS(status)}"
    return Outcome("died", printed, how)


TIMEOUT = 600.0              # seconds a child may compile before it counts as hung


def _wait(pid: int) -> int:
    """The child's wait status; a child still compiling after TIMEOUT is killed (SIGKILL)."""
    deadline, nap = time.monotonic() + TIMEOUT, 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1]
        time.sleep(nap)
        nap = min(nap * 2, 0.01)
