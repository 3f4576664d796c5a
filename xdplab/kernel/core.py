"""The one thin layer that talks to the kernel: bpf(2) through ctypes, netlink through pyroute2.

Everything above this module (programs, topology, magics, CLI, tests) goes through
these functions; nothing else issues bpf(2) commands or netlink requests itself.
"""
from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import mmap
import os
import platform
import socket
import struct
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from ..errors import Closable, NotSupported
from . import features

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

from .abi import (BPF_F_TEST_XDP_LIVE_FRAMES, BPF_LINK_TYPE_XDP, BPF_PROG_TYPE_XDP,  # noqa: E402,F401
                  BPF_TCX_EGRESS, BPF_TCX_INGRESS, BPF_XDP, MODE_FLAGS, NETDEV_XDP_ACT_XSK_ZEROCOPY,
                  XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE)

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


def link_create_tcx(prog_fd: int, ifindex: int, direction: str) -> int:
    """BPF_LINK_CREATE for a TC program (tcx, Linux >= 6.6) at the end of ``ifindex``'s
    ingress or egress chain: returns the link fd (closing it detaches, like XDP's)."""
    kind = {"ingress": BPF_TCX_INGRESS, "egress": BPF_TCX_EGRESS}[direction]
    return bpf(BPF_LINK_CREATE, _attr("=IIII", prog_fd, ifindex, kind, 0), "LINK_CREATE")


def link_update(link_fd: int, new_prog_fd: int) -> None:
    """Atomically swap the program behind a link (no moment without a program)."""
    bpf(BPF_LINK_UPDATE, _attr("=IIII", link_fd, new_prog_fd, 0, 0), "LINK_UPDATE")


def link_detach(link_fd: int) -> None:
    bpf(BPF_LINK_DETACH, _attr("=I", link_fd), "LINK_DETACH")


def link_close(link_fd: int) -> None:
    """Detach a bpf_link (if the kernel has not already: its device or netns went away)
    and close its fd: the end of every link xdplab made."""
    try:
        link_detach(link_fd)
    except OSError:
        pass
    os.close(link_fd)


def obj_info(fd: int, size: int, info: ctypes.Array | None = None) -> ctypes.Array:
    """BPF_OBJ_GET_INFO_BY_FD of a program, map, link or BTF fd into a ``size``-byte buffer
    (struct bpf_prog_info / bpf_map_info / bpf_link_info / bpf_btf_info); ``info``: a buffer
    already holding pointers/lengths for the kernel to fill (map ids, func info, ...)."""
    info = info if info is not None else ctypes.create_string_buffer(size)
    bpf(BPF_OBJ_GET_INFO_BY_FD, _attr("=IIQ", fd, size, ctypes.addressof(info)), "OBJ_GET_INFO_BY_FD")
    return info


def link_info(link_fd: int) -> dict:
    """type, id, prog_id and (for XDP links) ifindex of a link."""
    info = obj_info(link_fd, 64)
    ltype, lid, prog_id = struct.unpack_from("=III", info, 0)
    (ifindex,) = struct.unpack_from("=I", info, 16)
    return {"type": ltype, "id": lid, "prog_id": prog_id, "ifindex": ifindex}


def _ids(cmd: int, name: str):
    """Walk BPF_{PROG,LINK,MAP}_GET_NEXT_ID: every id of that kind, in order."""
    start = 0
    while True:
        attr = _attr("=II", start, 0)
        try:
            bpf(cmd, attr, name)
        except BPFError as e:
            if e.errno == errno.ENOENT:
                return
            raise
        start = struct.unpack_from("=I", attr, 4)[0]
        yield start


def xdp_link_ids(ifindex: int) -> list[int]:
    """IDs of the XDP bpf_links (of any process) attached to ``ifindex``."""
    found = []
    for start in _ids(BPF_LINK_GET_NEXT_ID, "LINK_GET_NEXT_ID"):
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
    return found


def link_fd_by_id(link_id: int) -> int:
    return bpf(BPF_LINK_GET_FD_BY_ID, _attr("=I", link_id), "LINK_GET_FD_BY_ID")


# --- programs --------------------------------------------------------------------------

def prog_info(prog_fd: int) -> dict:
    info = obj_info(prog_fd, 256)
    ptype, pid = struct.unpack_from("=II", info, 0)
    name = bytes(info[64:80]).split(b"\0", 1)[0].decode()
    return {"type": ptype, "id": pid, "name": name}


def prog_ids() -> list[int]:
    """IDs of every loaded BPF program (BPF_PROG_GET_NEXT_ID walk)."""
    return list(_ids(BPF_PROG_GET_NEXT_ID, "PROG_GET_NEXT_ID"))


def prog_info_by_id(prog_id: int) -> dict | None:
    """``prog_info`` of program ``prog_id``, or None when it is gone."""
    try:
        fd = bpf(BPF_PROG_GET_FD_BY_ID, _attr("=I", prog_id), "PROG_GET_FD_BY_ID")
    except BPFError:
        return None
    try:
        return prog_info(fd)
    finally:
        os.close(fd)


BPF_ENABLE_STATS, BPF_STATS_RUN_TIME = 32, 0
_stats_fd: int | None = None
_stats_users = 0
_stats_lock = threading.Lock()


def acquire_stats() -> None:
    """BPF_ENABLE_STATS(RUN_TIME) while at least one caller holds it: the kernel counts runs
    and ns for every program on the machine while an fd of it is open, and every run of
    every BPF program then pays two clock reads (~100 ns per packet in this VM), so it is
    held only as long as a program that reports its statistics lives. Each call is
    matched by one ``release_stats()``. Linux >= 5.8."""
    global _stats_fd, _stats_users
    with _stats_lock:
        if _stats_fd is None:
            try:
                _stats_fd = bpf(BPF_ENABLE_STATS, _attr("=I", BPF_STATS_RUN_TIME), "ENABLE_STATS")
            except BPFError as e:
                raise features.error("enable_stats", e.strerror) from None
        _stats_users += 1


def release_stats() -> None:
    """One holder of ``acquire_stats()`` is done; the last one switches the kernel's
    run-time statistics off again (for this process)."""
    global _stats_fd, _stats_users
    with _stats_lock:
        if _stats_users > 0:
            _stats_users -= 1
        if _stats_users == 0 and _stats_fd is not None:
            os.close(_stats_fd)
            _stats_fd = None


class StatsHold(Closable):
    """One hold of BPF run-time statistics (``acquire_stats()`` at creation); ``close()``
    lets go, once. What a program keeps while it reports its statistics."""

    def __init__(self):
        acquire_stats()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            release_stats()


def stats_held() -> bool:
    """Does this process hold BPF run-time statistics on?"""
    return _stats_fd is not None


def prog_stats(prog_fd: int) -> dict:
    """run_cnt, run_time_ns, verified_insns, gpl_compatible, btf_id of a program."""
    info = obj_info(prog_fd, 256)
    run_time_ns, run_cnt = struct.unpack_from("=QQ", info, 192)
    (verified,) = struct.unpack_from("=I", info, 216)
    (gpl,) = struct.unpack_from("=I", info, 84)
    (btf_id,) = struct.unpack_from("=I", info, 128)
    return {"run_cnt": run_cnt, "run_time_ns": run_time_ns, "verified_insns": verified,
            "gpl_compatible": bool(gpl & 1), "btf_id": btf_id}


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
    return prog_test_run_ctx(prog_fd, data, repeat=repeat, ctx=ctx, flags=flags,
                             batch_size=batch_size, data_out_size=data_out_size)[:3]


def prog_test_run_ctx(prog_fd: int, data: bytes, *, repeat: int = 1, ctx: bytes = b"",
                      flags: int = 0, batch_size: int = 0, data_out_size: int | None = None):
    """BPF_PROG_TEST_RUN that also reads the context back: (retval, data_out,
    duration_ns_per_run, ctx_out), ``ctx_out`` as long as ``ctx`` (empty without one).
    For XDP, data_out starts at ``data_meta`` and ctx_out's ``data`` is the metadata's length."""
    data_in = ctypes.create_string_buffer(data, len(data))
    out_len = data_out_size if data_out_size is not None else (len(data) + 512 if not flags else 0)
    data_out = ctypes.create_string_buffer(max(out_len, 1))
    ctx_in = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
    ctx_out = ctypes.create_string_buffer(len(ctx)) if ctx and not flags else None
    attr = _attr("=IIIIQQIIIIQQIII",
                 prog_fd, 0, len(data), out_len,
                 ctypes.addressof(data_in), ctypes.addressof(data_out) if out_len else 0,
                 repeat, 0, len(ctx), len(ctx_out) if ctx_out is not None else 0,
                 ctypes.addressof(ctx_in) if ctx_in is not None else 0,
                 ctypes.addressof(ctx_out) if ctx_out is not None else 0,
                 flags, 0, batch_size)
    bpf(BPF_PROG_TEST_RUN, attr, "PROG_TEST_RUN")
    retval, _, size_out = struct.unpack_from("=III", attr, 4)
    (duration,) = struct.unpack_from("=I", attr, 36)
    return (retval, data_out.raw[:size_out] if out_len else b"", duration,
            ctx_out.raw if ctx_out is not None else b"")


# --- netlink (pyroute2) ----------------------------------------------------------------

class _OnWorkerThread(Closable):
    """Run every method of a pyroute2 socket on one worker thread of its own.

    pyroute2 >= 0.9 drives netlink with asyncio ``run_until_complete``, which fails in a
    thread whose event loop is already running: Jupyter's main thread. Scripts and tests
    (no running loop) use the socket directly."""

    def __init__(self, factory):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xdplab-netlink")
        self._obj = self._pool.submit(factory).result()

    def __getattr__(self, name):
        attr = getattr(self._obj, name)
        if not callable(attr):
            return attr
        return lambda *a, **kw: self._pool.submit(lambda: _materialize(attr(*a, **kw))).result()

    def close(self):
        self._closed = True
        try:
            self._pool.submit(self._obj.close).result()
        finally:
            self._pool.shutdown()


def _materialize(result):
    """Generators must be consumed on the thread that owns the socket."""
    return list(result) if isinstance(result, types.GeneratorType) else result


def ipr(netns: str | None = None):
    """A pyroute2 IPRoute (root namespace) or NetNS (``netns``) usable from any thread."""
    from pyroute2 import IPRoute, NetNS
    factory = (lambda: NetNS(netns)) if netns else IPRoute
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return factory()
    return _OnWorkerThread(factory)


def netns_create(name: str) -> None:
    """A named network namespace (/run/netns/``name``), as ``ip netns add``."""
    from pyroute2 import netns
    netns.create(name)


def netns_remove(name: str) -> None:
    """Remove the named network namespace (its interfaces go with it)."""
    from pyroute2 import netns
    netns.remove(name)


def netns_ino() -> int:
    """Identity (inode) of the calling thread's network namespace: ifindexes are only
    unique within one namespace, so anything keyed by ifindex must include this."""
    return os.stat("/proc/thread-self/ns/net").st_ino


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


def netns_socket(netns: str | None, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM,
                 proto: int = 0, timeout: float | None = None) -> socket.socket:
    """A socket that lives in network namespace ``netns`` (created on a thread inside it;
    a socket keeps the namespace it was made in)."""
    s = run_in_netns(netns, socket.socket, family, type, proto)
    if timeout is not None:
        s.settimeout(timeout)
    return s


# --- maps (raw bpf(2): map types and value layouts BCC's Python tables do not cover) -----

BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM = 0, 1, 2, 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_PIN = 6


def map_info(map_fd: int) -> dict:
    """type, id, key_size, value_size, max_entries, map_flags and name of a map."""
    info = obj_info(map_fd, 96)
    mtype, mid, ksize, vsize, max_entries, flags = struct.unpack_from("=6I", info, 0)
    name = bytes(info[24:40]).split(b"\0", 1)[0].decode()
    return {"type": mtype, "id": mid, "key_size": ksize, "value_size": vsize,
            "max_entries": max_entries, "map_flags": flags, "name": name}


def map_update(map_fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
    k, v = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value, len(value))
    bpf(BPF_MAP_UPDATE_ELEM, _attr("=IIQQQ", map_fd, 0, ctypes.addressof(k), ctypes.addressof(v),
                                   flags), "MAP_UPDATE_ELEM")


def map_lookup(map_fd: int, key: bytes, value_size: int) -> bytes | None:
    k, v = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value_size)
    try:
        bpf(BPF_MAP_LOOKUP_ELEM, _attr("=IIQQ", map_fd, 0, ctypes.addressof(k), ctypes.addressof(v)),
            "MAP_LOOKUP_ELEM")
    except BPFError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return v.raw


def map_delete(map_fd: int, key: bytes) -> bool:
    """Delete ``key``; False if it was not there."""
    k = ctypes.create_string_buffer(key, len(key))
    try:
        bpf(BPF_MAP_DELETE_ELEM, _attr("=IIQ", map_fd, 0, ctypes.addressof(k)), "MAP_DELETE_ELEM")
    except BPFError as e:
        if e.errno == errno.ENOENT:
            return False
        raise
    return True


def map_next_key(map_fd: int, key: bytes | None, size: int) -> bytes | None:
    """BPF_MAP_GET_NEXT_KEY: the key after ``key`` (None: the first), or None at the end."""
    nk = ctypes.create_string_buffer(max(size, 1))
    k = ctypes.create_string_buffer(key, max(size, len(key))) if key is not None else None
    try:
        bpf(BPF_MAP_GET_NEXT_KEY, _attr("=IIQQ", map_fd, 0, ctypes.addressof(k) if k is not None else 0,
                                        ctypes.addressof(nk)), "MAP_GET_NEXT_KEY")
    except BPFError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return nk.raw[:size]


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int,
               flags: int = 0, name: str = "") -> int:
    return bpf(BPF_MAP_CREATE, _attr("=7I16s", map_type, key_size, value_size, max_entries, flags,
                                     0, 0, name.encode()[:15]), "MAP_CREATE")


BPF_PROG_LOAD = 5


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One eBPF instruction (struct bpf_insn) for programs loaded without a compiler."""
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


XDP_PASS_INSNS = insn(0xb7, 0, 0, 0, 2) + insn(0x95)        # r0 = XDP_PASS; exit


def count_frame_insns(map_fd: int) -> list[bytes]:
    """15 instructions that add this frame to a {u64 packets, bytes} record: with ctx in r6
    and the u32 key at r10 - 4, look the key up in ``map_fd`` and add 1 packet and
    data_end - data bytes. A failed lookup jumps to the instruction right after the run.
    Clobbers r0-r3 (r6 and r7 are kept)."""
    return [
        insn(0xbf, 2, 10),                     # r2 = r10
        insn(0x07, 2, 0, 0, -4),               # r2 += -4 (&key)
        insn(0x18, 1, 1, 0, map_fd),           # r1 = map (ld_imm64, BPF_PSEUDO_MAP_FD)
        insn(0x00),
        insn(0x85, 0, 0, 0, 1),                # call bpf_map_lookup_elem
        insn(0x15, 0, 0, 9, 0),                # if r0 == 0 goto past the run
        insn(0x79, 1, 0, 0),                   # r1 = rec->packets
        insn(0x07, 1, 0, 0, 1),                # r1 += 1
        insn(0x7b, 0, 1, 0),                   # rec->packets = r1
        insn(0x61, 2, 6, 4),                   # r2 = ctx->data_end
        insn(0x61, 3, 6, 0),                   # r3 = ctx->data
        insn(0x1f, 2, 3),                      # r2 -= r3
        insn(0x79, 1, 0, 8),                   # r1 = rec->bytes
        insn(0x0f, 1, 2),                      # r1 += r2
        insn(0x7b, 0, 1, 8),                   # rec->bytes = r1
    ]


def prog_load_xdp(insns: bytes, name: str = "", expected_attach_type: int = 0) -> int:
    """BPF_PROG_LOAD of raw XDP instructions (tiny fixed programs, or another copy of a
    compiled one). Returns the prog fd. Loaded without a verifier log first (a big program's
    log overflows any buffer: ENOSPC); on failure loaded again with one, which is then in
    the error (``e.log``)."""
    lic = ctypes.create_string_buffer(b"GPL")
    code = ctypes.create_string_buffer(insns, len(insns))

    def load(level: int, log):
        attr = _attr("=IIQQIIQII16sII", BPF_PROG_TYPE_XDP, len(insns) // 8, ctypes.addressof(code),
                     ctypes.addressof(lic), level, len(log) if log is not None else 0,
                     ctypes.addressof(log) if log is not None else 0, 0, 0,
                     name.encode()[:15], 0, expected_attach_type)
        return bpf(BPF_PROG_LOAD, attr, "PROG_LOAD")
    try:
        return load(0, None)
    except BPFError:
        log = ctypes.create_string_buffer(1 << 16)      # since 6.4 the log rotates: this keeps its tail
        try:
            return load(1, log)
        except BPFError as e:
            e.log = log.value.decode(errors="replace")
            raise


def possible_cpus() -> int:
    """Number of possible CPUs (the per-CPU map value count), from /sys/devices/system/cpu."""
    n = 0
    for part in open("/sys/devices/system/cpu/possible").read().strip().split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def obj_pin(fd: int, path: str) -> None:
    p = ctypes.create_string_buffer(os.fsencode(path))
    bpf(BPF_OBJ_PIN, _attr("=QI", ctypes.addressof(p), fd), "OBJ_PIN")


# --- netdev genetlink (Documentation/netlink/specs/netdev.yaml, Linux >= 6.3) -----------
# The 'netdev' family reports what a driver implements for XDP (enum netdev_xdp_act),
# which XDP RX metadata kfuncs it backs and AF_XDP TX features. pyroute2 has no
# netdev family, so the message is declared here. Generic netlink sockets belong to
# the namespace they are created in: call these inside ``run_in_netns`` for a netns.

NETDEV_CMD_DEV_GET = 1


def _netdev_msg():
    from pyroute2.netlink import genlmsg

    class netdev_dev(genlmsg):
        nla_map = (("NETDEV_A_DEV_UNSPEC", "none"),
                   ("NETDEV_A_DEV_IFINDEX", "uint32"),
                   ("NETDEV_A_DEV_PAD", "none"),
                   ("NETDEV_A_DEV_XDP_FEATURES", "uint64"),
                   ("NETDEV_A_DEV_XDP_ZC_MAX_SEGS", "uint32"),
                   ("NETDEV_A_DEV_XDP_RX_METADATA_FEATURES", "uint64"),
                   ("NETDEV_A_DEV_XSK_FEATURES", "uint64"))
    return netdev_dev


def _off_event_loop(fn, *args):
    """Call ``fn`` here, or on a helper thread (same netns) when this thread runs an asyncio
    loop (Jupyter's): pyroute2 0.9's legacy NetlinkSocket drives a loop of its own and
    fails with 'This event loop is already running' there."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args)
    return run_in_netns(None, fn, *args)


def netdev_dev_get(ifindex: int | None = None, family: str = "netdev") -> list[dict]:
    """NETDEV_CMD_DEV_GET for one interface, or a dump of all (``ifindex=None``), in the
    calling thread's netns: [{ifindex, xdp_features, xdp_zc_max_segs,
    xdp_rx_metadata_features, xsk_features}] (a missing attribute is None: older kernel).
    Raises NotSupported when the kernel has no netdev family."""
    return _off_event_loop(_netdev_dev_get, ifindex, family)


def _netdev_dev_get(ifindex: int | None, family: str) -> list[dict]:
    from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.generic import GenericNetlinkSocket
    cls = _netdev_msg()
    sock = GenericNetlinkSocket()
    try:
        try:
            sock.bind(family, cls)
        except NetlinkError as e:
            raise features.error("netdev_genl", f"resolving the {family} family failed: "
                                 f"{os.strerror(e.code)}") from None
        msg = cls()
        msg["cmd"], msg["version"] = NETDEV_CMD_DEV_GET, 1
        flags = NLM_F_REQUEST
        if ifindex is None:
            flags |= NLM_F_DUMP
        else:
            msg["attrs"] = [("NETDEV_A_DEV_IFINDEX", ifindex)]
        out = []
        for r in sock.nlm_request(msg, msg_type=sock.prid, msg_flags=flags):
            a = dict(r["attrs"])
            out.append({"ifindex": a.get("NETDEV_A_DEV_IFINDEX"),
                        "xdp_features": a.get("NETDEV_A_DEV_XDP_FEATURES"),
                        "xdp_zc_max_segs": a.get("NETDEV_A_DEV_XDP_ZC_MAX_SEGS"),
                        "xdp_rx_metadata_features": a.get("NETDEV_A_DEV_XDP_RX_METADATA_FEATURES"),
                        "xsk_features": a.get("NETDEV_A_DEV_XSK_FEATURES")})
        return out
    finally:
        sock.close()


# --- netdev genetlink: page pools (Linux >= 6.8; xdplab.tools.memory) -----------------

NETDEV_CMD_PAGE_POOL_GET, NETDEV_CMD_PAGE_POOL_STATS_GET = 5, 9
PAGE_POOL_STATS = ("alloc_fast", "alloc_slow", "alloc_slow_high_order", "alloc_empty", "alloc_refill",
          "alloc_waive", "recycle_cached", "recycle_cache_full", "recycle_ring",
          "recycle_ring_full", "recycle_released_refcnt")


def _pp_msgs():
    from pyroute2.netlink import genlmsg, nla

    pool_attrs = (("NETDEV_A_PAGE_POOL_UNSPEC", "none"), ("NETDEV_A_PAGE_POOL_ID", "uint64"),
                  ("NETDEV_A_PAGE_POOL_IFINDEX", "uint32"), ("NETDEV_A_PAGE_POOL_NAPI_ID", "uint64"),
                  ("NETDEV_A_PAGE_POOL_INFLIGHT", "uint64"), ("NETDEV_A_PAGE_POOL_INFLIGHT_MEM", "uint64"),
                  ("NETDEV_A_PAGE_POOL_DETACH_TIME", "uint64"))

    class page_pool(genlmsg):
        nla_map = pool_attrs

    class page_pool_stats(genlmsg):
        class info(nla):
            nla_map = pool_attrs
        nla_map = (("NETDEV_A_PAGE_POOL_STATS_UNSPEC", "none"), ("NETDEV_A_PAGE_POOL_STATS_INFO", "info"),
                   *((f"UNUSED{i}", "none") for i in range(2, 8)),
                   *((f"STAT_{s}", "uint64") for s in PAGE_POOL_STATS))
    return page_pool, page_pool_stats


def nl_uint(v):
    """A netlink uint attribute as int (pyroute2 may hand back bytes)."""
    if isinstance(v, (bytes, bytearray)):
        return int.from_bytes(v, "little")
    return v


def _pp_dump(cmd: int, cls) -> list[dict]:
    from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.generic import GenericNetlinkSocket
    what = "page-pool-get" if cmd == NETDEV_CMD_PAGE_POOL_GET else "page-pool-stats-get"
    sock = GenericNetlinkSocket()
    try:
        try:
            sock.bind("netdev", cls)
        except NetlinkError as e:
            raise features.error("page_pool_netlink", f"no netdev family: {os.strerror(e.code)}",
                                 f"netdev netlink {what}") from None
        msg = cls()
        msg["cmd"], msg["version"] = cmd, 1
        try:
            return [r for r in sock.nlm_request(msg, msg_type=sock.prid, msg_flags=NLM_F_REQUEST | NLM_F_DUMP)]
        except NetlinkError as e:
            if e.code == 95 and cmd == NETDEV_CMD_PAGE_POOL_STATS_GET:     # EOPNOTSUPP
                raise features.error("page_pool_stats", "this kernel is built without CONFIG_PAGE_POOL_STATS",
                                     f"netdev netlink {what}") from None
            raise features.error("page_pool_stats" if cmd == NETDEV_CMD_PAGE_POOL_STATS_GET else "page_pool_netlink",
                                 os.strerror(e.code), f"netdev netlink {what}") from None
    finally:
        sock.close()


def page_pool_dump(stats: bool = False) -> list:
    """NETDEV_CMD_PAGE_POOL_GET (or ..._STATS_GET) dump in the calling thread's netns (Linux
    >= 6.8): pyroute2 messages; ``r["attrs"]`` holds NETDEV_A_PAGE_POOL_* (stats: STAT_*)."""
    pool, pool_stats = _pp_msgs()
    if stats:
        return _off_event_loop(_pp_dump, NETDEV_CMD_PAGE_POOL_STATS_GET, pool_stats)
    return _off_event_loop(_pp_dump, NETDEV_CMD_PAGE_POOL_GET, pool)


# --- ethtool ioctl (SIOCETHTOOL; works in the calling thread's netns) -------------------

SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO, ETHTOOL_GCHANNELS = 0x03, 0x3c


def _ethtool(ifname: str, cmd_buf: ctypes.Array) -> None:
    ifr = ctypes.create_string_buffer(40)                  # struct ifreq
    struct.pack_into("16sQ", ifr, 0, ifname.encode(), ctypes.addressof(cmd_buf))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)


def ethtool_drvinfo(ifname: str) -> dict:
    """ETHTOOL_GDRVINFO: driver name, version, bus_info (struct ethtool_drvinfo)."""
    buf = ctypes.create_string_buffer(196)
    struct.pack_into("=I", buf, 0, ETHTOOL_GDRVINFO)
    _ethtool(ifname, buf)
    field = lambda off: bytes(buf[off:off + 32]).split(b"\0", 1)[0].decode()
    return {"driver": field(4), "version": field(36), "bus_info": field(100)}


def ethtool_channels(ifname: str) -> dict | None:
    """ETHTOOL_GCHANNELS (struct ethtool_channels), or None when the driver has no channels."""
    buf = ctypes.create_string_buffer(36)
    struct.pack_into("=I", buf, 0, ETHTOOL_GCHANNELS)
    try:
        _ethtool(ifname, buf)
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP:
            return None
        raise
    keys = ("max_rx", "max_tx", "max_other", "max_combined", "rx", "tx", "other", "combined")
    return dict(zip(keys, struct.unpack_from("=8I", buf, 4)))


ETHTOOL_GSTRINGS, ETHTOOL_GSTATS, ETHTOOL_GSSET_INFO, ETHTOOL_GFEATURES = 0x1b, 0x1d, 0x37, 0x3a
ETH_SS_STATS, ETH_SS_FEATURES = 1, 4
ETH_GSTRING_LEN = 32


def _ethtool_strings(ifname: str, string_set: int) -> list[str]:
    """The names of an ethtool string set (ETHTOOL_GSSET_INFO + ETHTOOL_GSTRINGS)."""
    info = ctypes.create_string_buffer(20)
    struct.pack_into("=IIQ", info, 0, ETHTOOL_GSSET_INFO, 0, 1 << string_set)
    _ethtool(ifname, info)
    mask, n = struct.unpack_from("=QI", info, 8)
    if not mask:
        return []
    buf = ctypes.create_string_buffer(12 + n * ETH_GSTRING_LEN)
    struct.pack_into("=III", buf, 0, ETHTOOL_GSTRINGS, string_set, n)
    _ethtool(ifname, buf)
    return [bytes(buf[12 + i * ETH_GSTRING_LEN:12 + (i + 1) * ETH_GSTRING_LEN]).split(b"\0", 1)[0].decode()
            for i in range(n)]


def ethtool_stats(ifname: str) -> dict[str, int]:
    """The driver's statistics (``ethtool -S``) of ``ifname`` in the calling thread's netns."""
    names = _ethtool_strings(ifname, ETH_SS_STATS)
    buf = ctypes.create_string_buffer(8 + 8 * len(names))
    struct.pack_into("=II", buf, 0, ETHTOOL_GSTATS, len(names))
    _ethtool(ifname, buf)
    return dict(zip(names, struct.unpack_from(f"={len(names)}Q", buf, 8)))


def ethtool_features(ifname: str) -> dict[str, bool]:
    """Offload features (``ethtool -k``): name -> active, calling thread's netns."""
    names = _ethtool_strings(ifname, ETH_SS_FEATURES)
    blocks = (len(names) + 31) // 32
    buf = ctypes.create_string_buffer(8 + 16 * blocks)
    struct.pack_into("=II", buf, 0, ETHTOOL_GFEATURES, blocks)
    _ethtool(ifname, buf)
    active = [struct.unpack_from("=I", buf, 8 + 16 * b + 8)[0] for b in range(blocks)]
    return {n: bool(active[i // 32] >> (i % 32) & 1) for i, n in enumerate(names) if n}


def tuntap_add(name: str, mode: str = "tap") -> int:
    """A persistent tun or tap device (pyroute2 does TUNSETIFF + TUNSETPERSIST); its ifindex."""
    with ipr() as ip:
        ip.link("add", ifname=name, kind="tuntap", mode=mode)
        return ip.link_lookup(ifname=name)[0]


def link_del(name: str) -> bool:
    """Delete interface ``name`` if it exists (calling thread's netns)."""
    with ipr() as ip:
        idx = ip.link_lookup(ifname=name)
        for i in idx:
            ip.link("del", index=i)
    return bool(idx)


def link_stats(ifname: str) -> dict:
    """IFLA_STATS64 of ``ifname`` (rx_packets, tx_packets, rx_dropped, ...), calling
    thread's netns; {} when there is no such interface."""
    with ipr() as ip:
        links = ip.get_links(ifname=ifname)
    if not links:
        return {}
    return dict(links[0].get_attr("IFLA_STATS64") or {})


# --- AF_XDP (include/uapi/linux/if_xdp.h) -----------------------------------------------
# Thin wrappers only: the ring/UMEM logic lives in xdplab/afxdp.py.

AF_XDP = 44
SOL_XDP = 283
XDP_MMAP_OFFSETS, XDP_RX_RING, XDP_TX_RING, XDP_UMEM_REG = 1, 2, 3, 4
XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_STATISTICS, XDP_OPTIONS = 5, 6, 7, 8
XDP_SHARED_UMEM, XDP_COPY, XDP_ZEROCOPY, XDP_USE_NEED_WAKEUP = 1, 2, 4, 8   # sxdp_flags
XDP_PGOFF_RX_RING, XDP_PGOFF_TX_RING = 0, 0x80000000
XDP_UMEM_PGOFF_FILL_RING, XDP_UMEM_PGOFF_COMPLETION_RING = 0x100000000, 0x180000000
XDP_RING_NEED_WAKEUP = 1
XDP_OPTIONS_ZEROCOPY = 1

_libc.socket.restype = ctypes.c_int
_libc.sendto.restype = _libc.recvfrom.restype = ctypes.c_ssize_t


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)} [{errno.errorcode.get(err, err)}]")
    return ret


def xsk_socket() -> int:
    """socket(AF_XDP, SOCK_RAW, 0) -> fd (close with os.close)."""
    return _check(_libc.socket(AF_XDP, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0), "socket(AF_XDP)")


def xsk_setsockopt(fd: int, opt: int, value: bytes) -> None:
    buf = ctypes.create_string_buffer(value, len(value))
    _check(_libc.setsockopt(fd, SOL_XDP, opt, buf, len(value)), f"setsockopt(SOL_XDP, {opt})")


def xsk_getsockopt(fd: int, opt: int, size: int) -> bytes:
    buf, n = ctypes.create_string_buffer(size), ctypes.c_uint32(size)
    _check(_libc.getsockopt(fd, SOL_XDP, opt, buf, ctypes.byref(n)), f"getsockopt(SOL_XDP, {opt})")
    return buf.raw[:n.value]


def xsk_bind(fd: int, ifindex: int, queue_id: int, flags: int, shared_umem_fd: int = 0) -> None:
    """bind(2) with struct sockaddr_xdp {family, flags, ifindex, queue_id, shared_umem_fd}."""
    sa = ctypes.create_string_buffer(struct.pack("=HHIII", AF_XDP, flags, ifindex, queue_id,
                                                 shared_umem_fd), 16)
    _check(_libc.bind(fd, sa, 16), "bind(AF_XDP)")


def xsk_mmap(fd: int, size: int, pgoff: int):
    """mmap a ring (MAP_SHARED | MAP_POPULATE) at one of the XDP_*PGOFF_* offsets."""
    return mmap.mmap(fd, size, mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                     mmap.PROT_READ | mmap.PROT_WRITE, offset=pgoff)


def xsk_kick(fd: int, tx: bool = True) -> int:
    """Wake the kernel: sendto(fd, NULL, 0, MSG_DONTWAIT) for TX, recvfrom(...) for RX.
    Returns 0 or the errno of a benign failure (EAGAIN/EBUSY/ENOBUFS/ENETDOWN)."""
    fn = _libc.sendto if tx else _libc.recvfrom
    if fn(fd, None, 0, socket.MSG_DONTWAIT, None, None) >= 0:
        return 0
    err = ctypes.get_errno()
    if err in (errno.EAGAIN, errno.EBUSY, errno.ENOBUFS, errno.ENETDOWN):
        return err
    raise OSError(err, f"{'sendto' if tx else 'recvfrom'}(AF_XDP): {os.strerror(err)}")


def netdev_xdp_features(ifindex: int) -> int | None:
    """NETDEV_A_DEV_XDP_FEATURES (netdev_xdp_act bits) of ``ifindex`` in the calling
    thread's netns, or None when the kernel cannot say (no netdev family: < 6.3)."""
    try:
        rows = netdev_dev_get(ifindex)
    except NotSupported:
        return None
    return rows[0]["xdp_features"] if rows else None


# --- interface details (traffic generator: which device takes XDP frames) -----------------

def link_details(ifname: str) -> dict | None:
    """kind, ifindex, mtu, peer ifindex (IFLA_LINK) and the peer's netnsid (None: same
    netns) of ``ifname`` in the calling thread's netns; None if there is no such link."""
    with ipr() as ip:
        links = ip.get_links(ifname=ifname)
        if not links:
            return None
        l = links[0]
    info = l.get_attr("IFLA_LINKINFO")
    return {"ifindex": l["index"], "mtu": l.get_attr("IFLA_MTU"),
            "kind": info.get_attr("IFLA_INFO_KIND") if info else None,
            "peer_ifindex": l.get_attr("IFLA_LINK"), "peer_netnsid": l.get_attr("IFLA_LINK_NETNSID")}


def netnsid(name: str | None) -> int | None:
    """The id the calling thread's netns gives netns ``name`` (``/run/netns/<name>``; None:
    the root netns, PID 1's), as IFLA_LINK_NETNSID names a veth peer there; None when it has
    given it none."""
    fd = os.open("/proc/1/ns/net" if name is None else f"/run/netns/{name}", os.O_RDONLY)
    try:
        with ipr() as ip:
            r = ip.get_netnsid(fd=fd)
    finally:
        os.close(fd)
    n = (r or {}).get("nsid")
    return None if n is None or n >= 1 << 31 else n


def link_name(ifindex: int) -> str | None:
    """Name of ``ifindex`` in the calling thread's netns."""
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return None


# --- maps and BTF by id / pin (xdplab.typedmaps, xdplab.btf) -----------------------------

BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_GET = 7
BPF_MAP_GET_FD_BY_ID = 14
BPF_BTF_LOAD = 18
BPF_BTF_GET_FD_BY_ID = 19


def map_btf_ids(map_fd: int) -> dict:
    """btf_id, btf_key_type_id, btf_value_type_id of a map (0: the map has no BTF)."""
    info = obj_info(map_fd, 96)
    btf_id, key_id, value_id = struct.unpack_from("=3I", info, 64)
    return {"btf_id": btf_id, "btf_key_type_id": key_id, "btf_value_type_id": value_id}


map_get_next_key = map_next_key       # the name typedmaps uses


def map_fd_by_id(map_id: int) -> int:
    return bpf(BPF_MAP_GET_FD_BY_ID, _attr("=I", map_id), "MAP_GET_FD_BY_ID")


def obj_get(path: str) -> int:
    """BPF_OBJ_GET: an fd for the object pinned at ``path`` (bpffs)."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    return bpf(BPF_OBJ_GET, _attr("=QII", ctypes.addressof(p), 0, 0), "OBJ_GET")


def btf_fd_by_id(btf_id: int) -> int:
    return bpf(BPF_BTF_GET_FD_BY_ID, _attr("=I", btf_id), "BTF_GET_FD_BY_ID")


def btf_info(btf_fd: int) -> dict:
    """The raw BTF bytes of a loaded BTF object, its id, name and whether it is the kernel's."""
    name = ctypes.create_string_buffer(64)
    info = ctypes.create_string_buffer(40)
    struct.pack_into("=QIIQII", info, 0, 0, 0, 0, ctypes.addressof(name), len(name), 0)
    bpf(BPF_OBJ_GET_INFO_BY_FD, _attr("=IIQ", btf_fd, len(info), ctypes.addressof(info)),
        "OBJ_GET_INFO_BY_FD")
    size = struct.unpack_from("=I", info, 8)[0]
    data = ctypes.create_string_buffer(max(size, 1))
    struct.pack_into("=QIIQII", info, 0, ctypes.addressof(data), size, 0, ctypes.addressof(name), len(name), 0)
    bpf(BPF_OBJ_GET_INFO_BY_FD, _attr("=IIQ", btf_fd, len(info), ctypes.addressof(info)),
        "OBJ_GET_INFO_BY_FD")
    _, _, btf_id, _, _, kernel = struct.unpack_from("=QIIQII", info, 0)
    return {"data": data.raw[:size], "id": btf_id, "name": name.value.decode(errors="replace"),
            "kernel_btf": bool(kernel)}


def btf_load(data: bytes) -> int:
    """BPF_BTF_LOAD: an fd for ``data`` (raw BTF); the kernel's log is in the error."""
    buf = ctypes.create_string_buffer(data, len(data))
    log = ctypes.create_string_buffer(1 << 16)
    try:
        return bpf(BPF_BTF_LOAD, _attr("=QQIII", ctypes.addressof(buf), ctypes.addressof(log),
                                       len(data), len(log), 1), "BTF_LOAD")
    except BPFError as e:
        e.log = log.value.decode(errors="replace")
        raise


def map_create_btf(map_type: int, key_size: int, value_size: int, max_entries: int, *,
                   flags: int = 0, name: str = "", btf_fd: int = 0, key_type_id: int = 0,
                   value_type_id: int = 0) -> int:
    """BPF_MAP_CREATE with BTF types for key and value (``btf_fd`` 0: none)."""
    return bpf(BPF_MAP_CREATE, _attr("=7I16sIIIII", map_type, key_size, value_size, max_entries, flags,
                                     0, 0, name.encode()[:15], 0, btf_fd, key_type_id, value_type_id, 0),
               "MAP_CREATE")


# public names for callers above that build a bpf(2) command of their own (libbpf's raw
# loads, memory's raw tracepoints) or a netlink family of their own (page pools)
bpf_attr = _attr
off_event_loop = _off_event_loop
