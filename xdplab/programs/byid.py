"""Programs that another loader attached (``ip link ... xdp obj``, ``bpftool``, a daemon),
watched from Python by their kernel ids:

    prog = xdplab.attached("eth1")          # or a lab Host: its root-side interface
    prog                                    # <AttachedProgram xdp_icmp_guard id=42 on eth1/native ...>
    prog["proto_stats"][17]                 # its maps, typed by their BTF (xdplab.typedmaps)
    prog.stats()                            # runs and ns (BPF_ENABLE_STATS)
    prog.run(IP(dst="10.0.0.1") / ICMP())   # BPF_PROG_RUN on a crafted packet
    prog.close()                            # lets go of it; it stays attached

It has what a loaded program has (``fd``, ``id``, ``name``, ``maps``, ``run()``,
``stats()``, ``info()``, ``close()``, refusal after close) except what only the loader
could have compiled into it: per-action counters (``counters()`` raises
``CountersUnavailable`` saying why; read the program's own maps, or ``stats()``) and
capture/printk tags. Holding it keeps the program in memory, never on the interface: it
does not detach anything unless ``detach()`` is called.
"""
from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Mapping

from .. import kernel
from ..errors import Closable, CountersUnavailable, MapKeyError, UsageError, XDPLabError, needs_open
from . import typedmaps
from .libbpf import StatsHold
from .prog_run import run
from .libbpf import Stats, prog_stats
from html import escape

INFO_SIZE = 256
_NR_MAP_IDS, _MAP_IDS = 52, 56            # struct bpf_prog_info: nr_map_ids, map_ids


def _prog_fd_by_id(prog_id: int) -> int:
    try:
        return kernel.bpf(kernel.BPF_PROG_GET_FD_BY_ID, kernel.bpf_attr("=I", int(prog_id)),
                           "PROG_GET_FD_BY_ID")
    except kernel.BPFError as e:
        raise UsageError(f"no BPF program with id {prog_id}: {e.strerror}",
                         hint="`bpftool prog` lists the loaded programs and their ids") from None


def map_ids(prog_fd: int) -> list[int]:
    """The ids of the maps a loaded program uses (``bpftool prog show``'s map_ids)."""
    info = ctypes.create_string_buffer(INFO_SIZE)
    kernel.obj_info(prog_fd, INFO_SIZE, info)
    (n,) = struct.unpack_from("=I", info, _NR_MAP_IDS)
    if not n:
        return []
    ids = (ctypes.c_uint32 * n)()
    info = ctypes.create_string_buffer(INFO_SIZE)
    struct.pack_into("=IQ", info, _NR_MAP_IDS, n, ctypes.addressof(ids))
    kernel.obj_info(prog_fd, INFO_SIZE, info)
    (n2,) = struct.unpack_from("=I", info, _NR_MAP_IDS)
    return list(ids[:min(n, n2)])


class _Maps(Mapping):
    """name -> TypedMap of an attached program's maps (name as the kernel keeps it: at most
    15 characters; a libbpf object's .rodata/.bss/.data show as ``<obj>.rodata`` etc.)."""

    def __init__(self, owner: "AttachedProgram", maps: dict):
        self._owner, self._maps = owner, maps

    def __getitem__(self, name):
        self._owner._check_open(f"read its map {name!r}")
        if name in self._maps:
            return self._maps[name]
        short = str(name)[:15]                     # the kernel cuts names at BPF_OBJ_NAME_LEN - 1
        if short in self._maps:
            return self._maps[short]
        raise MapKeyError(f"{self._owner.name} has no map {name!r}",
                          hint=f"its maps: {', '.join(self._maps) or 'none'}")

    def __iter__(self):
        return iter(self._maps)

    def __len__(self):
        return len(self._maps)

    def close(self):
        for m in self._maps.values():
            m.close()

    def __repr__(self):
        return f"<maps of {self._owner.name}: {', '.join(self._maps) or 'none'}>"


class AttachedProgram(Closable):
    """A loaded XDP program by kernel id, with its maps (see the module docstring)."""

    _reopen_hint = "look it up again: xdplab.attached(dev) or xdplab.byid.program(id)"
    _close_when_collected = True
    _stats_hold = None

    def __init__(self, prog_id: int, ifname: str | None = None, mode: str | None = None):
        self._fd = _prog_fd_by_id(prog_id)
        try:
            info = kernel.prog_info(self._fd)
            self.id, self.name, self.type = info["id"], info["name"], info["type"]
            self.ifname, self.mode = ifname, mode
            maps = {}
            for mid in map_ids(self._fd):
                try:
                    m = typedmaps.from_id(mid)
                except OSError:                        # freed since (the program swapped)
                    continue
                m._owner = self
                maps[m.name] = m
            self.maps = _Maps(self, maps)
        except BaseException:
            os.close(self._fd)
            raise
        self._stats_hold = None
        try:
            self._stats_hold = StatsHold()
        except XDPLabError:
            pass
        self.links: list = []                      # no xdplab link: another loader attached it

    @property
    def fd(self) -> int:
        self._check_open("use its fd")
        return self._fd

    def __getitem__(self, name):
        return self.maps[name]

    @needs_open
    def run(self, packet, **kw):
        """Run the program on one packet with BPF_PROG_RUN (``xdplab.testrun.run``)."""
        return run(self, packet, **kw)

    @needs_open
    def stats(self):
        """Runs and run time (ns) since it was loaded, while BPF_ENABLE_STATS was on (this
        process switches it on; the kernel counts while anyone holds it on)."""
        s = prog_stats(self._fd)
        return Stats(s["run_cnt"], s["run_time_ns"])

    @needs_open
    def info(self) -> dict:
        """What the kernel says about it: id, name, license, BTF, verified instructions,
        where it is attached, its map ids."""
        return {"id": self.id, "name": self.name, "ifname": self.ifname, "mode": self.mode,
                "map_ids": map_ids(self._fd), **prog_stats(self._fd)}

    @needs_open
    def counters(self):
        raise CountersUnavailable(
            f"{self.name} (id {self.id}) has no per-action counters: another loader attached it as it was "
            "compiled, without xdplab's counting wrapper",
            hint="read the program's own maps (prog.maps), prog.stats() for runs and ns, or load the same "
                 ".o with xdplab.Program.from_file(...).load() to have it counted")

    @property
    def still_attached(self) -> bool:
        """Is this program (this id) still attached where it was found?"""
        self._check_open("ask where it is attached")
        if not self.ifname:
            return False
        return self.id in kernel.xdp_state(self.ifname).values()

    @needs_open
    def detach(self) -> None:
        """Take it off its interface the way it was put on (netlink; ``ip link set dev X xdp
        off`` does the same). Only if this very program is still the one attached there."""
        if not self.still_attached:
            raise XDPLabError(f"{self.name} (id {self.id}) is no longer attached to {self.ifname}")
        kernel.netlink_detach_xdp(self.ifname, self.mode)

    def close(self) -> None:
        """Let go of the program and its maps (it stays attached: the interface holds it)."""
        if self._closed:
            return
        self._closed = True
        self.maps.close()
        os.close(self._fd)
        if self._stats_hold is not None:
            self._stats_hold.close()

    def __repr__(self) -> str:
        if self._closed:
            return f"<AttachedProgram {self.name} id={self.id} closed>"
        where = f" on {self.ifname}/{self.mode}" if self.ifname else ""
        return f"<AttachedProgram {self.name} id={self.id}{where} maps={list(self.maps)}>"

    def _repr_html_(self) -> str:
        return f"<pre>{escape(repr(self))}</pre>"


def program(prog_id: int) -> AttachedProgram:
    """A loaded program by its kernel id (``bpftool prog`` lists them), with its maps."""
    if isinstance(prog_id, bool) or not isinstance(prog_id, int) or prog_id <= 0:
        raise UsageError(f"program id {prog_id!r} is not a positive integer", hint="e.g. xdplab.byid.program(42)")
    return AttachedProgram(prog_id)


def attached(dev, mode: str | None = None) -> AttachedProgram:
    """The XDP program attached to ``dev`` (an interface name or a lab Host: its root-side
    interface), whoever attached it, with its maps. ``mode`` (native|generic|offload) picks
    one when the interface holds more than one."""
    ifname = getattr(dev, "outside", dev)
    if not isinstance(ifname, str) or not ifname:
        raise UsageError(f"device {dev!r} is not an interface name or a lab host", hint="e.g. 'eth1' or lab['h1']")
    if mode is not None and mode not in ("native", "generic", "offload"):
        raise UsageError(f"mode {mode!r} is not one of native, generic, offload")
    if not kernel.ifindex(ifname):
        raise UsageError(f"no interface {ifname!r} in this network namespace", hint="`ip link` lists them")
    state = kernel.xdp_state(ifname)
    if mode is not None:
        state = {m: i for m, i in state.items() if m == mode}
    if not state:
        raise UsageError(f"no XDP program is attached to {ifname}" + (f" in {mode} mode" if mode else ""),
                         hint=f"attach one, e.g. `ip link set dev {ifname} xdp obj prog.o sec xdp`")
    if len(state) > 1:
        raise UsageError(f"{ifname} holds {len(state)} XDP programs ({', '.join(state)})",
                         hint="pick one with mode=...")
    (m, pid), = state.items()
    return AttachedProgram(pid, ifname, m)
