"""BTF (the BPF Type Format) in pure Python: enough to name the fields of map keys and values.

    btf = BTF.from_id(btf_id)              # the kernel's copy (BPF_BTF_GET_FD_BY_ID)
    t = btf.types[type_id]                 # Type(kind, name, size, ...)
    codec = btf.codec(type_id)             # bytes <-> Python values, with checks
    codec.decode(raw) / codec.encode(value)

Kinds: int, ptr, array, struct, union, enum/enum64, typedef, const, volatile, restrict,
type_tag, fwd, var, datasec, float (func/func_proto/decl_tag are parsed and skipped).
Structs decode to named tuples (``Record``: field access, ``_asdict()``), arrays to lists
(``char[N]`` to bytes), enums to ``IntEnum`` members when the value has a name. Encoding
checks every int against its field's size and signedness and every struct's field names;
errors are ``UsageError`` naming the value, the field and what is accepted.
"""
from __future__ import annotations

import collections
import enum
import keyword
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError, XDPLabError
from .. import kernel
from . import features
import os
import numbers

BTF_MAGIC = 0xEB9F
KINDS = {0: "unknown", 1: "int", 2: "ptr", 3: "array", 4: "struct", 5: "union", 6: "enum",
         7: "fwd", 8: "typedef", 9: "volatile", 10: "const", 11: "restrict", 12: "func",
         13: "func_proto", 14: "var", 15: "datasec", 16: "float", 17: "decl_tag",
         18: "type_tag", 19: "enum64"}
_MODIFIERS = ("typedef", "volatile", "const", "restrict", "type_tag", "var")
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4


class BTFError(XDPLabError):
    """BTF that cannot be parsed (or a type that cannot be decoded)."""


@dataclass
class Member:
    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass
class Type:
    id: int
    kind: str
    name: str
    size: int = 0                 # int/struct/union/enum/float/datasec: bytes
    type: int = 0                 # ptr/typedef/const/...: the referenced type; array: element
    nelems: int = 0               # array
    encoding: int = 0             # int: INT_SIGNED | INT_CHAR | INT_BOOL
    bits: int = 0                 # int: number of bits used
    bit_offset: int = 0           # int: offset of those bits
    members: list = field(default_factory=list)      # struct/union: Member; datasec: (type, offset, size)
    values: dict = field(default_factory=dict)       # enum: name -> value
    signed: bool = False          # enum


class BTF:
    """Parsed BTF: ``types[id]`` (id 0 is void). ``base``: the BTF a split BTF extends
    (a kernel module's extends vmlinux'); its types keep their ids."""

    def __init__(self, data: bytes, base: "BTF | None" = None):
        if len(data) < 24:
            raise BTFError(f"BTF of {len(data)} bytes is too short for a header")
        magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            "<HBBIIIII", data)
        if magic != BTF_MAGIC:
            raise BTFError(f"not BTF: magic {magic:#x} (expected {BTF_MAGIC:#x}, little-endian)")
        self.base = base
        self.strings = data[hdr_len + str_off: hdr_len + str_off + str_len]
        self._str_base = len(base.strings_all) if base is not None else 0
        self.types: list[Type] = list(base.types) if base is not None else [Type(0, "void", "void")]
        self._parse(data[hdr_len + type_off: hdr_len + type_off + type_len])
        self._codecs: dict = {}

    @property
    def strings_all(self) -> bytes:
        return (self.base.strings_all if self.base is not None else b"") + self.strings

    def _str(self, off: int) -> str:
        if off < self._str_base:
            return self.base._str(off)
        off -= self._str_base
        end = self.strings.find(b"\0", off)
        return self.strings[off:end if end >= 0 else None].decode(errors="replace")

    def _parse(self, buf: bytes) -> None:
        pos = 0
        while pos < len(buf):
            name_off, info, size_or_type = struct.unpack_from("<III", buf, pos)
            pos += 12
            vlen, kind_no, kflag = info & 0xFFFF, (info >> 24) & 0x1F, info >> 31
            kind = KINDS.get(kind_no)
            if kind is None:
                raise BTFError(f"unknown BTF kind {kind_no} at type {len(self.types)}")
            t = Type(len(self.types), kind, self._str(name_off))
            if kind in ("int", "struct", "union", "enum", "enum64", "float", "datasec"):
                t.size = size_or_type
            else:
                t.type = size_or_type
            if kind == "int":
                (v,) = struct.unpack_from("<I", buf, pos)
                pos += 4
                t.encoding, t.bit_offset, t.bits = (v >> 24) & 0xF, (v >> 16) & 0xFF, v & 0xFF
            elif kind == "array":
                t.type, _, t.nelems = struct.unpack_from("<III", buf, pos)
                pos += 12
            elif kind in ("struct", "union"):
                for _ in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from("<III", buf, pos)
                    pos += 12
                    if kflag:
                        t.members.append(Member(self._str(m_name), m_type, m_off & 0xFFFFFF, m_off >> 24))
                    else:
                        t.members.append(Member(self._str(m_name), m_type, m_off))
            elif kind == "enum":
                t.signed = bool(kflag)
                for _ in range(vlen):
                    e_name, val = struct.unpack_from("<Ii" if kflag else "<II", buf, pos)
                    pos += 8
                    t.values[self._str(e_name)] = val
            elif kind == "enum64":
                t.signed = bool(kflag)
                for _ in range(vlen):
                    e_name, lo, hi = struct.unpack_from("<III", buf, pos)
                    pos += 12
                    v = lo | (hi << 32)
                    if kflag and v >= 1 << 63:
                        v -= 1 << 64
                    t.values[self._str(e_name)] = v
            elif kind == "func_proto":          # parameters: name (often none) and type
                for _ in range(vlen):
                    p_name, p_type = struct.unpack_from("<II", buf, pos)
                    pos += 8
                    t.members.append(Member(self._str(p_name), p_type, 0))
            elif kind in ("var", "decl_tag"):
                pos += 4
            elif kind == "datasec":
                for _ in range(vlen):
                    t.members.append(struct.unpack_from("<III", buf, pos))
                    pos += 12
            self.types.append(t)

    # --- loading ---------------------------------------------------------------------

    @classmethod
    def from_id(cls, btf_id: int) -> "BTF":
        """The BTF object ``btf_id`` as the kernel holds it (split BTF: on vmlinux')."""
        fd = kernel.btf_fd_by_id(btf_id)
        try:
            info = kernel.btf_info(fd)
        finally:
            os.close(fd)
        base = None
        if info["kernel_btf"] and info["name"] != "vmlinux":
            base = vmlinux()
        return cls(info["data"], base)

    @classmethod
    def from_file(cls, path) -> "BTF":
        return cls(Path(path).read_bytes())

    # --- looking at types --------------------------------------------------------------

    def __getitem__(self, type_id: int) -> Type:
        return self.types[type_id]

    def resolve(self, type_id: int) -> Type:
        """Follow typedef/const/volatile/restrict/type_tag/var to the underlying type."""
        t = self.types[type_id]
        for _ in range(64):
            if t.kind not in _MODIFIERS:
                return t
            t = self.types[t.type]
        raise BTFError(f"type {type_id}: a loop of modifiers")

    def size(self, type_id: int) -> int:
        t = self.resolve(type_id)
        if t.kind == "ptr":
            return 8
        if t.kind == "array":
            return t.nelems * self.size(t.type)
        if t.kind in ("fwd", "void", "func", "func_proto"):
            raise BTFError(f"type {type_id} ({t.kind} {t.name}) has no size")
        return t.size

    def type_name(self, type_id: int) -> str:
        """C spelling of a type: ``struct flow``, ``__u32``, ``u64[4]``, ``void *``."""
        t = self.types[type_id]
        if t.kind in ("struct", "union", "enum", "enum64", "fwd"):
            k = "enum" if t.kind == "enum64" else t.kind if t.kind != "fwd" else "struct"
            return f"{k} {t.name or '(anon)'}"
        if t.kind in ("int", "float", "typedef", "datasec", "void"):
            return t.name
        if t.kind == "ptr":
            return f"{self.type_name(t.type)} *"
        if t.kind == "array":
            return f"{self.type_name(t.type)}[{t.nelems}]"
        if t.kind in ("const", "volatile", "restrict"):
            return f"{t.kind} {self.type_name(t.type)}"
        return self.type_name(t.type) if t.type else t.kind

    def find(self, name: str, kind: str | None = None) -> int:
        """The id of the first type called ``name`` (of ``kind``); KeyError if none."""
        for t in self.types:
            if t.name == name and (kind is None or t.kind == kind):
                return t.id
        raise KeyError(name)

    def codec(self, type_id: int) -> "Codec":
        """Encoder/decoder of values of type ``type_id`` (cached)."""
        if type_id not in self._codecs:
            self._codecs[type_id] = _make_codec(self, type_id, self.type_name(type_id))
        return self._codecs[type_id]

    def numpy_dtype(self, type_id: int, itemsize: int | None = None):
        """A numpy dtype with this type's layout (structs: named fields), or None when
        the type has bitfields or pointers-to-nothing numpy cannot hold."""
        import numpy as np
        try:
            dt = _dtype(self, type_id)
        except _NoDtype:
            return None
        if itemsize is not None and itemsize != dt.itemsize:
            if dt.names is None:
                dt = np.dtype({"names": ["value"], "formats": [dt], "offsets": [0], "itemsize": itemsize})
            else:
                dt = np.dtype({"names": list(dt.names), "formats": [dt.fields[n][0] for n in dt.names],
                               "offsets": [dt.fields[n][1] for n in dt.names], "itemsize": itemsize})
        return dt

    def __repr__(self) -> str:
        return f"<BTF {len(self.types) - 1} types>"


_VMLINUX: list = []


def vmlinux() -> BTF:
    """The running kernel's BTF (/sys/kernel/btf/vmlinux), parsed once."""
    if not _VMLINUX:
        p = Path("/sys/kernel/btf/vmlinux")
        if not p.exists():
            raise features.error("btf", "this kernel was built without CONFIG_DEBUG_INFO_BTF")
        _VMLINUX.append(BTF(p.read_bytes()))
    return _VMLINUX[0]


# --- codecs --------------------------------------------------------------------------------

class Codec:
    """bytes <-> Python for one BTF type. ``what`` is its C name (for messages)."""

    size: int = 0
    what: str = ""

    def decode(self, raw: bytes, off: int = 0):
        raise NotImplementedError

    def encode(self, value, path: str = "value") -> bytes:
        buf = bytearray(self.size)
        self.pack(buf, 0, value, path)
        return bytes(buf)

    def pack(self, buf: bytearray, off: int, value, path: str) -> None:
        raise NotImplementedError

    def accepts(self) -> str:
        return self.what

    def default(self):
        return self.decode(bytes(self.size))


class IntCodec(Codec):
    def __init__(self, size: int, signed: bool, what: str, is_bool: bool = False):
        self.size, self.signed, self.what, self.is_bool = size, signed, what, is_bool
        bits = 8 * size
        self.lo, self.hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)

    def decode(self, raw, off=0):
        v = int.from_bytes(raw[off:off + self.size], "little", signed=self.signed)
        return bool(v) if self.is_bool else v

    def pack(self, buf, off, value, path):
        if isinstance(value, bool) or (isinstance(value, numbers.Integral)):
            v = int(value)
        else:
            raise UsageError(f"{path} = {value!r}: not an integer", hint=f"{path} is {self.accepts()}")
        if not self.lo <= v <= self.hi:
            raise UsageError(f"{path} = {v} is out of range for {self.what}",
                             hint=f"{path} is {self.accepts()}")
        buf[off:off + self.size] = v.to_bytes(self.size, "little", signed=self.signed)

    def accepts(self):
        return f"{self.what}: an integer {self.lo}..{self.hi}"


class FloatCodec(Codec):
    def __init__(self, size, what):
        self.size, self.what, self.fmt = size, what, {4: "<f", 8: "<d"}.get(size)

    def decode(self, raw, off=0):
        return struct.unpack_from(self.fmt, raw, off)[0] if self.fmt else bytes(raw[off:off + self.size])

    def pack(self, buf, off, value, path):
        if not self.fmt or not isinstance(value, (int, float)):
            raise UsageError(f"{path} = {value!r}: not a number", hint=f"{path} is {self.what}")
        struct.pack_into(self.fmt, buf, off, value)


class EnumCodec(IntCodec):
    def __init__(self, size, signed, what, values: dict):
        super().__init__(size, signed, what)
        self.values = values
        try:
            self.enum = enum.IntEnum(what.split()[-1] if what.split()[-1] != "(anon)" else "Enum",
                                     values) if values else None
        except (ValueError, TypeError):
            self.enum = None

    def decode(self, raw, off=0):
        v = super().decode(raw, off)
        if self.enum is not None:
            try:
                return self.enum(v)
            except ValueError:
                pass
        return v

    def pack(self, buf, off, value, path):
        if isinstance(value, str):
            if value not in self.values:
                raise UsageError(f"{path} = {value!r} is not a value of {self.what}",
                                 hint=f"one of {', '.join(self.values)} (or an integer)")
            value = self.values[value]
        super().pack(buf, off, value, path)


class BytesCodec(Codec):
    """char[N] / unknown layouts: raw bytes (str is encoded as UTF-8)."""

    def __init__(self, size, what):
        self.size, self.what = size, what

    def decode(self, raw, off=0):
        return bytes(raw[off:off + self.size])

    def pack(self, buf, off, value, path):
        if isinstance(value, str):
            value = value.encode()
        if isinstance(value, (list, tuple)):
            try:
                value = bytes(value)
            except (ValueError, TypeError):
                raise UsageError(f"{path} = {value!r}: items must be integers 0..255",
                                 hint=f"{path} is {self.what} ({self.size} bytes)") from None
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise UsageError(f"{path} = {value!r}: not bytes", hint=f"{path} is {self.what} ({self.size} bytes)")
        value = bytes(value)
        if len(value) > self.size:
            raise UsageError(f"{path}: {len(value)} bytes do not fit in {self.what}",
                             hint=f"at most {self.size} bytes")
        buf[off:off + self.size] = value.ljust(self.size, b"\0")


class ArrayCodec(Codec):
    def __init__(self, elem: Codec, n: int, what: str):
        self.elem, self.n, self.what, self.size = elem, n, what, elem.size * n

    def decode(self, raw, off=0):
        return [self.elem.decode(raw, off + i * self.elem.size) for i in range(self.n)]

    def pack(self, buf, off, value, path):
        try:
            items = list(value)
        except TypeError:
            raise UsageError(f"{path} = {value!r}: not a sequence", hint=f"{path} is {self.what}: {self.n} items") from None
        if len(items) != self.n:
            raise UsageError(f"{path} has {len(items)} items, {self.what} takes exactly {self.n}",
                             hint=f"give {self.n} items")
        for i, v in enumerate(items):
            self.elem.pack(buf, off + i * self.elem.size, v, f"{path}[{i}]")

    def accepts(self):
        return f"{self.what}: {self.n} items, each {self.elem.accepts()}"


def _record_class(name: str, fields: list[str]):
    safe = [f if f.isidentifier() and not keyword.iskeyword(f) and not f.startswith("_") else f"f_{f}"
            for f in fields]
    base = collections.namedtuple(name if name.isidentifier() else "Record", safe, rename=True)

    def __getitem__(self, i):           # rec["packets"] too: code written for dict values
        if isinstance(i, str):
            if i not in self._fields:
                raise KeyError(i)
            return getattr(self, i)
        return tuple.__getitem__(self, i)
    return type(base.__name__, (base,), {"__slots__": (), "__getitem__": __getitem__})


class StructCodec(Codec):
    """struct/union/datasec: decoded to a named tuple of its members (anonymous members
    flattened into it); encoded from a mapping (missing fields: 0), a named tuple or a
    tuple of every field in order."""

    def __init__(self, what: str, size: int, union: bool = False):
        self.what, self.size, self.union = what, size, union
        self.fields: list[tuple[str, int, Codec, int]] = []   # name, byte offset, codec, bitfield (bit_off, bits)

    def finish(self):
        self.names = [f[0] for f in self.fields]
        tag = self.what.split()[-1]
        self.record = _record_class(tag if tag != "(anon)" else "Record", self.names)

    def decode(self, raw, off=0):
        vals = []
        for name, foff, codec, bitf in self.fields:
            if bitf:
                bit_off, bits, signed = bitf
                v = (int.from_bytes(raw[off:off + self.size], "little") >> bit_off) & ((1 << bits) - 1)
                if signed and v >= 1 << (bits - 1):
                    v -= 1 << bits
                vals.append(v)
            else:
                vals.append(codec.decode(raw, off + foff))
        return self.record(*vals)

    def pack(self, buf, off, value, path):
        if isinstance(value, tuple) and hasattr(value, "_asdict"):
            value = value._asdict()
            value = {n: value[s] for n, s in zip(self.names, self.record._fields)}
        if isinstance(value, dict):
            unknown = [k for k in value if k not in self.names]
            if unknown:
                raise UsageError(f"{path}: {self.what} has no field {', '.join(map(repr, unknown))}",
                                 hint=f"its fields: {', '.join(self.names)}")
            if self.union and len(value) > 1:
                raise UsageError(f"{path}: set one member of {self.what}, not {len(value)}",
                                 hint=f"one of {', '.join(self.names)}")
            items = value
        elif isinstance(value, (tuple, list)) and not self.union:
            if len(value) != len(self.names):
                raise UsageError(f"{path} has {len(value)} items, {self.what} has {len(self.names)} fields",
                                 hint=f"give ({', '.join(self.names)}) or a dict of them")
            items = dict(zip(self.names, value))
        else:
            raise UsageError(f"{path} = {value!r} is not a {self.what}",
                             hint=f"a dict of its fields ({', '.join(self.names)})" +
                             ("" if self.union else " or a tuple of all of them"))
        for name, foff, codec, bitf in self.fields:
            if name not in items:
                continue
            v = items[name]
            if bitf:
                bit_off, bits, signed = bitf
                lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
                if not isinstance(v, int) or not lo <= v <= hi:
                    raise UsageError(f"{path}.{name} = {v!r} is out of range for a {bits}-bit field",
                                     hint=f"an integer {lo}..{hi}")
                whole = int.from_bytes(buf[off:off + self.size], "little")
                mask = ((1 << bits) - 1) << bit_off
                whole = (whole & ~mask) | ((v & ((1 << bits) - 1)) << bit_off)
                buf[off:off + self.size] = whole.to_bytes(self.size, "little")
            else:
                codec.pack(buf, off + foff, v, f"{path}.{name}")

    def accepts(self):
        return f"{self.what} {{{', '.join(self.names)}}}"


def _make_codec(btf: BTF, type_id: int, what: str) -> Codec:
    t = btf.resolve(type_id)
    if t.kind == "int":
        if t.bits == 8 and t.encoding & INT_CHAR:
            return IntCodec(1, bool(t.encoding & INT_SIGNED), what)
        return IntCodec(t.size, bool(t.encoding & INT_SIGNED), what, bool(t.encoding & INT_BOOL))
    if t.kind == "ptr":
        return IntCodec(8, False, what)
    if t.kind in ("enum", "enum64"):
        return EnumCodec(t.size, t.signed, what, t.values)
    if t.kind == "float":
        return FloatCodec(t.size, what)
    if t.kind == "array":
        elem_t = btf.resolve(t.type)
        if elem_t.kind == "int" and elem_t.size == 1 and not elem_t.encoding & INT_BOOL:   # char/u8[N]
            return BytesCodec(t.nelems, what)
        return ArrayCodec(btf.codec(t.type), t.nelems, what)
    if t.kind in ("struct", "union"):
        c = StructCodec(what, t.size, union=t.kind == "union")
        _add_members(btf, c, t, 0, set())
        c.finish()
        return c
    if t.kind == "datasec":
        c = StructCodec(f"section {t.name}", t.size)
        for var_id, off, size in t.members:
            var = btf.types[var_id]
            c.fields.append((var.name, off, btf.codec(var.type), None))
        c.finish()
        return c
    return BytesCodec(btf.size(type_id) if t.kind not in ("fwd", "void") else 0, what)


def _add_members(btf: BTF, c: StructCodec, t: Type, base_bits: int, seen: set) -> None:
    for i, m in enumerate(t.members):
        bit = base_bits + m.bit_offset
        mt = btf.resolve(m.type)
        if not m.name and mt.kind in ("struct", "union"):
            _add_members(btf, c, mt, bit, seen)          # anonymous struct/union: its fields
            continue
        name = m.name or f"_{i}"
        if name in seen:
            continue
        seen.add(name)
        if m.bitfield_size or bit % 8:
            bits = m.bitfield_size or (mt.bits if mt.kind == "int" else 8 * btf.size(m.type))
            signed = mt.kind == "int" and bool(mt.encoding & INT_SIGNED)
            c.fields.append((name, bit // 8, None, (bit, bits, signed)))
        else:
            c.fields.append((name, bit // 8, btf.codec(m.type), None))


class _NoDtype(Exception):
    pass


def _dtype(btf: BTF, type_id: int):
    import numpy as np
    t = btf.resolve(type_id)
    if t.kind in ("int", "enum", "enum64"):
        signed = bool(t.encoding & INT_SIGNED) if t.kind == "int" else t.signed
        if t.kind == "int" and t.encoding & INT_BOOL:
            return np.dtype("?")
        return np.dtype(f"<{'i' if signed else 'u'}{t.size}")
    if t.kind == "ptr":
        return np.dtype("<u8")
    if t.kind == "float":
        return np.dtype(f"<f{t.size}")
    if t.kind == "array":
        return np.dtype((_dtype(btf, t.type), (t.nelems,)))
    if t.kind == "struct":
        names, formats, offsets = [], [], []
        for m in t.members:
            if m.bitfield_size or m.bit_offset % 8 or not m.name:
                raise _NoDtype()
            names.append(m.name)
            formats.append(_dtype(btf, m.type))
            offsets.append(m.bit_offset // 8)
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": t.size})
    raise _NoDtype()


# --- building BTF (for maps created from Python, and tests) -----------------------------------

class Builder:
    """Write a small BTF blob: ``b.int("__u32", 4)``, ``b.struct("flow", [("saddr", u32), ...])``,
    ``b.array(elem, n)``; ``b.bytes()`` for BPF_BTF_LOAD. Ids are returned by each call."""

    def __init__(self):
        self._types = []
        self._strs = bytearray(b"\0")
        self._str_off = {"": 0}

    def _s(self, name: str) -> int:
        if name not in self._str_off:
            self._str_off[name] = len(self._strs)
            self._strs += name.encode() + b"\0"
        return self._str_off[name]

    def _add(self, blob: bytes) -> int:
        self._types.append(blob)
        return len(self._types)

    def int(self, name: str, size: int, signed: bool = False) -> int:
        enc = INT_SIGNED if signed else 0
        return self._add(struct.pack("<IIII", self._s(name), 1 << 24, size, (enc << 24) | (8 * size)))

    def array(self, elem: int, n: int, index_type: int) -> int:
        return self._add(struct.pack("<IIIIII", 0, 3 << 24, 0, elem, index_type, n))

    def struct(self, name: str, members, size: int, union: bool = False) -> int:
        """``members``: (name, type id, byte offset)."""
        blob = struct.pack("<III", self._s(name), ((5 if union else 4) << 24) | len(members), size)
        for m_name, m_type, m_off in members:
            blob += struct.pack("<III", self._s(m_name), m_type, 8 * m_off)
        return self._add(blob)

    def typedef(self, name: str, target: int) -> int:
        return self._add(struct.pack("<III", self._s(name), 8 << 24, target))

    def enum(self, name: str, values: dict, size: int = 4) -> int:
        blob = struct.pack("<III", self._s(name), (6 << 24) | len(values), size)
        for n, v in values.items():
            blob += struct.pack("<Ii", self._s(n), v)
        return self._add(blob)

    def bytes(self) -> bytes:
        types = b"".join(self._types)
        hdr = struct.pack("<HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(types), len(types), len(self._strs))
        return hdr + types + bytes(self._strs)
