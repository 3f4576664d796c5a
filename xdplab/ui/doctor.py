"""``xdplab doctor`` / ``xdplab.doctor()``: is this machine ready for the lab? Each check is PASS, WARN or FAIL
with a one-line fix; the CLI exits non-zero when anything FAILs."""
from __future__ import annotations

import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..kernel import features, procstate
from ..net.topology import Topology
from ..programs.program import load
from ..net.labstate import _names, topologies
from ..net.topology import NETNS_DIR, Topology

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
CAPS = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


kernel_version = features.kernel_release


def _mounted(path: str, fstype: str) -> bool:
    try:
        return any(l.split()[1] == path and l.split()[2] == fstype for l in open("/proc/mounts"))
    except OSError:
        return False


def check_kernel() -> Check:
    f = features.get("bpf_link_xdp")            # the one xdplab cannot work without
    if not features.have(f.name):
        return Check("kernel", FAIL, f"Linux {platform.release()}: {f.title} needs >= {f.min_kernel}",
                     f.advice)
    return Check("kernel", PASS, f"Linux {platform.release()}")


def check_kernel_features() -> Check:
    """Every entry of the kernel feature registry (kernel.features): WARN for the missing
    ones, naming the version each needs and what to do instead."""
    rows = features.table()
    gone = [r for r in rows if not r["present"] and not r["config"]]
    optional = [r for r in rows if not r["present"] and r["config"]]   # a build option few kernels set
    if not gone:
        without = f" (without {', '.join(r['feature'] + ': ' + r['config'] for r in optional)})" if optional else ""
        return Check("kernel features", PASS, f"{len(rows) - len(optional)} of {len(rows)}{without}: "
                     + ", ".join(r["feature"] for r in rows if r["present"]))
    return Check("kernel features", WARN,
                 "; ".join(f"{r['feature']} needs {r['needs']} ({r['why_not']})" for r in gone),
                 "; ".join(features.get(r["feature"]).advice for r in gone if features.get(r["feature"]).advice))


def check_privileges() -> Check:
    try:
        capeff = int(next(l for l in open("/proc/self/status") if l.startswith("CapEff")).split()[1], 16)
    except (OSError, StopIteration):
        capeff = 0
    missing = [n for n, bit in CAPS.items() if not capeff >> bit & 1 and n != "CAP_PERFMON"]
    if os.geteuid() == 0 and not missing:
        return Check("privileges", PASS, "root with CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN")
    return Check("privileges", FAIL, f"missing {', '.join(missing) or 'root'}", "run the lab as root (sudo ./lab start)")


def check_btf() -> Check:
    if Path("/sys/kernel/btf/vmlinux").exists():
        return Check("BTF", PASS, "/sys/kernel/btf/vmlinux")
    return Check("BTF", WARN, "no kernel BTF: verifier logs lose some detail", "a kernel with CONFIG_DEBUG_INFO_BTF=y")


def check_bpffs() -> Check:
    if _mounted("/sys/fs/bpf", "bpf"):
        return Check("bpffs", PASS, "/sys/fs/bpf")
    return Check("bpffs", WARN, "/sys/fs/bpf is not mounted (pins are not possible)", "mount -t bpf bpf /sys/fs/bpf")


def check_tracefs() -> Check:
    if _mounted("/sys/kernel/tracing", "tracefs"):
        return Check("tracefs", PASS, "/sys/kernel/tracing")
    return Check("tracefs", FAIL, "tracefs is not mounted: no printk, no drop detector",
                 "mount -t tracefs tracefs /sys/kernel/tracing")


def check_bcc() -> Check:
    try:
        import bcc
    except ImportError:
        return Check("BCC", FAIL, "python module bcc not importable",
                     "apt-get install python3-bpfcc; use a venv made with --system-site-packages")
    version = getattr(bcc, "__version__", "?")
    return Check("BCC", PASS, f"bcc {version} from {Path(bcc.__file__).parent}")


def check_headers() -> Check:
    build = Path(f"/lib/modules/{platform.release()}/build")
    if not build.exists():
        return Check("kernel headers", FAIL, f"{build} missing: BCC cannot compile",
                     "./lab setup (links the closest Debian linux-headers)")
    real = build.resolve()
    if platform.release() not in real.name:
        return Check("kernel headers", WARN,
                     f"no headers for {platform.release()}: using {real.name} (fine for XDP: UAPI is stable)",
                     "install linux-headers-$(uname -r) when your distribution has it")
    return Check("kernel headers", PASS, str(real))


def check_compile() -> Check:
    try:
        t = time.monotonic()
        with load("int probe(struct xdp_md *ctx) { return XDP_PASS; }") as p:
            return Check("compile + load", PASS, f"BCC compiled and the verifier accepted a probe "
                         f"(id {p.id}) in {time.monotonic() - t:.1f}s")
    except Exception as e:  # any failure here is the finding
        return Check("compile + load", FAIL, f"{type(e).__name__}: {str(e).splitlines()[0]}",
                     "see the kernel headers and BCC checks above")


def check_topology() -> Check:
    t = Topology()
    more = [o for o in topologies(t.prefix) if (type(o), o.prefix) != (Topology, t.prefix)
            and any((NETNS_DIR / n).exists() for n in _names(o)[0])]
    also = f"; also up: {', '.join(f'{type(o).__name__} {o.prefix}' for o in more)} (xdplab status)" if more else ""
    if t.is_up():
        return Check("lab topology", PASS, ", ".join(f"{h.name}={h.outside}" for h in t) + also)
    return Check("lab topology", WARN, "the lab hosts are not built" + also, "xdplab up")


def check_leftovers() -> Check:
    """What killed xdplab processes left: tracefs instances (a printk buffer each), pin
    directories, JupyterLab private directories. Names carry pid + start time, so a
    leftover is never one of a running process."""
    dead = {k: v for k, v in procstate.dead().items() if v}
    if not dead:
        return Check("leftovers", PASS, "no state of dead xdplab processes")
    kb = sum(procstate.instance_kb(p) for p in dead.get("tracefs instances", ()))
    parts = [f"{len(v)} {k} ({', '.join(p.name for p in v[:3])}{', ...' if len(v) > 3 else ''})" for k, v in dead.items()]
    size = f", {kb / 1024:.1f} MB of trace buffers" if kb else ""
    return Check("leftovers", WARN, f"dead processes left {'; '.join(parts)}{size}", "xdplab down --all")


def check_tools() -> Check:
    missing = [t for t in ("ping", "tcpdump", "bpftool", "ethtool") if not shutil.which(t)]
    if missing:
        return Check("tools", WARN, f"missing {', '.join(missing)}", "./lab setup")
    return Check("tools", PASS, "ping, tcpdump, bpftool, ethtool")


def check_jupyter() -> Check:
    try:
        import jupyter_bokeh
        import jupyterlab
    except ImportError as e:
        return Check("JupyterLab", FAIL, str(e), "./lab setup")
    return Check("JupyterLab", PASS, f"jupyterlab {jupyterlab.__version__}, jupyter_bokeh {jupyter_bokeh.__version__}")


CHECKS = [check_kernel, check_kernel_features, check_privileges, check_btf, check_bpffs, check_tracefs, check_bcc,
          check_headers, check_compile, check_topology, check_leftovers, check_tools, check_jupyter]


class Report(list):
    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self)

    def __str__(self) -> str:
        out = []
        for c in self:
            out.append(f"{c.status}  {c.name:15} {c.detail}")
            if c.fix and c.status != PASS:
                out.append(f"      {'':15} fix: {c.fix}")
        return "\n".join(out)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        color = {PASS: "#2ca02c", WARN: "#e69500", FAIL: "#d62728"}
        rows = "".join(f"<tr><td style='color:{color[c.status]};font-weight:bold'>{c.status}</td>"
                       f"<td>{c.name}</td><td style='text-align:left'>{c.detail}</td>"
                       f"<td style='text-align:left'>{f'<code>{c.fix}</code>' if c.fix and c.status != PASS else ''}</td></tr>"
                       for c in self)
        return f"<table><tr><th></th><th>check</th><th>detail</th><th>fix</th></tr>{rows}</table>"


def run(checks=None) -> Report:
    return Report(chk() for chk in (checks or CHECKS))
