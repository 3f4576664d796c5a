"""Compile time of the prelude (bpf/include/xdplab.h), side by side in one run (medians).

    PYTHONPATH=. /opt/xdplab-venv/bin/python benchmarks/bench_prelude.py [--runs N]

- a lab program (UAPI only) with the prelude as it is, vs. the prelude without its
  linux/socket.h guard (what every compile cost before the guard), vs. the prelude of
  commit eaa174d (guard kept for good: it broke programs that include kernel headers);
- BCC's xdp_drop_count example (kernel headers) through xdplab vs. plain BCC.
Compiles only (BCC's BPF(text=...)); nothing is loaded or attached.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import time
from pathlib import Path

from xdplab import paths

ROOT = Path(__file__).resolve().parent.parent
INC = paths.INCLUDE_DIR                      # the package data (xdplab/bpf/include)
LAB_PROG = "int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }\n"
CORPUS = ROOT / "tests" / "corpus_bcc" / "xdp_drop_count.c"
EXAMPLE_FLAGS = ["-w", "-DRETURNCODE=XDP_DROP", "-DCTXTYPE=xdp_md", '-DMAPTYPE="percpu_array"']


def compile_s(text: str, cflags) -> float:
    from bcc import BPF
    t = time.perf_counter()
    b = BPF(text=text.encode(), cflags=[f"-I{INC}", *cflags])
    dt = time.perf_counter() - t
    b.cleanup()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from xdplab.programs.program import Program
    now = (INC / "xdplab.h").read_text()
    # without the guard: no _LINUX_SOCKET_H, no struct sockaddr of our own (socket.h has it)
    unguarded = re.sub(r"#define _LINUX_SOCKET_H\n.*?\n};\n", "", now, count=1, flags=re.S)
    unguarded = unguarded.replace("#undef sockaddr\n#undef _LINUX_SOCKET_H\n", "")
    assert "_LINUX_SOCKET_H" not in unguarded and "xdplab_sockaddr" not in unguarded
    old = subprocess.run(["git", "show", "eaa174d:bpf/include/xdplab.h"], cwd=ROOT,
                         capture_output=True, text=True).stdout
    cases = {
        "lab program, prelude now": (Program(LAB_PROG).full_source(), []),
        "lab program, prelude without the socket guard": (unguarded + LAB_PROG, []),
        "lab program, prelude of eaa174d": (old + LAB_PROG, []) if old else None,
        "xdp_drop_count.c, xdplab": (Program(CORPUS.read_text(), cflags=EXAMPLE_FLAGS).full_source(),
                                     EXAMPLE_FLAGS),
        "xdp_drop_count.c, plain BCC": (CORPUS.read_text(), EXAMPLE_FLAGS),
    }
    cases = {k: v for k, v in cases.items() if v}
    times = {k: [] for k in cases}
    for _ in range(args.runs):                       # interleaved: load changes hit all alike
        for name, (text, flags) in cases.items():
            times[name].append(compile_s(text, flags))
    base = statistics.median(times["lab program, prelude now"])
    print(f"{'case':50} {'median s':>9} {'ratio':>7}   (runs: {args.runs})")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:50} {m:9.2f} {m / base:7.2f}")


if __name__ == "__main__":
    main()
