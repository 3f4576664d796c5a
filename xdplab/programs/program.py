"""XDP programs: a source (``Program``) becomes a loaded program (``XDPProgram``, kernel
dependent) which becomes an attachment (``Link``, a bpf_link).

    spec = Program(source)                  # deterministic: text, function, flags
    prog = spec.load()                      # BCC compiles, the verifier checks
    link = prog.attach("xl-h1", "native")   # BPF_LINK_CREATE: gone when the process dies
    prog.counters()                         # packets/bytes per XDP action
    prog.detach(); prog.close()             # or use ``with`` / let the process end

Re-attaching a new program where this process already has a link swaps the program
atomically (BPF_LINK_UPDATE): the interface is never left without a program.
"""
from __future__ import annotations

import errno
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path

from .. import failures, kernel, paths
from ..owners import refuse_others
from ..errors import (AttachError, Closable, CompileError, CountersUnavailable, UsageError, XDPLabError,
                      needs_open)
from ..failures import Row
from . import capture, dialects, explain, printk, safecompile
from .bcccompat import (CountingWarning, ctx_types, entry_pattern, include_flags, origin_dir,
                        prelude_defines, split_cflags)
from .compile import INCLUDE_DIR, PRELUDE, capture_stderr as _capture_stderr, cflags as _cflags
from .dialects import detect
from .live import LivePlot
from .maps import Counters, Maps
from .prog_run import run as _run
from .explain import no_entry_error
from ..errors import UsageError

ACTIONS = kernel.ACTIONS          # enum xdp_action (kernel.abi)
MODES = {"native": "native", "drv": "native", "driver": "native",
         "generic": "generic", "skb": "generic"}

_XDP_FUNC = re.compile(
    r"^(?P<indent>[ \t]*)(?P<static>static\s+)?(?:__always_inline\s+)?int\s+(?P<name>\w+)\s*\(\s*struct\s+xdp_md\s*\*\s*(?P<arg>\w+)\s*\)",
    re.M)
_TC_FUNC = re.compile(_XDP_FUNC.pattern.replace(r"xdp_md", r"__sk_buff"), re.M)
#: the loaded-program class of each hook: "xdp" here, "tc" registered by programs.tc
LOADED_TYPES: dict[str, type] = {}
#: how a dialect other than BCC's loads: {"libbpf": loader, "elf": loader}, registered by
#: programs.libbpf; a loader has ``load(spec, detected)`` and ``entry(spec)``
DIALECT_LOADERS: dict[str, object] = {}


def numbered(source: str, origin: str, first: int = 1) -> str:
    """Put ``#line N`` before every line, so that lines BCC's rewriter inserts (an attribute
    line before each function, a blank line after its brace) do not shift the line numbers
    clang and the verifier report. Continuation lines (after a backslash) are left alone."""
    out, cont = [], False
    for n, line in enumerate(source.splitlines(), first):
        if not cont:
            out.append(f'#line {n} "{origin}"')
        out.append(line)
        cont = line.endswith("\\")
    return "\n".join(out)


@dataclass(frozen=True)
class Program:
    """A program's source and how to build it. Nothing touches the kernel until ``load()``.

    ``func``: the XDP function (default: the first ``int f(struct xdp_md *ctx)``).
    ``count``: wrap it so that every returned action is counted in ``xdplab_actions``.
    ``origin``: the name shown in error messages (``cell``, a file path)."""

    source: str
    func: str | None = None
    cflags: tuple = ()
    count: bool = True
    origin: str = "cell"
    #: expected attach type for programs that run from a map entry (BPF_XDP_DEVMAP=33,
    #: BPF_XDP_CPUMAP=35; see xdplab.redirect.load_egress); None: attached to an interface
    attach_type: int | None = None
    #: lines shown above the source that are not C (a cell's ``%%xdp`` line), so that
    #: line numbers in errors are the ones the notebook shows
    header_lines: tuple = ()
    #: packet capture at entry/exit (True, a snaplen, a tcpdump filter or capture.Capture)
    capture: object = False
    #: printk tag (xdplab.printk): None = a fresh one at load if the source uses printk
    printk_tag: str | None = None
    #: "xdp", or "tc": a TC classifier, ``int f(struct __sk_buff *skb)`` returning TC_ACT_*,
    #: loaded as a ``tc.TCProgram`` (never counted or captured: those wrap XDP functions)
    hook: str = "xdp"
    #: directories for ``#include "..."`` (-I); ``cflags`` may also be one string
    include_dirs: tuple = ()
    #: "bcc", "libbpf" or "elf" (None: recognised from the input, see xdplab.dialects)
    dialect: str | None = None
    #: a compiled BPF object (ELF bytes) instead of ``source`` (``from_file("x.o")``)
    elf: bytes | None = None
    #: libbpf objects: global variables (.rodata/.bss/.data) to set before load
    globals: object = None
    #: libbpf-style C/objects: bind to this device (interface name or lab Host) at load,
    #: BPF_F_XDP_DEV_BOUND_ONLY + prog_ifindex: the RX metadata kfuncs need it (xdplab.memory)
    bind_to: object = None
    #: libbpf-style C/objects: {map name: max_entries} set before load, as loaders size maps
    #: their object leaves at 0 (samples/bpf: bpf_map__set_max_entries(rx_cnt, nr_cpus))
    map_sizes: object = None
    #: libbpf programs hold BPF run-time statistics on while loaded, so ``stats()`` counts
    #: from the first packet; False for measurements (stats add ~100 ns to EVERY BPF program
    #: run on the machine). BCC programs switch them on at the first ``stats()`` call.
    stats: bool = True

    def __post_init__(self):
        object.__setattr__(self, "cflags", split_cflags(self.cflags))
        include_flags(self.include_dirs)                      # refuses a missing directory
        dirs = (self.include_dirs,) if isinstance(self.include_dirs, (str, Path)) else self.include_dirs
        object.__setattr__(self, "include_dirs", tuple(str(d) for d in dirs or ()))

    @classmethod
    def from_file(cls, path, **kw) -> "Program":
        """``path``: a file, or relative to the checkout's lab material (``bpf/``:
        ``"solutions/01-hello-xdp/drop_icmp_echo.c"``)."""
        p = Path(path)
        if not p.is_absolute() and not p.exists() and paths.LAB_BPF is not None:
            p = paths.LAB_BPF / p
        data = p.read_bytes()
        if data[:4] == b"\x7fELF":                     # a compiled object: libbpf loads it
            return cls("", elf=data, origin=str(path), **kw)
        return cls(data.decode(errors="replace"), origin=str(path), **kw)

    def detected(self):
        """Which dialect this is and why (``xdplab.dialects.Detected``)."""
        return detect(self.elf if self.elf is not None else self.source, self.dialect)

    @property
    def lines(self) -> list[str]:
        return [*self.header_lines, *self.source.splitlines()]

    def xdp_functions(self) -> list[str]:
        """The entry points the source defines (XDP functions, or for ``hook="tc"`` TC ones)."""
        pattern = (_TC_FUNC if self.hook == "tc"    # struct xdp_md, or a macro for it (CTXTYPE)
                   else entry_pattern(ctx_types(self.source, self.cflags)))
        return [m["name"] for m in pattern.finditer(self.source) if not m["static"]]

    def check_func(self, found=None) -> None:
        """``func`` must name a function (or, libbpf, a program/section) of the source or
        object: a ``UsageError`` listing those that exist, before anything is compiled or
        loaded (not a verifier error from the load)."""
        func = self.func
        if not func:
            return
        found = found or self.detected()
        if not isinstance(func, str) or not re.fullmatch(r"[A-Za-z_][\w.]*(?:/[\w.]+)*", func):
            raise UsageError(f"func={func!r} is not a C function name",
                             hint="pass the name of the program's function, e.g. func=\"xdp_prog\"")
        if found.dialect == "elf":
            names = DIALECT_LOADERS["elf"].program_names(self)
            if any(func in (n, sec) for n, sec in names):
                return
            listed = [f"{n} ({sec})" for n, sec in names]
        else:
            # any mention: a function may be defined through a macro (XDP_FN(name) { ... })
            if re.search(rf"\b{re.escape(func)}\b", self.source) or \
                    (found.dialect == "libbpf" and re.search(rf'\bSEC\s*\(\s*"{re.escape(func)}"', self.source)):
                return
            if found.dialect == "libbpf":
                listed = DIALECT_LOADERS["libbpf"].source_order(self.source)
            else:
                listed = self.xdp_functions()
        what = "TC" if self.hook == "tc" else "XDP"
        raise UsageError(f"func={func!r}: {self.origin} has no function {func!r}",
                         hint=f"{what} functions in {self.origin}: {', '.join(listed)}" if listed
                         else f"{self.origin} defines no {what} function to load")

    @property
    def entry(self) -> str:
        if self.func:
            return self.func
        if self.elf is not None or self.detected().dialect != "bcc":
            return DIALECT_LOADERS[self.detected().dialect].entry(self)
        funcs = self.xdp_functions()
        if not funcs:
            what, arg = (("TC", "struct __sk_buff *skb") if self.hook == "tc"
                         else ("XDP", "struct xdp_md *ctx"))
            raise no_entry_error(self, what, arg)          # on the line of the function that is not one
        return funcs[0]

    def full_source(self) -> str:
        """What BCC compiles: the prelude, then the user's source at its own line numbers
        (``#line``), then the counting wrapper."""
        prelude = PRELUDE.read_text() + printk.prelude(self.printk_tag)
        user, entry, wrapper = self.source, self.entry, ""
        prelude = "".join(f"#define {d} 1\n" for d in prelude_defines(user, self.all_cflags(), self.origin)) + prelude
        if self.hook == "tc":
            prelude = f"#define XDPLAB_TC 1\n{prelude}#include <uapi/linux/pkt_cls.h>\n"   # TC_ACT_*
        elif self.count or self.capture:
            m, _ = self.wrap_target()
            if m:
                inner = f"__xdplab_user_{entry}"
                user = (user[:m.start()] + f"{m['indent']}static __always_inline int {inner}(struct {m['type']} *{m['arg']})"
                        + "\n" * m[0].count("\n") + user[m.end():])      # a signature over lines keeps them
                wrapper = (f"\n#line 1 \"<xdplab wrapper>\"\nint {entry}(struct xdp_md *ctx)\n"
                           f"{{\n    return xdplab_count(ctx, {inner}(ctx));\n}}\n")
                if self.capture:
                    wrapper = capture.wrapper(self, entry, inner)
        return f"{prelude}\n{numbered(user, self.origin, len(self.header_lines) + 1)}\n{wrapper}"

    def all_cflags(self) -> tuple:
        """``cflags`` plus -I for each of ``include_dirs`` and for the source file's
        directory (BCC compiles the text from memory: ``#include "x.h"`` next to the file)."""
        here = origin_dir(self.origin)
        return (*include_flags(self.include_dirs), *self.cflags, *((f"-I{here}",) if here else ()))

    def wrap_target(self):
        """(match, problem): where the counting/capture wrapper goes — the entry function's
        ``int f(struct xdp_md *ctx)`` line (the struct may be spelled through a macro, as
        ``struct CTXTYPE`` with -DCTXTYPE=xdp_md) — or None and why it cannot wrap."""
        entry = self.entry
        m = (entry_pattern(ctx_types(self.source, self.cflags), entry).search(self.source)
             or entry_pattern(None, entry).search(self.source))
        if m is None:
            return None, (f"the counting wrapper found no `int {entry}(struct xdp_md *ctx)` line in "
                          f"{self.origin} to wrap (a signature built by a macro, or a function "
                          "defined elsewhere)")
        if m["static"]:
            return None, f"{entry} is static: the counting wrapper only wraps a non-static function"
        return m, None

    def load(self) -> "LoadedProgram":
        """Compile with BCC and load into the kernel (the verifier runs here): an
        ``XDPProgram``, or for ``hook="tc"`` a ``tc.TCProgram``. libbpf-style C and
        compiled objects load through libbpf instead (``xdplab.libbpf``)."""
        found = self.detected()
        self.check_func(found)                 # a typed error before compiling (not the verifier's)
        if found.dialect != "bcc":
            return DIALECT_LOADERS[found.dialect].load(self, found)
        if self.globals:
            raise UsageError("globals= sets .rodata/.bss/.data of libbpf objects; this is BCC-dialect C",
                             hint="write the program libbpf-style (SEC(\"xdp\"), const volatile globals), "
                                  "or set a BCC map from Python after load")
        if self.bind_to is not None:
            raise UsageError(f"bind_to={getattr(self.bind_to, 'outside', self.bind_to)!r}: BCC cannot load "
                             "device-bound programs", hint="write the program libbpf-style (#include "
                             "<bpf/bpf_helpers.h>, SEC(\"xdp\")) or pass dialect=\"libbpf\"")
        from bcc import BPF
        if self.hook not in LOADED_TYPES:
            raise XDPLabError(f"unknown hook {self.hook!r}", hint=f"use one of {', '.join(map(repr, LOADED_TYPES))}")
        if self.printk_tag is None and "printk" in self.source:
            return replace(self, printk_tag=printk.new_tag()).load()
        entry = self.entry
        if self.capture and self.hook == "xdp" and self.wrap_target()[1]:
            # capture lives in the wrapper: refuse, not miss
            raise UsageError(f"capture={self.capture!r}: {self.wrap_target()[1]}",
                             hint=f"write {entry} as `int {entry}(struct xdp_md *ctx)` (not static, "
                                  "not built by a macro) to capture its packets")
        cflags = _cflags(self.all_cflags())
        text = self.full_source()
        pre = safecompile.precheck(text.encode(), cflags)    # LLVM may exit(1): a child tries first
        if pre.status in ("failed", "died"):
            raise explain.compile_error(self, pre.text, died=pre.how)
        with _capture_stderr() as err:
            try:
                bpf = BPF(text=text.encode(), cflags=cflags)
            except Exception:
                bpf = None
        if bpf is None:
            raise explain.compile_error(self, err["text"])
        compiled = err["text"]                                 # clang's warnings (kept for errors)
        with _capture_stderr() as err:
            try:
                fn = bpf.load_func(entry.encode(), BPF.SCHED_CLS if self.hook == "tc" else BPF.XDP,
                                   attach_type=-1 if self.attach_type is None else self.attach_type)
            except Exception as e:
                fn, exc = None, e
        if fn is None:
            try:
                error = explain.verifier_error(self, err["text"], exc, bpf, warnings=compiled)
            finally:
                bpf.cleanup()
            raise error
        prog = LOADED_TYPES[self.hook](self, bpf, fn, warnings=err["text"], source=text)
        if self.hook != "xdp":
            return prog
        prog.count_problem = self.count_problem()
        if prog.count_problem and self.count:
            warnings.warn(f"{self.entry}: not counted: {prog.count_problem}", CountingWarning, stacklevel=2)
        return prog

    def count_problem(self) -> str | None:
        """Why ``counters()`` of this program would not count its actions (None: it does)."""
        if self.hook == "tc":
            return None
        if not self.count:
            if re.search(r"\b(?:xdplab_count|XDPLAB_RETURN)\b", self.source):
                return None
            return "built with count=False (--no-count) and the program calls no xdplab_count()"
        return self.wrap_target()[1]


@dataclass(frozen=True)
class Stats:
    """Runs and run time of a program, as the kernel counts them (BPF_ENABLE_STATS)."""
    runs: int
    ns: int

    @property
    def ns_per_run(self) -> float:
        return self.ns / self.runs if self.runs else 0.0

    def __sub__(self, other: "Stats") -> "Stats":
        return Stats(self.runs - other.runs, self.ns - other.ns)

    def __repr__(self):
        return f"Stats(runs={self.runs}, ns={self.ns}, ns_per_run={self.ns_per_run:.1f})"


class LoadedProgram(Closable):
    """What every program loaded into the kernel has: its fd and id, its maps
    (``prog[name]``), its links, ``close()``. ``XDPProgram`` and ``tc.TCProgram`` add how
    they attach. After ``close()`` every use raises ``ClosedError`` (the fd number may
    already belong to another program)."""

    _reopen_hint = "load it again (xdplab.load(...), or re-run the cell)"
    _stats_hold = None            # a kernel.StatsHold once stats() was asked for

    def __init__(self, spec: Program, bpf, fn, warnings: str = "", source: str | None = None):
        """``source``: what BCC compiled (``spec.full_source()``), to find the maps' names."""
        self.spec, self.bpf, self._fn = spec, bpf, fn
        self.warnings = warnings
        self._fd = fn.fd
        info = kernel.prog_info(self._fd)
        self.id, self.name = info["id"], spec.entry
        self.links: list[Link] = []
        self._closed = False
        self.maps = Maps(bpf, source if source is not None else spec.full_source())

    @property
    def fd(self) -> int:
        """The program's fd (``ClosedError`` once closed: the number may be reused)."""
        self._check_open("use its fd")
        return self._fd

    def detach(self) -> None:
        for link in list(self.links):
            link.detach()

    @property
    def attached(self) -> bool:
        return any(l.attached for l in self.links)

    def close(self) -> None:
        """Detach everywhere and release the program and its maps."""
        if self._closed:
            return
        self.detach()
        self._closed = True
        for reader in getattr(self, "_readers", ()):
            reader.stop()             # capture threads polling this program's perf buffer
        self.maps.close(f"its program {self.name} was closed")
        self.bpf.cleanup()
        if self._stats_hold is not None:
            self._stats_hold.close()

    def __del__(self):
        try:
            if not self._closed and not self.links:
                self.bpf.cleanup()
        except Exception:
            pass

    def __getitem__(self, name):
        return self.maps[name]

    @property
    def dialect(self):
        """Which dialect the source is and why (``xdplab.dialects.Detected``): "bcc" here."""
        return self.spec.detected()

    @needs_open
    def instructions(self) -> bytes:
        """The program's BPF instructions as BCC handed them to the kernel (map fds in
        place): ``kernel.prog_load_xdp`` loads them again as another copy sharing the maps."""
        return self.bpf.dump_func(self._fn.name)

    def stats(self):
        """Runs and run time (ns), from the kernel: ``Stats(runs, ns, ns_per_run)``. The
        kernel counts while BPF_ENABLE_STATS is on, which this switches on for the process
        (libbpf-loaded programs: at load), so a BCC program counts from the first call.
        Held until the program is closed (while held, every BPF program run on the machine
        pays two clock reads)."""
        if self._stats_hold is None:
            self._stats_hold = kernel.StatsHold()
        s = kernel.prog_stats(self.fd)
        return Stats(s["run_cnt"], s["run_time_ns"])

    @needs_open
    def printk(self, **kw):
        """The program's bpf_printk lines, streamed (an Output widget in a notebook)."""
        return printk.PrintkStream(self, **kw)


class XDPProgram(LoadedProgram):
    """An XDP program loaded into the kernel. Attach it with ``attach``; read its maps with
    ``prog.maps[name]`` / ``prog[name]``; its action counters with ``counters()``."""

    @needs_open
    def attach(self, dev, mode: str = "native", *, replace: bool = False,
               force: bool = False) -> "Link":
        """Attach through a bpf_link. Refuses interfaces that carry the default route
        (``force=True`` overrides) and programs this process does not own
        (``replace=True`` takes them off first)."""
        return attach(self, dev, mode, replace=replace, force=force)

    @needs_open
    def counters(self):
        """Packets and bytes per XDP action since load, summed over CPUs. Raises
        ``CountersUnavailable`` when the program is not counted (``count_problem`` says why)."""
        if getattr(self, "count_problem", None):
            raise CountersUnavailable(f"{self.name} has no action counters: {self.count_problem}",
                                      hint="pass func= the program's XDP function `int f(struct xdp_md *ctx)`, "
                                           "or return xdplab_count(ctx, action) yourself")
        return Counters.read(self.maps)

    @needs_open
    def plot(self, **kw):
        """A live bokeh chart of packets/s per action (see ``xdplab.live.LivePlot``)."""
        return LivePlot(self, **kw).start()

    @needs_open
    def capture(self):
        """Start reading the packets a capture-built program (``capture=...``) emits."""
        return capture.Recorder(self)

    @needs_open
    def run(self, packet, **kw):
        """Run the program on one packet with BPF_PROG_RUN (see ``xdplab.testrun``)."""
        return _run(self, packet, **kw)

    def __repr__(self) -> str:
        if self.closed:
            return f"<XDPProgram {self.name} id={self.id} closed>"
        where = ", ".join(f"{l.ifname}/{l.mode}" for l in self.links if l.attached) or "not attached"
        uncounted = " NOT COUNTED" if getattr(self, "count_problem", None) else ""
        return f"<XDPProgram {self.name} id={self.id} ({where}) maps={list(self.maps)}{uncounted}>"

    def _repr_html_(self) -> str:
        if self.closed:
            return f"<b>XDP program <code>{escape(self.name)}</code></b> id {self.id} &mdash; closed"
        problem = getattr(self, "count_problem", None)
        counts = (f"<br><b>not counted</b>: {escape(problem)}" if problem else self.counters()._repr_html_())
        where = ", ".join(f"<code>{l.ifname}</code> ({l.mode}, link {l.id})" for l in self.links if l.attached)
        return (f"<b>XDP program <code>{escape(self.name)}</code></b> id {self.id} &mdash; "
                f"{where or 'not attached'}<br>maps: {', '.join(map(escape, self.maps)) or '-'}"
                f"{counts}")


@dataclass
class Link(Closable):
    """A bpf_link holding an XDP (or TC) program on an interface. Closing the fd (explicitly,
    or by the process dying) detaches the program. ``detach()`` (= ``close()``) is final:
    ``update()`` then raises ``ClosedError``."""

    fd: int
    ifname: str
    ifindex: int
    mode: str
    program: XDPProgram
    netns: int = 0              # kernel.netns_ino() of the namespace holding ifindex
    id: int = field(init=False)

    def __post_init__(self):
        self.id = kernel.link_info(self.fd)["id"]

    @property
    def attached(self) -> bool:
        return self.fd >= 0

    closed = property(lambda self: self.fd < 0)
    _reopen_hint = "attach the program again (prog.attach(dev)) for a new link"

    def _describe(self) -> str:
        return f"link of {self.program.name} on {self.ifname} ({self.mode})"

    @needs_open
    def update(self, program: XDPProgram) -> None:
        """Swap in another program atomically."""
        kernel.link_update(self.fd, program.fd)
        if self in self.program.links:
            self.program.links.remove(self)
        self.program = program
        program.links.append(self)

    def detach(self) -> None:
        if self.fd < 0:
            return
        _LINKS.pop((self.netns, self.ifindex, self.mode), None)
        kernel.link_close(self.fd)
        self.fd = -1
        if self in self.program.links:
            self.program.links.remove(self)

    close = detach

    def __repr__(self) -> str:
        state = f"link {self.id}" if self.attached else "detached, closed"
        return f"<Link {self.program.name} on {self.ifname} ({self.mode}, {state})>"


LOADED_TYPES["xdp"] = XDPProgram
_LINKS: dict[tuple[int, int, str], Link] = {}   # this process's XDP links, by (netns, ifindex, mode)


def attach(prog: XDPProgram, dev, mode: str = "native", *, replace: bool = False,
           force: bool = False) -> Link:
    """``dev``: anything ``kernel.resolve_device`` takes (a name, an ifindex, a lab Host of
    any topology, ``(netns, name)``); a device in another namespace is attached from there."""
    mode_key = MODES.get(str(mode).lower())
    if mode_key is None:
        raise AttachError(f"unknown XDP mode {mode!r}", hint="use 'native' (driver) or 'generic' (skb)")
    d = kernel.resolve_device(dev)
    if d.netns:
        return d.run(attach, prog, d.name, mode, replace=replace, force=force)
    dev = d.name
    if getattr(prog, "closed", False):
        prog._check_open("attach")             # ClosedError: its fd number may be another program's now
    ifindex = attach_target(dev, force)
    ours = our_link(prog, ifindex, mode_key)
    if ours is not None:
        return ours
    present = kernel.xdp_state(dev)
    other = next((l for m in MODES.values() if m != mode_key
                  for l in [_LINKS.get((kernel.netns_ino(), ifindex, m))] if l is not None and l.attached), None)
    if other is not None and not replace:
        raise AttachError(f"{dev} already has a {other.mode}-mode link of this process (program "
                          f"{other.program.name}); native and generic cannot be mixed on one device",
                          hint=f"detach it first ({other.program.name}.detach()), attach in {other.mode} "
                               "mode to swap the program, or pass replace=True (--replace) to take it off")
    if other is not None:
        other.detach()
        present = kernel.xdp_state(dev)
    if present and not replace:
        who = ", ".join(f"{m} program {kernel.prog_name_by_id(p)!r} (id {p})" for m, p in present.items())
        raise AttachError(f"{dev} already has {who}, not attached by this process",
                          hint="pass replace=True (--replace) to take it off, or detach it first "
                               "(`xdplab down` removes the lab's)")
    if present:
        _take_off(dev, ifindex, present)
    try:
        fd = kernel.link_create_xdp(prog.fd, ifindex, mode_key)
    except kernel.BPFError as e:
        raise AttachError(f"the kernel refused to attach {prog.name} to {dev} in {mode_key} mode: "
                          f"{e.strerror}", hint=_attach_hint(e, mode_key, prog, ifindex)) from None
    return new_link(prog, fd, dev, ifindex, mode_key)


def our_link(prog, ifindex: int, mode: str) -> Link | None:
    """The link this process holds at (this netns, ``ifindex``, ``mode``) with ``prog``
    swapped in (a re-run cell: BPF_LINK_UPDATE, no moment without a program), or None."""
    ours = _LINKS.get((kernel.netns_ino(), ifindex, mode))     # attach may run inside a netns
    if ours is None or not ours.attached:
        return None
    if ours.program is not prog:
        ours.update(prog)
    return ours


def new_link(prog, fd: int, dev: str, ifindex: int, mode: str) -> Link:
    """Record the link ``fd`` just created for ``prog`` (found again by ``our_link``)."""
    link = Link(fd, dev, ifindex, mode, prog, kernel.netns_ino())
    prog.links.append(link)
    _LINKS[(link.netns, ifindex, mode)] = link
    return link


def attach_target(dev: str, force: bool = False) -> int:
    """``dev``'s ifindex, after refusing a missing interface and (unless ``force``) the
    one carrying the default route."""
    refuse_others(dev, "attach to")            # a workshop attendee's interface: theirs only
    ifindex = kernel.ifindex(dev)
    if not ifindex:
        raise AttachError(f"no interface named {dev!r} in the root namespace",
                          hint="`xdplab status` lists the lab's interfaces; `xdplab up` builds them")
    if dev in kernel.default_route_ifnames() and not force:
        raise AttachError(
            f"{dev} carries this machine's default route: a program that drops there cuts "
            "the machine off", hint="attach to a lab interface, or pass force=True if you mean it")
    return ifindex


def _take_off(dev: str, ifindex: int, present: dict) -> None:
    """Detach what netlink reports on ``dev``: its bpf_links (ifindexes repeat across
    namespaces, so only links holding one of ``present``'s programs), then netlink ones."""
    for link_id in kernel.xdp_link_ids(ifindex):
        fd = kernel.link_fd_by_id(link_id)
        try:
            if kernel.link_info(fd)["prog_id"] in present.values():
                kernel.link_detach(fd)
        finally:
            os.close(fd)
    for mode in kernel.xdp_state(dev):
        if mode in ("native", "generic"):
            kernel.netlink_detach_xdp(dev, mode)


#: why the kernel refused BPF_LINK_CREATE for XDP, by errno and mode (failures, kind 'attach')
ATTACH_HINTS = failures.register(
    Row("dev-bound", "a device-bound program on another device", kind="attach",
        when={"errno": errno.EINVAL, "bound": failures.nonzero},
        fix="{name} is device-bound to {bound} (BPF_F_XDP_DEV_BOUND_ONLY, for the RX metadata kfuncs): "
            "it attaches only there, in native mode; load it again with bind_to= the device you want"),
    Row("frags-mtu", "the MTU needs multi-buffer", kind="attach", when={"errno": errno.ERANGE},
        fix="the MTU (this device's, or for veth its peer's) needs more than one page per frame: a "
            "program without multi-buffer support is refused. Load it as SEC(\"xdp.frags\") "
            "(BPF_F_XDP_HAS_FRAGS; read the frame with bpf_xdp_load_bytes) or lower the MTU"),
    Row("mode-mix", "native and generic on one device", kind="attach",
        when={"errno": (errno.EEXIST, errno.EBUSY)},
        fix="another program is attached in the other mode; detach it first (native and generic cannot mix)"),
    Row("no-native-xdp", "the driver has no native XDP", kind="attach",
        when={"errno": errno.EOPNOTSUPP, "mode": "native"},
        fix="this driver has no native XDP: use mode='generic'"),
    Row("mtu-multibuf", "program vs the device's MTU", kind="attach", when={"errno": errno.EINVAL},
        fix="the program may be too large for this device's MTU/multi-buffer settings"),
)


def _attach_hint(e: OSError, mode: str, prog=None, ifindex: int = 0) -> str:
    bound = getattr(prog, "bound_to", None)           # load(..., bind_to=dev): xdplab.tools.memory
    row = failures.find("attach", errno=e.errno, mode=mode, bound=bound[1] if bound else None)
    return row.advice(name=getattr(prog, "name", "the program"), bound=bound[1] if bound else "") if row else ""


def detach_all() -> None:
    """Detach every link this process made (used by tests and by the notebook extension)."""
    for link in list(_LINKS.values()):
        link.detach()


def load(source: str, **kw) -> LoadedProgram:
    """``Program(source, **kw).load()``: an XDPProgram (``hook="tc"``: a tc.TCProgram)."""
    return Program(source, **kw).load()
