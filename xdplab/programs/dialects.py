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

import ast
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
    (re.compile(r'\b__section\s*\(\s*"[^"]*"\s*\)'), '__section(...) (iproute2 style)'),
    (re.compile(r'\bstruct\s+(?:bpf_map_def|bpf_elf_map)\b'), "a pre-1.0 map definition"),
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
        refuse_bcc_script(source)
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


_PY_BCC = re.compile(r'^\s*(?:from\s+bcc\s+import\b|import\s+bcc\b)', re.M)


def bcc_script(text: str) -> tuple[str, list | None, str]:
    """The parts of a BCC Python script (BCC's examples/*.py) xdplab needs: the C text
    passed to ``BPF(text=...)``, its ``cflags`` as a list when they are literal (else
    None), and the cflags expression as written. ``UsageError`` when there is no such call."""
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise UsageError(f"not a Python script: {e}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "BPF":
            kw = {k.arg: k.value for k in node.keywords}
            c = kw.get("text") or (node.args[0] if node.args else None)
            if not (isinstance(c, ast.Constant) and isinstance(c.value, str)):
                continue
            flags = kw.get("cflags")
            try:
                literal = ast.literal_eval(flags) if flags is not None else []
            except ValueError:
                literal = None
            return c.value, literal, ast.unparse(flags) if flags is not None else "[]"
    raise UsageError("no BPF(text=\"...\") call with a literal C text in this script",
                     hint="pass the program's C text itself")


def refuse_bcc_script(source: str) -> None:
    """A BCC *Python* script given as the program: a UsageError saying what to pass (the C
    inside ``BPF(text=...)`` and the cflags the script passes), not a compile error."""
    m = _PY_BCC.search(source)
    if not m or not re.search(r"\bBPF\s*\(", source):
        return
    try:
        _, literal, written = bcc_script(source)
    except UsageError:
        written, literal = "", None
    how = (f"cflags={literal!r}" if literal is not None
           else f"the cflags it computes ({written}), evaluated")
    raise UsageError(
        f"this is a BCC Python script ({m.group(0).strip()} on line {_line_of(source, m.start())}), "
        "not C: xdplab loads the C text it passes to BPF(text=...)",
        hint=f"text, cflags, _ = xdplab.programs.dialects.bcc_script(open(path).read()); "
             f"xdplab.load(text, cflags=...) with {how}")


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
    r'\b(?:SEC|__section)\s*\(\s*"(?P<sec>[^"]*)"\s*\)(?P<between>\s*(?:__attribute__\s*\(\(\s*\w+\s*\)\)\s*)?)'
    r'(?P<static>static\s+)?(?:__always_inline\s+|inline\s+)?int\s+(?P<name>\w+)\s*\(\s*'
    r'(?:const\s+)?struct\s+xdp_md\s*\*\s*(?P<arg>\w+)\s*\)')
_SEC_ANY = re.compile(r'\b(?:SEC|__section)\s*\(\s*"(?P<sec>xdp[^"]*)"\s*\)')
COUNTED_SECTIONS = ("xdp", "xdp.frags")
# programs that run from a devmap/cpumap entry (xdp/devmap, xdp_devmap/NAME, xdp.frags/cpumap):
# not attached to an interface, not counted
_MAP_ENTRY_SECTION = re.compile(r"^xdp(?:\.frags)?[/_](?:devmap|cpumap)\b")


def counted_section(sec: str) -> bool:
    """Is a program of section ``sec`` (its function takes ``struct xdp_md *``) counted?
    Every one but programs run from a devmap/cpumap entry: ``xdp``, ``xdp.frags``, and
    the names older loaders took (``xdp1``, ``xdp_stats1``, ``xdp/pass``, ``tx``)."""
    return not _MAP_ENTRY_SECTION.match(sec)

# self-contained (no bpf/bpf_helpers.h: a program may carry an old copy of its own whose
# helper declarations would clash): what __uint/__type/SEC and bpf_map_lookup_elem expand to
WRAPPER_HEAD = """
#line 1 "<xdplab wrapper>"
struct __xdplab_rec { unsigned long long packets; unsigned long long bytes; };
struct {
    int (*type)[6];                     /* BPF_MAP_TYPE_PERCPU_ARRAY */
    int (*max_entries)[5];
    unsigned int *key;
    struct __xdplab_rec *value;
} xdplab_actions __attribute__((section(".maps"), used));
static void *(* const __xdplab_map_lookup_elem)(void *map, const void *key) = (void *) 1;
static inline __attribute__((always_inline)) int __xdplab_count(struct xdp_md *ctx, int action)
{
    unsigned int key = action;
    struct __xdplab_rec *rec;
    if (key >= 5)
        key = 0;
    rec = __xdplab_map_lookup_elem(&xdplab_actions, &key);
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
        if not counted_section(m["sec"]):
            continue
        name, arg, static = m["name"], m["arg"], m["static"] or ""
        decl_start = m.end("between")
        newlines = source.count("\n", decl_start, m.end())
        repl = (f"{static}int {name}(struct xdp_md *{arg}); static inline __attribute__((always_inline)) int "
                f"__xdplab_user_{name}(struct xdp_md *{arg})" + "\n" * newlines)
        out += [source[pos:decl_start], repl]
        pos = m.end()
        spans.append(m.start())
        wrapped.append(name)
        wrappers.append(f'__attribute__((section("{m["sec"]}"), used))\n{static}int {name}(struct xdp_md *ctx)\n'
                        f"{{\n    return __xdplab_count(ctx, __xdplab_user_{name}(ctx));\n}}\n")
    out.append(source[pos:])
    for m in _SEC_ANY.finditer(source):
        if counted_section(m["sec"]) and m.start() not in spans:
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
        source, _ = translate_legacy_maps(source)
        src.write_text("\n" * (first_line - 1) + source)
        extra = include_fallbacks(tmp)
        if origin_dir:       # last resort, after the system's: a project's shared headers one or
            # two levels up (selftests' progs/x.c includes "test_iptunnel_common.h" from ../,
            # which their Makefile passes as -I.)
            extra += [f"-idirafter{p}" for p in list(Path(origin_dir).parents)[:2]]
        compat = kernel_tree_compat(source, [d for d in inc if d != str(INCLUDE_DIR)] +
                                    [f[2:] for f in cflags if f.startswith("-I")])
        if compat:
            (Path(tmp) / "xdplab_kernel_compat.h").write_text(compat)
            extra += ["-include", str(Path(tmp) / "xdplab_kernel_compat.h")]
        out = Path(tmp) / "prog.o"
        # -fno-strict-aliasing, as the kernel's own build: packet code reads headers through
        # other types (lab 06's `*(__be16 *)icmp6`); with strict aliasing clang moved such a
        # read across a write (a wrong checksum) where BCC's compile of the same C did not
        flags = ["-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-fno-strict-aliasing",
                 "-fno-color-diagnostics", "-Wno-unused-value", "-Wno-pointer-sign",
                 *[f"-I{d}" for d in inc], f"-idirafter{UAPI_ARCH}", *extra, *cflags]
        cmd = ["clang", "-x", "c", *flags, "-c", name, "-o", str(out)]
        t0 = time.perf_counter()
        if legacy_maps_in_headers(source, [*inc, *(f[2:] for f in cflags if f.startswith("-I"))]):
            # a header it carries declares maps the pre-1.0 way: preprocess, rewrite them in
            # the preprocessed text (line markers keep files and lines), compile that
            pre = Path(tmp) / (Path(name).stem + ".i")
            try:
                r = subprocess.run(["clang", "-x", "c", *flags, "-E", name, "-o", str(pre)],
                                   cwd=tmp, capture_output=True, text=True, timeout=300)
            except FileNotFoundError:
                raise XDPLabError("clang is not installed", hint="run ./lab setup (Debian package clang)") from None
            if r.returncode != 0:
                return None, r.stderr or f"clang -E exited with {r.returncode}", name
            pre.write_text(translate_legacy_maps(pre.read_text())[0])
            cmd = ["clang", "-x", "cpp-output", *flags, "-c", pre.name, "-o", str(out)]
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


# --- published programs as their authors built them ------------------------------------

LIBBPF_HEADERS = "/usr/include/bpf"


def include_fallbacks(tmp: str) -> list[str]:
    """Include directories searched last, for spellings of headers that published programs
    use and the UAPI/libbpf headers answer: ``#include "bpf_helpers.h"`` /
    ``"bpf_endian.h"`` (old xdp-tutorial lessons, selftests, samples/bpf carried a copy;
    libbpf's is used), and ``<uapi/linux/bpf.h>`` (kernel-tree programs: the UAPI header)."""
    alias = Path(tmp) / "xdplab-alias"
    alias.mkdir(exist_ok=True)
    try:
        (alias / "uapi").symlink_to("/usr/include")
    except FileExistsError:
        pass
    (alias / "bpf_elf.h").write_text(BPF_ELF_H)
    return [f"-idirafter{LIBBPF_HEADERS}", f"-idirafter{alias}"]


# iproute2's include/bpf_elf.h (programs written for `tc`/`ip ... obj x.o` carry or expect it):
# the map definition its loader reads; xdplab rewrites such maps as BTF maps (pinning dropped)
BPF_ELF_H = """#ifndef __BPF_ELF__
#define __BPF_ELF__
#include <linux/types.h>
#define ELF_SECTION_LICENSE "license"
#define ELF_SECTION_MAPS "maps"
#define ELF_SECTION_PROG "prog"
#define ELF_SECTION_CLASSIFIER "classifier"
#define ELF_SECTION_ACTION "action"
#define ELF_MAX_MAPS 64
#define ELF_MAX_LICENSE_LEN 128
#define PIN_NONE 0
#define PIN_OBJECT_NS 1
#define PIN_GLOBAL_NS 2
struct bpf_elf_map {
	__u32 type;
	__u32 size_key;
	__u32 size_value;
	__u32 max_elem;
	__u32 flags;
	__u32 id;
	__u32 pinning;
	__u32 inner_id;
	__u32 inner_idx;
};
#define BPF_ANNOTATE_KV_PAIR(name, type_key, type_val)
#endif
"""


_UAPI_INCLUDE = re.compile(r'^\s*#\s*include\s*<uapi/', re.M)
_IF_VLAN = re.compile(r'^\s*#\s*include\s*<linux/if_vlan\.h>', re.M)
_VLAN_HDR = re.compile(r"\bstruct\s+vlan_hdr\s*\{")
_QUOTED = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)

KERNEL_COMPAT = """/* xdplab: this program is written the kernel tree's way (samples/bpf: #include <uapi/...>),
 * built there against the kernel's internal headers. xdplab builds it against the UAPI headers
 * plus the few kernel-internal names such programs use: */
#include <linux/types.h>
#include <bpf/bpf_endian.h>
typedef __u8 u8; typedef __u16 u16; typedef __u32 u32; typedef __u64 u64;
typedef __s8 s8; typedef __s16 s16; typedef __s32 s32; typedef __s64 s64;
#define htons(x) bpf_htons(x)
#define ntohs(x) bpf_ntohs(x)
#define htonl(x) bpf_htonl(x)
#define ntohl(x) bpf_ntohl(x)
#define memcpy(d, s, n) __builtin_memcpy((d), (s), (n))
#define memset(d, c, n) __builtin_memset((d), (c), (n))
#define memmove(d, s, n) __builtin_memmove((d), (s), (n))
#define cpu_to_be16(x) bpf_htons(x)
#define cpu_to_be32(x) bpf_htonl(x)
#define be16_to_cpu(x) bpf_ntohs(x)
#define be32_to_cpu(x) bpf_ntohl(x)
#define __force
#define __bitwise
#define AF_INET 2
#define AF_INET6 10
"""
KERNEL_VLAN_HDR = """/* linux/if_vlan.h (kernel-internal) */
struct vlan_hdr { __be16 h_vlan_TCI; __be16 h_vlan_encapsulated_proto; };
"""


def _texts(source: str, dirs, depth: int = 0, seen=None):
    """``source`` and the text of every quoted #include found in ``dirs`` (recursively)."""
    seen = set() if seen is None else seen
    yield source
    if depth > 6:
        return
    for name in _QUOTED.findall(source):
        for d in dirs:
            p = Path(d) / name
            if p.is_file() and p.resolve() not in seen:
                seen.add(p.resolve())
                try:
                    text = p.read_text(errors="replace")
                except OSError:
                    break
                yield from _texts(text, [str(p.parent), *dirs], depth + 1, seen)
                break


def kernel_tree_compat(source: str, dirs=()) -> str:
    """The header xdplab force-includes for a kernel-tree style program (it includes
    ``<uapi/...>``): kernel-internal types (u32), htons & co., memcpy, and ``struct
    vlan_hdr`` when it includes <linux/if_vlan.h> and defines none itself. "" otherwise."""
    if not _UAPI_INCLUDE.search(source):
        return ""
    texts = list(_texts(source, list(dirs)))
    out = KERNEL_COMPAT
    if any(_IF_VLAN.search(t) for t in texts) and not any(_VLAN_HDR.search(t) for t in texts):
        out += KERNEL_VLAN_HDR
    return out


# struct bpf_map_def SEC("maps") NAME = { .type = ..., ... };   (libbpf < 1.0; samples, tutorials)
# struct bpf_elf_map SEC("maps") NAME = { .type = ..., .size_key = ..., ... };   (iproute2)
# also as the preprocessor leaves it: SEC("maps") expanded to __attribute__((section("maps"), used)),
# with libbpf's #pragma lines and line markers in between
_LEGACY_MAP = re.compile(
    r'\bstruct\s+(?P<kind>bpf_map_def|bpf_elf_map)\b(?P<mid>(?:\s|#[^\n]*\n|(?:SEC|__section)\s*\(\s*(?:"maps"|ELF_SECTION_MAPS)\s*\)|'
    r'__attribute__\s*\(\(\s*section\s*\(\s*"maps"\s*\)\s*(?:,\s*used\s*)?\)\))+)'
    r'(?P<name>\w+)\s*=\s*\{(?P<body>[^{}]*)\}\s*;')
_LINE_MARKER = re.compile(r'^#\s*(\d+)\s+("[^"]*")', re.M)
_LEGACY_FIELDS = {"type": "type", "key_size": "key_size", "value_size": "value_size",
                  "max_entries": "max_entries", "map_flags": "map_flags", "size_key": "key_size",
                  "size_value": "value_size", "max_elem": "max_entries", "flags": "map_flags",
                  "numa_node": "numa_node"}
_LEGACY_DROPPED = ("pinning", "id", "inner_id", "inner_idx", "inner_map_idx")


def _split_top(body: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in body:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def translate_legacy_maps(source: str) -> tuple[str, list[str]]:
    """Pre-1.0 map definitions (``struct bpf_map_def SEC("maps") m = {.type = ..., ...};``,
    iproute2's ``struct bpf_elf_map``) rewritten as the BTF-defined maps libbpf 1.x reads
    (``struct { int (*type)[...]; int (*key_size)[...]; ... } m SEC(".maps");``, what
    ``__uint()`` expands to), on the same lines (line numbers do not move). Works on a source
    and on preprocessed text (line markers kept right). Returns (text, names of the maps
    rewritten). A definition it cannot read stays as it is (libbpf then names it)."""
    names = []

    def repl(m):
        if "maps" not in m["mid"] and "MAPS" not in m["mid"]:
            return m.group(0)
        fields = []
        for part in _split_top(m["body"]):
            f = re.fullmatch(r"\s*\.(\w+)\s*=\s*(.+?)\s*", part, re.S)
            if not f:
                return m.group(0)
            key, value = f.group(1), f.group(2)
            if key in _LEGACY_DROPPED:
                continue                  # pinning: xdplab leaves no pins (prog["map"].pin())
            if key not in _LEGACY_FIELDS:
                return m.group(0)
            fields.append(f"int (*{_LEGACY_FIELDS[key]})[{' '.join(value.split())}];")
        names.append(m["name"])
        attr = ('SEC(".maps")' if re.search(r"\bSEC\s*\(", m["mid"])
                else '__attribute__((section(".maps"), used))')
        text = "struct { " + " ".join(fields) + f' }} {m["name"]} {attr};'
        whole = m.group(0)
        markers = list(_LINE_MARKER.finditer(whole))
        if not markers:
            return text + "\n" * whole.count("\n")
        last = markers[-1]                # preprocessed: say again where the text after it is
        line = int(last.group(1)) + whole.count("\n", last.end() + 1)
        return f"{text}\n# {line} {last.group(2)}\n"

    return _LEGACY_MAP.sub(repl, source), names


def legacy_maps_in_headers(source: str, dirs) -> bool:
    """Does a header ``source`` carries (a quoted #include found in ``dirs``) declare maps
    the pre-1.0 way? Then xdplab rewrites them in the preprocessed text."""
    texts = list(_texts(source, list(dirs)))[1:]
    return any(_LEGACY_MAP.search(t) and 'maps"' in t for t in texts)


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
