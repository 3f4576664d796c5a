"""XDP_TX and XDP_REDIRECT: fill devmaps and cpumaps by interface name, load the second
programs they can carry, and check the target side before frames silently vanish.

    prog = xdplab.load(SRC)                                   # SRC: BPF_DEVMAP_PROG(tx_port, 8)
    eg = redirect.load_egress(EGRESS_SRC)                     # expected_attach_type BPF_XDP_DEVMAP
    redirect.devmap_set(prog.maps["tx_port"], 0, lab["h2"], egress_prog=eg)
    redirect.ensure_peer_program(lab["h2"])                   # veth: the peer needs XDP
    prog = redirect.load(SRC)        # SRC declares BPF_DEVMAP_HASH(...): created here for BCC

Where redirected frames go (the target driver's ``ndo_xdp_xmit``) needs TX resources the
target only has in some states: a veth delivers into its *peer's* NAPI queue, which only
exists while the peer has an XDP program (or GRO on); virtio_net and most physical
drivers only allocate their XDP TX queues (one per CPU) while a program is attached to
the target itself. Without them the frame is dropped after the program returned
XDP_REDIRECT: the counters say REDIRECT, nothing arrives. The kernel states which
devices can take frames right now: the ``ndo-xmit`` XDP feature (``xdplab.features``);
``devmap_set`` checks it and warns.
"""
from __future__ import annotations

import errno
import itertools
import os
import re
import struct
import warnings

from .. import failures, kernel
from ..failures import Row
from ..errors import AttachError, Closable, XDPLabError
from ..programs import typedmaps
from . import drivers
from ..programs.program import Program
from .topology import Host
from ..programs.maps import ACTIONS, Counters
from ..kernel.procstate import stamp # pid + start time: a reused pid never meets these

BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_CPUMAP = kernel.BPF_MAP_TYPE_DEVMAP, kernel.BPF_MAP_TYPE_CPUMAP
BPF_MAP_TYPE_DEVMAP_HASH = kernel.BPF_MAP_TYPE_DEVMAP_HASH
BPF_XDP_DEVMAP, BPF_XDP_CPUMAP = kernel.BPF_XDP_DEVMAP, kernel.BPF_XDP_CPUMAP
HOOKS = {"devmap": BPF_XDP_DEVMAP, "cpumap": BPF_XDP_CPUMAP}


class RedirectWarning(UserWarning):
    """Frames redirected to this target will be dropped (the target lacks TX resources)."""


# --- second programs (devmap egress, cpumap) -------------------------------------------

def load_egress(source: str, hook: str = "devmap", **kw):
    """Load ``source`` as a program for a devmap entry (``hook='devmap'``: runs on the
    target device, after the redirect) or a cpumap entry (``'cpumap'``: runs on the
    remote CPU before the skb is built). Such programs need the matching
    expected_attach_type at load time (BPF_XDP_DEVMAP / BPF_XDP_CPUMAP) and cannot be
    attached to an interface. They may return XDP_PASS (go on) or XDP_DROP; any other
    action drops the frame too (and warns once in dmesg). Returns an XDPProgram.
    """
    if hook not in HOOKS:
        raise XDPLabError(f"unknown hook {hook!r}", hint="hook='devmap' (egress) or 'cpumap'")
    prog = Program(source, attach_type=HOOKS[hook], **kw).load()
    prog.hook = hook
    return prog


_DEVMAP_HASH_DECL = re.compile(r"^\s*BPF_DEVMAP_HASH\s*\(\s*(\w+)\s*,\s*(\w+)\s*\)", re.M)


def load(source: str, **kw):
    """``xdplab.load`` for programs that declare ``BPF_DEVMAP_HASH(name, n)`` (from
    xdplab_redirect.h): BCC cannot create that map type, so it is created here
    (u32 keys, struct bpf_devmap_val values), pinned for BCC to pick up, and unpinned
    once the program holds it."""
    decls = _DEVMAP_HASH_DECL.findall(source)
    if not decls:
        return Program(source, **kw).load()
    pin_dir = f"/sys/fs/bpf/xdplab-{stamp()}-{next(_pin_ids)}/"
    os.makedirs(pin_dir)
    fds = []
    try:
        for name, size in decls:
            if not size.isdigit():
                raise XDPLabError(f"BPF_DEVMAP_HASH({name}, {size}): the size must be a number here")
            fds.append(kernel.map_create(BPF_MAP_TYPE_DEVMAP_HASH, 4, 8, int(size), name=name))
            kernel.obj_pin(fds[-1], pin_dir + name)
        cflags = (*kw.pop("cflags", ()), f'-DXDPLAB_PIN_DIR="{pin_dir}"')
        return Program(source, cflags=cflags, **kw).load()
    finally:
        for fd in fds:
            os.close(fd)
        for name, _ in decls:
            try:
                os.unlink(pin_dir + name)
            except FileNotFoundError:
                pass
        os.rmdir(pin_dir)


_pin_ids = itertools.count()


# --- maps ------------------------------------------------------------------------------

def _map_fd(m) -> int:
    """A map fd from an xdplab Map, a typed map (libbpf or BCC), a BCC table or an int."""
    if isinstance(m, int):
        return m
    table = getattr(m, "table", m)
    fd = m.fd if isinstance(m, typedmaps.TypedMap) else getattr(table, "map_fd", None)
    if fd is None:
        raise XDPLabError(f"{m!r} is not a BPF map", hint='pass prog.maps["name"]')
    return fd


def _ifindex(dev) -> tuple[int, str]:
    """(ifindex, name) of a device of this namespace (a name, ifindex, lab Host, Device)."""
    d = kernel.resolve_device(dev)
    idx = 0 if d.netns else d.ifindex
    if not idx:
        raise XDPLabError(f"no interface {str(d)!r} in the root namespace",
                          hint="devmap entries name devices of the namespace that fills the map")
    return idx, d.name


def _key(info: dict, key: int) -> bytes:
    return int(key).to_bytes(info["key_size"], "little")


#: why the kernel refused a devmap/cpumap entry, by errno (failures, kind 'redirect-map')
ENTRY_HINTS = failures.register(
    Row("devmap-egress-type", "egress program of the wrong type", kind="redirect-map",
        when={"map": "devmap", "errno": errno.EINVAL, "egress": True},
        fix="an egress program must be loaded with redirect.load_egress() (expected_attach_type BPF_XDP_DEVMAP)"),
    Row("devmap-key-range", "key out of range", kind="redirect-map", when={"map": "devmap", "errno": errno.E2BIG},
        fix="the key must be < max_entries"),
    Row("cpumap-cpu-offline", "CPU not online", kind="redirect-map", when={"map": "cpumap", "errno": errno.ENODEV},
        fix="CPU {cpu} is not online (this machine has {ncpus})"),
    Row("cpumap-qsize-max", "queue too deep", kind="redirect-map", when={"map": "cpumap", "errno": errno.EOVERFLOW},
        fix="qsize must be at most 16384"),
    Row("cpumap-egress-type", "cpumap program of the wrong type", kind="redirect-map",
        when={"map": "cpumap", "errno": errno.EINVAL, "egress": True},
        fix="the program must be loaded with redirect.load_egress(src, hook='cpumap')"),
    Row("cpumap-qsize-zero", "empty queue", kind="redirect-map", when={"map": "cpumap", "errno": errno.EINVAL},
        fix="qsize must be > 0"),
)


def _entry_hint(e: OSError, map_kind: str, **facts) -> str:
    facts = {"map": map_kind, "errno": e.errno, **facts}
    row = failures.find("redirect-map", **facts)
    return row.advice(**facts) if row else ""


def devmap_set(m, key: int, dev, egress_prog=None, *, check: bool = True) -> dict:
    """Point devmap entry ``key`` at interface ``dev`` (name, ifindex or lab Host = its
    root-side veth), optionally with an egress program (from ``load_egress``; the map must
    be declared with 8-byte values: BPF_DEVMAP_PROG). Works for DEVMAP and DEVMAP_HASH.
    ``check``: warn (RedirectWarning) when ``dev`` cannot take redirected frames now."""
    fd = _map_fd(m)
    info = kernel.map_info(fd)
    if info["type"] not in (BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH):
        raise XDPLabError(f"map {info['name']!r} is not a devmap (type {info['type']})")
    idx, name = _ifindex(dev)
    if egress_prog is not None and info["value_size"] < 8:
        raise XDPLabError(
            f"devmap {info['name']!r} has {info['value_size']}-byte values: no room for an "
            "egress program", hint='declare it as BPF_DEVMAP_PROG(name, n) after #include "xdplab_redirect.h"')
    value = _entry_value(info, idx, egress_prog)
    try:
        kernel.map_update(fd, _key(info, key), value)
    except kernel.BPFError as e:
        hint = _entry_hint(e, "devmap", egress=egress_prog is not None)
        raise XDPLabError(f"devmap {info['name']!r}[{key}] = {name}: {e.strerror}", hint=hint) from None
    if check:
        for problem in check_target(name):
            warnings.warn(problem, RedirectWarning, stacklevel=2)
    return devmap_get(fd, key)


def _entry_value(info: dict, first: int, prog) -> bytes:
    """struct bpf_devmap_val {ifindex; bpf_prog.fd} / bpf_cpumap_val {qsize; bpf_prog.fd}:
    the fd (-1: none) only when the map's values have room for it (8 bytes)."""
    value = struct.pack("=I", first)
    if info["value_size"] >= 8:
        value += struct.pack("=i", prog.fd if prog is not None else -1)
    return value


def devmap_get(m, key: int) -> dict | None:
    """{'ifindex', 'ifname', 'egress_prog_id'} of entry ``key``, or None when empty."""
    fd = _map_fd(m)
    info = kernel.map_info(fd)
    raw = kernel.map_lookup(fd, _key(info, key), info["value_size"])
    if raw is None:
        return None
    (idx,) = struct.unpack_from("=I", raw)
    prog_id = struct.unpack_from("=I", raw, 4)[0] if info["value_size"] >= 8 else 0
    name = kernel.link_name(idx) or "?"
    return {"ifindex": idx, "ifname": name, "egress_prog_id": prog_id}


def map_delete(m, key: int) -> bool:
    """Delete entry ``key`` of a devmap or cpumap (False when it was empty)."""
    fd = _map_fd(m)
    return kernel.map_delete(fd, _key(kernel.map_info(fd), key))


def cpumap_set(m, cpu: int, qsize: int = 2048, prog=None) -> dict:
    """Enable CPU ``cpu`` in a cpumap: frames redirected to it are queued (``qsize`` frames
    deep) to a kthread on that CPU, which runs ``prog`` (from ``load_egress(..,
    hook='cpumap')``; needs BPF_CPUMAP_PROG) and then builds the sk_buff there."""
    fd = _map_fd(m)
    info = kernel.map_info(fd)
    if info["type"] != BPF_MAP_TYPE_CPUMAP:
        raise XDPLabError(f"map {info['name']!r} is not a cpumap (type {info['type']})")
    if prog is not None and info["value_size"] < 8:
        raise XDPLabError(f"cpumap {info['name']!r} has 4-byte values: no room for a program",
                          hint='declare it as BPF_CPUMAP_PROG(name, n) after #include "xdplab_redirect.h"')
    value = _entry_value(info, qsize, prog)
    try:
        kernel.map_update(fd, _key(info, cpu), value)
    except kernel.BPFError as e:
        hint = _entry_hint(e, "cpumap", egress=prog is not None, cpu=cpu, ncpus=os.cpu_count())
        raise XDPLabError(f"cpumap {info['name']!r}[{cpu}]: {e.strerror}", hint=hint) from None
    raw = kernel.map_lookup(fd, _key(info, cpu), info["value_size"])
    q = struct.unpack_from("=I", raw)[0]
    return {"cpu": cpu, "qsize": q,
            "prog_id": struct.unpack_from("=I", raw, 4)[0] if info["value_size"] >= 8 else 0}


def mac_u64(mac: str) -> int:
    """A MAC as the u64 whose first 6 bytes in memory are the address (little-endian host):
    store it in a BPF_ARRAY(.., u64, ..) and ``__builtin_memcpy(eth->h_dest, p, ETH_ALEN)``."""
    return int.from_bytes(bytes.fromhex(mac.replace(":", "")), "little")


# --- the target side ---------------------------------------------------------------------

def check_target(dev) -> list[str]:
    """Why frames redirected (or XDP_TX'ed, for a veth) to ``dev`` by a native-mode program
    would be dropped right now, as sentences; [] when the kernel says ``dev`` can take them.
    (Generic-mode redirects leave through dev_queue_xmit() and need none of this.)"""
    idx, name = _ifindex(dev)
    f = drivers.query(name)
    if f.ndo_xmit is None:
        return [f"{name}: cannot tell whether it accepts redirected frames ({f.error})"]
    if f.ndo_xmit:
        return []
    if f.driver == "veth":
        return [f"{name} (veth) cannot take natively redirected frames now: ndo_xdp_xmit puts "
                "them on its PEER's NAPI queue, which only exists while the peer has an XDP "
                "program (or GRO); they would be dropped. Fix: redirect.ensure_peer_program(host)"]
    return [f"{name} ({f.driver}) does not accept natively redirected frames now (no ndo-xmit "
            "XDP feature): most drivers allocate their XDP TX queues (one per CPU) only while "
            "an XDP program is attached to them — attach one (XDP_PASS will do) to the target"]


_insn = kernel.insn
XDP_PASS_INSNS = kernel.XDP_PASS_INSNS


def _pass_counting(map_fd: int) -> bytes:
    """XDP_PASS, counting packets and bytes into a per-CPU array {u64 packets, bytes}[1]:
    19 instructions, loaded without a compiler (a BCC compile takes seconds)."""
    return b"".join([
        _insn(0xbf, 6, 1),                     # r6 = ctx
        _insn(0x62, 10, 0, -4, 0),             # *(u32 *)(r10 - 4) = 0   (key)
        *kernel.count_frame_insns(map_fd),     # add the frame to {packets, bytes}
        _insn(0xb7, 0, 0, 0, 2),               # r0 = XDP_PASS
        _insn(0x95),                           # exit
    ])


class PeerProgram(Closable):
    """An XDP_PASS program on the inside end of a lab host's veth (attached by
    ``ensure_peer_program``). It exists for its side effect — the veth's NAPI queue, so
    frames can be XDP_TX'ed or redirected into the host — and counts what arrives."""

    def __init__(self, host):
        self.host, self.netns, self.ifname = host.name, host.netns, host.inside
        self.map_fd = kernel.map_create(kernel.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 16, 1)
        self.fd = self.link_fd = -1
        try:
            self.fd = kernel.prog_load_xdp(_pass_counting(self.map_fd), "xdplab_peer_pass")
            self.id = kernel.prog_info(self.fd)["id"]

            def attach():       # in the netns: the ifindex is resolved there
                return kernel.link_create_xdp(self.fd, kernel.ifindex(self.ifname), "native")
            self.link_fd = kernel.run_in_netns(self.netns, attach)
        except BaseException:
            self.close()
            raise

    @property
    def attached(self) -> bool:
        return self.link_fd >= 0

    def counters(self):
        """Counters with every frame that reached the host under PASS (summed over CPUs)."""
        if self.map_fd < 0:
            return self._last
        n = kernel.possible_cpus()
        raw = kernel.map_lookup(self.map_fd, b"\0" * 4, 16 * n)
        vals = [struct.unpack_from("=QQ", raw, 16 * i) for i in range(n)]
        pk, by = {a: 0 for a in ACTIONS}, {a: 0 for a in ACTIONS}
        pk["PASS"], by["PASS"] = sum(v[0] for v in vals), sum(v[1] for v in vals)
        return Counters(pk, by)

    def close(self) -> None:
        """Detach (the bpf_link) and release the program and its map."""
        if self.map_fd >= 0 and self.fd >= 0:
            self._last = self.counters()
        if self.link_fd >= 0:
            kernel.link_close(self.link_fd)
            self.link_fd = -1
        for attr in ("fd", "map_fd"):
            if getattr(self, attr, -1) >= 0:
                os.close(getattr(self, attr))
                setattr(self, attr, -1)
        _PEERS.pop(self.netns, None)

    detach = close

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def __repr__(self) -> str:
        state = "attached" if self.attached else "detached"
        return f"<PeerProgram XDP_PASS on {self.netns}:{self.ifname} ({state}, {self.counters()['PASS']} frames)>"


_PEERS: dict[str, PeerProgram] = {}       # this process's peer programs, by netns


def peer_programs(host) -> dict:
    """The XDP programs on the host's inside interface: {mode: prog id} (any process)."""
    return kernel.run_in_netns(host.netns, kernel.xdp_state, host.inside)


def ensure_peer_program(host) -> PeerProgram | None:
    """Make the lab host's veth a valid XDP_TX/redirect target: attach a (counting)
    XDP_PASS program to the PEER end, inside the host's netns. Returns it, or None when
    the peer already had a program (of anyone). ``.close()`` or ``remove_peer_program``
    detaches it; so does the process ending (it is a bpf_link) or the host going down."""
    ours = _PEERS.get(host.netns)
    if ours is not None and ours.attached:
        return ours
    if peer_programs(host):
        return None
    try:
        peer = PeerProgram(host)
    except kernel.BPFError as e:
        raise AttachError(f"could not attach XDP_PASS to {host.netns}:{host.inside}: {e.strerror}") from None
    _PEERS[host.netns] = peer
    return peer


def remove_peer_program(host) -> bool:
    """Detach the peer program ``ensure_peer_program`` put on ``host`` (False if none)."""
    ours = _PEERS.get(host.netns)
    if ours is None:
        return False
    ours.close()
    return True


def cleanup() -> None:
    """Detach every peer program this process attached."""
    for peer in list(_PEERS.values()):
        peer.close()


def delivered(host) -> int:
    """Packets the host's inside interface has received (its rx_packets counter)."""
    return kernel.run_in_netns(host.netns, kernel.link_stats, host.inside).get("rx_packets", 0)


def peer_program_effect(host, *, keep: bool = False) -> "drivers.FeatureTable":
    """Show the veth rule on a lab host: the root-side end's ``ndo-xmit`` flag (can it be a
    redirect target?) without, then with, an XDP program on its peer inside the netns.
    The peer program is removed again unless ``keep``."""
    if peer_programs(host):
        raise XDPLabError(f"{host.netns}:{host.inside} already has an XDP program, so there is "
                          "no 'without' to show", hint="redirect.remove_peer_program(host) first")
    before = drivers.query(host)
    peer = ensure_peer_program(host)
    try:
        after = drivers.query(host)
    finally:
        if not keep:
            peer.close()
    t = drivers.FeatureTable([before, after], title=f"{host.outside}: peer {host.inside} without / with XDP",
                     labels=[f"{host.outside} (peer: no XDP)", f"{host.outside} (peer: XDP_PASS)"])
    return t


# typed maps (programs.typedmaps) write devmap/cpumap entries through these
typedmaps.ENTRY_OPS.update(devmap_set=devmap_set, devmap_get=devmap_get, cpumap_set=cpumap_set)
