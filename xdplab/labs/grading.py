"""Graded exercises: run a learner's program on crafted packets and on live traffic, and
say per item what is right and what is not.

    report = grading.check_lab("05", mine)      # mine: XDPProgram, C source, .c path or None
    report                                       # a table: check, expected, got, verdict, hint
    report.passed

A lab's checks live in one module, ``xdplab/exercises/labNN_<name>.py`` (found
automatically), declared with ``exercise``::

    from xdplab.grading import exercise
    from scapy.all import Ether, IP, UDP

    ex = exercise("07", "my-lab", solution="07-my-lab/solution.c",
                  title="What the learner must write")

    @ex.unit                       # crafted packets through BPF_PROG_RUN
    def _(c):
        c.packet("UDP to port 9 is dropped", IP()/UDP(dport=9), "XDP_DROP")
        c.that("the map counted it", expected=1, got=c.map_value("hits", 0))

    @ex.live                       # optional: the program attached to a lab host of its own
    def _(c, host):
        c.that("ping is answered", expected=3, got=host.ping(host.gw4, 3))

``solution`` is relative to ``bpf/solutions/``. Live checks attach the program (native
mode) to ``gr``, a host the grader adds to the lab topology (same prefix and subnet
scheme, so it never touches the learner's hosts and attachments), and detach it after.
"""
from __future__ import annotations

import html
import os
import importlib
import pkgutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..errors import XDPLabError
from ..kernel import features
from ..net.topology import Topology, lab
from ..programs import prog_run
from ..programs.program import Program
import argparse
import socket
import time
from ..programs.typedmaps import TypedMap
from ..programs.dialects import detect

SOLUTIONS = paths.SOLUTIONS
GRADER_HOST = "gr"


@dataclass
class Item:
    """One graded item."""

    name: str
    kind: str               # "packet", "map", "live", ...
    expected: str
    got: str
    status: str             # "pass", "fail", "skip"
    hint: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "fail"


@dataclass
class Report:
    """The table of a lab's checks against one program."""

    lab: str
    title: str
    program: str
    items: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.items) and all(i.ok for i in self.items)

    ok = passed

    @property
    def failures(self) -> list[Item]:
        return [i for i in self.items if i.status == "fail"]

    def __bool__(self) -> bool:
        return self.passed

    def assert_passed(self) -> "Report":
        if not self.passed:
            raise AssertionError(f"lab {self.lab}: {len(self.failures)} check(s) failed\n{self}")
        return self

    def summary(self) -> str:
        n = sum(i.status == "pass" for i in self.items)
        skip = sum(i.status == "skip" for i in self.items)
        verdict = "PASSED" if self.passed else "NOT YET"
        return (f"lab {self.lab} ({self.title}) with {self.program}: {verdict} — "
                f"{n}/{len(self.items)} checks right" + (f", {skip} skipped" if skip else ""))

    def __repr__(self) -> str:
        mark = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}
        w = max([len(i.name) for i in self.items] + [5])
        lines = [self.summary()]
        for i in self.items:
            line = f"  {mark[i.status]}  {i.name:<{w}}  expected {i.expected}, got {i.got}"
            lines.append(line + (f"\n        hint: {i.hint}" if i.hint and i.status == "fail" else ""))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {"pass": "#27ae60", "fail": "#c0392b", "skip": "#7f8c8d"}
        sym = {"pass": "&#10004;", "fail": "&#10008;", "skip": "&ndash;"}
        e = lambda s: html.escape(str(s))
        rows = "".join(
            f"<tr><td style='color:{colour[i.status]};font-weight:bold'>{sym[i.status]}</td>"
            f"<td style='text-align:left'>{e(i.name)}</td><td>{e(i.kind)}</td>"
            f"<td style='text-align:left'><code>{e(i.expected)}</code></td>"
            f"<td style='text-align:left'><code>{e(i.got)}</code></td>"
            f"<td style='text-align:left'>{e(i.hint) if i.status == 'fail' else ''}</td></tr>"
            for i in self.items)
        head = (f"<b style='color:{'#27ae60' if self.passed else '#c0392b'}'>"
                f"{e(self.summary())}</b>")
        return (f"{head}<table><tr><th></th><th>check</th><th>kind</th><th>expected</th>"
                f"<th>got</th><th>hint</th></tr>{rows}</table>")


class Checker:
    """What a lab's check functions use to record items (``c`` in the examples)."""

    def __init__(self, prog, report: Report):
        self.prog, self.report = prog, report
        self.kind = "packet"

    def _add(self, name, kind, expected, got, ok, hint="", skip=False) -> Item:
        item = Item(name, kind, str(expected), str(got), "skip" if skip else "pass" if ok else "fail", hint)
        self.report.items.append(item)
        return item

    def packet(self, name: str, packet, expect: str, output=None, hint: str = "", **run_kw):
        """Run the program on ``packet``; the item passes if the verdict is ``expect`` (and the
        output frame matches ``output``: scapy/bytes, or a predicate on the scapy packet).
        Returns the RunResult (None if the run failed)."""
        want = prog_run.normalize_action(expect)
        try:
            r = prog_run.run(self.prog, packet, **run_kw)
        except XDPLabError as err:
            self._add(name, "packet", want, f"error: {str(err).splitlines()[0]}", False, hint)
            return None
        got, ok = r.action, r.action == want
        if ok and output is not None:
            if callable(output) and not hasattr(output, "build"):
                ok = bool(output(r.packet))
                got += "" if ok else f" but output {r.packet.summary()}"
            elif prog_run.to_frame(output) != r.data:
                ok = False
                d = prog_run.packet_diff(prog_run.to_frame(output), r.data)
                got += " but " + ", ".join(f"{k}={b!r} (want {a!r})" for k, a, b in d[:3])
        self._add(name, "packet", want, got, ok, hint)
        return r

    def that(self, name: str, expected, got, ok: bool | None = None, hint: str = "",
             kind: str | None = None) -> Item:
        """A free-form item: passes if ``ok`` (default: ``expected == got``)."""
        return self._add(name, kind or self.kind, expected, got, expected == got if ok is None else ok, hint)

    def skip(self, name: str, why: str, kind: str | None = None) -> Item:
        return self._add(name, kind or self.kind, "-", why, True, skip=True)

    def needs(self, feature: str, what: str) -> bool:
        """False (and a skipped item saying which Linux it needs) when this kernel lacks
        ``feature`` of the kernel feature registry (``xdplab.kernel.features``)."""
        if features.have(feature):
            return True
        self.skip(what, features.skip_message(feature))
        return False

    def map(self, name: str | None = None, exclude=("xdplab_actions",)):
        """The program's map ``name``, or its only map besides xdplab's own when None.
        Raises XDPLabError naming the maps it has."""
        maps = getattr(self.prog, "maps", None)
        if maps is None:
            raise XDPLabError("this check needs the program's maps: pass an XDPProgram or C source")
        if name is not None and name in maps:
            return maps[name]
        own = [m for m in maps if m not in exclude]
        if name is None and len(own) == 1:
            return maps[own[0]]
        raise XDPLabError(f"no map {name!r}" if name else f"expected one map, found {own or 'none'}",
                          hint=f"the program has: {', '.join(maps) or 'no maps'}")

    def map_dict(self, name: str | None = None, sum_cpus: bool = True) -> dict:
        """The map's contents as {key: value} whichever dialect made it: a BCC table
        (``to_dict(sum_cpus=...)``) or a BTF-typed map of a libbpf object
        (``xdplab.typedmaps``: per-CPU values summed over CPUs, structs as dicts)."""
        return map_dict(self.map(name), sum_cpus)


def map_dict(m, sum_cpus: bool = True) -> dict:
    """{key: value} of a BCC map or a typed map; struct values as dicts of their fields."""
    if not isinstance(m, TypedMap):
        return m.to_dict(sum_cpus=sum_cpus)

    def py(v):
        if hasattr(v, "_asdict"):
            return {k: py(x) for k, x in v._asdict().items()}
        if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            return v.item()
        return v
    if getattr(m, "percpu", False) and sum_cpus:
        out = {}
        for k in m.keys():
            v = m.sum(k)
            out[py(k)] = {n: int(x) for n, x in v.items()} if isinstance(v, dict) else py(v)
        return out
    return {py(k): py(v) for k, v in m.items()}


@dataclass
class Exercise:
    """A lab's exercise: its checks and the reference solution."""

    lab: str
    name: str
    solution: str = ""
    title: str = ""
    func: str | None = None
    units: list = field(default_factory=list)
    lives: list = field(default_factory=list)

    def unit(self, fn):
        """Register ``fn(c)``: checks on crafted packets (BPF_PROG_RUN)."""
        self.units.append(fn)
        return fn

    def live(self, fn):
        """Register ``fn(c, host)``: checks with the program attached to the grader host."""
        self.lives.append(fn)
        return fn

    @property
    def solution_path(self) -> Path:
        return SOLUTIONS / self.solution

    @property
    def solution_variants(self) -> dict:
        """The reference solution in each dialect it is written in: ``{"bcc": x.c}`` plus
        ``{"libbpf": x.bpf.c}`` when a libbpf-style twin lies next to it. Both grade the same."""
        out = {}
        p = self.solution_path
        if p.suffix != ".c" or not p.is_file():
            return out
        for q in (p, p.with_name(p.stem + ".bpf.c")):
            if q.is_file():
                out.setdefault(detect(q.read_text()).dialect, q)
        return out

    def load_solution(self):
        return Program(self.solution_path.read_text(), func=self.func,
                       origin=str(self.solution_path.relative_to(paths.CHECKOUT))).load()


EXERCISES: dict[str, Exercise] = {}


def exercise(lab: str, name: str, solution: str = "", title: str = "", func: str | None = None) -> Exercise:
    """Declare (register) the exercise of lab ``lab``; see the module docstring."""
    ex = Exercise(_lab_id(lab), name, solution, title or name, func)
    EXERCISES[ex.lab] = ex
    return ex


def _lab_id(lab) -> str:
    s = str(lab).lower().removeprefix("lab").lstrip("-_ ")
    head = s.split("-")[0]
    return f"{int(head):02d}" if head.isdigit() else s


def discover() -> None:
    """Import every lab module of this package (``labNN_<name>.py``): each registers its exercise."""
    for m in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if m.name.startswith("lab"):
            importlib.import_module(f"{__package__}.{m.name}")


def get(lab) -> Exercise:
    discover()
    lab_id = _lab_id(lab)
    if lab_id not in EXERCISES:
        raise XDPLabError(f"no checks for lab {lab!r}",
                          hint=f"labs with checks: {', '.join(sorted(EXERCISES)) or 'none'}")
    return EXERCISES[lab_id]


def _load(source_or_prog, ex: Exercise, func: str | None):
    """-> (XDPProgram, owned: close it after?)"""
    if source_or_prog is None:
        return ex.load_solution(), True
    if hasattr(source_or_prog, "fd") and hasattr(source_or_prog, "maps"):
        return source_or_prog, False
    if isinstance(source_or_prog, Program):
        return source_or_prog.load(), True
    text = str(source_or_prog)
    if "xdp_md" not in text and Path(text).exists():
        return Program.from_file(text, func=func).load(), True
    return Program(text, func=func, origin="<exercise>").load(), True


def grader_host(topo=None):
    """The grader's lab host (``gr``), added to ``topo`` (default: ``xdplab.lab()``)."""
    if topo is None:
        topo = lab()
    hosts = tuple(topo.hosts) + ((GRADER_HOST,) if GRADER_HOST not in topo.hosts else ())
    return Topology(hosts=hosts, prefix=topo.prefix, net=topo.net).up()[GRADER_HOST]


@contextmanager
def attached(prog, host):
    """``prog`` attached (native) to ``host.outside`` for the body, detached after."""
    link = prog.attach(host.outside, "native", replace=True)
    try:
        yield link
    finally:
        link.detach()


def check_lab(lab, source_or_prog=None, *, topo=None, live: bool = True, func: str | None = None) -> Report:
    """Run lab ``lab``'s checks against a program (XDPProgram, C source, a .c path), or the
    reference solution when None. ``live=False`` skips the checks on live traffic."""
    ex = get(lab)
    try:
        prog, owned = _load(source_or_prog, ex, func)
    except XDPLabError as e:
        report = Report(ex.lab, ex.title, "your program")
        Checker(None, report).that("the program compiles and loads", "loaded",
                                   f"{type(e).__name__}: {str(e).splitlines()[0]}", ok=False,
                                   hint=e.hint, kind="load")
        if source_or_prog is not None:
            _record(report)
        return report
    who = "the reference solution" if source_or_prog is None else f"program {prog.name}"
    report = Report(ex.lab, ex.title, who)
    c = Checker(prog, report)
    try:
        for fn in ex.units:
            _guarded(c, fn, "packet")
        if ex.lives:
            if not live:
                c.skip("checks on live traffic", "live=False", kind="live")
            else:
                host = grader_host(topo)
                with attached(prog, host):
                    for fn in ex.lives:
                        _guarded(c, fn, "live", host)
    finally:
        if owned:
            prog.close()
    if source_or_prog is not None:          # the learner's own program, in a workshop: the
        _record(report)                     # instructor's view shows it (xdplab.room)
    return report


#: called with every Report when XDPLAB_RESULTS is set (a workshop): xdplab.ui.room registers
#: its recorder here (the labs floor does not import the ui floor)
REPORT_HOOKS: list = []


def _record(report: Report) -> None:
    if os.environ.get("XDPLAB_RESULTS"):
        for hook in REPORT_HOOKS:
            hook(report)


def _guarded(c: Checker, fn, kind: str, *args) -> None:
    """A check function that raises is one failed item, not a crash of the grader."""
    c.kind = kind
    try:
        fn(c, *args)
    except (XDPLabError, KeyError, TypeError, ValueError, AttributeError) as e:
        what = {"packet": "the checks on crafted packets", "live": "the checks on live traffic"}[kind]
        c.that(f"{what} could run", "no error", f"{type(e).__name__}: {str(e).splitlines()[0]}", ok=False,
               hint=getattr(e, "hint", ""))


def main_check(argv) -> int:
    """``xdplab check LAB [PROGRAM.c] [--func F] [--no-live]`` / ``xdplab check --list``."""
    p = argparse.ArgumentParser(prog="xdplab check", description="grade a lab exercise")
    p.add_argument("lab", nargs="?", help="lab number, e.g. 05")
    p.add_argument("program", nargs="?", help="C file to check (default: the reference solution)")
    p.add_argument("--func", help="XDP function in the file (default: the first)")
    p.add_argument("--no-live", dest="live", action="store_false", help="crafted packets only")
    p.add_argument("--list", action="store_true", help="list the labs that have checks")
    args = p.parse_args(argv)
    if args.list or not args.lab:
        discover()
        for lab_id, ex in sorted(EXERCISES.items()):
            print(f"{lab_id}  {ex.name:24} {ex.title}  (solution: bpf/solutions/{ex.solution})")
        return 0
    try:
        report = check_lab(args.lab, args.program, live=args.live, func=args.func)
    except XDPLabError as e:
        print(f"error: {e}")
        return 2
    print(report)
    return 0 if report.passed else 1


# --- helpers for live checks ---------------------------------------------------------------

def udp_delivered(host, port: int = 5353, count: int = 3, ipv6: bool = False, timeout: float = 1.0) -> int:
    """Send ``count`` UDP datagrams from ``host`` to a socket on its gateway address (root
    netns); return how many the socket received — i.e. how many XDP_PASSed."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import Raw
    fam, dst, src = ((socket.AF_INET6, host.gw6, host.ipv6) if ipv6 else (socket.AF_INET, host.gw4, host.ipv4))
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.bind((dst, port))
        s.settimeout(0.05)
        l3 = IPv6(src=src, dst=dst) if ipv6 else IP(src=src, dst=dst)
        host.send(l3 / UDP(sport=40000, dport=port) / Raw(b"xdplab-grader"), count=count)
        got, end = 0, time.monotonic() + timeout
        while got < count and time.monotonic() < end:
            try:
                s.recv(2048)
                got += 1
            except socket.timeout:
                pass
        return got
