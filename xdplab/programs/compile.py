"""What every BCC compile shares: the include path (package data), the flags, and the
capture of what BCC and clang print on fd 2 (turned into CompileError/VerifierError)."""
from __future__ import annotations

import os
import tempfile
import threading
from contextlib import contextmanager

from .. import paths

INCLUDE_DIR = paths.INCLUDE_DIR
PRELUDE = INCLUDE_DIR / "xdplab.h"          # prepended to every program
_fd2_lock = threading.Lock()
FD2_LOCK = _fd2_lock              # one lock for everything that redirects fd 2 (safecompile too)


def cflags(extra=()) -> list[str]:
    return [f"-I{INCLUDE_DIR}", "-Wno-unused-value", *extra]


@contextmanager
def capture_stderr():
    """Capture fd 2 (BCC and clang print there from C) into ``box['text']``."""
    box = {"text": ""}
    with _fd2_lock, tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield box
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            box["text"] = tmp.read().decode(errors="replace")
