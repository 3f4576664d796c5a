"""BPF maps as Python values, numpy arrays and pandas DataFrames.

``prog[name]`` of a BCC-dialect program is the map typed by its BTF (``typed``: the same
``typedmaps`` classes a libbpf program's maps are), with BCC's table at ``.table``; ``Map``
wraps a BCC table that cannot be typed (no BTF; perf buffers, program arrays):
``m.to_dict()``, ``m.to_numpy()``, ``m.to_df()``; per-CPU maps give one value per CPU
unless ``sum_cpus=True``. ``Counters`` reads the standard per-action counter
(``xdplab_actions`` from bpf/include/xdplab.h).
"""
from __future__ import annotations

import collections
import ctypes
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import Closable, ClosedError, MapError, MapKeyError, UsageError
from . import typedmaps
from .bcccompat import table_names # every map BCC made, whatever macro declared it
from ..kernel.abi import ACTIONS

COUNTER_MAP = "xdplab_actions"


def to_py(v):
    """A ctypes value (int, struct, array) as plain Python (int, dict, list)."""
    if isinstance(v, (int, float)):
        return v
    if hasattr(v, "value"):
        return v.value
    if isinstance(v, ctypes.Structure) or isinstance(v, ctypes.Union):
        return {name: to_py(getattr(v, name)) for name, *_ in v._fields_}
    if isinstance(v, ctypes.Array):
        return [to_py(x) for x in v]
    if isinstance(v, (list, tuple)):
        return [to_py(x) for x in v]
    return v


@functools.lru_cache(maxsize=None)
def _key_tuple(fields: tuple):
    return collections.namedtuple("Key", fields, rename=True)


def _sum(values):
    vals = [to_py(x) for x in values]
    if vals and isinstance(vals[0], dict):
        return {k: sum(v[k] for v in vals) for k in vals[0]}
    return sum(vals)


_INT_CTYPES = "bBhHiIlLqQ"


def _int_range(ctype) -> tuple[int, int] | None:
    """(min, max) of a ctypes integer type, or None for anything else (structs, arrays)."""
    if not (isinstance(ctype, type) and issubclass(ctype, ctypes._SimpleCData)
            and getattr(ctype, "_type_", "") in _INT_CTYPES):
        return None
    bits = 8 * ctypes.sizeof(ctype)
    if ctype(-1).value < 0:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _ctype_name(ctype) -> str:
    lo, hi = _int_range(ctype)
    return f"{'s' if lo < 0 else 'u'}{8 * ctypes.sizeof(ctype)}"


class Map(Closable):
    """One BPF map of a loaded program. Keys and values are checked against the map's
    types (``UsageError``); a missing key raises ``MapKeyError`` (a KeyError); once the
    program is closed every use raises ``ClosedError``."""

    def __init__(self, name: str, table):
        self.name, self._table = name, table
        self.percpu = type(table).__name__.startswith(("PerCpu", "LruPerCpu"))

    @property
    def table(self):
        """The BCC table (``ClosedError`` once the program is closed)."""
        self._check_open("read or write it")
        return self._table

    def _describe(self) -> str:
        return f"map {self.name}"

    def _close(self, reason: str) -> None:
        self._closed = True
        self._reopen_hint = f"{reason}; load the program again and use its maps"

    def _is_array(self) -> bool:
        from bcc.table import ArrayBase
        return isinstance(self._table, ArrayBase)

    def __getitem__(self, key):
        table, k = self.table, self._key(key)
        try:
            return table[k]
        except KeyError:
            raise MapKeyError(f"key {key!r} is not in map {self.name}",
                              hint="m.to_dict() shows the keys; m.get(key, default) for a default") from None

    def get(self, key, default=None):
        try:
            return self[key]
        except MapKeyError:
            return default

    def __setitem__(self, key, value):
        table = self.table
        k = self._key(key)
        leaf = getattr(table, "sLeaf", table.Leaf) if self.percpu else table.Leaf
        if isinstance(value, (int, float)):
            self._check_value(value, leaf)
        if isinstance(value, (int, float)) and not self.percpu:
            value = table.Leaf(value)
        elif isinstance(value, (int, float)):
            value = table.Leaf(*([value] * len(table.Leaf())))  # same on every CPU
        try:
            table[k] = value
        except Exception as e:                # BCC: "Could not update table: <strerror>"
            why = str(e).removeprefix("Could not update table: ")
            if "too long" in why:             # E2BIG: no room for a new key
                raise MapError(f"map {self.name} is full ({table.max_entries} entries): key {key!r} "
                               "was not added", hint="delete entries (del m[key], m.clear()) or declare the "
                               "map with more entries (an LRU hash evicts the oldest)") from None
            raise MapError(f"map {self.name}: the kernel refused to store key {key!r}: {why}") from None

    def __delitem__(self, key):
        table, k = self.table, self._key(key)
        try:
            del table[k]
        except KeyError:
            raise MapKeyError(f"key {key!r} is not in map {self.name}") from None

    def _check_value(self, value, leaf) -> None:
        rng = _int_range(leaf)
        if rng is None:
            return
        if not isinstance(value, int):
            raise UsageError(f"map {self.name} holds {_ctype_name(leaf)} integers, not {value!r}",
                             hint="store an int")
        if not rng[0] <= value <= rng[1]:
            raise UsageError(f"value {value} does not fit map {self.name}'s {_ctype_name(leaf)} values "
                             f"({rng[0]}..{rng[1]})", hint="the kernel would store it truncated")

    def _key(self, key):
        table = self.table
        if not isinstance(key, int):
            return key
        rng = _int_range(table.Key)
        if rng is not None:
            lo, hi = (0, min(rng[1], table.max_entries - 1)) if self._is_array() else rng
            if not lo <= key <= hi:
                what = "an array index" if self._is_array() else f"a {_ctype_name(table.Key)} key"
                raise MapKeyError(f"key {key} is out of range for map {self.name} "
                                  f"(accepted: {what} in {lo}..{hi})")
        return table.Key(key)

    def clear(self):
        if type(self.table).__name__ in ("Array", "PerCpuArray"):
            for k in self.table.keys():
                self.table[k] = self.table.Leaf()
        else:
            self.table.clear()

    def items(self, sum_cpus: bool = False):
        """(key, value) pairs; struct keys become named tuples (hashable, readable)."""
        for k, v in self.table.items():
            k = to_py(k)
            if isinstance(k, dict):
                k = _key_tuple(tuple(k))(**k)
            if self.percpu:
                v = _sum(v) if sum_cpus else [to_py(x) for x in v]
            else:
                v = to_py(v)
            yield k, v

    def to_dict(self, sum_cpus: bool = False) -> dict:
        return dict(self.items(sum_cpus))

    def to_numpy(self, sum_cpus: bool = True):
        """Values as an array (keys in map order): shape (n,) or (n, cpus) for scalars,
        a structured array for structs."""
        import numpy as np
        vals = [v for _, v in self.items(sum_cpus)]
        if vals and isinstance(vals[0], dict):
            fields = list(vals[0])
            return np.array([tuple(v[f] for f in fields) for v in vals],
                            dtype=[(f, np.uint64) for f in fields])
        return np.array(vals, dtype=np.uint64)

    def to_df(self, sum_cpus: bool = True):
        """A pandas DataFrame, one row a key (and a CPU, when not summed)."""
        import pandas as pd
        rows = []
        for k, v in self.items(sum_cpus):
            key = k
            if self.percpu and not sum_cpus:
                for cpu, x in enumerate(v):
                    rows.append({"key": key, "cpu": cpu, **(x if isinstance(x, dict) else {"value": x})})
            else:
                rows.append({"key": key, **(v if isinstance(v, dict) else {"value": v})})
        return pd.DataFrame(rows)

    def __repr__(self):
        if self.closed:
            return f"<Map {self.name} closed>"
        return f"<Map {self.name} ({type(self.table).__name__}, {len(list(self.table.keys()))} keys)>"

    def _repr_html_(self):
        if self.closed:
            return f"<b>map {self.name}</b>: closed"
        return f"<b>map {self.name}</b>{self.to_df().to_html(index=False)}"


_MAP_DECL = re.compile(r"\bBPF_(?:TABLE(?:_PINNED)?\s*\(\s*\"\w+\"\s*,[^,]+,[^,]+,\s*(\w+)"
                       r"|\w+\s*\(\s*(\w+))")


def _declared_maps(source: str):
    """Names of BCC maps declared in ``source`` (BPF_HASH(name, ...), BPF_TABLE(..., name, ...))."""
    for m in _MAP_DECL.finditer(source):
        yield m.group(1) or m.group(2)


def _exists(bpf, name: str) -> bool:
    from bcc import lib
    return lib.bpf_table_id(bpf.module, name.encode()) != ctypes.c_ulonglong(-1).value


#: map types whose BCC table does more than keys and values (perf/ring buffers, programs,
#: stack traces): these stay BCC tables (``Map``)
BCC_ONLY = {3, 4, 7, 27}
#: devmap, devmap hash, cpumap, xskmap: their values are kernel objects (the kernel takes no
#: BTF for them); the typed wrappers know them anyway (entries by interface, socket, CPU)
NO_BTF_NEEDED = {14, 16, 17, 25}


def typed(name: str, table):
    """``prog[name]`` of a BCC-dialect program: the map typed by its BTF (the same
    ``typedmaps`` class a libbpf program's map is, so code works on either dialect), with
    the BCC table at ``.table``. A map BCC made without BTF, or one whose table is more
    than a map (perf buffer, program array, ...), stays a ``Map`` over the BCC table."""
    fd = getattr(table, "map_fd", None)
    if isinstance(fd, int) and getattr(table, "ttype", None) not in BCC_ONLY:
        try:
            m = typedmaps.wrap(fd, name=name)
        except Exception:                 # not a map we can type: the BCC table as it is
            m = None
        if m is not None and (m.typed or m.map_type in NO_BTF_NEEDED):
            m._table = table
            return m
        if m is not None:
            m.close()
    return Map(name, table)


class Maps(Mapping):
    """The maps of a loaded program, by name (``typed``: BTF-typed, the BCC table at ``.table``)."""

    def __init__(self, bpf, source: str):
        self._bpf = bpf
        self._names = table_names(bpf) or [n for n in dict.fromkeys(_declared_maps(source)) if _exists(bpf, n)]
        self._cache = {}
        self._closed = ""

    def close(self, reason: str = "its program was closed") -> None:
        """Every map (also one already handed out) refuses use from now on."""
        self._closed = reason
        for m in self._cache.values():
            if isinstance(m, typedmaps.TypedMap):
                m._reopen_hint = f"{reason}; load the program again and use its maps"
                m.close()
            else:
                m._close(reason)

    def __getitem__(self, name):
        if self._closed:
            raise ClosedError(f"map {name}", "read or write it",
                              f"{self._closed}; load the program again and use its maps")
        if name not in self._cache:
            if name not in self._names:
                raise MapKeyError(f"no map {name!r}; this program has {', '.join(self._names) or 'none'}")
            self._cache[name] = typed(name, self._bpf.get_table(name.encode()))
        return self._cache[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)


@dataclass(frozen=True)
class Counters:
    """Packets and bytes per XDP action (summed over CPUs)."""

    packets: dict
    bytes: dict

    @classmethod
    def read(cls, maps: Maps) -> "Counters":
        if COUNTER_MAP not in maps:
            return cls({a: 0 for a in ACTIONS}, {a: 0 for a in ACTIONS})
        table = maps[COUNTER_MAP].table
        p, b = {}, {}
        for i, a in enumerate(ACTIONS):
            vals = table[table.Key(i)]
            p[a] = sum(v.packets for v in vals)
            b[a] = sum(v.bytes for v in vals)
        return cls(p, b)

    def __getitem__(self, action: str) -> int:
        return self.packets[action.upper().removeprefix("XDP_")]

    @property
    def total(self) -> int:
        return sum(self.packets.values())

    def __sub__(self, other: "Counters") -> "Counters":
        return Counters({a: self.packets[a] - other.packets[a] for a in ACTIONS},
                        {a: self.bytes[a] - other.bytes[a] for a in ACTIONS})

    def to_df(self):
        import pandas as pd
        return pd.DataFrame({"packets": self.packets, "bytes": self.bytes}).rename_axis("action")

    def __repr__(self):
        return "Counters(" + ", ".join(f"{a}={self.packets[a]}" for a in ACTIONS) + ")"

    def _repr_html_(self):
        cells = "".join(f"<td>{self.packets[a]}</td>" for a in ACTIONS)
        return ("<table><tr><th></th>" + "".join(f"<th>XDP_{a}</th>" for a in ACTIONS) +
                f"</tr><tr><th>packets</th>{cells}</tr></table>")
