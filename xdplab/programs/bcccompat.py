"""BCC-dialect programs as people publish them: kernel headers, macros in cflags, maps
declared through macros.

- ``prelude_defines``: what the prelude (bpf/include/xdplab.h) must leave out for this
  program (``struct vlan_hdr`` when the program, a header it carries, or a kernel header
  it includes defines one).
- ``ctx_types`` / ``entry_pattern``: XDP functions whose context is spelled through a macro
  (``int xdp_prog1(struct CTXTYPE *ctx)`` with ``-DCTXTYPE=xdp_md``, as BCC's examples do).
- ``split_cflags``: ``cflags`` given as one string or a sequence, ``include_dirs`` as -I.
- ``table_names``: the maps BCC created for a module, whatever macro declared them.
"""
from __future__ import annotations

import ctypes
import re
from pathlib import Path

from .. import paths
from ..errors import UsageError
from .compile import INCLUDE_DIR

# #include <linux/...>, <net/...>, <asm/...> are kernel-internal headers (not uapi/...)
_KERNEL_INCLUDE = re.compile(r'^\s*#\s*include\s*<(?!uapi/)((?:linux|net|asm|asm-generic)/[^>]+)>', re.M)
_QUOTED_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
_VLAN_HDR_DEF = re.compile(r"\bstruct\s+vlan_hdr\s*\{")
_DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)\s+(?:struct\s+)?(\w+)\s*$", re.M)


def split_cflags(cflags) -> tuple[str, ...]:
    """``cflags`` as a tuple of arguments: a string is split like a shell would
    (``"-DX=1 -w"``); a list/tuple of strings is kept. Anything else is refused."""
    if cflags is None:
        return ()
    if isinstance(cflags, str):
        return tuple(_split_keeping_quotes(cflags))
    if isinstance(cflags, (list, tuple)) and all(isinstance(c, str) for c in cflags):
        return tuple(cflags)
    raise UsageError(f"cflags {cflags!r} is not a string or a list of strings",
                     hint='e.g. cflags=["-DN=4", "-w"] or cflags="-DN=4 -w"')


def _split_keeping_quotes(text: str) -> list[str]:
    """Split on whitespace outside quotes; the quotes stay in the flag, since they are part
    of a macro's value: '-DMAPTYPE="array" -w' -> ['-DMAPTYPE="array"', '-w']."""
    out, cur, quote, has = [], [], "", False
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote, has = ch, True
            cur.append(ch)
        elif ch.isspace():
            if cur:
                out.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if quote:
        raise UsageError(f"cflags {text!r}: no closing quotation ({quote})",
                         hint='e.g. cflags=\'-DMAPTYPE="array" -w\'')
    if cur:
        out.append("".join(cur))
    return out


def include_flags(include_dirs) -> tuple[str, ...]:
    """``-I`` flags for ``include_dirs`` (a path or a list of paths; each must exist)."""
    if include_dirs is None:
        return ()
    if isinstance(include_dirs, (str, Path)):
        include_dirs = (include_dirs,)
    out = []
    for d in include_dirs:
        if not isinstance(d, (str, Path)):
            raise UsageError(f"include_dirs entry {d!r} is not a path",
                             hint="include_dirs=['path/to/headers', ...]")
        p = Path(d).expanduser()
        if not p.is_dir():
            raise UsageError(f"include directory {str(d)!r} does not exist",
                             hint="give a directory that holds the headers the program includes")
        out.append(f"-I{p.resolve()}")
    return tuple(out)


def macro_values(source: str, cflags=()) -> dict[str, str]:
    """Object-like macros defined to one word, from ``-DNAME=value`` flags and from
    ``#define NAME value`` lines of the source (``struct`` in front of the value is dropped)."""
    out = {}
    for flag in cflags:
        if flag.startswith("-D") and "=" in flag:
            name, _, value = flag[2:].partition("=")
            value = value.strip().strip('"').strip()
            value = value.removeprefix("struct ").strip()
            if re.fullmatch(r"\w+", name) and re.fullmatch(r"\w+", value):
                out[name] = value
    for m in _DEFINE.finditer(source):
        out.setdefault(m[1], m[2])
    return out


def ctx_types(source: str, cflags=(), context: str = "xdp_md") -> list[str]:
    """The names that mean ``struct <context>`` here: the name itself and every macro
    that expands to it (through -D flags or #define, following chains)."""
    macros = macro_values(source, cflags)
    names = [context]
    changed = True
    while changed:
        changed = False
        for name, value in macros.items():
            if value in names and name not in names:
                names.append(name)
                changed = True
    return names


def entry_pattern(names, func: str | None = None) -> re.Pattern:
    """``int f(struct T *ctx)`` for any T in ``names`` (or any struct at all when
    ``names`` is None), optionally only function ``func``. Groups: indent, static,
    name, type, arg (same as program._XDP_FUNC, plus ``type``)."""
    typ = r"\w+" if names is None else "|".join(re.escape(n) for n in names)
    fname = re.escape(func) if func else r"\w+"
    return re.compile(
        rf"^(?P<indent>[ \t]*)(?P<static>static\s+)?(?:__always_inline\s+|inline\s+)*int\s+(?P<name>{fname})"
        rf"\s*\(\s*struct\s+(?P<type>{typ})\s*\*\s*(?P<arg>\w+)\s*\)", re.M)


def _local_headers(source: str, dirs: list[Path], seen: set, depth: int = 0):
    """The text of every quoted #include found in ``dirs`` (recursively, each once)."""
    if depth > 8:
        return
    for name in _QUOTED_INCLUDE.findall(source):
        for d in dirs:
            p = (d / name)
            if p.is_file():
                key = p.resolve()
                if key in seen:
                    break
                seen.add(key)
                try:
                    text = p.read_text(errors="replace")
                except OSError:
                    break
                yield p, text
                yield from _local_headers(text, [p.parent, *dirs], seen, depth + 1)
                break


def origin_dir(origin: str | None) -> str | None:
    """The directory of the file a program came from (None for a cell or a string)."""
    if not origin or origin == "cell" or origin.startswith("<"):
        return None
    p = Path(origin).expanduser()
    if not p.is_absolute() and not p.exists() and paths.LAB_BPF is not None:
        p = paths.LAB_BPF / p                            # Program.from_file's lookup
    return str(p.resolve().parent) if p.is_file() else None


def header_dirs(cflags=(), origin: str | None = None) -> list[Path]:
    """Where quoted includes are looked up: the source file's directory, then -I dirs."""
    dirs = []
    if origin_dir(origin):
        dirs.append(Path(origin_dir(origin)))
    for flag in cflags:
        if flag.startswith("-I") and len(flag) > 2:
            dirs.append(Path(flag[2:]))
    return dirs


def prelude_defines(source: str, cflags=(), origin: str | None = None) -> list[str]:
    """Macros to define before the prelude so it does not clash with this program:
    ``XDPLAB_NO_VLAN_HDR`` when the program defines ``struct vlan_hdr`` itself (or a
    header it carries does), or includes kernel-internal headers (linux/if_vlan.h, and
    headers that include it such as linux/filter.h, define it; programs that include
    kernel headers get them as plain BCC would)."""
    texts = [source]
    for path, text in _local_headers(source, header_dirs(cflags, origin), set()):
        if Path(path).resolve().parent != INCLUDE_DIR.resolve():
            texts.append(text)
    if any(_VLAN_HDR_DEF.search(t) or _KERNEL_INCLUDE.search(t) for t in texts):
        return ["XDPLAB_NO_VLAN_HDR"]
    return []


def kernel_headers(source: str) -> list[str]:
    """Kernel-internal headers ``source`` includes (``linux/ip.h``, ...)."""
    return _KERNEL_INCLUDE.findall(source)


# --- the maps BCC made -------------------------------------------------------------------

def table_names(bpf) -> list[str]:
    """Names of every map in a BCC module (BPF_TABLE(MAPTYPE, ...), BPF_HASH, BPF_ARRAY,
    macros of macros: what BCC itself created), in declaration order."""
    from bcc import lib
    lib.bpf_num_tables.restype = ctypes.c_ulonglong
    lib.bpf_num_tables.argtypes = [ctypes.c_void_p]
    lib.bpf_table_name.restype = ctypes.c_char_p
    lib.bpf_table_name.argtypes = [ctypes.c_void_p, ctypes.c_ulonglong]
    n = lib.bpf_num_tables(bpf.module)
    names = []
    for i in range(n):
        name = lib.bpf_table_name(bpf.module, i)
        if name:
            names.append(name.decode())
    return names


class CountingWarning(UserWarning):
    """The counting wrapper could not wrap the program: ``counters()`` will raise."""
