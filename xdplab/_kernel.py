"""The one thin layer that talks to the kernel: bpf(2) through ctypes, netlink through pyroute2.

Everything above this module (programs, topology, magics, CLI, tests) goes through
these functions; nothing else issues bpf(2) commands or netlink requests itself.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import struct
from contextlib import contextmanager

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

_NR_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351}[
    platform.machine()]

# enum bpf_cmd
BPF_PROG_TEST_RUN = 10
BPF_PROG_GET_NEXT_ID = 11
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_LINK_CREATE = 28
BPF_LINK_UPDATE = 29
BPF_LINK_GET_FD_BY_ID = 30
BPF_LINK_GET_NEXT_ID = 31
BPF_LINK_DETACH = 34

BPF_XDP = 37                    # enum bpf_attach_type
BPF_LINK_TYPE_XDP = 6           # enum bpf_link_type
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1

XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
MODE_FLAGS = {"generic": XDP_FLAGS_SKB_MODE, "native": XDP_FLAGS_DRV_MODE}

ATTR_SIZE = 144


class BPFError(OSError):
    """A bpf(2) command failed; ``cmd`` names it, ``errno`` says why."""

    def __init__(self, cmd: str, err: int):
        super().__init__(err, f"bpf({cmd}): {os.strerror(err)} [{errno.errorcode.get(err, err)}]")
        self.cmd = cmd


CLONE_NEWNET = 0x40000000


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """setns(2) (os.setns only exists from Python 3.12)."""
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def bpf(cmd: int, attr: ctypes.Array, name: str = "") -> int:
    ret = _libc.syscall(_NR_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        raise BPFError(name or str(cmd), ctypes.get_errno())
    return ret


def _attr(fmt: str, *values) -> ctypes.Array:
    buf = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into(fmt, buf, 0, *values)
    return buf


# --- links -----------------------------------------------------------------------------

def link_create_xdp(prog_fd: int, ifindex: int, mode: str) -> int:
    """BPF_LINK_CREATE for XDP: returns the link fd. The program stays attached while
    the fd (or a pin) lives, so a dying process detaches its programs."""
    return bpf(BPF_LINK_CREATE, _attr("=IIII", prog_fd, ifindex, BPF_XDP, MODE_FLAGS[mode]),
               "LINK_CREATE")


def link_update(link_fd: int, new_prog_fd: int) -> None:
    """Atomically swap the program behind a link (no moment without a program)."""
    bpf(BPF_LINK_UPDATE, _attr("=IIII", link_fd, new_prog_fd, 0, 0), "LINK_UPDATE")


def link_detach(link_fd: int) -> None:
    bpf(BPF_LINK_DETACH, _attr("=I", link_fd), "LINK_DETACH")


def link_info(link_fd: int) -> dict:
    """type, id, prog_id and (for XDP links) ifindex of a link."""
    info = ctypes.create_string_buffer(64)
    bpf(BPF_OBJ_GET_INFO_BY_FD,
        _attr("=IIQ", link_fd, len(info), ctypes.addressof(info)), "OBJ_GET_INFO_BY_FD")
    ltype, lid, prog_id = struct.unpack_from("=III", info, 0)
    (ifindex,) = struct.unpack_from("=I", info, 16)
    return {"type": ltype, "id": lid, "prog_id": prog_id, "ifindex": ifindex}


def xdp_link_ids(ifindex: int) -> list[int]:
    """IDs of the XDP bpf_links (of any process) attached to ``ifindex``."""
    found, start = [], 0
    while True:
        attr = _attr("=II", start, 0)
        try:
            bpf(BPF_LINK_GET_NEXT_ID, attr, "LINK_GET_NEXT_ID")
        except BPFError as e:
            if e.errno == errno.ENOENT:
                return found
            raise
        start = struct.unpack_from("=I", attr, 4)[0]
        try:
            fd = bpf(BPF_LINK_GET_FD_BY_ID, _attr("=I", start), "LINK_GET_FD_BY_ID")
        except BPFError:
            continue            # the link went away between the two calls
        try:
            info = link_info(fd)
        finally:
            os.close(fd)
        if info["type"] == BPF_LINK_TYPE_XDP and info["ifindex"] == ifindex:
            found.append(info["id"])


def link_fd_by_id(link_id: int) -> int:
    return bpf(BPF_LINK_GET_FD_BY_ID, _attr("=I", link_id), "LINK_GET_FD_BY_ID")


# --- programs --------------------------------------------------------------------------

def prog_info(prog_fd: int) -> dict:
    info = ctypes.create_string_buffer(256)
    bpf(BPF_OBJ_GET_INFO_BY_FD,
        _attr("=IIQ", prog_fd, len(info), ctypes.addressof(info)), "OBJ_GET_INFO_BY_FD")
    ptype, pid = struct.unpack_from("=II", info, 0)
    name = bytes(info[64:80]).split(b"\0", 1)[0].decode()
    return {"type": ptype, "id": pid, "name": name}


def prog_name_by_id(prog_id: int) -> str:
    try:
        fd = bpf(BPF_PROG_GET_FD_BY_ID, _attr("=I", prog_id), "PROG_GET_FD_BY_ID")
    except BPFError:
        return "?"
    try:
        return prog_info(fd)["name"]
    finally:
        os.close(fd)


def prog_test_run(prog_fd: int, data: bytes, *, repeat: int = 1, ctx: bytes = b"",
                  flags: int = 0, batch_size: int = 0, data_out_size: int | None = None):
    """BPF_PROG_TEST_RUN: returns (retval, data_out, duration_ns_per_run)."""
    data_in = ctypes.create_string_buffer(data, len(data))
    out_len = data_out_size if data_out_size is not None else (len(data) + 512 if not flags else 0)
    data_out = ctypes.create_string_buffer(max(out_len, 1))
    ctx_in = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
    attr = _attr("=IIIIQQIIIIQQIII",
                 prog_fd, 0, len(data), out_len,
                 ctypes.addressof(data_in), ctypes.addressof(data_out) if out_len else 0,
                 repeat, 0, len(ctx), 0,
                 ctypes.addressof(ctx_in) if ctx_in is not None else 0, 0,
                 flags, 0, batch_size)
    bpf(BPF_PROG_TEST_RUN, attr, "PROG_TEST_RUN")
    retval, _, size_out = struct.unpack_from("=III", attr, 4)
    (duration,) = struct.unpack_from("=I", attr, 36)
    return retval, data_out.raw[:size_out] if out_len else b"", duration


# --- netlink (pyroute2) ----------------------------------------------------------------

def ipr():
    from pyroute2 import IPRoute
    return IPRoute()


def ifindex(name: str) -> int:
    """Interface index in the root namespace, or 0 if there is no such interface."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return 0


def xdp_state(ifname: str) -> dict:
    """What netlink says is attached at ``ifname``: {'native': prog_id, 'generic': prog_id, ...}."""
    with ipr() as ip:
        links = ip.get_links(ifname=ifname)
        if not links:
            return {}
        xdp = links[0].get_attr("IFLA_XDP")
    if not xdp:
        return {}
    out = {}
    for attr, mode in (("IFLA_XDP_DRV_PROG_ID", "native"), ("IFLA_XDP_SKB_PROG_ID", "generic"),
                       ("IFLA_XDP_HW_PROG_ID", "offload")):
        pid = xdp.get_attr(attr)
        if pid:
            out[mode] = pid
    attached = xdp.get_attr("IFLA_XDP_ATTACHED")
    pid = xdp.get_attr("IFLA_XDP_PROG_ID")
    if pid and not out:
        out[{1: "native", 2: "generic", 3: "offload"}.get(attached, "native")] = pid
    return out


def netlink_detach_xdp(ifname: str, mode: str) -> None:
    """Remove a program attached the old way (netlink, not a bpf_link)."""
    with ipr() as ip:
        idx = ip.link_lookup(ifname=ifname)[0]
        ip.link("set", index=idx, xdp_fd=-1, xdp_flags=MODE_FLAGS[mode])


def default_route_ifnames() -> set[str]:
    """Interfaces that carry a default route (IPv4 or IPv6) in the root namespace."""
    names = set()
    with ipr() as ip:
        for family in (socket.AF_INET, socket.AF_INET6):
            for r in ip.get_default_routes(family=family):
                oif = r.get_attr("RTA_OIF")
                for nh in r.get_attr("RTA_MULTIPATH") or []:
                    oif = oif or nh.get("oif")
                if oif:
                    try:
                        names.add(socket.if_indextoname(oif))
                    except OSError:
                        pass
    return names


@contextmanager
def in_netns(name: str | None):
    """Run the body with the *calling thread* in network namespace ``name``.

    setns(2) on a network namespace is per-thread, so use it from a thread of its own
    (see ``run_in_netns``) unless the caller owns the thread."""
    if not name:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        setns(target)
        yield
    finally:
        setns(own)
        os.close(own)
        os.close(target)


def run_in_netns(name: str | None, fn, *args, **kwargs):
    """Call ``fn`` on a fresh thread inside netns ``name``; return its result or raise."""
    import threading
    box = {}

    def target():
        try:
            with in_netns(name):
                box["result"] = fn(*args, **kwargs)
        except BaseException as e:       # re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, name=f"xdplab-netns-{name}")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")
