"""libbpf-style C and compiled ELF objects, loaded through Debian's libbpf (libbpf.so.1).

A thin ctypes binding (the few libbpf calls xdplab needs) and the loaded-program class:

    prog = xdplab.load(LIBBPF_SOURCE)            # clang -O2 -g -target bpf, then libbpf
    prog = xdplab.Program.from_file("x.o").load()  # an object from anywhere
    prog.attach("xl-h1")                          # the same Link as BCC programs
    prog.object.programs                          # every program of the object (loaded together)
    prog.program("xdp_tail")                      # another one, sharing the maps
    prog.globals["limit"]                         # .rodata/.bss/.data variables
    prog.stats()                                  # runs and ns (BPF_ENABLE_STATS)

Why not PyPI's ``pylibbpf`` (0.0.6): it says of itself "not ready for production", ships
its own libbpf and libelf copies inside a manylinux wheel (not Debian's), pulls in
llvmlite, opens objects from a path only, and has no global data, print callback or static
linker. The calls below are libbpf 1.1's stable API (LIBBPF_0.x/1.0 symbols).
"""
from __future__ import annotations

import ctypes
import os
import re
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from .. import kernel
from ..errors import (Closable, ClosedError, CompileError, MapKeyError, NotSupported, UsageError, VerifierError,
                      XDPLabError)
from .program import DIALECT_LOADERS, Stats, XDPProgram
from . import dialects
from .dialects import bcc_markers
from . import explain
from .maps import Counters
from ..kernel.abi import ACTIONS
import errno
import mmap
from html import escape
from dataclasses import replace
from . import typedmaps
from . import capture
from .explain import _verifier_message
from .printk import PrintkStream
from .printk import new_tag

COUNTER_MAP = "xdplab_actions"
BPF_PROG_TYPE_XDP = 6
TRAMPOLINE_SECTIONS = ("fentry", "fexit", "fmod_ret", "freplace")
BPF_PROG_TYPE_SCHED_CLS = 3                # include/uapi/linux/bpf.h (TC programs typed, not loaded as XDP)
BPF_XDP_DEVMAP, BPF_XDP_CPUMAP = kernel.BPF_XDP_DEVMAP, kernel.BPF_XDP_CPUMAP
BPF_F_XDP_HAS_FRAGS = 1 << 5
BPF_F_XDP_DEV_BOUND_ONLY = 1 << 6      # device-bound: RX metadata kfuncs (xdplab.memory)
PERCPU_TYPES = {5, 6, 10, 21}         # PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH, PERCPU_CGROUP_STORAGE
MAP_TYPES = {1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash",
             6: "percpu_array", 9: "lru_hash", 10: "lru_percpu_hash", 11: "lpm_trie",
             12: "array_of_maps", 13: "hash_of_maps", 14: "devmap", 16: "cpumap", 17: "xskmap",
             22: "queue", 23: "stack", 25: "devmap_hash", 27: "ringbuf"}

_lib = None
_lock = threading.RLock()           # libbpf's print callback is global: one object operation at a time
_log: list[str] | None = None       # where the print callback collects (None: dropped)
_print_cb = None


def lib():
    """libbpf.so.1 with the prototypes used here (loaded once)."""
    global _lib, _print_cb
    if _lib is not None:
        return _lib
    try:
        L = ctypes.CDLL("libbpf.so.1", use_errno=True)
    except OSError as e:
        raise kernel.features.error("libbpf", f"libbpf.so.1 is missing ({e}); ./lab setup installs libbpf-dev") from None
    P, I, U, S, Z = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t
    protos = {
        "bpf_object__open_mem": (P, [P, Z, P]), "bpf_object__load": (I, [P]),
        "bpf_object__close": (None, [P]), "bpf_object__next_program": (P, [P, P]),
        "bpf_object__next_map": (P, [P, P]), "bpf_object__btf": (P, [P]), "bpf_object__name": (S, [P]),
        "bpf_program__name": (S, [P]), "bpf_program__section_name": (S, [P]), "bpf_program__fd": (I, [P]),
        "bpf_program__type": (I, [P]), "bpf_program__flags": (U, [P]),
        "bpf_program__expected_attach_type": (I, [P]), "bpf_program__set_expected_attach_type": (I, [P, I]),
        "bpf_program__set_log_buf": (I, [P, P, Z]),
        "bpf_map__name": (S, [P]), "bpf_map__fd": (I, [P]), "bpf_map__type": (I, [P]),
        "bpf_map__key_size": (U, [P]), "bpf_map__value_size": (U, [P]), "bpf_map__max_entries": (U, [P]),
        "bpf_map__btf_key_type_id": (U, [P]), "bpf_map__btf_value_type_id": (U, [P]),
        "bpf_map__is_internal": (ctypes.c_bool, [P]), "bpf_map__initial_value": (P, [P, ctypes.POINTER(Z)]),
        "btf__fd": (I, [P]), "btf__type_by_id": (P, [P, U]), "btf__name_by_offset": (S, [P, U]),
        "btf__raw_data": (P, [P, ctypes.POINTER(U)]), "btf__type_cnt": (U, [P]),
        "bpf_enable_stats": (I, [I]),
        "bpf_linker__new": (P, [S, P]), "bpf_linker__add_file": (I, [P, S, P]),
        "bpf_linker__finalize": (I, [P]), "bpf_linker__free": (None, [P]),
        "libbpf_set_print": (P, [P]),
        "bpf_program__insns": (P, [P]), "bpf_program__insn_cnt": (Z, [P]),
        "bpf_program__set_ifindex": (None, [P, U]), "bpf_program__set_flags": (I, [P, U]),
        "bpf_program__set_type": (I, [P, I]), "bpf_program__set_autoload": (I, [P, ctypes.c_bool]),
        "bpf_map__pin_path": (S, [P]), "bpf_map__set_pin_path": (I, [P, S]),
        "bpf_map__set_max_entries": (I, [P, U]),
        "btf__load_vmlinux_btf": (P, []), "btf__find_by_name_kind": (I, [P, S, U]), "btf__free": (None, [P]),
    }
    for name, (res, args) in protos.items():
        fn = getattr(L, name)
        fn.restype, fn.argtypes = res, args
    libc = ctypes.CDLL(None)
    vsnprintf = libc.vsnprintf
    vsnprintf.restype, vsnprintf.argtypes = ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    buf = ctypes.create_string_buffer(1 << 16)

    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
    def _print(level, fmt, args):                     # x86_64: va_list arrives as a pointer
        if _log is None or level > 1:                 # silent, and no DEBUG chatter
            return 0
        vsnprintf(buf, len(buf), fmt, args)
        _log.append(buf.value.decode(errors="replace"))
        return 0

    _print_cb = _print               # installed around each object operation (_Capture)
    _lib = L
    return L


class _Capture:
    """Collect what libbpf prints while the body runs (nothing reaches the terminal)."""

    def __enter__(self):
        global _log
        _lock.acquire()
        self.lines, _log = [], []
        self._mine = _log
        # BCC's libbcc uses this same libbpf.so.1 and installs its own print function when
        # it compiles: take it over for this call, and give it back after
        L = lib()
        self._prev = L.libbpf_set_print(ctypes.cast(_print_cb, ctypes.c_void_p))
        return self

    def __exit__(self, *exc):
        global _log
        lib().libbpf_set_print(self._prev)           # None: libbpf's default (stderr)
        self.lines, _log = self._mine, None
        _lock.release()

    @property
    def text(self) -> str:
        return "".join(self.lines)


class ObjectError(XDPLabError):
    """libbpf could not open or load an object (not the verifier: a map definition, a
    relocation, CO-RE, BTF). ``log`` holds what libbpf said."""

    def __init__(self, message: str, log: str = "", hint: str = ""):
        self.log = log
        super().__init__(message, hint)


def _errno_text(ret: int) -> str:
    err = -ret if ret < 0 else ctypes.get_errno()
    return f"{os.strerror(err)} [errno {err}]"


# --- BTF (just enough for global variables; xdplab's typed maps read the raw BTF) -------------

_KIND_INT, _KIND_PTR, _KIND_ARRAY, _KIND_STRUCT, _KIND_UNION, _KIND_ENUM = 1, 2, 3, 4, 5, 6
_KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST, _KIND_RESTRICT = 8, 9, 10, 11
_KIND_VAR, _KIND_DATASEC, _KIND_TYPE_TAG = 14, 15, 18


def _btf_type(btf, tid: int) -> tuple[int, int, int, int, int]:
    """(kind, vlen, name_off, size_or_type, address) of type ``tid``."""
    p = lib().btf__type_by_id(btf, tid)
    name_off, info, size = struct.unpack("=III", ctypes.string_at(p, 12))
    return (info >> 24) & 0x1f, info & 0xffff, name_off, size, p


def _resolve(btf, tid: int):
    """Skip typedef/volatile/const/restrict/type_tag: (kind, type id, info tuple)."""
    while True:
        kind, vlen, name_off, size, p = _btf_type(btf, tid)
        if kind in (_KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST, _KIND_RESTRICT, _KIND_TYPE_TAG):
            tid = size
            continue
        return kind, tid, (vlen, name_off, size, p)


@dataclass
class Var:
    """A global variable of a data section: where it lives and how to show it."""
    name: str
    section: str           # .rodata, .bss, .data (or .data.NAME / .rodata.NAME)
    offset: int
    size: int
    signed: bool | None    # an integer (True/False), or None: shown as bytes


class Globals(Mapping):
    """The object's global variables by name. Before load they set initial values;
    after load they read (and for .bss/.data write) the live values through the
    data maps libbpf mmaps. ``.rodata`` is frozen at load: setting it later is refused."""

    def __init__(self, obj: "Object"):
        self._obj = obj
        self._vars: dict[str, tuple[Var, int]] = {}     # name -> (var, map pointer)
        self._live = {}
        btf = obj._btf
        for mp, msec in obj._internal_maps():
            if btf is None:
                continue
            from_sec = _find_datasec(btf, msec)
            if from_sec is None:
                continue
            vlen, _, _, p = from_sec
            for i in range(vlen):
                vtype, off, size = struct.unpack_from("=III", ctypes.string_at(p + 12 + 12 * i, 12))
                kind, vlen2, name_off, vt, vp = _btf_type(btf, vtype)
                if kind != _KIND_VAR:
                    continue
                name = lib().btf__name_by_offset(btf, name_off).decode()
                rk, _, (rvlen, _, rsize, rp) = _resolve(btf, vt)
                signed = None
                if rk == _KIND_INT:
                    (enc,) = struct.unpack("=I", ctypes.string_at(rp + 12, 4))
                    signed = bool((enc >> 24) & 1)
                elif rk == _KIND_ENUM:
                    signed = True
                self._vars[name] = (Var(name, msec, off, size, signed), mp)

    def _mm(self, mp):
        """The kernel's data map, mmapped (libbpf 1.1 maps it only for skeletons)."""
        mm = self._live.get(mp)
        if mm is None:
            fd, size = lib().bpf_map__fd(mp), lib().bpf_map__value_size(mp)
            ro = ".rodata" in lib().bpf_map__name(mp).decode()
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ if ro else mmap.PROT_READ | mmap.PROT_WRITE)
            self._live[mp] = mm
        return mm

    def _initial(self, mp) -> tuple[int, int]:
        n = ctypes.c_size_t(0)
        addr = lib().bpf_map__initial_value(mp, ctypes.byref(n))
        if not addr:
            raise XDPLabError("libbpf gives no access to this data section")
        return addr, n.value

    def _read(self, mp, off: int, size: int) -> bytes:
        if self._obj.loaded:
            return bytes(self._mm(mp)[off:off + size])
        addr, _ = self._initial(mp)
        return ctypes.string_at(addr + off, size)

    def _write(self, mp, off: int, raw: bytes) -> None:
        if self._obj.loaded:
            self._mm(mp)[off:off + len(raw)] = raw
            return
        addr, _ = self._initial(mp)
        ctypes.memmove(addr + off, raw, len(raw))

    def close(self):
        for mm in self._live.values():
            mm.close()
        self._live.clear()

    def var(self, name: str) -> Var:
        if name not in self._vars:
            raise MapKeyError(f"no global variable {name!r}; this object has {', '.join(self._vars) or 'none'}",
                              hint="globals are the object's .rodata/.bss/.data variables")
        return self._vars[name][0]

    def __getitem__(self, name):
        self._obj._check()
        v = self.var(name)
        raw = self._read(self._vars[name][1], v.offset, v.size)
        if v.signed is not None and v.size in (1, 2, 4, 8):
            return int.from_bytes(raw, "little", signed=v.signed)
        return raw

    def __setitem__(self, name, value):
        self._obj._check()
        v = self.var(name)
        mp = self._vars[name][1]
        if self._obj.loaded and v.section.startswith(".rodata"):
            raise XDPLabError(f"{name} is in {v.section}, which the kernel froze at load",
                              hint="set read-only globals before loading: Program(..., globals={...}), "
                                   "or make it non-const (.bss/.data can change at run time)")
        if isinstance(value, int):
            if v.signed is None and v.size not in (1, 2, 4, 8):
                raise UsageError(f"{name} is {v.size} bytes, not an integer", hint="assign bytes")
            try:
                raw = value.to_bytes(v.size, "little", signed=bool(v.signed) or value < 0)
            except OverflowError:
                raise UsageError(f"{value} does not fit {name} ({v.size} bytes)") from None
        elif isinstance(value, (bytes, bytearray)):
            if len(value) > v.size:
                raise UsageError(f"{len(value)} bytes do not fit {name} ({v.size} bytes)")
            raw = bytes(value).ljust(v.size, b"\0")
        else:
            raise UsageError(f"cannot store {type(value).__name__} in {name}", hint="an int or bytes")
        self._write(mp, v.offset, raw)

    def __iter__(self):
        return iter(self._vars)

    def __len__(self):
        return len(self._vars)

    def __repr__(self):
        try:
            return "Globals(" + ", ".join(f"{k}={self[k]!r}" for k in self._vars) + ")"
        except XDPLabError:
            return f"Globals({', '.join(self._vars)})"


_KIND_FUNC, _KIND_FUNC_PROTO = 12, 13


def _context_struct(btf, func: str) -> str | None:
    """The struct name behind the first argument of BTF function ``func``
    (``int f(struct xdp_md *ctx)`` -> "xdp_md"), or None."""
    L = lib()
    for tid in range(1, L.btf__type_cnt(btf)):
        kind, vlen, name_off, size, p = _btf_type(btf, tid)
        if kind != _KIND_FUNC or L.btf__name_by_offset(btf, name_off).decode() != func:
            continue
        pk, pvlen, _, _, pp = _btf_type(btf, size)
        if pk != _KIND_FUNC_PROTO or not pvlen:
            return None
        _, arg = struct.unpack("=II", ctypes.string_at(pp + 12, 8))
        k, _, (_, _, target, _) = _resolve(btf, arg)
        if k != _KIND_PTR:
            return None
        k, _, (_, sname, _, _) = _resolve(btf, target)
        return L.btf__name_by_offset(btf, sname).decode() if k == _KIND_STRUCT else None
    return None


def _find_datasec(btf, section: str):
    for tid in range(1, lib().btf__type_cnt(btf)):
        kind, vlen, name_off, size, p = _btf_type(btf, tid)
        if kind == _KIND_DATASEC and lib().btf__name_by_offset(btf, name_off).decode() == section:
            return vlen, name_off, size, p
    return None


# --- maps ------------------------------------------------------------------------------

@dataclass(frozen=True)
class MapRef:
    """One map of a loaded object, for typed wrappers (xdplab's BTF maps plug in here)."""
    name: str
    fd: int
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    btf_key_type_id: int
    btf_value_type_id: int


class RawMap:
    """A map of a libbpf object by fd: keys and values as ints (4/8-byte ones) or bytes.
    Per-CPU maps give one value per CPU (``sum_cpus=True`` adds them up)."""

    def __init__(self, ref: MapRef, obj: "Object"):
        self.ref, self._obj, self.name = ref, obj, ref.name
        self.percpu = ref.map_type in PERCPU_TYPES
        self._ncpu = kernel.possible_cpus() if self.percpu else 1

    @property
    def fd(self) -> int:
        return self.ref.fd

    def _k(self, key) -> bytes:
        if isinstance(key, int):
            return key.to_bytes(self.ref.key_size, "little")
        if hasattr(key, "fd") and self.ref.map_type == 3:            # a program, for a PROG_ARRAY
            key = key.fd
        return bytes(key)

    def _v(self, value) -> bytes:
        if hasattr(value, "fd") and self.ref.map_type in (3,):      # PROG_ARRAY: a program
            value = value.fd
        if isinstance(value, int):
            one = value.to_bytes(self.ref.value_size, "little", signed=value < 0)
            if self.percpu:
                return one.ljust(_round8(self.ref.value_size), b"\0") * self._ncpu
            return one
        return bytes(value)

    def _decode(self, raw: bytes):
        if self.percpu:
            step = _round8(self.ref.value_size)
            return [self._one(raw[i * step:i * step + self.ref.value_size]) for i in range(self._ncpu)]
        return self._one(raw)

    def _one(self, raw: bytes):
        return int.from_bytes(raw, "little") if len(raw) in (1, 2, 4, 8) else raw

    def __getitem__(self, key):
        self._obj._check()
        size = _round8(self.ref.value_size) * self._ncpu if self.percpu else self.ref.value_size
        raw = kernel.map_lookup(self.ref.fd, self._k(key), size)
        if raw is None:
            raise MapKeyError(f"{self.name}: no key {key!r}")
        return self._decode(raw)

    def __setitem__(self, key, value):
        self._obj._check()
        kernel.map_update(self.ref.fd, self._k(key), self._v(value))

    def __delitem__(self, key):
        self._obj._check()
        if not kernel.map_delete(self.ref.fd, self._k(key)):
            raise MapKeyError(f"{self.name}: no key {key!r}")

    def keys(self):
        self._obj._check()
        prev = None
        while True:
            k = _next_key(self.ref.fd, prev, self.ref.key_size)
            if k is None:
                return
            yield int.from_bytes(k, "little") if self.ref.key_size in (1, 2, 4, 8) else k
            prev = k

    def items(self, sum_cpus: bool = False):
        for k in self.keys():
            try:
                v = self[k]
            except (KeyError, OSError):
                continue
            if self.percpu and sum_cpus and all(isinstance(x, int) for x in v):
                v = sum(v)
            yield k, v

    def to_dict(self, sum_cpus: bool = False) -> dict:
        return dict(self.items(sum_cpus))

    def __repr__(self):
        return (f"<Map {self.name} ({MAP_TYPES.get(self.ref.map_type, self.ref.map_type)}, "
                f"key {self.ref.key_size} B, value {self.ref.value_size} B)>")


def _round8(n: int) -> int:
    return (n + 7) & ~7


_next_key = kernel.map_next_key          # BPF_MAP_GET_NEXT_KEY (kernel layer)


class Maps(Mapping):
    """The maps of an object, by name (``.rodata`` & co. are under ``prog.globals``)."""

    def __init__(self, obj: "Object", owner=None):
        self._obj = obj
        internal = {lib().bpf_map__name(m).decode() for m, _ in obj._internal_maps()}
        self._maps = {r.name: _typed(r, obj, owner) for r in obj.map_refs()
                      if r.name not in internal and not r.name.startswith(".")}

    def close(self, why: str = "") -> None:
        for m in self._maps.values():
            if hasattr(m, "close"):
                m.close()

    def __getitem__(self, name):
        if name not in self._maps:
            raise MapKeyError(f"no map {name!r}; this program has {', '.join(self._maps) or 'none'}")
        return self._maps[name]

    def __iter__(self):
        return iter(self._maps)

    def __len__(self):
        return len(self._maps)


def _typed(ref: MapRef, obj: "Object", owner=None):
    """A typed map (``xdplab.typedmaps``: keys and values decoded through the object's
    BTF) when that module is there, else a RawMap (ints and bytes)."""
    if ref.map_type == 3:                 # PROG_ARRAY: RawMap takes programs as values
        return RawMap(ref, obj)
    try:
        pass
    except ImportError:
        return RawMap(ref, obj)
    try:
        return typedmaps.from_ref(ref, obj.btf_raw(), owner=owner)
    except Exception:                     # a map type it does not wrap: plain ints/bytes
        return RawMap(ref, obj)


# --- the object ------------------------------------------------------------------------

@dataclass(frozen=True)
class ProgRef:
    name: str
    section: str
    fd: int
    prog_type: int
    flags: int
    expected_attach_type: int


class Object(Closable):
    """A libbpf ``bpf_object``: all programs of one ELF, loaded together, sharing maps.

    ``Object(elf_bytes, name)`` opens it (nothing in the kernel yet); ``globals`` can be
    set; ``load()`` creates the maps and loads every program (the verifier runs here)."""

    _close_when_collected = True

    def __init__(self, elf: bytes, name: str = "prog"):
        L = lib()
        self._elf = ctypes.create_string_buffer(elf, len(elf))     # libbpf reads it until load
        self.name = re.sub(r"[^\w]", "_", name)[:32] or "prog"
        self.loaded = self._closed = False
        self._logbufs = {}

        class _Opts(ctypes.Structure):
            _fields_ = [("sz", ctypes.c_size_t), ("object_name", ctypes.c_char_p),
                        ("rest", ctypes.c_char * 64)]
        opts = _Opts(ctypes.sizeof(_Opts), self.name.encode())
        with _Capture() as cap:
            ctypes.set_errno(0)
            ptr = L.bpf_object__open_mem(self._elf, len(elf), ctypes.byref(opts))
            err = ctypes.get_errno()
        if not ptr:
            raise ObjectError(f"libbpf could not open {name}: {os.strerror(err) if err else 'invalid object'}"
                              + _last(cap.text), log=cap.text, hint=explain.open_hint(cap.text))
        self._ptr = ptr
        self.open_log = cap.text
        self._btf = L.bpf_object__btf(ptr) or None
        #: programs whose section libbpf 1.x no longer knows, typed here: name -> why
        self.typed_by_xdplab = {}
        #: maps declared with LIBBPF_PIN_BY_NAME: not pinned (no pin left behind)
        self.unpinned = []
        for m in self._maps():
            if L.bpf_map__pin_path(m):
                self.unpinned.append(L.bpf_map__name(m).decode())
                L.bpf_map__set_pin_path(m, None)
        #: programs that need BPF trampolines (fentry/fexit/freplace/fmod_ret): name -> section
        self.trampoline_programs = {}
        for p in self._progs():
            if L.bpf_program__type(p) == 0:          # BPF_PROG_TYPE_UNSPEC: section unknown to libbpf 1.x
                self._infer_type(p)
            sec = L.bpf_program__section_name(p).decode()
            if sec.split("/")[0].removesuffix(".s") in TRAMPOLINE_SECTIONS:
                self.trampoline_programs[L.bpf_program__name(p).decode()] = sec
            if L.bpf_program__section_name(p).decode() in ("xdp", "xdp.frags"):
                # libbpf would say BPF_XDP; BCC (and ip link) load with 0, and BPF_LINK_UPDATE
                # swaps only programs of equal expected_attach_type: use 0, so a cell can move
                # between dialects on the same link (XDP attaches either way)
                L.bpf_program__set_expected_attach_type(p, 0)
            buf = ctypes.create_string_buffer(1 << 20)
            self._logbufs[L.bpf_program__name(p).decode()] = buf
            L.bpf_program__set_log_buf(p, buf, len(buf))
        self.not_loaded: dict[str, str] = {}
        self.globals = Globals(self)

    def _infer_type(self, p) -> None:
        """Type a program whose section libbpf 1.x does not know, the way libbpf 0.x and
        loaders such as ``ip link ... sec NAME`` did: a section starting with ``xdp``
        (``xdp1``, ``xdp_stats1``, ``xdp/pass``; ``xdp_devmap``/``xdp_cpumap`` prefixes run
        from a map entry), else the type of its context argument in the object's BTF
        (``struct xdp_md *`` -> XDP, ``struct __sk_buff *`` -> TC). Left untyped otherwise:
        libbpf's load then names the section."""
        L = lib()
        sec = L.bpf_program__section_name(p).decode()
        name = L.bpf_program__name(p).decode()
        ptype, attach = None, 0
        for prefix, at in (("xdp_devmap", BPF_XDP_DEVMAP), ("xdp/devmap", BPF_XDP_DEVMAP),
                           ("xdp_cpumap", BPF_XDP_CPUMAP), ("xdp/cpumap", BPF_XDP_CPUMAP)):
            if sec.startswith(prefix):
                ptype, attach = BPF_PROG_TYPE_XDP, at
                why = f"section {sec!r}: an XDP program run from a {prefix[4:]} entry"
                break
        else:
            ctx = _context_struct(self._btf, name) if self._btf is not None else None
            if ctx == "xdp_md" or (ctx is None and sec.startswith("xdp")):
                ptype, why = BPF_PROG_TYPE_XDP, (f"section {sec!r}, argument struct xdp_md *" if ctx
                                                 else f"section {sec!r} starts with 'xdp'")
            elif ctx == "__sk_buff":
                ptype, why = BPF_PROG_TYPE_SCHED_CLS, f"section {sec!r}, argument struct __sk_buff *"
        if ptype is None:
            return
        L.bpf_program__set_type(p, ptype)
        L.bpf_program__set_expected_attach_type(p, attach)
        self.typed_by_xdplab[name] = why

    def set_max_entries(self, sizes) -> None:
        """Size maps before load (``Program(map_sizes={"rx_cnt": 4})``), as a loader does
        with bpf_map__set_max_entries for maps its object leaves at 0."""
        L = lib()
        if not sizes:
            return
        if not isinstance(sizes, Mapping):
            raise UsageError(f"map_sizes={sizes!r} is not a mapping", hint='map_sizes={"rx_cnt": 4}')
        maps = {L.bpf_map__name(m).decode(): m for m in self._maps()}
        for name, n in sizes.items():
            if name not in maps:
                raise UsageError(f"map_sizes: no map {name!r} in this object",
                                 hint="maps: " + ", ".join(n for n in maps if not n.startswith(".")))
            if not isinstance(n, int) or isinstance(n, bool) or not 0 < n < 1 << 32:
                raise UsageError(f"map_sizes[{name!r}] = {n!r}: max_entries is an integer 1..2**32-1")
            L.bpf_map__set_max_entries(maps[name], n)

    def check_sizes(self) -> None:
        """Maps the object leaves at max_entries 0 (its loader sizes them: samples/bpf's
        per-CPU record arrays) are a UsageError naming them, before the kernel refuses them."""
        L = lib()
        unsized = [L.bpf_map__name(m).decode() for m in self._maps()
                   if L.bpf_map__max_entries(m) == 0 and L.bpf_map__type(m) != 4   # PERF_EVENT_ARRAY: libbpf sizes it
                   and not L.bpf_map__is_internal(m)]
        if unsized:
            raise UsageError(f"map{'s' if len(unsized) > 1 else ''} {', '.join(unsized)} of {self.name} "
                             "declare no max_entries: the program's own loader sizes them before load "
                             "(bpf_map__set_max_entries)",
                             hint="pass map_sizes={" + ", ".join(f"{n!r}: N" for n in unsized) + "} "
                                  "(for per-CPU record arrays N is usually the number of CPUs, "
                                  f"{kernel.possible_cpus()} here)")

    def skip_trampoline_programs(self, origin: str) -> None:
        """fentry/fexit/freplace/fmod_ret programs attach through BPF trampolines, which
        this machine refuses (EPERM) and xdplab never uses: next to XDP programs they are
        not loaded (``not_loaded`` says so); an object with nothing else is refused here,
        before anything reaches the kernel."""
        L = lib()
        if not self.trampoline_programs:
            return
        xdp = [L.bpf_program__name(p).decode() for p in self._progs()
               if L.bpf_program__type(p) == BPF_PROG_TYPE_XDP]
        listed = ", ".join(f"{n} ({s})" for n, s in self.trampoline_programs.items())
        if not xdp:
            raise ObjectError(
                f"{origin} has no XDP program: {listed} attach through BPF trampolines "
                "(fentry/fexit), which this kernel refuses here (EPERM), and they trace another "
                "program that their loader names at load time", log=self.open_log,
                hint="xdplab loads XDP programs (and their tail-call targets); to watch a program "
                     "without trampolines use prog.stats(), prog.run(), capture= or the drop detector")
        for p in self._progs():
            if L.bpf_program__name(p).decode() in self.trampoline_programs:
                L.bpf_program__set_autoload(p, False)
        self.not_loaded = {n: f"{s}: needs BPF trampolines (refused here)"
                           for n, s in self.trampoline_programs.items()}

    def skip_missing_tracepoints(self) -> None:
        """``tp_btf/NAME`` programs next to XDP ones (samples/bpf's statistics) whose
        tracepoint this kernel does not have (they come and go between releases: 6.18 has no
        xdp_redirect_map_err): not loaded, ``not_loaded`` says why, instead of failing the
        whole object."""
        L = lib()
        tps = {L.bpf_program__name(p).decode(): (p, L.bpf_program__section_name(p).decode())
               for p in self._progs() if L.bpf_program__section_name(p).decode().startswith("tp_btf/")}
        if not tps:
            return
        ctypes.set_errno(0)
        vmlinux = L.btf__load_vmlinux_btf()
        if not vmlinux:
            return
        try:
            for name, (p, sec) in tps.items():
                tp = sec.split("/", 1)[1]
                if L.btf__find_by_name_kind(vmlinux, f"btf_trace_{tp}".encode(), _KIND_TYPEDEF) < 0:
                    L.bpf_program__set_autoload(p, False)
                    self.not_loaded[name] = f"{sec}: this kernel ({os.uname().release}) has no tracepoint {tp}"
        finally:
            L.btf__free(vmlinux)

    def _check(self):
        if self._closed:
            raise ClosedError(f"object {self.name}", hint="load it again")

    def _progs(self):
        L, p = lib(), None
        while True:
            p = L.bpf_object__next_program(self._ptr, p)
            if not p:
                return
            yield p

    def _maps(self):
        L, m = lib(), None
        while True:
            m = L.bpf_object__next_map(self._ptr, m)
            if not m:
                return
            yield m

    def _internal_maps(self):
        """(map pointer, section name) of .rodata/.bss/.data (and .data.X, .rodata.X)."""
        L = lib()
        for m in self._maps():
            if L.bpf_map__is_internal(m):
                name = L.bpf_map__name(m).decode()
                sec = name[name.index("."):] if "." in name else name
                if sec.startswith((".rodata", ".bss", ".data")) and sec != ".kconfig":
                    yield m, sec

    def program_names(self) -> list[tuple[str, str]]:
        """(function name, section) of every program, in the object's order."""
        L = lib()
        return [(L.bpf_program__name(p).decode(), L.bpf_program__section_name(p).decode()) for p in self._progs()]

    def load(self) -> None:
        """Create the maps, load every program; raise the verifier's or libbpf's error."""
        self._check()
        with _Capture() as cap:
            ret = lib().bpf_object__load(self._ptr)
        self.load_log = cap.text
        if ret:
            failed = _failed_prog(cap.text)
            vlog = self._logbufs.get(failed).value.decode(errors="replace") if failed in self._logbufs else ""
            raise _LoadFailure(ret, failed, vlog, cap.text)
        self.loaded = True
        self._elf = None

    @property
    def programs(self) -> dict[str, ProgRef]:
        self._check()
        L, out = lib(), {}
        for p in self._progs():
            n = L.bpf_program__name(p).decode()
            out[n] = ProgRef(n, L.bpf_program__section_name(p).decode(), L.bpf_program__fd(p),
                             L.bpf_program__type(p), L.bpf_program__flags(p),
                             L.bpf_program__expected_attach_type(p))
        return out

    def map_refs(self) -> list[MapRef]:
        """(name, fd, map_type, key_size, value_size, max_entries, btf key/value type ids)
        of every map (after load)."""
        self._check()
        L = lib()
        return [MapRef(L.bpf_map__name(m).decode(), L.bpf_map__fd(m), L.bpf_map__type(m),
                       L.bpf_map__key_size(m), L.bpf_map__value_size(m), L.bpf_map__max_entries(m),
                       L.bpf_map__btf_key_type_id(m), L.bpf_map__btf_value_type_id(m))
                for m in self._maps()]

    def btf_raw(self) -> bytes | None:
        """The object's BTF (raw .BTF bytes), for decoding map keys and values."""
        if self._btf is None:
            return None
        n = ctypes.c_uint32(0)
        p = lib().btf__raw_data(self._btf, ctypes.byref(n))
        return ctypes.string_at(p, n.value) if p else None

    @property
    def btf_fd(self) -> int:
        return lib().btf__fd(self._btf) if self._btf is not None else -1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.globals.close()
        with _Capture():
            lib().bpf_object__close(self._ptr)
        self._ptr = None


class _LoadFailure(Exception):
    def __init__(self, ret, prog, vlog, log):
        self.ret, self.prog, self.vlog, self.log = ret, prog, vlog, log


def _failed_prog(text: str) -> str | None:
    m = re.search(r"prog '(\w+)': (?:failed to load|BPF program load failed)", text)
    return m.group(1) if m else None


def _last(text: str) -> str:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return f" ({lines[-1].removeprefix('libbpf: ')})" if lines else ""


# --- run-time statistics ---------------------------------------------------------------

#: binds an opened object's XDP programs to a device (load(..., bind_to=dev)): registered
#: by xdplab.tools.memory, which owns the RX-metadata kfunc probes
DEVICE_BINDER = None
StatsHold = kernel.StatsHold              # BPF_ENABLE_STATS while a program that reports its statistics lives
prog_stats = kernel.prog_stats            # run_cnt, run_time_ns, ... (OBJ_GET_INFO_BY_FD)


# --- counters for an object without source: a bpf-to-bpf call wrapper -------------------

def wrapper_insns(map_fd: int) -> bytes:
    """A program that calls the instructions appended after it (BPF_PSEUDO_CALL: the
    user's program becomes a subprogram with a stack frame of its own), then counts the
    action it returned in ``map_fd`` (per-CPU array of {packets, bytes}) and returns it.
    A tail call in the user's program returns here too (the callee replaces the frame)."""
    w = [
        kernel.insn(0xbf, 6, 1),                # r6 = r1 (ctx, callee-saved across the call)
        kernel.insn(0x85, 0, 1, 0, 22),         # call the user's program (pc + 1 + 22 = insn 24)
        kernel.insn(0xbf, 7, 0),                # r7 = r0 (the action)
        kernel.insn(0xbf, 1, 7),                # r1 = r7
        kernel.insn(0xa5, 1, 0, 1, 5),          # if r1 < 5 goto +1
        kernel.insn(0xb7, 1, 0, 0, 0),          # r1 = 0 (unknown actions count as ABORTED)
        kernel.insn(0x63, 10, 1, -4),           # *(u32 *)(r10 - 4) = r1
        *kernel.count_frame_insns(map_fd),  # add the frame to the action's {packets, bytes}
        kernel.insn(0xbf, 0, 7),                # out: r0 = r7
        kernel.insn(0x95),                      # exit
    ]
    assert len(w) == 24
    return b"".join(w)


def _func_info(prog_fd: int) -> list[tuple[int, int]]:
    """(insn_off, BTF FUNC type id) of a loaded program's functions (bpf_prog_info)."""
    info = ctypes.create_string_buffer(256)
    kernel.obj_info(prog_fd, len(info), info)
    rec_size, = struct.unpack_from("=I", info, 132)
    n, = struct.unpack_from("=I", info, 144)
    if not n or rec_size < 8:
        return []
    buf = ctypes.create_string_buffer(n * rec_size)
    info = ctypes.create_string_buffer(256)
    struct.pack_into("=IQI", info, 132, rec_size, ctypes.addressof(buf), n)
    kernel.obj_info(prog_fd, len(info), info)
    return [struct.unpack_from("=II", buf, i * rec_size) for i in range(n)]


def _prog_load_raw(insns: bytes, name: str, gpl: bool, flags: int, btf_fd: int = 0,
                   func_info: list = ()) -> tuple[int, str]:
    """BPF_PROG_LOAD (XDP, expected_attach_type 0) of raw instructions, with BTF function
    info when given: (fd or -1, the verifier's log)."""
    lic = ctypes.create_string_buffer(b"GPL" if gpl else b"Proprietary")
    code = ctypes.create_string_buffer(insns, len(insns))
    log = ctypes.create_string_buffer(1 << 20)
    fi = b"".join(struct.pack("=II", off, tid) for off, tid in func_info)
    fib = ctypes.create_string_buffer(fi, max(len(fi), 1))
    attr = kernel.bpf_attr("=IIQQIIQII16sIIIIQIIQII", BPF_PROG_TYPE_XDP, len(insns) // 8,
                         ctypes.addressof(code), ctypes.addressof(lic), 1, len(log), ctypes.addressof(log),
                         0, flags, name.encode()[:15], 0, 0,
                         btf_fd if func_info else 0, 8 if func_info else 0,
                         ctypes.addressof(fib) if func_info else 0, len(func_info), 0, 0, 0, 0)
    try:
        return kernel.bpf(kernel.BPF_PROG_LOAD, attr, "PROG_LOAD"), ""
    except kernel.BPFError as e:
        return -1, log.value.decode(errors="replace") or str(e)


def wrap_object_program(obj: "Object", name: str, frags: bool) -> tuple[int, int, str]:
    """Counters for a program of an object without source: load ``wrapper_insns`` + the
    program's final instructions (libbpf's, relocated: map fds, CO-RE) as a new program.
    Returns (prog fd, counter map fd, "") or (-1, -1, why it could not)."""
    L = lib()
    p = next((p for p in obj._progs() if L.bpf_program__name(p).decode() == name), None)
    n = L.bpf_program__insn_cnt(p) if p else 0
    addr = L.bpf_program__insns(p) if p else None
    if not n or not addr:
        return -1, -1, "libbpf kept no instructions of the program"
    user = ctypes.string_at(addr, n * 8)
    gpl = prog_stats(L.bpf_program__fd(p))["gpl_compatible"]
    map_fd = kernel.map_create(6, 4, 16, 5, name=COUNTER_MAP)       # PERCPU_ARRAY of {packets, bytes}
    orig_fd = L.bpf_program__fd(p)
    funcs = _func_info(orig_fd) if obj.btf_fd >= 0 else []
    # BTF function info (the kernel wants it for a subprogram that tail-calls): the
    # wrapper shares the user's FUNC type (same signature), the user's functions move by 24
    finfo = [(0, funcs[0][1])] + [(off + 24, tid) for off, tid in funcs] if funcs else []
    fd, log = _prog_load_raw(wrapper_insns(map_fd) + user, name, gpl, BPF_F_XDP_HAS_FRAGS if frags else 0,
                             obj.btf_fd, finfo)
    if fd < 0:
        os.close(map_fd)
        return -1, -1, "the verifier refused the counting wrapper: " + _verifier_message(log)
    return fd, map_fd, ""


def capture_object_program(prog, obj: "Object", name: str, spec, count: bool) -> None:
    """Capture at entry/exit for a libbpf-loaded program (source or object, no
    trampolines): capture.libbpf_wrapper's C, compiled and relocated by libbpf, spliced in
    front of the program's final instructions (capture.splice), loaded as a new program
    that ``prog`` then runs as (attach, run). ``count``: the wrapper also counts actions."""
    L = lib()
    p = next((p for p in obj._progs() if L.bpf_program__name(p).decode() == name), None)
    n = L.bpf_program__insn_cnt(p) if p else 0
    addr = L.bpf_program__insns(p) if p else None
    if not n or not addr:
        raise XDPLabError(f"cannot capture {name}: libbpf kept no instructions of the program")
    orig_fd = L.bpf_program__fd(p)
    if not prog_stats(orig_fd)["gpl_compatible"]:
        raise UsageError(f"capture={spec.capture!r}: {name}'s license is not GPL-compatible",
                         hint="the capture wrapper runs as part of the program and needs "
                              "bpf_perf_event_output, a GPL-only helper: load it without capture=, "
                              "or with a GPL-compatible license")
    user = ctypes.string_at(addr, n * 8)
    compiled, out, _ = dialects.compile_c(capture.libbpf_wrapper(spec, "xdplab_capture", count),
                                          "xdplab_capture.c")
    if compiled is None:
        raise XDPLabError(f"the capture wrapper did not compile (an xdplab bug): {out}")
    wobj = Object(compiled.elf, "xdplab_cap")
    try:
        try:
            wobj.load()
        except _LoadFailure as f:
            raise XDPLabError(f"the capture wrapper did not load (an xdplab bug): {f.vlog or f.log}") from None
        wp = next(wobj._progs())
        head = capture.splice(ctypes.string_at(L.bpf_program__insns(wp), L.bpf_program__insn_cnt(wp) * 8))
        funcs = _func_info(orig_fd) if obj.btf_fd >= 0 else []
        shift = len(head) // 8
        finfo = [(0, funcs[0][1])] + [(off + shift, tid) for off, tid in funcs] if funcs else []
        fd, log = _prog_load_raw(head + user, name, True, BPF_F_XDP_HAS_FRAGS if prog.frags else 0,
                                 obj.btf_fd, finfo)
        if fd < 0:
            raise VerifierError(f"the kernel refused {name} with the capture wrapper in front: "
                                + _verifier_message(log), log=log,
                                hint="load it without capture= (prog.run() and the drop detector still work)")
    except BaseException:
        wobj.close()
        raise
    refs = {r.name: r.fd for r in wobj.map_refs()}
    prog._capture_obj = wobj
    prog.capture_maps = (refs["xdplab_cap"], refs["xdplab_cap_stats"])
    prog._fd = fd
    prog._wrapper_fds = (fd,)
    prog.id = kernel.prog_info(fd)["id"]
    if count:
        prog._counter_fd = refs["xdplab_actions"]
        prog.counted = True


# --- the loaded program ----------------------------------------------------------------

#: why an object without source is counted the way it is (README, lab text)
ELF_COUNTERS = ("an object without source is counted by a second program xdplab loads: a small "
                "wrapper that calls the object's program (its final instructions, relocated by "
                "libbpf) as a bpf-to-bpf subprogram and counts the returned action. Linking a "
                "wrapper object with libbpf's static linker does not work (libbpf refuses a call "
                "into another program's section: 'bad call relo'), and fexit/freplace trampolines "
                "are refused on this kernel (EPERM). The wrapper is what gets attached; the "
                "object's other programs (tail-call targets) are the object's own.")


class LibbpfProgram(XDPProgram):
    """An XDP program of a libbpf object (libbpf-style C or an ELF). Attaches, swaps and
    cleans up exactly like a BCC-compiled ``XDPProgram`` (same ``Link``)."""

    def __init__(self, spec, obj: Object, entry: str, *, dialect, warnings: str = "",
                 counted: bool = False, wrap_warnings=(), owner: bool = True, source_text=None):
        self.spec, self.object, self.bpf = spec, obj, None
        self._dialect = dialect
        self.warnings = warnings
        progs = obj.programs
        ref = progs[entry]
        self.ref = ref
        self._fd = ref.fd
        info = kernel.prog_info(self._fd)
        self.id, self.name = info["id"], entry
        self.section = ref.section
        self.links = []
        self._closed = False
        self._owner = owner
        self._siblings: list[LibbpfProgram] = []
        self.counted = counted
        self.wrap_warnings = list(wrap_warnings)
        self.source = source_text
        self.maps = Maps(obj, owner=self)
        self._stats_hold = None
        try:
            if getattr(spec, "stats", True):
                self._stats_hold = StatsHold()
        except NotSupported:
            pass

    @property
    def fd(self) -> int:
        self._check()
        return self._fd

    @property
    def dialect(self):
        """libbpf or elf, and what gave it away (``xdplab.dialects.Detected``)."""
        return self._dialect

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self, action: str = "") -> None:
        self._check()

    @property
    def globals(self) -> Globals:
        return self.object.globals

    @property
    def frags(self) -> bool:
        """Loaded with BPF_F_XDP_HAS_FRAGS (libbpf adds it for "xdp.frags" sections at
        load; bpf_program__flags does not show that)."""
        return bool(self.ref.flags & BPF_F_XDP_HAS_FRAGS) or self.section.split("/")[0] == "xdp.frags"

    def program(self, name: str) -> "LibbpfProgram":
        """Another program of the same object (by function name or section), sharing its
        maps; it lives as long as this one (closing this closes the object)."""
        self._check()
        progs = self.object.programs
        entry = _pick(progs, name)
        if entry == self.name:
            return self
        p = LibbpfProgram(self.spec, self.object, entry, dialect=self.dialect, counted=self.counted,
                          owner=False, source_text=self.source)
        p._parent = self                  # the object lives while a sibling does
        self._siblings.append(p)
        return p

    def _check(self):
        if self._closed:
            raise ClosedError(f"LibbpfProgram {self.name}", hint="load it again (xdplab.load(...), or re-run the cell)")

    def _use_wrapper(self, fd: int, map_fd: int) -> None:
        """Run as the counting wrapper ``fd`` (a program of its own that calls this one's
        instructions) and count into ``map_fd``: attach() and run() use it from now on."""
        self._fd, self._wrapper_fds = fd, (fd, map_fd)
        self._counter_fd = map_fd
        self.id = kernel.prog_info(fd)["id"]
        self.counted = True

    def counters(self):
        """Packets and bytes per XDP action since load, summed over CPUs (every counted
        XDP program of the object adds to them)."""
        self._check()
        fd = getattr(self, "_counter_fd", None)
        if fd is None and COUNTER_MAP in self.maps:
            fd = self.maps[COUNTER_MAP].fd
        if fd is None:
            why = "; ".join(self.wrap_warnings) or "the program was loaded with count=False"
            raise XDPLabError(f"no action counters for {self.name}: {why}",
                              hint="prog.stats() gives runs and ns for every program")
        p, b = {}, {}
        size = 16 * kernel.possible_cpus()
        for i, a in enumerate(ACTIONS):
            raw = kernel.map_lookup(fd, i.to_bytes(4, "little"), size) or b""
            vals = [struct.unpack_from("=QQ", raw, o) for o in range(0, len(raw), 16)]
            p[a], b[a] = sum(v[0] for v in vals), sum(v[1] for v in vals)
        return Counters(p, b)

    def stats(self) -> Stats:
        """Runs and run time (ns) of this program since load (BPF_ENABLE_STATS)."""
        self._check()
        s = prog_stats(self.fd)
        return Stats(s["run_cnt"], s["run_time_ns"])

    def info(self) -> dict:
        """What the kernel says about the loaded program (license, BTF, verified insns)."""
        self._check()
        return {"id": self.id, "name": self.name, "section": self.section, "frags": self.frags,
                **prog_stats(self.fd)}

    def run(self, packet, **kw):
        self._check()
        return super().run(packet, **kw)

    def printk(self, **kw):
        """The program's bpf_printk lines, streamed (tagged at compile time, as for BCC)."""
        self._check()
        if not getattr(self.spec, "printk_tag", None):
            raise XDPLabError(f"no printk stream for {self.name}: "
                              + (getattr(self, "printk_note", "") or "its source has no bpf_printk"),
                              hint="leave a blank line after the #includes (the tag goes there)")
        return PrintkStream(self, **kw)

    def close(self) -> None:
        """Detach everywhere; the loading program (not a sibling) also closes the object:
        every program and map of it."""
        if self._closed:
            return
        self.detach()
        self._closed = True
        for reader in getattr(self, "_readers", ()):
            reader.stop()             # capture threads polling the capture wrapper's perf buffer
        self.maps.close()
        for fd in getattr(self, "_wrapper_fds", ()):
            os.close(fd)
        if getattr(self, "_capture_obj", None) is not None:
            self._capture_obj.close()
        if self._stats_hold is not None:
            self._stats_hold.close()
        if self._owner:
            for s in self._siblings:
                s.close()
            self.object.close()

    def __del__(self):
        try:
            if not self._closed and not self.links:
                for fd in getattr(self, "_wrapper_fds", ()):
                    os.close(fd)
                if self._owner:
                    self.object.close()
        except Exception:
            pass

    def __getitem__(self, name):
        self._check()
        return self.maps[name]

    def attach(self, dev: str, mode: str = "native", **kw):
        self._check()
        return super().attach(dev, mode, **kw)

    def __repr__(self) -> str:
        if self._closed:
            return f"<LibbpfProgram {self.name} (closed)>"
        where = ", ".join(f"{l.ifname}/{l.mode}" for l in self.links if l.attached) or "not attached"
        note = ""
        if not self.counted:
            note = " counters: unavailable (" + ("; ".join(self.wrap_warnings) or "count=False") + ")"
        elif self.dialect.dialect == "elf":
            note = " counters: bpf-to-bpf call wrapper"
        elif self.wrap_warnings:
            note = " warning: " + "; ".join(self.wrap_warnings)
        return (f"<LibbpfProgram {self.name} sec={self.section} id={self.id} [{self.dialect}] ({where}) "
                f"maps={list(self.maps)} programs={list(self.object.programs)}{note}>")

    def _repr_html_(self) -> str:
        return f"<pre>{escape(repr(self))}</pre>"


def _not_tail_targets(obj: "Object") -> list[str]:
    """An object's programs that no PROG_ARRAY of it holds (the entry is one of those)."""
    held = set()
    for r in obj.map_refs():
        if r.map_type == 3:
            for k in range(r.max_entries):
                raw = kernel.map_lookup(r.fd, k.to_bytes(4, "little"), 4)
                if raw is not None:
                    held.add(struct.unpack("=I", raw)[0])      # lookups give prog ids
    return [n for n, p in obj.programs.items() if p.fd >= 0 and kernel.prog_info(p.fd)["id"] not in held]


def _pick(progs: dict[str, ProgRef], name: str | None, prefer=None) -> str:
    if name is not None:
        if name in progs:
            return name
        by_sec = [n for n, r in progs.items() if r.section == name]
        if by_sec:
            return by_sec[0]
        raise UsageError(f"no program {name!r} in this object",
                          hint="programs (function: section): " + ", ".join(
                              f"{n}: {r.section}" for n, r in progs.items()))
    xdp = [n for n, r in progs.items() if r.prog_type == BPF_PROG_TYPE_XDP
           and not r.section.split("/")[-1] in ("devmap", "cpumap")
           and r.expected_attach_type not in (BPF_XDP_DEVMAP, BPF_XDP_CPUMAP)]
    for n in prefer or ():
        if n in xdp:
            return n
    if not xdp:
        raise XDPLabError("no XDP program in this object", hint='mark the function SEC("xdp"); programs: '
                          + ", ".join(f"{n}: {r.section}" for n, r in progs.items()))
    return xdp[0]


# --- from a Program spec to a loaded program -------------------------------------------

@dataclass
class _View:
    """What explain.py needs of a spec, for a libbpf-compiled source: the file name clang
    saw (the verifier's ``@ file:N``), the user's lines, the failing program."""
    source: str
    origin: str
    entry: str
    header_lines: tuple = ()
    func: str | None = None
    cflags: tuple = ()
    libbpf: bool = True                    # explain.dialect_hint: not a BCC compile
    hook: str = "xdp"                      # explain: no BCC wrapper to take off and reload
    count: bool = False
    capture: bool = False

    @property
    def lines(self) -> list[str]:
        return [*self.header_lines, *self.source.splitlines()]

    def full_source(self) -> str:          # explain's BCC re-compile does not apply here
        raise XDPLabError("not a BCC program")


def _source_order(source: str) -> list[str]:
    """XDP functions in source order (``SEC("xdp...")``, or any section whose function takes
    ``struct xdp_md *``: ``SEC("tx")``; not devmap/cpumap entry programs), tail-call targets
    (``&name`` in a map's initialiser) last: the entry is the first program nothing jumps to."""
    names = [m.group(2) for m in re.finditer(
        r'\b(?:SEC|__section)\s*\(\s*"([^"]*)"\s*\)\s*(?:static\s+)?int\s+(\w+)\s*\(([^)]*)\)', source)
        if dialects.counted_section(m.group(1))
        and (m.group(1).startswith("xdp") or re.search(r"\bstruct\s+xdp_md\b", m.group(3)))]
    targets = {n for n in names if re.search(rf"&\s*{re.escape(n)}\b", source)}
    return [n for n in names if n not in targets] + [n for n in names if n in targets]


def load_spec(spec, detected) -> LibbpfProgram:
    """Load ``spec`` (a program.Program) whose dialect is libbpf or elf."""
    if getattr(spec, "hook", "xdp") != "xdp":
        raise kernel.features.error("libbpf_hooks", "xdplab loads libbpf-style C and objects as XDP programs; "
                                    "TC programs: BCC dialect", f"hook={spec.hook!r} for {detected.dialect} programs")
    capture.Capture.of(getattr(spec, "capture", False))   # bad options: UsageError, nothing built
    counted, wrap_warnings, warnings, source, printk_note = False, [], "", None, ""
    name = os.path.splitext(os.path.basename(spec.origin))[0] or "prog"
    if detected.dialect == "elf":
        elf = bytes(spec.elf)
        view = _View("", spec.origin, spec.func or "")
    else:
        source = spec.source
        text, why = dialects.tag_printk(source)        # before the wrapper (it has #includes)
        extra = ()
        if text != source:
            spec = replace(spec, printk_tag=spec.printk_tag or new_tag())
            extra = (f'-DXDPLAB_PRINTK_TAG="{spec.printk_tag}: "',)
        printk_note = why
        text, wrapped, wrap_warnings = (dialects.wrap_for_counters(text) if spec.count
                                        else (text, [], []))
        if spec.count and not wrapped and not wrap_warnings:
            wrap_warnings.append('no `SEC("xdp") int NAME(struct xdp_md *ctx)` to wrap: actions are not counted')
        counted = bool(wrapped)
        first = len(spec.header_lines) + 1
        cflags = (*(spec.all_cflags() if hasattr(spec, "all_cflags") else tuple(spec.cflags)), *extra)
        compiled, out, fname = dialects.compile_c(text, spec.origin, first, cflags)
        view = _View(source, fname, spec.func or (_source_order(source) or [""])[0], spec.header_lines,
                     spec.func, spec.cflags)
        if compiled is None:
            raise _compile_error(view, out)
        elf, warnings = compiled.elf, out
    try:
        obj = Object(elf, name)
    except ObjectError as e:
        raise (_implicit_error(view, warnings, e.log) or e) from None
    try:
        obj.skip_trampoline_programs(spec.origin)
        obj.skip_missing_tracepoints()
        obj.set_max_entries(getattr(spec, "map_sizes", None))
        obj.check_sizes()
    except BaseException:
        obj.close()
        raise
    bound = None
    if getattr(spec, "bind_to", None) is not None:      # device-bound (RX metadata kfuncs)
        if DEVICE_BINDER is None:
            raise XDPLabError("device-bound programs (bind_to=) need xdplab.tools.memory (import xdplab loads it)")
        bound = DEVICE_BINDER(obj, spec.bind_to)
    try:
        for k, v in (dict(spec.globals or {})).items():
            obj.globals[k] = v
        try:
            obj.load()
        except _LoadFailure as f:
            raise _load_error(view, f, warnings, detected) from None
        progs = obj.programs
        entry = _pick(progs, spec.func, _source_order(source) if source else _not_tail_targets(obj))
    except BaseException:
        obj.close()
        raise
    prog = LibbpfProgram(spec, obj, entry, dialect=detected, warnings=warnings, counted=counted,
                         wrap_warnings=wrap_warnings, source_text=source)
    prog.bound_to = bound                          # (ifindex, name) or None
    prog.printk_note = printk_note if detected.dialect != "elf" else (
        "an object without source has no printk tag: read /sys/kernel/tracing/trace_pipe")
    if getattr(spec, "capture", False):
        try:           # an object is counted by the capture wrapper (no second wrapper)
            capture_object_program(prog, obj, entry, spec, count=detected.dialect == "elf" and spec.count)
        except BaseException:
            prog.close()
            raise
    elif detected.dialect == "elf" and spec.count:
        fd, map_fd, why = wrap_object_program(obj, entry, prog.frags)
        if fd < 0:
            prog.wrap_warnings.append(f"no action counters: {why}")
        else:
            prog._use_wrapper(fd, map_fd)
    return prog


def _dialect_hint(view) -> str:
    found = bcc_markers(view.source)
    if not found:
        return ""
    line, what = found[0]
    return (f"BCC macro {what} (line {line + len(view.header_lines)}) in a libbpf-style program: declare "
            "maps as `struct { __uint(type, ...); ... } name SEC(\".maps\");` and use "
            "bpf_map_lookup_elem(&name, &key) — or load it as BCC (dialect='bcc', %%xdp --dialect bcc)")


def _compile_error(view, out: str) -> CompileError:
    err = explain.compile_error(view, dialects.normalized(out))
    err.log = out
    hint = _dialect_hint(view)
    if hint and (not err.hint or "BCC" not in err.hint):
        err.hint = hint
    err.dialect = "libbpf"
    return err


def _implicit_error(view, warnings: str, log: str):
    """A function clang only warned about (implicit declaration) that libbpf then could
    not resolve: a CompileError on the warning's line, or None."""
    implicit = dialects.implicit_declarations(warnings, view.origin) if view.source else {}
    for fn, line in implicit.items():
        if re.search(rf"\b{re.escape(fn)}\b", log):
            msg = f"implicit declaration of function '{fn}'"
            exp = explain.by_key("implicit-function") or explain.COMPILE
            err = CompileError(f"{view.origin} line {line}: {msg}: no such BPF helper or function, so "
                               f"libbpf cannot resolve `{fn}`\n{explain._excerpt(view, line)}",
                               log=warnings + "\n--- libbpf then said:\n" + log,
                               hint=_dialect_hint(view) or "BPF programs cannot call libc or undeclared "
                               "functions: use a helper (bpf/bpf_helpers.h) or a static inline function")
            return explain._decorate(err, view, exp.key, line, msg, exp)
    return None


def _load_error(view, f: _LoadFailure, warnings: str, detected) -> XDPLabError:
    implicit = _implicit_error(view, warnings, f.log)
    if implicit is not None:
        return implicit
    if f.vlog.strip():
        v = replace(view, entry=f.prog or view.entry)
        exc = OSError(-f.ret if f.ret < 0 else f.ret, os.strerror(-f.ret if f.ret < 0 else f.ret))
        err = explain.verifier_error(v, f.vlog, exc)
        err.libbpf_log = f.log
        hint = _dialect_hint(view) if view.source else ""
        if hint and err.key in ("map-type", "invalid-mem", None):
            err.hint = hint
        return err
    lines = [l.strip().removeprefix("libbpf: ") for l in f.log.splitlines() if l.strip()]
    what = next((l for l in lines if "error" in l.lower() or "failed" in l.lower() or "invalid" in l.lower()),
                lines[-1] if lines else _errno_text(f.ret))
    hint = _dialect_hint(view) if view.source else ""
    if not hint:
        m = re.search(r"prog '(\w+)': missing BPF prog type, check ELF section name '([^']*)'", f.log)
        if m:
            hint = (f"section {m.group(2)!r} of {m.group(1)} is not one libbpf 1.x knows, and xdplab could "
                    "not tell its type from the object's BTF (built without -g?): use SEC(\"xdp\"), or "
                    "rebuild with clang -g so its `struct xdp_md *` argument says it is XDP")
        elif "CO-RE" in f.log or "relocat" in f.log:
            hint = "a CO-RE relocation failed: the field or type does not exist in this kernel's BTF"
        elif "license" in f.log.lower() or "GPL" in f.log:
            hint = 'add `char _license[] SEC("license") = "GPL";`'
        else:
            hint = "the full libbpf log is in err.log"
    return ObjectError(f"libbpf could not load {view.origin}: {what}", log=f.log, hint=hint)


def entry_name(spec) -> str:
    """The program ``spec.load()`` will pick: ``func``, the first SEC("xdp...") function of
    the source, or (an object) its first XDP program."""
    if spec.func:
        return spec.func
    if spec.elf is None:
        names = _source_order(spec.source)
        if names:
            return names[0]
        raise CompileError(f'no SEC("xdp") program in {spec.origin}',
                           hint='mark the function: SEC("xdp") int my_prog(struct xdp_md *ctx)')
    obj = Object(bytes(spec.elf), "probe")
    try:
        progs = obj.programs                     # typed (sections libbpf 1.x does not know too)
    finally:
        obj.close()
    try:
        return _pick(progs, None)
    except XDPLabError:
        raise XDPLabError(f"no XDP program in {spec.origin}", hint="programs (function: section): "
                          + ", ".join(f"{n}: {r.section}" for n, r in progs.items())) from None


class _Loader:
    """How Program.load() and Program.entry reach this module (no import back)."""
    load = staticmethod(load_spec)
    entry = staticmethod(entry_name)
    source_order = staticmethod(_source_order)

    @staticmethod
    def program_names(spec) -> list:
        """(function, section) of every program of the object ``spec.elf``."""
        obj = Object(bytes(spec.elf), "probe")
        try:
            return obj.program_names()
        finally:
            obj.close()


DIALECT_LOADERS["libbpf"] = DIALECT_LOADERS["elf"] = _Loader
