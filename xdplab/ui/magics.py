"""``%load_ext xdplab`` gives the ``%%xdp`` cell magic.

    %%xdp --dev h1 [--mode native|generic] [--name prog] [--func f] [--replace] [--no-attach]
          [--cflags "-DCTXTYPE=xdp_md -w"] [-I DIR]
    int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }

compiles the cell, attaches it and binds the ``XDPProgram`` to ``prog`` (default: the
C function's name). Running the cell again swaps the new program in atomically and
releases the old one. ``--dev`` takes an interface or a lab host's name (``h1`` means
the root-side veth of lab host h1). Errors are short and point at the cell's line.
"""
from __future__ import annotations

import argparse
import re
import shlex

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.display import display

from .. import kernel
from ..errors import UsageError, XDPLabError
from ..kernel import Device
from ..net import device
from ..programs.explain import display_error
from ..programs.live import ensure_bokehjs
from ..programs.program import _LINKS, Program, XDPProgram, detach_all
from .cellcard import Card


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"%%xdp: {message}", hint=self.format_usage().strip())


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%%xdp", add_help=False)
    p.add_argument("--dev", "-d", help="interface, or lab host name (h1 = its root-side veth)")
    p.add_argument("--mode", "-m", default="native", help="native (driver) or generic (skb)")
    p.add_argument("--name", "-n", help="variable to bind the program to")
    p.add_argument("--func", "-f", help="the XDP function (default: the first one)")
    p.add_argument("--replace", action="store_true", help="take off a program not attached by this notebook")
    p.add_argument("--force", action="store_true", help="allow the interface with the default route")
    p.add_argument("--no-attach", dest="attach", action="store_false", help="compile and load only")
    p.add_argument("--no-count", dest="count", action="store_false", help="do not count actions")
    p.add_argument("--plot", action="store_true", help="show the live action plot under the cell")
    p.add_argument("--printk", action="store_true", help="stream the program's bpf_printk lines under the cell")
    p.add_argument("--dialect", choices=("bcc", "libbpf"), default=None,
                   help="C dialect (default: recognised: SEC(...), bpf/bpf_helpers.h, vmlinux.h -> libbpf)")
    p.add_argument("--capture", nargs="?", const=True, default=False, metavar="FILTER",
                   help="instrument for packet capture (optional tcpdump filter); prog.capture() reads it")
    p.add_argument("--cflags", default="", metavar="FLAGS",
                   help='compiler flags, one quoted string: --cflags "-DCTXTYPE=xdp_md -w"')
    p.add_argument("-I", "--include", dest="include_dirs", action="append", default=[], metavar="DIR",
                   help='a directory for #include "..." (repeatable)')
    return p


def _join_cflags(words: list[str]) -> list[str]:
    """``--cflags VALUE`` as ``--cflags=VALUE``: its value starts with '-', which argparse
    would take for an option."""
    out = list(words)
    for i in range(len(out) - 2, -1, -1):
        if out[i] == "--cflags":
            out[i:i + 2] = [f"--cflags={out[i + 1]}"]
    return out


def resolve_dev(dev: str) -> Device:
    """``--dev``: an interface, or a host of any lab topology that is up (``net.device``)."""
    return device.resolve(dev)


def parse_options(line: str) -> argparse.Namespace:
    """The ``%%xdp`` line's options; a malformed line is a ``UsageError``."""
    try:
        words = shlex.split(line)
    except ValueError as e:               # shlex: "No closing quotation" / "No escaped character"
        raise UsageError(f"%%xdp options {line.strip()!r}: {str(e).lower()}",
                         hint="close the quote: --capture 'udp port 53'") from None
    return parser().parse_args(_join_cflags(words))


def check_func(spec: Program) -> None:
    """``--func NAME`` must name a function of the cell (a UsageError listing them, not a
    verifier error from the load)."""
    if spec.func and spec.detected().dialect == "bcc" and not re.search(rf"\b{re.escape(spec.func)}\s*\(", spec.source):
        funcs = spec.xdp_functions()
        raise UsageError(f"%%xdp --func {spec.func}: the cell has no function {spec.func!r}",
                         hint=f"XDP functions in the cell: {', '.join(funcs)}" if funcs
                         else "the cell defines no `int f(struct xdp_md *ctx)` function")


@magics_class
class XDPMagics(Magics):
    @cell_magic
    def xdp(self, line: str, cell: str):
        args = parse_options(line)
        spec = Program(cell, func=args.func, count=args.count, origin="cell", capture=args.capture,
                       header_lines=(f"%%xdp {line}",), dialect=args.dialect,
                       cflags=args.cflags, include_dirs=tuple(args.include_dirs))
        found = spec.detected()                # which compiler/loader, and why: said in the card
        why = f"--dialect {args.dialect}" if args.dialect and found.reason == "explicit" else found.reason
        check_func(spec)
        name = args.name or spec.entry
        ns = self.shell.user_ns
        old = ns.get(name)
        try:
            prog = spec.load()
        except XDPLabError as e:
            _show(e)
            raise
        if args.attach:
            if not args.dev:
                prog.close()
                raise XDPLabError("%%xdp: which interface? add --dev IFACE (or a lab host: --dev h1)",
                                  hint="or --no-attach to only compile and load")
            links_before = _links_now()
            try:
                link = prog.attach(resolve_dev(args.dev), args.mode, replace=args.replace, force=args.force)
            except XDPLabError:
                prog.close()
                raise
        ns[name] = prog
        display(Card.of(prog, name, link if args.attach else None,
                        links_before.get(link.id) if args.attach else None, why=why))
        if isinstance(old, XDPProgram) and old is not prog and not old.links:
            old.close()           # its link (if any) now holds the new program
        if args.printk:
            display(prog.printk())
        if args.plot:
            display(prog.plot())
        return None


def _links_now() -> dict:
    """This process's XDP links: id -> 'program (id N)' (to tell a swap from a new link)."""
    return {l.id: f"{l.program.name} (id {l.program.id})" for l in list(_LINKS.values()) if l.attached}


def _show(e: XDPLabError) -> None:
    """Rich rendering of compile/verifier errors (HTML in a notebook)."""
    display_error(e)


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(XDPMagics)
    ensure_bokehjs()


def unload_ipython_extension(ipython) -> None:
    detach_all()
