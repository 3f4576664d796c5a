"""Typed errors. Every error xdplab raises on purpose derives from XDPLabError.

They render as a short message in a notebook (IPython calls ``_render_traceback_``),
not as a Python traceback: the traceback is about xdplab's internals, the message is
about the user's program or machine.
"""
from __future__ import annotations
import functools


class XDPLabError(Exception):
    """Base class. ``hint`` is the one-line fix, shown under the message."""

    hint: str = ""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        if hint:
            self.hint = hint

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{msg}\n  hint: {self.hint}" if self.hint else msg

    #: set when a rich (HTML) rendering was already displayed: then the traceback
    #: area shows only the first line, so the notebook does not say it twice
    shown: bool = False

    def _render_traceback_(self) -> list[str]:
        text = str(self).splitlines()[0] if self.shown else str(self)
        return [f"\x1b[1;31m{type(self).__name__}\x1b[0m: {text}"]


class NotSupported(XDPLabError):
    """The running kernel (or driver) lacks a feature. ``min_kernel`` names the version needed."""

    def __init__(self, feature: str, min_kernel: str = "", detail: str = ""):
        self.feature = feature
        self.min_kernel = min_kernel
        msg = f"{feature} is not supported here"
        if min_kernel:
            msg += f" (needs Linux >= {min_kernel})"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


class CompileError(XDPLabError):
    """clang rejected the C source. ``diagnostics`` holds parsed (line, col, message)."""

    def __init__(self, message: str, diagnostics=(), log: str = "", hint: str = ""):
        self.diagnostics = list(diagnostics)
        self.log = log
        super().__init__(message, hint)


class VerifierError(XDPLabError):
    """The kernel verifier rejected the program. ``log`` is the full verifier log."""

    def __init__(self, message: str, line: int | None = None, log: str = "",
                 explanation=None, hint: str = ""):
        self.line = line
        self.log = log
        self.explanation = explanation
        super().__init__(message, hint)


class AttachError(XDPLabError):
    """Attaching was refused (by xdplab's safety rules or by the kernel)."""


class TopologyError(XDPLabError):
    """A lab host or link is missing or could not be built."""


class UsageError(XDPLabError, ValueError):
    """A bad argument: the message names the value and what is accepted. Raised before
    anything is created. Also a ValueError, so ``except ValueError`` keeps working."""


class MapKeyError(XDPLabError, KeyError):
    """A key that is not in a map (or out of an array's range). Also a KeyError."""

    def __str__(self) -> str:                 # KeyError would quote the message
        msg = str(self.args[0]) if self.args else ""
        return f"{msg}\n  hint: {self.hint}" if self.hint else msg


class MapError(XDPLabError):
    """The kernel refused a map operation (a full hash map, a value it does not take)."""


class ClosedError(XDPLabError):
    """An object that wraps a kernel fd (a program, map, link, AF_XDP socket, capture,
    printk stream, traffic generator, drop detector) was used after ``close()``. Its fd
    number may already belong to something else: nothing is done with it."""

    def __init__(self, what: str, action: str = "", hint: str = ""):
        self.what = what
        msg = f"{what} is closed" + (f": cannot {action}" if action else "")
        super().__init__(msg, hint or "closing is final; make a new one (e.g. load the program again)")


class Closable:
    """Mixin for objects that wrap kernel fds: ``closed``, and ``_check_open(action)``
    which raises ``ClosedError`` naming the object (``_describe()``). Methods that need
    the kernel object use ``@needs_open``. Subclasses set ``_closed = True`` in an
    idempotent ``close()`` (or override the ``closed`` property)."""

    _closed = False
    _reopen_hint = ""
    #: also close when the garbage collector takes the object (a wrapper whose kernel
    #: object must not outlive it: an AF_XDP socket and its UMEM, a program looked up by
    #: id). Off by default: a loaded program stays while its links do, a link is detached
    #: by whoever owns it.
    _close_when_collected = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if self._close_when_collected:
            try:
                self.close()
            except Exception:
                pass

    def _describe(self) -> str:
        name = getattr(self, "name", None)
        return f"{type(self).__name__} {name}" if isinstance(name, str) else type(self).__name__

    def _check_open(self, action: str = "") -> None:
        if self.closed:
            raise ClosedError(self._describe(), action, self._reopen_hint)


def needs_open(method):
    """Decorate a ``Closable`` method: it raises ``ClosedError`` once the object is closed."""

    @functools.wraps(method)
    def checked(self, *args, **kw):
        self._check_open(f"call {method.__name__}()")
        return method(self, *args, **kw)
    return checked


class CountersUnavailable(XDPLabError):
    """``prog.counters()`` has nothing true to say: the counting wrapper could not wrap the
    program's function (or the program was built with count=False and counts nothing).
    Raised instead of returning zeros."""


class OwnerError(AttachError, TopologyError):
    """In a workshop (``XDPLAB_OWNER`` set): an interface, program or topology belongs to
    another attendee. Names whose it is."""
