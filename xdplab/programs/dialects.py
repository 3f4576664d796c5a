"""Which kind of program is this, and how it is compiled when it is libbpf-style C.

Three inputs become the same loaded program:

- ``bcc``: BCC-dialect C (``BPF_HASH(...)``, ``map.lookup()``); BCC compiles it (program.py).
- ``libbpf``: libbpf-style C (``SEC("xdp")``, BTF-defined ``.maps``, ``bpf/bpf_helpers.h``,
  ``vmlinux.h``, CO-RE); clang compiles it here (``clang -O2 -g -target bpf``) against a
  ``vmlinux.h`` dumped from the running kernel's BTF (cached per kernel), libbpf loads it.
- ``elf``: a compiled BPF object (``.o``); libbpf loads it as it is.

``detect(source)`` says which and why (the first marker found); an explicit
``dialect=`` overrides it.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import CompileError, UsageError, XDPLabError
import time

DIALECTS = ("bcc", "libbpf", "elf")
ELF_MAGIC = b"\x7fELF"
CACHE = Path(os.environ.get("XDPLAB_CACHE", "/var/cache/xdplab")) / "vmlinux"
UAPI_ARCH = "/usr/include/x86_64-linux-gnu"
INCLUDE_DIR = paths.INCLUDE_DIR

# markers of libbpf-style C, in the order they are reported
_LIBBPF_MARKERS = [
    (re.compile(r'^\s*#\s*include\s*[<"]bpf/bpf_helpers\.h[>"]', re.M), "#include <bpf/bpf_helpers.h>"),
    (re.compile(r'^\s*#\s*include\s*[<"]vmlinux\.h[>"]', re.M), '#include "vmlinux.h"'),
    (re.compile(r'\bSEC\s*\(\s*"\.maps"\s*\)'), 'SEC(".maps")'),
    (re.compile(r'\bSEC\s*\(\s*"[^"]*"\s*\)'), "SEC(...)"),
    (re.compile(r'\bBPF_CORE_READ\s*\('), "BPF_CORE_READ"),
]
_BCC_MARKERS = re.compile(r"\bBPF_(?:HASH|ARRAY|PERCPU_ARRAY|PERCPU_HASH|TABLE|DEVMAP|CPUMAP|XSKMAP|"
                          r"PROG_ARRAY|LPM_TRIE|HISTOGRAM|PERF_OUTPUT|RINGBUF_OUTPUT|QUEUE|STACK)\s*\(|"
                          r"\.(?:lookup|update|increment|lookup_or_try_init|redirect_map|perf_submit)\s*\(")


@dataclass(frozen=True)
class Detected:
    dialect: str
    reason: str            # what gave it away ("SEC(...) on line 4", "ELF magic")

    def __str__(self) -> str:
        return f"{self.dialect} ({self.reason})"


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def detect(source, dialect: str | None = None) -> Detected:
    """The dialect of ``source`` (str or bytes). ``dialect`` (bcc|libbpf|elf) overrides."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if data[:4] == ELF_MAGIC:
            found = Detected("elf", "ELF magic")
        else:
            try:
                source = data.decode()
            except UnicodeDecodeError:
                raise UsageError("the input is neither C text nor an ELF object (first bytes "
                                  f"{data[:4]!r})", hint="pass C source, or a BPF object built by "
                                  "`clang -O2 -g -target bpf -c prog.c -o prog.o`") from None
            found = None
    else:
        found = None
    if found is None:
        found = Detected("bcc", "no libbpf markers")
        for pat, what in _LIBBPF_MARKERS:
            m = pat.search(source)
            if m:
                found = Detected("libbpf", f"{what} on line {_line_of(source, m.start())}")
                break
    if dialect is None:
        return found
    d = str(dialect).lower()
    if d not in DIALECTS:
        raise UsageError(f"unknown dialect {dialect!r}", hint="use 'bcc', 'libbpf' or 'elf' (or leave it out)")
    if d == "elf" and found.dialect != "elf":
        raise UsageError("dialect='elf' needs a compiled object (bytes starting with the ELF magic)",
                          hint="pass the .o file's bytes or use Program.from_file('x.o')")
    if d != "elf" and found.dialect == "elf":
        raise UsageError(f"dialect={d!r} but the input is a compiled ELF object",
                          hint="leave dialect out (or 'elf') for a .o")
    return Detected(d, "explicit" if d == found.dialect else f"explicit; detection said {found}")


def bcc_markers(source: str) -> list[tuple[int, str]]:
    """(line, text) of BCC-only constructs (``BPF_HASH(``, ``map.lookup(``) in ``source``."""
    return [(_line_of(source, m.start()), m.group(0).rstrip("( ")) for m in _BCC_MARKERS.finditer(source)]


# --- vmlinux.h -------------------------------------------------------------------------

def _btf_id() -> str:
    release = os.uname().release
    h = hashlib.sha256()
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{release}-{h.hexdigest()[:12]}"


def vmlinux_dir() -> Path | None:
    """A directory holding ``vmlinux.h`` for the running kernel (dumped from its BTF with
    bpftool, cached per kernel release + BTF hash), or None without kernel BTF/bpftool."""
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return None
    key = _btf_id()
    d = CACHE / key
    if (d / "vmlinux.h").exists():
        return d
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    if not os.path.exists(bpftool):
        return None
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:                       # not root: a cache of this user's own
        d = Path(tempfile.gettempdir()) / f"xdplab-vmlinux-{os.getuid()}" / key
        if (d / "vmlinux.h").exists():
            return d
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = d / f".vmlinux.h.{os.getpid()}"
    with open(tmp, "wb") as out:
        r = subprocess.run([bpftool, "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                           stdout=out, stderr=subprocess.PIPE, timeout=120)
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        return None
    os.replace(tmp, d / "vmlinux.h")
    return d


# --- the counting wrapper -------------------------------------------------------------

_SEC_FUNC = re.compile(
    r'\bSEC\s*\(\s*"(?P<sec>[^"]*)"\s*\)(?P<between>\s*(?:__attribute__\s*\(\(\s*\w+\s*\)\)\s*)?)'
    r'(?P<static>static\s+)?(?:__always_inline\s+|inline\s+)?int\s+(?P<name>\w+)\s*\(\s*'
    r'(?:const\s+)?struct\s+xdp_md\s*\*\s*(?P<arg>\w+)\s*\)')
_SEC_ANY = re.compile(r'\bSEC\s*\(\s*"(?P<sec>xdp[^"]*)"\s*\)')
COUNTED_SECTIONS = ("xdp", "xdp.frags")

WRAPPER_HEAD = """
#line 1 "<xdplab wrapper>"
#include <bpf/bpf_helpers.h>
struct __xdplab_rec { __u64 packets; __u64 bytes; };
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 5);
    __type(key, __u32);
    __type(value, struct __xdplab_rec);
} xdplab_actions SEC(".maps");
static __always_inline int __xdplab_count(struct xdp_md *ctx, int action)
{
    __u32 key = action;
    struct __xdplab_rec *rec;
    if (key >= 5)
        key = 0;
    rec = bpf_map_lookup_elem(&xdplab_actions, &key);
    if (rec) {
        rec->packets++;
        rec->bytes += ctx->data_end - ctx->data;
    }
    return action;
}
"""


def wrap_for_counters(source: str) -> tuple[str, list[str], list[str]]:
    """Make every ``SEC("xdp")``/``SEC("xdp.frags")`` function count its returns in
    ``xdplab_actions``: its definition becomes ``static __always_inline int
    __xdplab_user_NAME(...)`` (on the same line, so line numbers do not move), and a
    wrapper of the same name and section is appended. Returns (source, wrapped names,
    warnings about programs that could not be wrapped)."""
    out, pos, wrapped, wrappers, warnings = [], 0, [], [], []
    spans = []
    for m in _SEC_FUNC.finditer(source):
        if m["sec"] not in COUNTED_SECTIONS:
            continue
        name, arg, static = m["name"], m["arg"], m["static"] or ""
        decl_start = m.end("between")
        newlines = source.count("\n", decl_start, m.end())
        repl = (f"{static}int {name}(struct xdp_md *{arg}); static __always_inline int "
                f"__xdplab_user_{name}(struct xdp_md *{arg})" + "\n" * newlines)
        out += [source[pos:decl_start], repl]
        pos = m.end()
        spans.append(m.start())
        wrapped.append(name)
        wrappers.append(f'SEC("{m["sec"]}")\n{static}int {name}(struct xdp_md *ctx)\n'
                        f"{{\n    return __xdplab_count(ctx, __xdplab_user_{name}(ctx));\n}}\n")
    out.append(source[pos:])
    for m in _SEC_ANY.finditer(source):
        if m["sec"] in COUNTED_SECTIONS and m.start() not in spans:
            warnings.append(f'SEC("{m["sec"]}") on line {_line_of(source, m.start())} is not followed by '
                            "`int NAME(struct xdp_md *ctx)`: its packets are not counted")
    if not wrapped:
        return source, [], warnings
    return "".join(out) + WRAPPER_HEAD + "\n".join(wrappers), wrapped, warnings


# --- compiling -------------------------------------------------------------------------

@dataclass
class Compiled:
    elf: bytes
    warnings: str
    seconds: float
    filename: str          # the name clang (and so the BTF line info) knows the source by
    vmlinux: str | None


def filename_for(origin: str) -> str:
    base = os.path.basename(origin) or "cell"
    return base if re.fullmatch(r"[\w.+-]+", base) else "cell"


def compile_c(source: str, origin: str = "cell", first_line: int = 1, cflags=(),
              include_dirs=()) -> tuple[Compiled | None, str, str]:
    """``clang -O2 -g -target bpf`` of ``source`` whose first line is line ``first_line`` of
    ``origin``. Returns (Compiled or None, clang's output, the file name clang saw).
    Blank lines in front keep the line numbers; the file is written under its own name
    so clang's diagnostics and BTF line info (the verifier log's ``; ... @ file:N``) carry
    the user's file name and lines."""
    name = filename_for(origin)
    inc = [str(INCLUDE_DIR)]
    vm = vmlinux_dir()
    if vm is not None:
        inc.insert(0, str(vm))
    origin_dir = os.path.dirname(os.path.abspath(origin)) if os.path.exists(origin) else None
    if origin_dir:
        inc.insert(0, origin_dir)
    inc += [str(d) for d in include_dirs]
    with tempfile.TemporaryDirectory(prefix="xdplab-cc-") as tmp:
        src = Path(tmp) / name
        src.write_text("\n" * (first_line - 1) + source)
        out = Path(tmp) / "prog.o"
        # -fno-strict-aliasing, as the kernel's own build: packet code reads headers through
        # other types (lab 06's `*(__be16 *)icmp6`); with strict aliasing clang moved such a
        # read across a write (a wrong checksum) where BCC's compile of the same C did not
        cmd = ["clang", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-x", "c",
               "-fno-strict-aliasing",
               "-fno-color-diagnostics", "-Wno-unused-value", "-Wno-pointer-sign",
               *[f"-I{d}" for d in inc], f"-idirafter{UAPI_ARCH}", *cflags, "-c", name, "-o", str(out)]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return None, "clang did not finish in 300 s", name
        except FileNotFoundError:
            raise XDPLabError("clang is not installed", hint="run ./lab setup (Debian package clang)") from None
        dt = time.perf_counter() - t0
        text = r.stderr
        if r.returncode != 0 or not out.exists():
            return None, text or f"clang exited with {r.returncode}", name
        return Compiled(out.read_bytes(), text, dt, name, str(vm) if vm else None), text, name


_DIAG = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<kind>fatal error|error|warning): (?P<msg>.*)$", re.M)


def diagnostics(text: str, filename: str) -> list[tuple[int, int, str, str]]:
    """(line, col, 'error'|'warning', message) of clang's diagnostics about ``filename``;
    a fatal error counts as an error."""
    return [(int(m["line"]), int(m["col"]), "error" if "error" in m["kind"] else "warning", m["msg"])
            for m in _DIAG.finditer(text) if os.path.basename(m["file"]) == filename]


def implicit_declarations(text: str, filename: str) -> dict[str, int]:
    """function -> line of clang's 'implicit declaration of function' warnings."""
    out = {}
    for line, _, kind, msg in diagnostics(text, filename):
        m = re.search(r"implicit declaration of function '(\w+)'", msg)
        if m:
            out.setdefault(m.group(1), line)
    return out


def normalized(text: str) -> str:
    """clang's output with ``fatal error:`` written as ``error:`` (one parser for both)."""
    return re.sub(r"(:\d+:\d+: )fatal error: ", r"\1error: ", text)


# --- printk tags (xdplab.printk) for libbpf-style C ------------------------------------

_TOP_INCLUDE = re.compile(r'^\s*#\s*include\b.*$', re.M)
PRINTK_DEFINE = ("#define bpf_printk(fmt, args...) ___bpf_pick_printk(args)(XDPLAB_PRINTK_TAG fmt, ##args)"
                 " /* xdplab: tagged for prog.printk() */")


def tag_printk(source: str) -> tuple[str, str]:
    """Make ``bpf_printk`` put xdplab's per-program tag in front of each line: the blank
    line after the last ``#include`` becomes a redefinition of bpf_printk (the tag itself is
    ``-DXDPLAB_PRINTK_TAG``), so line numbers stay. Returns (source, "") or (source
    unchanged, why it could not)."""
    if not re.search(r"\bbpf_printk\s*\(", source):
        return source, ""
    last = None
    for m in _TOP_INCLUDE.finditer(source):
        last = m
    if last is None:
        return source, "no #include <bpf/bpf_helpers.h> to put the printk tag after"
    rest = source[last.end():]
    if not rest.startswith("\n") or not re.match(r"\n[ \t]*\n", rest):
        return source, "no blank line after the last #include, where the printk tag goes"
    nl = rest.index("\n", 1)
    return source[:last.end()] + "\n" + PRINTK_DEFINE + rest[nl:], ""
