"""The ``xdplab`` command: doctor, up, down, status, check, matrix, reset."""
from __future__ import annotations

import argparse
import sys

from ..dev import matrix
from ..errors import XDPLabError
from ..labs.grading import main_check
from ..net.drivers import table
from ..kernel import procstate
from ..net import labstate
from ..net.topology import DEFAULT_PREFIX, Topology, remove_all
from . import doctor, room  # noqa: F401  (room records graded reports in a workshop)
from . import workspace
from ..tools import bench
from ..tools.bench import add_arguments as bench_arguments


def cmd_doctor(args) -> int:
    report = doctor.run()
    print(report)
    return 0 if report.ok else 1


def cmd_up(args) -> int:
    t = Topology().up()
    print(t)
    return 0


def cmd_down(args) -> int:
    """Every topology of this lab (default hosts, the router labs' RouterTopology); with --all
    also whatever is named <prefix>* and what killed processes left."""
    removed = labstate.down(args.prefix)
    if args.all:            # and what killed processes left (tracefs instances, pins, ...)
        left = remove_all(args.prefix)
        removed += left["links"] + [f"netns {n}" for n in left["netns"]] + procstate.remove_dead()
    print("removed: " + (", ".join(removed) if removed else "nothing"))
    stray = labstate.unrecorded(args.prefix) if not args.all else {}
    if any(stray.values()):
        print(f"left (in no recorded topology): {', '.join(stray['netns'] + stray['links'])}; "
              "`xdplab down --all` removes them")
    return 0


def cmd_status(args) -> int:
    print(labstate.status_text(args.prefix))
    return 0


def cmd_features(args) -> int:
    print(table(args.devs or None))
    return 0


def cmd_check(args) -> int:
    return main_check(args.rest)


def cmd_reset(args) -> int:
    return workspace.main(args.labs)


def cmd_matrix(args) -> int:
    return matrix.main(args.rest)


def cmd_bench(args) -> int:
    return bench.main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xdplab", description="XDP lab on a real kernel")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("doctor", help="check this machine for the lab").set_defaults(fn=cmd_doctor)
    sub.add_parser("up", help="build the lab hosts (netns + veth)").set_defaults(fn=cmd_up)
    d = sub.add_parser("down", help="remove every topology of this lab (default hosts, router labs)")
    d.add_argument("--all", action="store_true", help=f"remove everything named {DEFAULT_PREFIX}* (also a crashed run's)")
    d.add_argument("--prefix", default=DEFAULT_PREFIX)
    d.set_defaults(fn=cmd_down)
    st = sub.add_parser("status", help="every topology of this lab and what is attached where")
    st.add_argument("--prefix", default=DEFAULT_PREFIX)
    st.set_defaults(fn=cmd_status)
    r = sub.add_parser("reset", help="restore pristine copies of the labs in your workspace (yours are kept beside)")
    r.add_argument("labs", nargs="*", help="labs to reset (default: all), e.g. 01 or 01-hello-xdp")
    r.set_defaults(fn=cmd_reset)
    f = sub.add_parser("features", help="what each interface's driver supports (XDP, xsk, rx metadata)")
    f.add_argument("devs", nargs="*", help="interfaces (default: all in the root namespace)")
    f.set_defaults(fn=cmd_features)
    bench_arguments(sub.add_parser("bench", help="performance lab + regression harness: XDP vs tc/nftables/"
                                                 "iptables/conntrack paths, per-program cost, --compare BASELINE")
                    ).set_defaults(fn=cmd_bench)
    for name, fn, hlp in (("check", cmd_check, "grade a lab's exercises: xdplab check 01 [file.c]"),
                          ("matrix", cmd_matrix, "run the smoke suite on several kernels under qemu")):
        s = sub.add_parser(name, help=hlp, add_help=False)
        s.add_argument("rest", nargs=argparse.REMAINDER)
        s.set_defaults(fn=fn)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("check", "matrix"):
        # their own parsers get every option (argparse.REMAINDER drops leading "--x" ones)
        args = argparse.Namespace(fn={"check": cmd_check, "matrix": cmd_matrix}[argv[0]], rest=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except XDPLabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
