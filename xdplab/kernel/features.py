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

    def probe(self) -> str | None:
        """None when present, else why not. Probes live in kernel/probes.py (they use bpf(2),
        which itself raises this table's errors); a feature without one compares versions."""
        if self.probe_name:
            return PROBES[self.probe_name]()
        return _by_version(self.min_kernel)()

    def error(self, detail: str = "") -> NotSupported:
        err = NotSupported(self.title, self.min_kernel, detail)
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
    Feature("btf", "kernel BTF (/sys/kernel/btf/vmlinux)", "5.4", "/sys/kernel/btf/vmlinux exists",
            "btf", "a kernel with CONFIG_DEBUG_INFO_BTF=y (verifier logs lose some detail without)"),
)}

# what to do without each feature: failure rows (kind 'kernel-feature'), like every
# other piece of failure knowledge (xdplab.failures)
failures.register(*(failures.Row(f"needs-{f.name}", f"{f.title} missing", kind="kernel-feature",
                                 what=f"{f.title} needs Linux >= {f.min_kernel}", fix=f.advice,
                                 when={"feature": f.name}) for f in FEATURES.values()))

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


def error(name: str, detail: str = "") -> NotSupported:
    """The NotSupported for ``name`` (for callers that found out themselves, e.g. an errno)."""
    _cache[name] = detail or _cache.get(name) or "refused by the kernel"
    return get(name).error(detail)


def skip_message(name: str) -> str:
    """What a lab cell or a test prints when it skips: 'needs Linux >= 6.6 (tcx): ...'."""
    f = get(name)
    return f"needs Linux >= {f.min_kernel} ({f.title}): {missing(name) or 'present'}"


def clear_cache() -> None:
    _cache.clear()


def table() -> list[dict]:
    """Every feature on this kernel: name, title, min_kernel, present, why not, how probed."""
    return [{"feature": f.name, "title": f.title, "min_kernel": f.min_kernel,
             "present": missing(f.name) is None, "why_not": missing(f.name) or "", "how": f.how}
            for f in FEATURES.values()]


PROBES: dict[str, Callable[[], str | None]] = {}


def register(feature: Feature, probe: Callable[[], str | None] | None = None) -> Feature:
    """Add a feature declared above the kernel floor (its probe may use that floor: e.g.
    xdplab.tools.memory's kfunc and multi-buffer probes); it joins require/have/table,
    doctor and the failure rows like the ones declared here."""
    FEATURES[feature.name] = feature
    if probe is not None:
        PROBES[feature.probe_name or feature.name] = probe
    _cache.pop(feature.name, None)
    if failures.find("kernel-feature", feature=feature.name) is None:
        failures.register(failures.Row(f"needs-{feature.name}", f"{feature.title} missing", kind="kernel-feature",
                                       what=f"{feature.title} needs Linux >= {feature.min_kernel}",
                                       fix=feature.advice, when={"feature": feature.name}))
    return feature


def register_probe(name: str):
    """Decorator: the probe of feature ``name`` (kernel/probes.py)."""
    def deco(fn):
        PROBES[name] = fn
        return fn
    return deco
