"""bpf_printk / bpf_trace_printk output in the notebook cell that owns the program.

Every program whose source mentions printk is compiled with a tag of its own in front of
each format string (``xl<pid>t<start>.<n>: ``, a string-literal concatenation, so nothing
runs at packet time). One reader per process follows a private tracefs instance,
``/sys/kernel/tracing/instances/xdplab-<pid>-<start>``, with only the
``bpf_trace/bpf_trace_printk`` event enabled and an event filter on this process's tag
prefix: other users reading the global trace_pipe do not steal our lines, and we do not
see theirs. Lines are dispatched by tag to the program's stream, which stops when the program is detached or closed.

``<start>`` is the process's start time (``xdplab.procstate``): pids are reused, and a
process must never adopt the instance (and the buffered lines) of a dead one with its
pid. The instance is removed at exit; a process killed with -9 cannot, so its instance
stays until ``xdplab down --all`` (``xdplab doctor`` lists them) or the next reader's
setup removes instances whose process is gone.

    prog.printk()            # in a notebook: an Output widget the lines stream into
    s = prog.printk(); s.lines()
"""
from __future__ import annotations

import atexit
import itertools
import os
import re
import select
import threading
import time
from pathlib import Path

from ..display import in_notebook
from ..errors import Closable, NotSupported
from ..kernel import features, procstate, tracefs

TRACEFS = tracefs.TRACEFS
_count = itertools.count(1)
_LINE = re.compile(r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+(?P<ts>[\d.]+): "
                   r"bpf_trace_printk: (?P<tag>xl\d+t[0-9a-f]+\.\d+): (?P<msg>.*)$")


def tag_prefix() -> str:
    """``xl<pid>t<start time, hex>.``: this process's tags, no other process's."""
    return f"xl{os.getpid()}t{procstate.starttime():x}."


def new_tag() -> str:
    """A tag unique to one load in this process."""
    return f"{tag_prefix()}{next(_count)}"


def prelude(tag: str | None) -> str:
    """C put in front of the user's code: printk macros that prepend ``tag: ``."""
    if not tag:
        return ""
    return (f'\n#define XDPLAB_PRINTK_TAG "{tag}: "\n'
            "#define bpf_trace_printk(fmt, ...) ({ char _fmt[] = XDPLAB_PRINTK_TAG fmt; "
            "bpf_trace_printk_(_fmt, sizeof(_fmt), ##__VA_ARGS__); })\n"
            "#ifndef bpf_printk\n#define bpf_printk bpf_trace_printk\n#endif\n")


class _Reader:
    """The process's tracefs instance and the thread that follows its trace_pipe."""

    def __init__(self):
        self.dir = None                   # instances/xdplab-<pid>-<start>, made by setup()
        self.sinks: dict[str, list] = {}
        self.lock = threading.Lock()
        self.thread = None
        self.stop = threading.Event()

    def setup(self):
        features.require("tracefs_instances")
        features.require("printk_event")
        for dead in procstate.dead_instances():      # what killed readers left
            try:
                procstate.remove_instance(dead)
            except OSError:
                pass
        # ours: only a reader of this very process made it
        self.dir = tracefs.instance(f"{procstate.INSTANCE_PREFIX}{procstate.stamp()}")
        # the event filter may be refused: filtering in Python below is enough
        tracefs.enable_event(self.dir, "bpf_trace", "bpf_trace_printk", f'bpf_string ~ "{tag_prefix()}*"')
        atexit.register(self.teardown)

    def subscribe(self, tag: str, sink) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.setup()
                self.stop.clear()
                self.thread = threading.Thread(target=self.run, name="xdplab-printk", daemon=True)
                self.thread.start()
            self.sinks.setdefault(tag, []).append(sink)

    def unsubscribe(self, tag: str, sink) -> None:
        with self.lock:
            lst = self.sinks.get(tag, [])
            if sink in lst:
                lst.remove(sink)
            if not lst:
                self.sinks.pop(tag, None)

    def run(self):
        fd = tracefs.trace_pipe(self.dir)
        buf = b""
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not self.stop.is_set():
                if poller.poll(100):
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        chunk = b""
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for raw in lines:
                        self.dispatch(raw.decode(errors="replace"))
                with self.lock:
                    sinks = [s for lst in self.sinks.values() for s in lst]
                for s in sinks:
                    s._check()
        finally:
            os.close(fd)

    def dispatch(self, line: str):
        m = _LINE.match(line)
        if not m:
            return
        with self.lock:
            sinks = list(self.sinks.get(m["tag"], ()))
        for s in sinks:
            s._add(m)

    def teardown(self):
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=1)
        if self.dir is None:
            return
        try:
            procstate.remove_instance(self.dir)
        except OSError:
            pass


_reader = _Reader()


class PrintkStream(Closable):
    """The bpf_printk lines of one program, as they come (newest last). In a notebook it
    displays as an Output widget that the lines stream into. Stops when the program is
    detached (if it was attached when the stream started) or closed; ``stop()`` (=
    ``close()``) is final, the lines read stay. A closed program gets no stream
    (``ClosedError``): its tag may be reused."""

    def __init__(self, prog, widget: bool | None = None, max_lines: int = 10000):
        if getattr(prog, "closed", False):
            prog._check_open("stream its printk lines")
        tag = getattr(prog.spec, "printk_tag", None)
        if not tag:
            raise features.error("printk_untagged", "it was built without a printk tag (its source has no printk)",
                                 "printk streaming for this program")
        self.prog, self.tag, self.max_lines = prog, tag, max_lines
        self.records: list[dict] = []
        self._was_attached = prog.attached
        self.out = None
        if widget is None:
            widget = in_notebook()
        if widget:
            import ipywidgets as w
            self.out = w.Output(layout={"border": "1px solid #ddd", "max_height": "20em",
                                        "overflow": "auto"})
        self.running = True
        _reader.subscribe(tag, self)

    def _add(self, m):
        rec = {"time": float(m["ts"]), "cpu": int(m["cpu"]), "comm": m["comm"].strip(),
               "pid": int(m["pid"]), "msg": m["msg"]}
        if len(self.records) < self.max_lines:
            self.records.append(rec)
        if self.out is not None:
            self.out.append_stdout(f"[cpu{rec['cpu']} {rec['time']:.6f}] {rec['msg']}\n")

    def _check(self):
        p = self.prog
        if getattr(p, "_closed", False) or (self._was_attached and not p.attached):
            self.stop()

    closed = property(lambda self: not self.running)

    def stop(self) -> None:
        if self.running:
            self.running = False
            _reader.unsubscribe(self.tag, self)
            if self.out is not None:
                self.out.append_stdout(f"-- {self.prog.name} detached: printk stream stopped --\n")

    close = stop

    def lines(self) -> list[str]:
        return [r["msg"] for r in self.records]

    def wait(self, n: int = 1, timeout: float = 2.0) -> list[str]:
        """Wait until ``n`` lines arrived (or ``timeout``); returns the lines."""
        end = time.monotonic() + timeout
        while len(self.records) < n and self.running and time.monotonic() < end:
            time.sleep(0.02)                # a stopped stream gets no more lines
        return self.lines()

    def _ipython_display_(self):
        from IPython.display import display
        display(self.out if self.out is not None else repr(self))

    def __repr__(self) -> str:
        return (f"<printk {self.prog.name} [{self.tag}] {'streaming' if self.running else 'stopped'}, "
                f"{len(self.records)} lines>")


def stream(prog, **kw) -> PrintkStream:
    return PrintkStream(prog, **kw)
