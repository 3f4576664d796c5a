"""One registry of kernel features: name, minimum kernel, how it is probed, cached.

Modelled on cilium/ebpf's internal/feature.go: a feature is declared once with the
version that brought it and a probe; ``have(name)`` runs the probe the first time and
caches the answer; ``require(name)`` raises ``NotSupported`` naming the feature and the
version. Everything that asks "can this kernel do X" reads this table: the code that
needs X (require), ``xdplab doctor`` (a row each), the smoke suite and the kernel matrix
(skip messages), and the labs (``skip_message``).

    from xdplab.kernel import features
    features.require("live_frames")           # NotSupported(... needs Linux >= 5.18)
    features.have("tcx")                      # True / False, probed once
    features.table()                          # every feature on this kernel

Add a feature: one ``Feature(...)`` in ``FEATURES`` with a probe that returns None when
the feature is there and a one-line reason when it is not (probes may only use this
package: they run below everything else).

Every ``NotSupported`` xdplab raises comes from here (``require``/``error``; a test scans
the source). Most rows are kernel features (``kind="kernel"``: a release brings them). The
others say what is missing without a kernel version: ``"system"`` (a library or CPU of this
machine, probed), ``"driver"`` (a device's driver; per device, so not probed here) and
``"limit"`` (what neither a kernel nor xdplab does, e.g. reading an XSKMAP from user space).
``table()`` and doctor list the probed ones (kernel and system).
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import failures
from ..errors import NotSupported

from .tracefs import TRACEFS  # noqa: E402


@dataclass(frozen=True)
class Feature:
    name: str                       # the key: features.require("live_frames")
    title: str                      # what it is, as NotSupported says it
    min_kernel: str                 # the release that brought it ("5.18")
    how: str                        # how it is probed (shown by doctor)
    probe_name: str = ""            # a probe registered by kernel.probes ("" = by kernel version)
    advice: str = ""                # what to do without it
    kind: str = "kernel"            # "kernel" | "system" | "driver" | "limit" (see above)
    config: str = ""                # a build option it also needs (CONFIG_...): optional for doctor

    @property
    def needs(self) -> str:
        """What it takes, as doctor and skip messages say it: 'Linux >= 6.6', or the how."""
        if not self.min_kernel:
            return self.how
        return f"Linux >= {self.min_kernel}" + (f" built with {self.config}=y" if self.config else "")

    @property
    def probed(self) -> bool:
        """Answered for this machine by ``have``/``table`` (kernel and system features)."""
        return self.kind in ("kernel", "system")

    def probe(self) -> str | None:
        """None when present, else why not. Probes live in kernel/probes.py (they use bpf(2),
        which itself raises this table's errors); a feature without one compares versions."""
        if self.probe_name:
            return PROBES[self.probe_name]()
        if not self.probed:
            return f"{self.title}: {self.how}"
        return _by_version(self.min_kernel)()

    def error(self, detail: str = "", what: str = "") -> NotSupported:
        """The NotSupported for this feature; ``what`` names the case more precisely than
        the title (e.g. 'AF_XDP zero-copy on xl-h1')."""
        err = NotSupported(what or self.title, self.min_kernel, detail)
        row = failures.find("kernel-feature", feature=self.name)
        if row is not None and row.fix:
            err.hint = row.fix
        err.feature_name = self.name
        return err


def kernel_release() -> tuple[int, int]:
    major, minor = platform.release().split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def _version(v: str) -> tuple[int, int]:
    a, b = v.split(".")[:2]
    return int(a), int(b)


def _by_version(min_kernel: str) -> Callable[[], str | None]:
    def probe():
        if kernel_release() >= _version(min_kernel):
            return None
        return f"this kernel is {platform.release()}"
    return probe


FEATURES = {f.name: f for f in (
    Feature("bpf_link_xdp", "XDP through bpf_link (BPF_LINK_CREATE)", "5.9", "kernel version",
            advice="use the Vagrant VM (README: Using the VM)"),
    Feature("live_frames", "BPF_PROG_RUN live frames (BPF_F_TEST_XDP_LIVE_FRAMES)", "5.18",
            "BPF_PROG_RUN of an XDP_DROP program on lo with the flag", "live_frames",
            "send with scapy (host.send) instead: slower, but any kernel"),
    Feature("netdev_genl", "the netdev generic netlink family (XDP feature flags)", "6.3",
            "resolve the 'netdev' genetlink family, NETDEV_CMD_DEV_GET of lo", "netdev_genl",
            "drivers.query(dev, probe=True) tries a native attach instead"),
    Feature("tcx", "TC programs through bpf_link (tcx)", "6.6", "kernel version (tcx needs a TC program to probe)",
            advice="attach TC programs with tc(8) / netlink clsact instead"),
    Feature("enable_stats", "run-time statistics (BPF_ENABLE_STATS)", "5.8", "BPF_ENABLE_STATS(RUN_TIME)",
            "enable_stats"),
    Feature("afxdp", "AF_XDP sockets", "4.18", "socket(AF_XDP)", "afxdp"),
    Feature("xdp_tracepoints", "the xdp tracepoints", "4.18", f"{TRACEFS}/events/xdp exists",
            "xdp_tracepoints", "mount -t tracefs tracefs /sys/kernel/tracing"),
    Feature("tracefs_instances", "tracefs instances", "3.10", f"{TRACEFS}/instances exists",
            "tracefs_instances", "mount -t tracefs tracefs /sys/kernel/tracing"),
    Feature("printk_event", "the bpf_trace_printk trace event", "5.10",
            f"{TRACEFS}/events/bpf_trace/bpf_trace_printk exists", "printk_event"),
    Feature("ringbuf_tracepoints", "BPF ring buffers in tracepoint programs (drop detector)", "5.8",
            "kernel version"),
    Feature("raw_tracepoints", "raw tracepoints (BPF_RAW_TRACEPOINT_OPEN)", "4.17", "kernel version",
            advice="the drop detector probes the tracepoints through their format files instead "
                   "(dearer per hit)"),
    Feature("btf", "kernel BTF (/sys/kernel/btf/vmlinux)", "5.4", "/sys/kernel/btf/vmlinux exists",
            "btf", "a kernel with CONFIG_DEBUG_INFO_BTF=y (verifier logs lose some detail without)"),
    Feature("page_pool_netlink", "page-pool-get / page-pool-stats-get (netdev netlink)", "6.8",
            "NETDEV_CMD_PAGE_POOL_GET dump", "page_pool_netlink",
            "watch page pools through the page_pool:* tracepoints (memory.PageWatch) instead"),
    Feature("page_pool_stats", "page pool statistics (netdev netlink page-pool-stats-get)", "6.8",
            "NETDEV_CMD_PAGE_POOL_STATS_GET dump", "page_pool_stats",
            "memory.page_pools() works without", config="CONFIG_PAGE_POOL_STATS"),
    # --- not a kernel release: this machine, a driver, or nobody -----------------------
    Feature("libbpf", "loading libbpf-style programs and objects", "", "dlopen(libbpf.so.1)",
            "libbpf", "./lab setup installs libbpf-dev (Debian's libbpf1); BCC-dialect C loads without",
            kind="system"),
    Feature("afxdp_rings", "AF_XDP rings from Python", "", "the CPU is x86 (total store order)",
            "afxdp_rings", "the ring indices need acquire/release fences Python cannot issue on weakly "
            "ordered CPUs; xdplab implements x86 (TSO)", kind="system"),
    Feature("afxdp_zerocopy", "AF_XDP zero-copy", "", "the driver advertises XSK_ZEROCOPY (per device)",
            advice="use mode='copy' (veth never has zero-copy: it has no DMA rings)", kind="driver"),
    Feature("xskmap_reads", "reading an XSKMAP from user space", "",
            "never: the kernel lets only XDP programs look entries up",
            advice="set entries with m[q] = xsk, remove them with del m[q]", kind="limit"),
    Feature("libbpf_hooks", "hooks other than XDP for libbpf-style programs", "",
            "xdplab loads libbpf-style C and objects as XDP programs",
            advice="TC programs: BCC dialect (hook='tc')", kind="limit"),
    Feature("printk_untagged", "printk streaming for a program without a printk tag", "",
            "a program's bpf_printk lines are told apart by a tag xdplab adds when it compiles printk",
            advice="load a source that calls bpf_printk (xdplab tags it)", kind="limit"),
)}



def _advice_row(f: Feature) -> None:
    """What to do without ``f``: a failure row (kind 'kernel-feature'), like every other
    piece of failure knowledge (xdplab.failures)."""
    if failures.find("kernel-feature", feature=f.name) is None:
        failures.register(failures.Row(f"needs-{f.name}", f"{f.title} missing", kind="kernel-feature",
                                       what=f"{f.title} needs {f.needs}", fix=f.advice,
                                       when={"feature": f.name}))


for _f in FEATURES.values():
    _advice_row(_f)

_cache: dict[str, str | None] = {}


def get(name: str) -> Feature:
    if name not in FEATURES:
        raise KeyError(f"no kernel feature {name!r}; known: {', '.join(FEATURES)}")
    return FEATURES[name]


def missing(name: str) -> str | None:
    """None when the kernel has feature ``name``, else why not (probed once, cached)."""
    f = get(name)
    if name not in _cache:
        _cache[name] = f.probe()
    return _cache[name]


def have(name: str) -> bool:
    return missing(name) is None


def require(name: str, detail: str = "") -> None:
    """Raise NotSupported (feature, minimum kernel, why) unless the kernel has ``name``."""
    why = missing(name)
    if why is not None:
        raise get(name).error(detail or why)


def error(name: str, detail: str = "", what: str = "") -> NotSupported:
    """The NotSupported for ``name`` (for callers that found out themselves, e.g. an errno);
    ``what``: the case, when more precise than the feature's title. A probed feature is then
    known missing (cached); a per-device or per-program one is not."""
    f = get(name)
    if f.probed:
        _cache[name] = detail or _cache.get(name) or "refused by the kernel"
    return f.error(detail, what)


def skip_message(name: str) -> str:
    """What a lab cell or a test prints when it skips: 'needs Linux >= 6.6 (tcx): ...'."""
    f = get(name)
    return f"needs {f.needs} ({f.title}): {missing(name) or 'present'}"


def clear_cache() -> None:
    _cache.clear()


def table() -> list[dict]:
    """Every feature on this kernel: name, title, min_kernel, present, why not, how probed."""
    return [{"feature": f.name, "title": f.title, "min_kernel": f.min_kernel, "needs": f.needs, "config": f.config,
             "present": missing(f.name) is None, "why_not": missing(f.name) or "", "how": f.how}
            for f in FEATURES.values() if f.probed]


PROBES: dict[str, Callable[[], str | None]] = {}


def register(feature: Feature, probe: Callable[[], str | None] | None = None) -> Feature:
    """Add a feature declared above the kernel floor (its probe may use that floor: e.g.
    xdplab.tools.memory's kfunc and multi-buffer probes); it joins require/have/table,
    doctor and the failure rows like the ones declared here."""
    FEATURES[feature.name] = feature
    if probe is not None:
        PROBES[feature.probe_name or feature.name] = probe
    _cache.pop(feature.name, None)
    _advice_row(feature)
    return feature


def unregister(name: str) -> None:
    """Remove a feature added with ``register`` (and its probe, answer and advice row)."""
    f = FEATURES.pop(name, None)
    if f is not None:
        PROBES.pop(f.probe_name or f.name, None)
        row = failures.find("kernel-feature", feature=name)
        if row is not None:
            failures.unregister(row)
    _cache.pop(name, None)


def register_probe(name: str):
    """Decorator: the probe of feature ``name`` (kernel/probes.py)."""
    def deco(fn):
        PROBES[name] = fn
        return fn
    return deco
