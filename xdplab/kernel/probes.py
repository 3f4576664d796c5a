"""The probes of the kernel feature registry (``features.FEATURES``): each answers None
(present) or why not, using the kernel layer itself. Registered at import (kernel/__init__)."""
from __future__ import annotations

import ctypes
import errno
import os
import platform
from pathlib import Path

from ..errors import NotSupported
from . import abi, core as bpf
from .features import TRACEFS, register_probe

XDP_DROP_INSNS = bpf.insn(0xb7, 0, 0, 0, abi.XDP_DROP) + bpf.insn(0x95)     # r0 = XDP_DROP; exit


@register_probe("live_frames")
def _probe_live_frames() -> str | None:
    """BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on lo (an XDP_DROP program: the frame
    is freed at once): EINVAL when the flag is unknown."""
    fd = bpf.prog_load_xdp(XDP_DROP_INSNS, "xdplab_feature")
    try:
        bpf.prog_test_run(fd, bytes(60), repeat=1, ctx=abi.xdp_md(60, ingress_ifindex=1),
                          flags=abi.BPF_F_TEST_XDP_LIVE_FRAMES)
        return None
    except bpf.BPFError as e:
        if e.errno == errno.EINVAL:
            return f"BPF_PROG_RUN refused the flag (EINVAL) on {platform.release()}"
        raise
    finally:
        os.close(fd)


def _refused(call) -> str | None:
    """None when ``call()`` works, else the reason of the NotSupported it raised (the kernel
    layer raises this registry's errors when the kernel says no)."""
    try:
        call()
        return None
    except NotSupported as e:
        return e.args[0].split(": ", 1)[-1] if e.args else str(e)


register_probe("netdev_genl")(lambda: _refused(lambda: bpf.netdev_dev_get(1)))
register_probe("page_pool_netlink")(lambda: _refused(bpf.page_pool_dump))
register_probe("page_pool_stats")(lambda: _refused(lambda: bpf.page_pool_dump(stats=True)))


@register_probe("enable_stats")
def _probe_enable_stats() -> str | None:
    try:
        bpf.acquire_stats()
        bpf.release_stats()
        return None
    except NotSupported as e:
        return str(e)


@register_probe("afxdp")
def _probe_afxdp() -> str | None:
    try:
        os.close(bpf.xsk_socket())
        return None
    except OSError as e:
        if e.errno in (errno.EAFNOSUPPORT, errno.EINVAL):
            return "socket(AF_XDP) failed: the kernel was built without CONFIG_XDP_SOCKETS"
        raise


def _path(name: str, p: Path, why: str) -> None:
    register_probe(name)(lambda: None if p.exists() else f"{p} is missing ({why})")


_path("xdp_tracepoints", TRACEFS / "events" / "xdp", "tracefs not mounted?")
_path("tracefs_instances", TRACEFS / "instances", "tracefs not mounted?")
_path("printk_event", TRACEFS / "events" / "bpf_trace" / "bpf_trace_printk",
      "bpf_trace_printk writes to the global trace buffer only")
_path("btf", Path("/sys/kernel/btf/vmlinux"), "CONFIG_DEBUG_INFO_BTF=n")




@register_probe("libbpf")
def _probe_libbpf() -> str | None:
    try:
        ctypes.CDLL("libbpf.so.1")
        return None
    except OSError as e:
        return f"libbpf.so.1 is missing ({e})"


#: CPUs whose stores and loads keep program order (TSO): the AF_XDP ring indices need no
#: fences there (xdplab.net.afxdp)
TSO_MACHINES = ("x86_64", "amd64", "i686", "i386")


@register_probe("afxdp_rings")
def _probe_afxdp_rings() -> str | None:
    m = platform.machine()
    return None if m.lower() in TSO_MACHINES else f"this CPU is {m} (weakly ordered)"
