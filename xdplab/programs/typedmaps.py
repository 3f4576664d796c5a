"""BPF maps typed by BTF: keys and values with named fields, read and written by key.

    m = typedmaps.open(prog["flows"])       # a BCC map, a libbpf map, an fd, a pin path
    m[{"saddr": 0x0a000001, "dport": 53}]   # -> flow_stats(packets=3, bytes=180)
    m[key] = {"packets": 0, "bytes": 0}     # checked against the BTF types (UsageError)
    m.pin("flows")                          # /sys/fs/bpf/xdplab-<pid>-<start>-maps/flows
    typedmaps.from_pin(path)                # also pins other tools made

The map's BTF comes from the kernel (BPF_OBJ_GET_INFO_BY_FD gives btf_id and the key
and value type ids; BPF_BTF_GET_FD_BY_ID + OBJ_GET_INFO the BTF itself, parsed by
``xdplab.btf``). A map without BTF gets integer keys/values for 1/2/4/8-byte sizes and
bytes otherwise. Per-CPU values are numpy arrays, one row per possible CPU (each value
padded to 8 bytes in the kernel's buffer). The wrapper class is chosen by map type from a
table (``register``): array, hash, LRU hash, LPM trie, per-CPU array/hash, devmap (+hash),
cpumap, xskmap.
"""
from __future__ import annotations

import ctypes
import errno
import ipaddress
from html import escape
import os
from pathlib import Path

from .. import failures, kernel
from ..failures import Row
from ..kernel.btf import BTF, Codec, IntCodec, BytesCodec
from ..errors import Closable, MapError, MapKeyError, NotSupported, UsageError, XDPLabError
from ..kernel.btf import Builder
from ..kernel.procstate import stamp
import re

MAP_TYPES = {1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash",
             6: "percpu_array", 7: "stack_trace", 8: "cgroup_array", 9: "lru_hash",
             10: "lru_percpu_hash", 11: "lpm_trie", 12: "array_of_maps", 13: "hash_of_maps",
             14: "devmap", 15: "sockmap", 16: "cpumap", 17: "xskmap", 18: "sockhash",
             21: "percpu_cgroup_storage", 22: "queue", 23: "stack", 25: "devmap_hash",
             26: "struct_ops", 27: "ringbuf"}
BPFFS = Path("/sys/fs/bpf")

_WRAPPERS: dict[int, type] = {}

#: devmap and cpumap entries are written by xdplab.net.redirect (by interface name or lab
#: host, with its target checks); it registers these when imported (xdplab.net does)
ENTRY_OPS: dict = {}


def _entry_op(name: str):
    op = ENTRY_OPS.get(name)
    if op is None:
        raise XDPLabError(f"{name} on a typed map needs xdplab.net.redirect (import xdplab loads it)")
    return op


#: why the kernel refused a map update, by errno (failures, kind 'map-update')
UPDATE_HINTS = failures.register(
    Row("map-full", "map full", kind="map-update", when={"errno": errno.E2BIG},
        fix="delete entries (del m[key], m.clear()) or declare {name} with more than {max_entries} "
            "entries (an LRU hash evicts the oldest instead)"),
    Row("map-bad-value", "value refused", kind="map-update", when={"errno": errno.EINVAL},
        fix="the kernel does not take this value for a {kind} map"),
)


def register(*map_types: int):
    """Class decorator: the wrapper for these map types (like bcc's table.py)."""
    def deco(cls):
        for t in map_types:
            _WRAPPERS[t] = cls
        cls.map_types = map_types
        return cls
    return deco



def _frozen(key):
    """A decoded key as a dict key: arrays inside it (``__u32 addr[4]``) become tuples."""
    if isinstance(key, list):
        return tuple(_frozen(k) for k in key)
    if isinstance(key, tuple) and any(isinstance(k, (list, tuple)) for k in key):
        items = [_frozen(k) for k in key]
        return type(key)(*items) if hasattr(key, "_fields") else tuple(items)
    return key

class BCCInt(int):
    """An int a BCC-dialect program's map gave by key: ``.value`` too, as BCC's ctypes
    values had (``prog["m"][k].value``)."""

    @property
    def value(self) -> int:
        return int(self)


def _from_ctypes(v):
    """A ctypes value (BCC's ``table.Key(3)``, ``table.Leaf(...)``) as an int or its bytes."""
    if isinstance(v, ctypes._SimpleCData):
        return v.value
    if isinstance(v, (ctypes.Structure, ctypes.Union, ctypes.Array)):
        return bytes(v)
    return v


def _plain_codec(size: int, what: str) -> Codec:
    if size in (1, 2, 4, 8):
        return IntCodec(size, False, f"{what} (u{8 * size}, no BTF)")
    return BytesCodec(size, f"{what} ({size} bytes, no BTF)")


class TypedMap(Closable):
    """A BPF map by fd (its own duplicate), keys and values through BTF codecs.
    ``owner``: an object with ``closed`` (a program): once it is closed, so is this."""

    percpu = False
    _reopen_hint = "open it again: typedmaps.open(prog[name]), from_pin(path) or from_id(id)"

    def __init__(self, fd: int, *, btf: BTF | None = None, key_type_id: int = 0,
                 value_type_id: int = 0, owner=None, name: str | None = None, info: dict | None = None):
        self._fd = os.dup(fd)
        self._owner = owner
        try:
            self.info = info or kernel.map_info(self._fd)
            if btf is None:
                btf, key_type_id, value_type_id = _kernel_btf(self._fd)
        except BaseException:
            os.close(self._fd)
            raise
        self.name = name or self.info["name"]
        self.map_type = self.info["type"]
        self.key_size, self.value_size = self.info["key_size"], self.info["value_size"]
        self.max_entries = self.info["max_entries"]
        self.btf = btf
        self.key_type_id, self.value_type_id = key_type_id, value_type_id
        self.key_codec = self._codec(key_type_id, self.key_size, "key")
        self.value_codec = self._codec(value_type_id, self.value_size, "value")
        self.pinned: list[str] = []

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed or bool(getattr(self._owner, "closed", False))

    @property
    def fd(self) -> int:
        self._check_open("use its fd")
        return self._fd

    def _describe(self) -> str:
        return f"map {self.name}"

    def close(self) -> None:
        """Release this handle (the map lives on while a program or a pin holds it)."""
        if self._closed:
            return
        self._closed = True
        os.close(self._fd)

    def __del__(self):
        try:
            if not self._closed:
                os.close(self._fd)
                self._closed = True
        except Exception:
            pass

    # --- codecs --------------------------------------------------------------------------

    def _codec(self, type_id: int, size: int, what: str) -> Codec:
        if self.btf is not None and type_id:
            c = self.btf.codec(type_id)
            if c.size == size:
                return c
        return _plain_codec(size, what)

    @property
    def typed(self) -> bool:
        """Whether keys and values come from BTF (False: plain ints/bytes)."""
        return self.btf is not None and bool(self.value_type_id)

    def _key(self, key) -> bytes:
        key = _from_ctypes(key)
        if isinstance(key, (bytes, bytearray)) and not isinstance(self.key_codec, BytesCodec):
            if len(key) != self.key_size:
                raise UsageError(f"key of {len(key)} bytes for map {self.name}, whose keys are "
                                 f"{self.key_size} bytes", hint=f"a key is {self.key_codec.accepts()}")
            return bytes(key)
        return self.key_codec.encode(key, "key")

    def _value(self, value) -> bytes:
        value = _from_ctypes(value)
        if isinstance(value, (bytes, bytearray)) and not isinstance(self.value_codec, BytesCodec) \
                and len(value) == self.value_size:
            return bytes(value)
        return self.value_codec.encode(value, "value")

    def _decode_value(self, raw: bytes):
        return self.value_codec.decode(raw)

    def _lookup_size(self) -> int:
        return self.value_size

    # --- mapping ---------------------------------------------------------------------------

    def __getitem__(self, key):
        self._check_open("read it")
        raw = self._lookup(self._key(key))
        if raw is None:
            raise MapKeyError(f"key {key!r} is not in map {self.name}",
                              hint="m.keys() lists the keys; m.get(key, default) for a default")
        v = self._decode_value(raw)
        if self._table is not None and type(v) is int:
            return BCCInt(v)              # BCC's table[k].value idiom keeps working
        return v

    def _lookup(self, k: bytes):
        try:
            return kernel.map_lookup(self._fd, k, self._lookup_size())
        except kernel.BPFError as e:
            raise MapError(f"reading map {self.name}: {e.strerror}") from None

    def get(self, key, default=None):
        try:
            return self[key]
        except MapKeyError:
            return default

    def __setitem__(self, key, value):
        self._check_open("write it")
        self._update(self._key(key), self._value(value), key)

    def _update(self, k: bytes, v: bytes, key) -> None:
        try:
            kernel.map_update(self._fd, k, v)
        except kernel.BPFError as e:
            row = failures.find("map-update", errno=e.errno)
            hint = row.advice(type=MAP_TYPES.get(self.map_type, self.map_type), name=self.name,
                              max_entries=self.max_entries, kind=self.kind) if row else ""
            msg = (f"map {self.name} is full ({self.max_entries} entries): key {key!r} was not added"
                   if e.errno == errno.E2BIG else f"map {self.name}[{key!r}]: {e.strerror}")
            raise MapError(msg, hint=hint) from None

    def __delitem__(self, key):
        self._check_open("delete from it")
        try:
            found = kernel.map_delete(self._fd, self._key(key))
        except kernel.BPFError as e:
            raise MapError(f"map {self.name}: deleting {key!r}: {e.strerror}") from None
        if not found:
            raise MapKeyError(f"key {key!r} is not in map {self.name}")

    def _raw_keys(self):
        prev = None
        for _ in range(max(self.max_entries, 1) + 1):
            nxt = kernel.map_get_next_key(self._fd, prev, self.key_size)
            if nxt is None:
                return
            yield nxt
            prev = nxt

    def keys(self):
        self._check_open("list its keys")
        return [self.key_codec.decode(k) for k in self._raw_keys()]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        self._check_open("count its keys")
        return sum(1 for _ in self._raw_keys())

    def __contains__(self, key) -> bool:
        self._check_open("read it")
        return self._lookup(self._key(key)) is not None

    def items(self, sum_cpus: bool = False):
        """(key, value) pairs. Per-CPU maps: ``sum_cpus=True`` adds the CPUs' values up
        (an int, or a dict of a struct's fields), else a numpy array per key."""
        self._check_open("read it")
        out = []
        for k in list(self._raw_keys()):
            raw = self._lookup(k)
            if raw is not None:
                v = self._decode_value(raw)
                out.append((_frozen(self.key_codec.decode(k)), self._summed(v) if sum_cpus and self.percpu else v))
        return out

    def values(self, sum_cpus: bool = False):
        return [v for _, v in self.items(sum_cpus)]

    def to_dict(self, sum_cpus: bool = False) -> dict:
        """{key: value}; per-CPU maps with ``sum_cpus=True``: summed over CPUs."""
        return dict(self.items(sum_cpus))

    def to_numpy(self, sum_cpus: bool = True):
        """Values as an array (keys in map order): shape (n,) for integers, (n, cpus) for
        per-CPU ones not summed, a structured array (one column a field) for structs."""
        import numpy as np
        vals = self.values(sum_cpus)
        if vals and (hasattr(vals[0], "_asdict") or isinstance(vals[0], dict)):
            rows = [v._asdict() if hasattr(v, "_asdict") else v for v in vals]
            fields = list(rows[0])
            if all(isinstance(rows[0][f], (int, np.integer)) for f in fields):
                return np.array([tuple(int(r[f]) for f in fields) for r in rows],
                                dtype=[(f, np.int64 if any(r[f] < 0 for r in rows) else np.uint64) for f in fields])
        if vals and isinstance(vals[0], np.ndarray):
            return np.stack(vals)
        return np.array(vals)

    @staticmethod
    def _summed(v):
        if getattr(getattr(v, "dtype", None), "names", None):
            return {n: int(v[n].sum()) for n in v.dtype.names}
        if hasattr(v, "sum"):
            return int(v.sum())
        return v

    # --- BCC-dialect programs: prog["m"] is this typed map; the BCC table stays reachable

    _table = None

    @property
    def table(self):
        """The BCC table behind this map (a map of a BCC-dialect program: ``prog[name]``),
        for code written against BCC's API (``table.Key``, ``table.Leaf``)."""
        if self._table is None:
            raise AttributeError(f"map {self.name} is not a BCC table (it is typed by BTF: use it directly)")
        self._check_open("read or write it")
        return self._table

    def clear(self) -> None:
        self._check_open("clear it")
        for k in list(self._raw_keys()):
            kernel.map_delete(self._fd, k)

    @property
    def kind(self) -> str:
        return MAP_TYPES.get(self.map_type, f"type {self.map_type}")

    # --- pins ------------------------------------------------------------------------------

    def pin(self, name: str | None = None) -> str:
        """Pin the map in bpffs: ``name`` in this process's pin directory (``pin_dir()``,
        /sys/fs/bpf/xdplab-<pid>-<start>-maps; default: the map's name), or an absolute path
        under /sys/fs/bpf. Returns the path. ``unpin()``, ``typedmaps.cleanup()`` or the
        process's exit removes it (after a kill -9: ``xdplab down --all``)."""
        self._check_open("pin it")
        path = _pin_path(name or self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            raise UsageError(f"pin path {str(path)!r} is taken", hint="unpin it first or choose another name")
        try:
            kernel.obj_pin(self._fd, str(path))
        except kernel.BPFError as e:
            raise MapError(f"pinning map {self.name} at {path}: {e.strerror}",
                           hint="bpffs must be mounted at /sys/fs/bpf (`xdplab doctor` checks)") from None
        self.pinned.append(str(path))
        _PINS.add(str(path))
        return str(path)

    def unpin(self) -> None:
        for p in list(self.pinned):
            _unpin(p)
            self.pinned.remove(p)

    # --- display ---------------------------------------------------------------------------

    def _type_names(self) -> tuple[str, str]:
        if not self.typed:
            return f"{self.key_size} bytes", f"{self.value_size} bytes"
        key = self.btf.type_name(self.key_type_id) if self.key_type_id else f"{self.key_size} bytes"
        return key, self.btf.type_name(self.value_type_id)

    def __repr__(self) -> str:
        if self.closed:
            return f"<{type(self).__name__} {self.name} closed>"
        k, v = self._type_names()
        return f"<{type(self).__name__} {self.name} ({self.kind}, {k} -> {v}, max {self.max_entries})>"

    def to_df(self, sum_cpus: bool = True):
        """A pandas DataFrame: a row per key, struct fields as columns; per-CPU maps not
        summed (``sum_cpus=False``): a row per key and CPU (column ``cpu``)."""
        import pandas as pd
        rows = []

        def fields(v) -> dict:
            if hasattr(v, "_asdict"):
                return dict(v._asdict())
            if isinstance(v, dict):
                return v
            if getattr(getattr(v, "dtype", None), "names", None):       # a numpy struct row
                return {n: v[n].item() for n in v.dtype.names}
            return {"value": v.item() if hasattr(v, "item") else v}
        for k, v in self.items(sum_cpus):
            if self.percpu and not sum_cpus and hasattr(v, "__len__"):
                rows += [{"key": k, "cpu": cpu, **fields(x)} for cpu, x in enumerate(v)]
            else:
                rows.append({"key": k, **fields(v)})
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        if self.closed:
            return f"<b>map {escape(self.name)}</b>: closed"
        return f"<b>{escape(repr(self))}</b>{self.to_df().to_html(index=False)}"


@register(1, 9)
class HashMap(TypedMap):
    """BPF_MAP_TYPE_HASH and LRU_HASH."""


@register(2)
class ArrayMap(TypedMap):
    """BPF_MAP_TYPE_ARRAY: keys 0..max_entries-1, every entry exists (zeroed)."""

    def _key(self, key) -> bytes:
        if isinstance(key, int) and not isinstance(key, bool) and not 0 <= key < self.max_entries:
            raise MapKeyError(f"index {key} is out of range for array {self.name}",
                              hint=f"0..{self.max_entries - 1}")
        return super()._key(key)

    def __delitem__(self, key):
        raise UsageError(f"array map {self.name}: entries cannot be deleted",
                         hint="set the entry to zero instead (m[i] = 0), or m.clear()")

    def clear(self) -> None:
        self._check_open("clear it")
        zero = bytes(self._lookup_size())
        for k in list(self._raw_keys()):
            kernel.map_update(self._fd, k, zero)


class _PerCPU:
    """Per-CPU values: numpy arrays with one row per possible CPU."""

    percpu = True

    def _post(self):
        self.ncpus = kernel.possible_cpus()
        self.stride = (self.value_size + 7) // 8 * 8
        self.dtype = self.btf.numpy_dtype(self.value_type_id, self.stride) if self.typed else None
        if self.dtype is None and self.value_size in (1, 2, 4, 8):
            import numpy as np
            self.dtype = np.dtype({"names": ["value"], "formats": [f"<u{self.value_size}"],
                                   "offsets": [0], "itemsize": self.stride})

    def _lookup_size(self) -> int:
        return self.stride * self.ncpus

    def _decode_value(self, raw: bytes):
        import numpy as np
        if self.dtype is not None:
            arr = np.frombuffer(raw, dtype=self.dtype, count=self.ncpus).copy()
            if arr.dtype.names == ("value",):
                return arr["value"].copy()
            if self.dtype.names is None or list(self.dtype.names) == ["value"]:
                return arr
            # drop the padding: a packed structured array with the struct's own fields
            return arr[list(self.dtype.names)]
        return [self.value_codec.decode(raw, i * self.stride) for i in range(self.ncpus)]

    def _value(self, value) -> bytes:
        """One value (set on every CPU), or a list (or 1-d array) of one per possible CPU."""
        import numpy as np
        if isinstance(value, np.ndarray):
            value = ([dict(zip(value.dtype.names, tuple(row))) for row in value]
                     if value.dtype.names else value.tolist())
        scalar = self._is_scalar()
        if isinstance(value, list) or (scalar and isinstance(value, tuple)):
            if len(value) != self.ncpus:
                raise UsageError(f"per-CPU value for map {self.name} has {len(value)} items; this machine "
                                 f"has {self.ncpus} possible CPUs",
                                 hint=f"give one value (set on every CPU) or a list of {self.ncpus}")
            per = list(value)
        else:
            per = [value] * self.ncpus
        buf = bytearray(self.stride * self.ncpus)
        for i, v in enumerate(per):
            if isinstance(v, np.generic):
                v = v.item()
            self.value_codec.pack(buf, i * self.stride, v, f"value[cpu {i}]")
        return bytes(buf)

    def _is_scalar(self) -> bool:
        return isinstance(self.value_codec, IntCodec)

    def sum(self, key):
        """The value of ``key`` summed over CPUs (structs: field by field)."""
        v = self[key]
        if getattr(v.dtype, "names", None):
            return {n: int(v[n].sum()) for n in v.dtype.names}
        return v.sum(axis=0)


@register(6)
class PerCpuArrayMap(_PerCPU, ArrayMap):
    """BPF_MAP_TYPE_PERCPU_ARRAY."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._post()


@register(5, 10)
class PerCpuHashMap(_PerCPU, HashMap):
    """BPF_MAP_TYPE_PERCPU_HASH and LRU_PERCPU_HASH."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._post()


@register(11)
class LpmTrieMap(TypedMap):
    """BPF_MAP_TYPE_LPM_TRIE: keys are {prefixlen, data} structs; a key may also be given
    as "10.0.0.0/8" / "fc00::/7" (prefix length and address bytes, network order)."""

    def _key(self, key) -> bytes:
        if isinstance(key, (str, ipaddress.IPv4Network, ipaddress.IPv6Network)):
            try:
                net = ipaddress.ip_network(key, strict=False)
            except ValueError as e:
                raise UsageError(f"key {key!r} for LPM trie {self.name}: {e}",
                                 hint="a prefix such as '10.0.0.0/8', or a {prefixlen, data} struct") from None
            data = net.network_address.packed
            if 4 + len(data) > self.key_size:
                raise UsageError(f"key {key!r}: {len(data)} address bytes do not fit LPM trie {self.name} "
                                 f"(keys of {self.key_size} bytes: 4 for the prefix length + {self.key_size - 4})",
                                 hint="IPv4 prefixes need 4 data bytes, IPv6 16")
            return (net.prefixlen.to_bytes(4, "little") + data).ljust(self.key_size, b"\0")
        return super()._key(key)

    def prefix(self, key) -> str:
        """A decoded key as "addr/len" (4- or 16-byte data)."""
        raw = self.key_codec.encode(key, "key") if not isinstance(key, bytes) else key
        plen, data = int.from_bytes(raw[:4], "little"), raw[4:]
        addr = ipaddress.ip_address(data[:4] if len(data) < 16 else data[:16])
        return f"{addr}/{plen}"


@register(14, 25)
class DevMap(TypedMap):
    """BPF_MAP_TYPE_DEVMAP / DEVMAP_HASH: values name a device. ``m[k] = "xl-h2"`` (an
    interface name, a lab Host — its root-side veth — or an ifindex) through
    ``xdplab.redirect.devmap_set`` (which checks the target can take frames);
    ``m.set(k, dev, egress_prog=p)`` adds an egress program. Reads give
    {'ifindex', 'ifname', 'egress_prog_id'}."""

    def __setitem__(self, key, dev):
        self.set(key, dev)

    def _key(self, key) -> bytes:
        if self.map_type == 14 and isinstance(key, int) and not 0 <= key < self.max_entries:
            raise MapKeyError(f"index {key} is out of range for devmap {self.name}",
                              hint=f"0..{self.max_entries - 1} (a DEVMAP_HASH takes any u32)")
        return super()._key(key)

    def set(self, key, dev, egress_prog=None, *, check: bool = True) -> dict:
        self._check_open("write it")
        if isinstance(dev, dict):
            egress_prog = dev.get("egress_prog", egress_prog)
            dev = dev.get("ifindex", dev.get("ifname", dev.get("dev")))
        self._key(key)                                                # checked before anything
        return _entry_op("devmap_set")(self._fd, int(key), dev, egress_prog, check=check)

    def __getitem__(self, key):
        self._check_open("read it")
        self._key(key)
        v = _entry_op("devmap_get")(self._fd, int(key))
        if v is None:
            raise MapKeyError(f"key {key!r} is not in devmap {self.name}")
        return v

    def _decode_value(self, raw: bytes):
        idx = int.from_bytes(raw[:4], "little")
        prog = int.from_bytes(raw[4:8], "little") if len(raw) >= 8 else 0
        return {"ifindex": idx, "ifname": kernel.link_name(idx) or "?", "egress_prog_id": prog}


@register(16)
class CpuMap(TypedMap):
    """BPF_MAP_TYPE_CPUMAP: key = CPU, value = queue size (+ a program): ``m[cpu] = 2048``
    or ``m.set(cpu, qsize, prog)`` (``xdplab.redirect.cpumap_set``). Reads give
    {'cpu', 'qsize', 'prog_id'}."""

    def __setitem__(self, cpu, value):
        if isinstance(value, dict):
            self.set(cpu, value.get("qsize", 2048), value.get("prog"))
        else:
            self.set(cpu, value)

    def set(self, cpu, qsize: int = 2048, prog=None) -> dict:
        self._check_open("write it")
        self._key(cpu)
        IntCodec(4, False, "qsize (u32)").encode(qsize, "qsize")
        return _entry_op("cpumap_set")(self._fd, int(cpu), qsize, prog)

    def _decode_value(self, raw: bytes):
        return {"qsize": int.from_bytes(raw[:4], "little"),
                "prog_id": int.from_bytes(raw[4:8], "little") if len(raw) >= 8 else 0}


@register(17)
class XskMap(TypedMap):
    """BPF_MAP_TYPE_XSKMAP: key = queue, value = an AF_XDP socket (``xdplab.afxdp.XSK`` or
    its fd). The kernel does not let user space read entries back: reads raise
    NotSupported."""

    def _value(self, value) -> bytes:
        fd = getattr(value, "fd", value)
        if isinstance(fd, bool) or not isinstance(fd, int) or fd < 0:
            raise UsageError(f"xskmap {self.name}: value {value!r} is not an AF_XDP socket",
                             hint="an xdplab.afxdp.XSK (or its fd)")
        return fd.to_bytes(4, "little")

    def _no_reads(self, what):
        raise kernel.features.error("xskmap_reads", what=f"reading xskmap {self.name} from user space ({what})",
                                    detail="the kernel only lets XDP programs look entries up (and lists every "
                                  "index as a key); set entries with m[q] = xsk, remove them with del m[q]")

    def __getitem__(self, key):
        self._no_reads(f"[{key!r}]")

    def __contains__(self, key):
        self._no_reads(f"{key!r} in")

    def keys(self):
        self._no_reads("keys")

    def items(self, *a, **kw):
        self._no_reads("items")

    def __len__(self):
        self._no_reads("len")


# --- opening ---------------------------------------------------------------------------------

def _kernel_btf(fd: int):
    """(BTF, key type id, value type id) of a map from the kernel, or (None, 0, 0)."""
    ids = kernel.map_btf_ids(fd)
    if not ids["btf_id"] or not ids["btf_value_type_id"]:
        return None, 0, 0
    return _btf_by_id(ids["btf_id"]), ids["btf_key_type_id"], ids["btf_value_type_id"]


def _btf_by_id(btf_id: int) -> BTF:
    """Parsed fresh each time: the kernel reuses the ids of BTF objects it freed."""
    return BTF.from_id(btf_id)


def wrap(fd: int, **kw) -> TypedMap:
    """The typed wrapper for the map behind ``fd`` (duplicated; the caller keeps ``fd``)."""
    info = kernel.map_info(fd)
    cls = _WRAPPERS.get(info["type"], TypedMap)
    return cls(fd, info=info, **kw)


def open(m, *, owner=None) -> TypedMap:          # noqa: A001 (like io.open: open a thing)
    """A typed map from: an xdplab ``Map`` (BCC), a BCC table, a libbpf map (``.fd``), a
    ``libbpf.MapRef``, an fd, or a pinned path (str/Path under /sys/fs/bpf)."""
    if isinstance(m, (str, Path)):
        return from_pin(m)
    if isinstance(m, bool) or m is None:
        raise UsageError(f"{m!r} is not a map", hint="a map of a loaded program, an fd or a pin path")
    if isinstance(m, int):
        return wrap(m, owner=owner)
    owner = owner if owner is not None else (m if isinstance(m, Closable) else None)
    if isinstance(m, Closable):
        m._check_open("open it as a typed map")
    name = getattr(m, "name", None)
    table = getattr(m, "_table", None)              # an xdplab.maps.Map wraps a BCC table
    if table is None:                                 # (an empty BCC table is falsy: no `or`)
        table = m
    fd = getattr(table, "map_fd", None)               # BCC tables
    if fd is None:
        fd = getattr(m, "fd", None)                   # libbpf maps, MapRef
    if not isinstance(fd, int):
        raise UsageError(f"{m!r} is not a map", hint="a map of a loaded program (prog['name']), an fd or a pin path")
    return wrap(fd, owner=owner, name=name if isinstance(name, str) else None)


def of(prog) -> dict:
    """Every map of a loaded program (BCC or libbpf) as typed maps, by name. Each is a
    handle of its own (closed with the program; ``close()`` it earlier if you like)."""
    if isinstance(prog, Closable):
        prog._check_open("open its maps")
    return {name: open(prog.maps[name], owner=prog) for name in prog.maps}


def from_ref(ref, btf_raw: bytes | None = None, owner=None) -> TypedMap:
    """For ``xdplab.libbpf``: a typed map from a ``MapRef`` (name, fd, map_type, key/value
    size, BTF key/value type ids) and the object's raw BTF (None: ask the kernel)."""
    btf = BTF(btf_raw) if btf_raw else None
    kw = {}
    if btf is not None and ref.btf_value_type_id:
        kw = {"btf": btf, "key_type_id": ref.btf_key_type_id, "value_type_id": ref.btf_value_type_id}
    return wrap(ref.fd, owner=owner, name=ref.name, **kw)


def from_pin(path) -> TypedMap:
    """Open a map pinned in bpffs (``m.pin()`` or anything else's pin)."""
    p = _pin_path(path) if not str(path).startswith("/") else Path(path)
    try:
        fd = kernel.obj_get(str(p))
    except kernel.BPFError as e:
        raise UsageError(f"no BPF map pinned at {str(p)!r}: {e.strerror}",
                         hint=f"pins of this process are under {pin_dir()}") from None
    try:
        return wrap(fd)
    except kernel.BPFError:
        raise UsageError(f"{str(p)!r} is pinned but not a map") from None
    finally:
        os.close(fd)


def from_id(map_id: int) -> TypedMap:
    """Open a map by its kernel id (``bpftool map`` lists them)."""
    fd = kernel.map_fd_by_id(map_id)
    try:
        return wrap(fd)
    finally:
        os.close(fd)


def create(map_type: str | int, key, value, max_entries: int, *, name: str = "", flags: int = 0) -> TypedMap:
    """A new map with BTF types from Python: ``key``/``value`` are "u32", "s64", ... or a
    list of (field, type) pairs for a struct (types may nest), e.g.
    ``create("hash", [("saddr", "u32"), ("dport", "u16"), ("pad", "u16")], "u64", 1024)``."""
    t = map_type if isinstance(map_type, int) else {v: k for k, v in MAP_TYPES.items()}.get(map_type)
    if t is None:
        raise UsageError(f"unknown map type {map_type!r}", hint=f"one of {', '.join(MAP_TYPES.values())}")
    b = Builder()
    ints: dict[str, int] = {}

    def build(spec, tag: str) -> tuple[int, int]:
        if isinstance(spec, str):
            m = re.fullmatch(r"([us])(8|16|32|64)(?:\[(\d+)\])?", spec)
            if not m:
                raise UsageError(f"type {spec!r}: not u8..u64/s8..s64 (optionally [N])", hint='e.g. "u32", "u8[6]"')
            nm = f"__{m[1]}{m[2]}"
            if nm not in ints:
                ints[nm] = b.int(nm, int(m[2]) // 8, m[1] == "s")
            size = int(m[2]) // 8
            if m[3]:
                if "__u32" not in ints:
                    ints["__u32"] = b.int("__u32", 4)
                return b.array(ints[nm], int(m[3]), ints["__u32"]), size * int(m[3])
            return ints[nm], size
        members, off, align = [], 0, 1
        for fname, ftype in spec:
            tid, size = build(ftype, fname)
            a = min(size, 8) if isinstance(ftype, str) and "[" not in ftype else (8 if not isinstance(ftype, str) else 1)
            off = (off + a - 1) // a * a
            members.append((fname, tid, off))
            off += size
            align = max(align, a)
        size = (off + align - 1) // align * align
        return b.struct(tag, members, size), size

    kid, ksize = build(key, f"{name or 'map'}_key")
    vid, vsize = build(value, f"{name or 'map'}_value")
    btf_fd = kernel.btf_load(b.bytes())
    try:
        try:
            fd = kernel.map_create_btf(t, ksize, vsize, max_entries, flags=flags, name=name, btf_fd=btf_fd,
                                        key_type_id=kid, value_type_id=vid)
        except kernel.BPFError as e:
            if e.errno != 524:                         # ENOTSUPP: this map type takes no BTF
                raise                                  # (devmap, cpumap, xskmap): create it plain
            fd = kernel.map_create_btf(t, ksize, vsize, max_entries, flags=flags, name=name)
    except kernel.BPFError as e:
        raise MapError(f"creating {MAP_TYPES.get(t, t)} map {name!r}: {e.strerror}") from None
    finally:
        os.close(btf_fd)
    try:
        return wrap(fd, name=name or None)
    finally:
        os.close(fd)


# --- pins ------------------------------------------------------------------------------------

_PINS: set[str] = set()


def pin_dir() -> Path:
    """This process's pin directory (named like procstate's, so a dead process's is found)."""
    return BPFFS / f"xdplab-{stamp()}-maps"


def _pin_path(name) -> Path:
    p = Path(name)
    if p.is_absolute():
        if not str(p).startswith("/sys/fs/bpf/"):
            raise UsageError(f"pin path {str(p)!r} is not under /sys/fs/bpf", hint="a name, or /sys/fs/bpf/...")
        return p
    if len(p.parts) != 1 or str(name) in ("", ".", ".."):
        raise UsageError(f"pin name {str(name)!r} is not a plain name",
                         hint="a name such as 'flows' (or an absolute path under /sys/fs/bpf)")
    return pin_dir() / p


def _unpin(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    _PINS.discard(path)
    if Path(path).parent == pin_dir():
        try:
            pin_dir().rmdir()                  # once empty
        except OSError:
            pass


def cleanup() -> None:
    """Remove every pin this process made (and its empty directories)."""
    for p in list(_PINS):
        _unpin(p)


import atexit as _atexit  # noqa: E402

_atexit.register(cleanup)
