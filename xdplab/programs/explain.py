"""Turn clang diagnostics and verifier logs into short errors about the user's lines.

``compile_error`` and ``verifier_error`` build the exceptions ``Program.load`` raises.
Each carries: ``key`` (which explanation), ``line`` (the user's line), ``message`` (what
clang or the verifier said), ``explanation`` (plain words and the usual fix), the source
(for rendering) and the full ``log``. ``display_error(exc)`` shows it in a notebook as
HTML (the line highlighted, the full log one click away) and as text elsewhere.

All the knowledge is one table of rows (``EXPLANATIONS``): a row matches clang's, LLVM's,
BCC's or the verifier's message (``stage``), optionally only with some context in the log
or in the user's source, and may move the line the tool named to the one the user must
change (``locate``: the call of a typo'd helper, the array that overflows the stack, the
map declaration the kernel refused). Add rows, not branches.

Where the verifier's log has no line info (BCC retries a load that failed with EINVAL
without BTF, and E2BIG failures carry no log at all), the instruction is mapped back to
the user's line by recompiling with a marker comment on every line (BCC's DEBUG_SOURCE
disassembly prints the source line above each instruction): nothing is loaded for that.
Where a tool names xdplab's own code (the counting wrapper, the prelude), the program is
built again without the wrapper to find the user's line.
"""
from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass
from html import escape
from typing import Callable

from .. import failures, kernel
from ..display import in_notebook as _in_notebook
from ..errors import CompileError, VerifierError
from ..failures import Row
from .compile import capture_stderr as _capture_stderr, cflags as _cflags
from .dialects import detect
from . import safecompile
from .compile import INCLUDE_DIR
from ..errors import XDPLabError
from dataclasses import replace


@dataclass(frozen=True)
class Explanation(Row):
    """A verifier or compile row of the failure table (xdplab.failures): key, title, the
    pattern on the tool's message, what went wrong, the fix ({1}, {2}: groups of
    ``pattern``), optionally patterns on the whole log and on the user's source."""
    #: "verifier" (the kernel's log) or "compile" (clang, LLVM's BPF backend, BCC's loader)
    stage: str = "verifier"
    source_pattern: str = ""   # and (optionally) against the user's source
    #: (spec, line the tool named, regex match on the message) -> the user's line to change
    locate: Callable | None = None
    #: compile rows: a clang *warning* that is the cause of what fails later (kept and shown)
    cause: bool = False

    def __post_init__(self):
        object.__setattr__(self, "kind", self.stage)        # the failure table's kind

    def matches(self, message: str = "", log: str = "", source: str = "", **facts) -> bool:
        return (re.search(self.pattern, message) is not None
                and (not self.log_pattern or re.search(self.log_pattern, log, re.M) is not None)
                and (not self.source_pattern or re.search(self.source_pattern, source, re.M) is not None))

    def hint_for(self, message: str) -> str:
        """``fix`` with ``{N}`` replaced by the message's regex groups."""
        m = re.search(self.pattern, message)
        groups = [m.group(0), *m.groups()] if m else []
        return re.sub(r"\{(\d)\}", lambda g: (groups[int(g.group(1))] or "") if int(g.group(1)) < len(groups)
                      else g.group(0), self.fix)


# --- where the user's line really is (row locators) -------------------------------------

def _code_lines(spec) -> list[str]:
    """The user's lines (numbered as errors number them) with comments and string/char
    literals blanked, so that braces and names are found only in code."""
    text = "\n".join(spec.lines)
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + (text[j - 1] if j - 1 > i else "")); i = j
        else:
            out.append(c); i += 1
    return "".join(out).split("\n")


def _indent(s: str) -> int:
    return len(s.expandtabs(8)) - len(s.expandtabs(8).lstrip())


def _unclosed_brace(spec, line, m) -> int | None:
    """A missing ``}``: the first line where, by the indentation, a block opened with ``{``
    has ended without one (the last line when the block runs to the end of the text)."""
    code = _code_lines(spec)
    if sum(t.count("{") for t in code) <= sum(t.count("}") for t in code):
        return line
    for opener, text in enumerate(code, 1):
        if text.count("{") <= text.count("}"):
            continue
        base = _indent(text)
        for n in range(opener + 1, len(code) + 1):
            t = code[n - 1]
            if not t.strip() and not spec.lines[n - 1].strip():
                continue
            if _indent(spec.lines[n - 1]) > base:
                continue
            if not t.strip().startswith("}"):
                return n
            break
    return max((n for n, t in enumerate(spec.lines, 1) if t.strip()), default=line)


_SIZES = {"char": 1, "u8": 1, "__u8": 1, "s8": 1, "__s8": 1, "uint8_t": 1, "int8_t": 1, "bool": 1,
          "short": 2, "u16": 2, "__u16": 2, "s16": 2, "__be16": 2, "__le16": 2, "uint16_t": 2,
          "int": 4, "u32": 4, "__u32": 4, "s32": 4, "__be32": 4, "__le32": 4, "uint32_t": 4, "float": 4,
          "long": 8, "u64": 8, "__u64": 8, "s64": 8, "__be64": 8, "uint64_t": 8, "double": 8}


def _stray_brace(spec, line, m) -> int | None:
    """An extra ``}`` (or a missing ``{``): the first ``}`` that closes a block whose ``{``
    line is indented differently, i.e. not the block the indentation says it closes."""
    code = _code_lines(spec)
    stack = []
    for n, text in enumerate(code, 1):
        for i, c in enumerate(text):
            if c == "{":
                stack.append(n)
            elif c == "}":
                if not stack:
                    return n
                opener = stack.pop()
                if opener != n and not text[:i].strip() and _indent(spec.lines[n - 1]) != _indent(spec.lines[opener - 1]):
                    return n
    return line


def _largest_array(spec, line, m) -> int | None:
    """The stack overflows where LLVM first writes past 512 bytes; the user's line to
    change is the big local array (the largest, in bytes, declared up to there; of equal
    ones the last, which pushed the stack over)."""
    best, best_bytes = None, 0
    for n, text in enumerate(_code_lines(spec), 1):
        if line and n > line:
            break
        for typ, ptr, count in re.findall(r"^\s+(?:const\s+|volatile\s+|unsigned\s+|signed\s+)*(\w+)\s*(\**)\s*\w+\s*\[\s*(\d+)\s*\]",
                                           text):
            size = int(count) * (8 if ptr else _SIZES.get(typ, 1))
            if size >= best_bytes:
                best, best_bytes = n, size
    return best if best_bytes >= 64 else line


def _map_declaration(spec, line, m) -> int | None:
    """The line declaring the map the kernel refused (``m.group(1)``: its name)."""
    name = m.group(1) if m and m.groups() else None
    if not name:
        return line
    for n, text in enumerate(_code_lines(spec), 1):
        if re.search(rf"\b(BPF_\w+|__uint|__type)\b.*\b{re.escape(name)}\b|\b{re.escape(name)}\b.*SEC\(", text):
            return n
    return line


def _noinline_call(spec, line, m) -> int | None:
    """The call of a function declared noinline (BCC builds no bpf-to-bpf calls)."""
    code = _code_lines(spec)
    names = []
    for text in code:
        if "noinline" in text:
            rest = re.sub(r"__attribute__\s*\(\(.*?\)\)|\b__?noinline__?\b|\bnoinline\b", " ", text)
            f = re.search(r"(\w+)\s*\(", rest)
            if f:
                names.append(f.group(1))
    for n, text in enumerate(code, 1):
        if "noinline" in text:
            continue
        for name in names:
            if re.search(rf"(?<![\w.>]){re.escape(name)}\s*\(", text) and not re.match(r"^\S", text):
                return n
    return line


def _map_call(spec, line, m) -> int | None:
    """The tail call (``.call(``, bpf_tail_call) on the line the verifier named or the first one."""
    code = _code_lines(spec)
    if line and line <= len(code) and re.search(r"\.call\s*\(|bpf_tail_call", code[line - 1]):
        return line
    return next((n for n, t in enumerate(code, 1) if re.search(r"\.call\s*\(|bpf_tail_call", t)), line)


def _first_use(spec, line, m) -> int | None:
    """The first code line naming what the message names (``m``'s last group: a misspelled
    struct is declared, as a pointer, lines before clang first needs its size)."""
    name = next((g for g in reversed(m.groups()) if g), None) if m else None
    if not name:
        return line
    return next((n for n, t in enumerate(_code_lines(spec), 1)
                 if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", t)), line)


def _helper_names() -> list[str]:
    try:
        text = open("/usr/include/linux/bpf.h").read()
    except OSError:
        return []
    return [f"bpf_{n}" for n in re.findall(r"\bFN\((\w+)", text)]


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, _helper_names(), n=1, cutoff=0.75)
    return f"a typo of the helper `{close[0]}`? " if close else ""


E = Explanation
_GLOBAL_VAR = (r"^(?!static\s+const\b|const\b|#|typedef\b|struct\s+\w+\s*\{|enum\b|union\b|BPF_)"
               r"(static\s+)?(volatile\s+)?(unsigned\s+|signed\s+)?"
               r"(int|long|short|char|bool|_Bool|[us]\d+|__[us]\d+|uint\d+_t|int\d+_t|struct\s+\w+)\s+\**\w+"
               r"\s*(\[[^\]]*\])?\s*(=[^;]*)?;")


def _core_field_line(spec, line, m):
    """CO-RE: libbpf replaced the access, so the log's last line info may be the line
    before: the first line from there on that names the missing field (issue 13)."""
    field = (m.group(2) or m.group(1)) if m is not None and m.lastindex else None
    if field:
        for n in range(line or 1, len(spec.lines) + 1):
            if re.search(rf"\b{re.escape(field)}\b", spec.lines[n - 1]):
                return n
    return line


EXPLANATIONS = [
    # --- the verifier (stage "verifier") ------------------------------------------------
    E("global-var", "global variable (BCC has no global data)",
      r"invalid mem access '(scalar|inv)'|R\d+ invalid mem access",
      "The program uses a writable global variable. BCC puts programs into the kernel without "
      "global data sections, so the variable's address is left as 0 and the verifier refuses "
      "the access (NULL is not a pointer it accepts).",
      "Keep the value in a map: `BPF_ARRAY(counter, u64, 1);` then `u32 k = 0; u64 *v = "
      "counter.lookup(&k); if (v) __sync_fetch_and_add(v, 1);` (a constant: `#define` or `const`).",
      log_pattern=r"^\d+: \(18\) r\d+ = 0x0\s*(;|$)", source_pattern=_GLOBAL_VAR),
    E("stale-pkt-pointer", "packet pointer used after the packet changed",
      r"invalid mem access 'scalar'|R\d+ invalid mem access 'inv'",
      "bpf_xdp_adjust_head/adjust_meta/adjust_tail may move or reallocate the packet, so the "
      "verifier turns every packet pointer taken before the call into a plain number; "
      "dereferencing one afterwards is refused.",
      "After the helper, reload `data = (void *)(long)ctx->data; data_end = ...` and redo the bounds checks.",
      log_pattern=r"call bpf_xdp_adjust_(head|meta|tail)"),
    E("bpf2bpf", "call of a non-inlined function (BCC has no bpf-to-bpf calls)",
      r"last insn is not an exit or jmp|jump out of range from insn|call to invalid destination|"
      r"unreachable insn|program must be (a )?(single|ended)|invalid call",
      "A function marked noinline is called: BCC loads only the entry function's code, so the "
      "call jumps out of the program.",
      "Make the called function `static __always_inline` (BCC inlines it), or use libbpf-style "
      "C (dialect='libbpf') for real bpf-to-bpf calls.",
      source_pattern=r"noinline", locate=_noinline_call),
    E("undefined-function", "call of a function that is not in the program",
      r"last insn is not an exit or jmp|jump out of range from insn|call to invalid destination",
      "The program calls a function whose code is not part of it: a typo in a helper's name, "
      "a function declared but never defined, or one BCC did not inline.",
      "Check the name of every function you call (helpers are `bpf_...`); define your own "
      "functions `static __always_inline` above their use."),
    E("pkt-end-arith", "arithmetic on data_end",
      r"pointer arithmetic on pkt_end",
      "data_end (pkt_end) may only be compared against; computing `data_end - N` is refused.",
      "Move the arithmetic to the packet pointer: `if (data + N > data_end) ...`."),
    E("negative-index", "index that may be negative",
      r"min value is negative|math between (map_value|fp|ptr_to_stack|stack)\w* pointer and register "
      r"with unbounded min value",
      "An index (or offset) is a signed value the verifier cannot prove is >= 0, so the access "
      "may land before the array, map value or packet.",
      "Make the index unsigned (`u32 i`), or check both bounds: `if (i < 0 || i >= N) return XDP_PASS;`."),
    E("unreleased-ref", "reference not released on every path",
      r"Unreleased reference|reference has not been (released|acquired)",
      "A helper handed out something that must be given back on every path (bpf_ringbuf_reserve "
      "-> bpf_ringbuf_submit/discard, bpf_sk_lookup_* -> bpf_sk_release); some path returns "
      "without it.",
      "Release it on every path before returning (submit or discard the ring buffer record, "
      "bpf_sk_release the socket)."),
    E("map-value-bounds", "map value accessed out of its bounds",
      r"invalid access to map value|R\d+ (min|max) value is outside of the allowed memory range|"
      r"map_value.*(out of bounds|unbounded)|value_size=\d+ off=|math between map_value pointer|"
      r"unbounded memory access|makes map_value pointer be out of bounds",
      "The program reads or writes past the end of a map value (value_size in the log), usually "
      "an array index inside the value that is not bounded to the array's length.",
      "Bound the index by the array's length: `if (i >= ARRAY_SIZE) return XDP_PASS;` "
      "(`<`, not `<=`), or mask it (`i &= N - 1` for a power of two)."),
    E("var-offset-pkt", "packet offset the verifier cannot bound",
      r"math between pkt pointer and register with unbounded|invalid access to packet.*R\d+\(id=[1-9]|"
      r"variable.*offset.*pkt|misaligned packet access|pkt pointer.*out of bounds",
      "A packet pointer was moved by a value the verifier cannot bound (read from the packet, "
      "or scaled beyond 64 KiB), so a data_end check on the moved pointer proves nothing "
      "(r=0 in the log: no verified range). On strict-alignment architectures a misaligned "
      "load gives the same class of error.",
      "Bound the offset before adding it (`if (hl > 60) return XDP_DROP;` or `hl &= 0x3c;`), "
      "then check `(void *)(p + 1) > data_end` on the moved pointer."),
    E("packet-bounds", "packet read without a data_end check",
      r"invalid access to packet|R\d+ offset is outside of the packet",
      "The program reads or writes packet bytes without first proving to the verifier that "
      "they lie before data_end (r=N in the log: how many bytes are proven; off+size must fit).",
      "Before touching a header: `if ((void *)(hdr + 1) > data_end) return XDP_DROP;` — one "
      "check per header, after moving the pointer."),
    E("null-map-value", "map value used without a NULL check",
      r"map_value_or_null",
      "A map lookup returns NULL when the key is absent (an array too, for an out-of-range "
      "index); the program uses the result without checking.",
      "Right after the lookup: `if (!value) return XDP_PASS;`."),
    E("pointer-math", "a pointer used as a number",
      r"pointer arithmetic (with|on) .*prohibited|R\d+ leaks addr|pointer comparison prohibited|"
      r"R\d+ (bitwise|32-bit pointer) .*prohibited|pointer .* prohibited",
      "A pointer (ctx, a packet or map pointer) is returned, cast to an integer, shifted, "
      "multiplied or compared as a number. The verifier lets pointers move by offsets and "
      "be compared with their bounds, nothing else (and never leave the program).",
      "Return an XDP action (`XDP_PASS`, ...), not a pointer; compute offsets as "
      "`(void *)p - data` only after a bounds check, and keep pointers typed as pointers."),
    E("return-value", "no return value on some path",
      r"R0 !read_ok|At program exit the register R0|R0 has (unknown scalar )?value|should have been in",
      "On some path the program exits without setting R0, its return value (or sets one outside "
      "the range this attach point allows).",
      "Return one of XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT on every path."),
    E("uninit-stack", "read of uninitialised memory",
      r"R\d+ !read_ok|invalid (indirect )?read from stack|uninitialized stack|"
      r"invalid (size of )?register (fill|spill)",
      "The program reads a register or stack slot nothing wrote (a never-assigned variable, a "
      "struct key with padding passed to a helper). Privileged loaders may read uninitialised "
      "stack on recent kernels; registers are always checked.",
      "Initialise it: `struct key k = {};` or `__builtin_memset(&k, 0, sizeof(k));`."),
    E("loop", "loop the verifier cannot prove terminates",
      r"back-edge|infinite loop detected|unbounded loop|loop detected",
      "The verifier found a loop whose state repeats (it can never terminate) or a back-edge "
      "it may not accept.",
      "Bound the loop by a constant (`for (int i = 0; i < 8; i++)`) or use bpf_loop()."),
    E("too-complex", "program too large or too complex to verify",
      r"BPF program is too large|too many states|complexity limit|program too large|"
      r"too large|jumps is too complex|combined stack size|stack size of|Argument list too long",
      "The verifier walks every path (and every iteration of a loop whose bound it tracks); "
      "it gave up at its budget (1M processed instructions, 8192 pending jumps, 512-byte stack).",
      "Bound loops tightly (a constant, not a packet field), cut branches, move work into "
      "bpf_loop() callbacks, tail calls or separate programs."),
    E("core-reloc", "CO-RE relocation failed: this kernel has no such field or type",
      r"failed to resolve CO-RE relocation <\w+> \[\d+\] (?:struct |union |enum |typedef )?(\w+)(?:\.(\w+))?",
      "libbpf relocates every field access of a CO-RE program against the running kernel's BTF; "
      "this field (or type) does not exist in this kernel, so libbpf poisoned the instruction "
      "and the verifier refused it (libbpf-style programs).",
      "Guard the access with `if (bpf_core_field_exists(p->field))` and a fallback, or read a field this "
      "kernel has (`bpftool btf dump file /sys/kernel/btf/vmlinux format c | grep -A20 'struct NAME {'`).",
      locate=_core_field_line),
    E("bad-helper", "helper not available to XDP",
      r"unknown func|program of this type cannot use helper|helper call is not allowed|"
      r"invalid func|calling kernel function .* is not allowed",
      "The helper does not exist for XDP programs (skb, socket and task helpers need a "
      "context XDP does not have) or on this kernel.",
      "Use the XDP equivalent (ctx->data / bpf_xdp_load_bytes for bpf_skb_load_bytes); "
      "`bpftool feature probe` lists what XDP may call here."),
    E("map-type", "map type the helper does not accept",
      r"cannot pass map_type \d+ into func|map_type.*not supported|incompatible map|"
      r"cannot update map|expected=map_ptr|expected prog array map|tail call",
      "The helper needs a particular map type (bpf_redirect_map: DEVMAP/CPUMAP/XSKMAP; "
      "bpf_tail_call / map.call(): PROG_ARRAY), or the map cannot be changed from a program.",
      "Declare the map with the type the helper expects (BPF_DEVMAP, BPF_CPUMAP, BPF_XSKMAP; "
      "BPF_PROG_ARRAY for tail calls)."),
    E("ctx-var-offset", "struct xdp_md read at a variable offset",
      r"variable ctx access|dereference of modified ctx ptr",
      "The program reads the context (struct xdp_md) through an index or a moved pointer. The "
      "verifier rewrites each ctx field load into a load from the kernel's xdp_buff, so it "
      "must see a constant offset: a field name.",
      "Read the fields by name (`ctx->rx_queue_index`, `ctx->ingress_ifindex`), e.g. with a "
      "`switch` on the index, never `((u32 *)ctx)[i]`."),
    E("ctx-access", "invalid access to struct xdp_md",
      r"invalid bpf_context access",
      "struct xdp_md is a view the verifier rewrites into loads of the real xdp_buff: its fields "
      "can only be read, whole, at their declared offsets.",
      "Read fields (`ctx->data`); change the packet with bpf_xdp_adjust_head/tail/meta."),
    E("stack-bounds", "stack access out of bounds",
      r"invalid (unbounded )?variable-offset (read from|write to) stack|invalid (read|write) from stack|"
      r"stack (offset|limit)|invalid stack",
      "The program indexes a stack array with an index the verifier cannot bound to the array.",
      "Bound the index first: `if (i >= sizeof(buf)) return XDP_DROP;` (or `i &= 15;`)."),
    E("invalid-mem", "dereference of something that is not a valid pointer",
      r"invalid mem access|R\d+ type=\w+ expected=",
      "The program dereferences (or passes to a helper) a value the verifier cannot prove is a "
      "valid pointer of the expected kind.",
      "Check pointers for NULL and derive packet pointers from ctx->data."),

    # --- clang, LLVM's BPF backend and BCC's loader (stage "compile") ---------------------
    # dialects (issue 13): libbpf's headers asked of BCC, BCC's macros in a libbpf program
    E("dialect", "libbpf-style C compiled as BCC",
      r"'(bpf/bpf_helpers\.h|vmlinux\.h|bpf/bpf_core_read\.h|bpf/bpf_endian\.h|bpf/bpf_tracing\.h)' file not found",
      "The program includes libbpf's headers, which BCC does not have.",
      "`{1}` is libbpf's: this is libbpf-style C, not BCC: load it with dialect='libbpf' "
      "(%%xdp --dialect libbpf), or leave the dialect out", stage="compile"),
    E("dialect", "BCC-style C compiled as libbpf",
      r"'(bcc/helpers\.h|bcc/proto\.h)' file not found",
      "The program includes BCC's headers.",
      "`{1}` is BCC's: this is BCC-dialect C: load it with dialect='bcc' (%%xdp --dialect bcc)",
      stage="compile"),
    E("unterminated-string", "string or character literal not closed",
      r"missing terminating '?[\"']'? character",
      "A string (or character) literal has no closing quote on its line, so everything after "
      "it is swallowed and the errors clang reports next are only consequences.",
      "Close the literal on the same line: `\"...\"` (a newline inside is written `\\n`).",
      stage="compile", cause=True),
    E("implicit-function", "call of an undeclared function",
      r"implicit declaration of function '(\w+)'|call to undeclared function '(\w+)'",
      "`{1}` is neither a BPF helper nor a function defined above: clang assumed an external "
      "function, which a BPF program cannot call (BCC then produces a program the verifier "
      "rejects with an unrelated message).",
      "{did_you_mean}Check the name (helpers: bpf_redirect, bpf_redirect_map, bpf_xdp_adjust_head, "
      "...); your own functions must be defined above their use, `static __always_inline`.",
      stage="compile", cause=True),
    E("bpf2bpf", "noinline function (BCC has no bpf-to-bpf calls)",
      r"use of undeclared identifier '__noinline__'",
      "`noinline` is a macro of the kernel headers, and BCC cannot build calls between BPF "
      "functions anyway: every function must be inlined into the XDP function.",
      "Write `static __always_inline int f(...)` for helper functions.",
      stage="compile", locate=lambda spec, line, m: line),
    E("float", "floating point (BPF has none)",
      r"built-in function '__\w*[sdt]f\w*'|floating.point|\bfloat\b|\bdouble\b|__(add|sub|mul|div|"
      r"floatun|floatsi|floatdi|fix|extend|trunc|lt|gt|le|ge|eq|ne|unord)[sdt]f",
      "BPF has no floating-point instructions: LLVM's BPF backend cannot compile a float or "
      "double computation (it would call a libgcc routine that does not exist in the kernel).",
      "Use integers, scaled: `len * 3 / 2` instead of `len * 1.5`, or fixed point (`x * 1000`).",
      stage="compile"),
    E("stack-limit", "more than 512 bytes of stack",
      r"BPF stack limit of 512 bytes|stack limit|stack size",
      "A BPF program has 512 bytes of stack; the local variables (here a large array) need more.",
      "Put the buffer in a per-CPU array map: `BPF_PERCPU_ARRAY(scratch, struct buf, 1);` then "
      "`u32 k = 0; struct buf *b = scratch.lookup(&k); if (!b) return XDP_PASS;`.",
      stage="compile", locate=_largest_array),
    E("too-many-args", "a call with more than 5 arguments",
      r"too many args to|more than (3|5) (conversion|args)",
      "A BPF call passes at most 5 arguments in registers: bpf_printk/bpf_trace_printk takes "
      "the format, its size and at most 3 values; your own functions take at most 5 parameters.",
      "Split it: at most 3 values per bpf_printk (use two calls), at most 5 parameters per "
      "function (pass a pointer to a struct).", stage="compile"),
    E("dynamic-stack", "variable-length array",
      r"dynamic stack allocation|\balloca\b|variable length array",
      "The size of a local array is not a constant; BPF's stack is fixed at compile time.",
      "Give the array a constant size (`char buf[64];`) and bound the part you use.",
      stage="compile"),
    E("unknown-map-type", "map type BCC does not know",
      r"unsupported map type|Invalid map type|unknown map type",
      "The map type in BPF_TABLE(\"type\", ...) is not one BCC knows, so the map is not created.",
      "Use a BCC macro (BPF_HASH, BPF_ARRAY, BPF_PERCPU_ARRAY, BPF_LRU_HASH, BPF_DEVMAP, "
      "BPF_CPUMAP, BPF_XSKMAP, BPF_PROG_ARRAY) or a type name such as \"hash\", \"array\", "
      "\"percpu_array\", \"lru_hash\", \"prog\".", stage="compile"),
    E("map-create", "the kernel refused to create a map",
      r"could not open bpf map: (\w+), error: (.*)",
      "The kernel did not create map `{1}` ({2}): max_entries x (key + value size) is more memory "
      "than it will give (Cannot allocate memory), or a size it does not accept (Invalid argument, "
      "Argument list too long).",
      "Make `{1}` smaller: fewer max_entries or a smaller value (large values belong in an "
      "array map of a few entries).", stage="compile", locate=_map_declaration),
    E("header-not-found", "header file not found",
      r"'([^']+)' file not found",
      "clang cannot find `{1}`. xdplab already includes the usual UAPI headers (linux/bpf.h, "
      "if_ether.h, ip.h, ipv6.h, tcp.h, udp.h, icmp.h, in.h) before your code.",
      "Drop the include, or name the kernel header as `<uapi/linux/...>` / `<linux/...>`; "
      "your own headers: %%xdp -I DIR.", stage="compile"),
    E("undeclared", "undeclared name",
      r"use of undeclared identifier '(\w+)'; did you mean '(\w+)'",
      "`{1}` is not declared; clang suggests `{2}`.", "a typo? clang suggests `{2}`", stage="compile"),
    E("undeclared", "undeclared name",
      r"use of undeclared identifier '(\w+)'|unknown type name '(\w+)'",
      "`{1}` is not declared.", "declare it, or include the header that defines it",
      stage="compile"),
    E("missing-brace", "missing `}`",
      r"expected '}'|function definition is not allowed here",
      "A block is not closed: a `{` has no matching `}` (clang then reports errors further "
      "down, where the next function starts).",
      "Add the missing `}` at the end of the block (the marked line is where the indentation "
      "says the block ends).", stage="compile", locate=_unclosed_brace),
    E("extra-brace", "a `}` too many (or a `{` missing)",
      r"extraneous closing brace|expected identifier or '\('|expected external declaration",
      "A `}` closes a block early (or the `{` of the block is missing), so the code after it is "
      "outside any function.",
      "Remove the extra `}`, or add the `{` it was meant to close (e.g. after an `if (...)` with "
      "several statements).", stage="compile", locate=_stray_brace),
    E("missing-semicolon", "missing `;`",
      r"expected ';'", "A statement or declaration is not ended by `;`.",
      "add the missing `;`", stage="compile"),
    E("no-member", "no such field",
      r"no member named '(\w+)' in '(struct \w+)'",
      "`{2}` has no field `{1}`.", "check the field names of `{2}` in the kernel header",
      stage="compile"),
    E("incomplete-type", "struct that is not defined",
      r"incomplete (definition of )?type '(struct \w+)'|(?:variable has|to an) incomplete type '(struct \w+)'",
      "The struct is only declared, not defined: its header is not included (or its name is "
      "misspelled).",
      "Include the header that defines it, or check the name (`struct ethhdr`, `struct iphdr`, "
      "`struct ipv6hdr`, `struct udphdr`, `struct tcphdr`, `struct vlan_hdr`).", stage="compile",
      locate=_first_use),
    E("redefinition", "name defined twice",
      r"redefinition of|conflicting types for",
      "The name is already defined (the prelude and BCC define some names).",
      "the name is already defined (the prelude and BCC define some names)", stage="compile"),
    E("incompatible-types", "incompatible types",
      r"incompatible (pointer|integer) types?",
      "A value of one type is used where another is needed.",
      "cast explicitly, e.g. `(void *)(long)ctx->data`", stage="compile"),
    E("helper-args", "wrong number of arguments",
      r"too (few|many) arguments to function call",
      "The call passes a different number of arguments than the function (or helper) takes.",
      "Check the helper's signature (`man bpf-helpers`) and pass exactly its arguments.",
      stage="compile"),
    E("no-entry", "no XDP function",
      r"(struct [\w\s\*]+)",
      "xdplab runs the first non-static function taking `{1}` (a pointer): none has that "
      "signature (a static function, a struct passed by value, another context type).",
      "Write the entry function as `int my_prog({1})`, not static.", stage="compile",
      source_pattern=r"(?!)"),        # never matched on a message: no_entry_error picks it by key
    E("signed-division", "signed division or remainder",
      r"\bsdiv\b|\bsrem\b|[Uu]nsupported signed division",
      "BPF (before the v4 instruction set, which this LLVM does not emit) has only unsigned "
      "division and remainder; a `/` or `%` on a signed type cannot be compiled.",
      "Divide unsigned values: declare them `u32`/`u64`, or cast: `(u32)len / 64`.", stage="compile"),
    E("backend", "construct LLVM's BPF backend cannot compile",
      r"in function \S+|LLVM ERROR|Cannot select|not supported|unsupported",
      "LLVM's BPF backend cannot turn this into BPF instructions (e.g. function pointers, "
      "aggregate returns, atomics or divisions BPF lacks). It would have ended the process; "
      "xdplab compiled in a child first.",
      "Rewrite the marked line with what BPF has: integer arithmetic, direct calls to "
      "helpers and static __always_inline functions.", stage="compile"),
]


def _fill(exp: "Explanation", message: str, text: str) -> str:
    """A row's fix for ``message``, with ``{did_you_mean}`` filled in."""
    fix = exp.hint_for(message)
    if "{did_you_mean}" in fix:
        m = re.search(exp.pattern, message)
        name = next((g for g in (m.groups() if m else ()) if g), "")
        fix = fix.replace("{did_you_mean}", _did_you_mean(name) if name else "")
    return fix



def dialect_hint(spec) -> str:
    """A program BCC compiled that is libbpf-style C (SEC(...), BTF-defined .maps,
    bpf/bpf_helpers.h): say so, whatever clang or the verifier said (BCC ignores BTF maps:
    the verifier then sees a scalar where a map should be)."""
    if getattr(spec, "libbpf", False) or not getattr(spec, "source", ""):
        return ""
    try:
        found = detect(spec.source)
    except Exception:
        return ""
    if found.dialect != "libbpf":
        return ""
    return (f"this is libbpf-style C ({found.reason}) but BCC compiled it (dialect='bcc'): BCC has "
            "its own helpers and does not create SEC(\".maps\") maps; load it with dialect='libbpf' "
            "(%%xdp --dialect libbpf), or leave the dialect out")


COMPILE = E("compile", "C compile error", r".", "clang could not compile the program.",
            "Fix the C error at the marked line.", stage="compile")
failures.register(*EXPLANATIONS, COMPILE)

#: why libbpf could not open an object (its log: ``log_pattern``), the last row for any other
#: reason (failures, kind 'libbpf-open'; asked by programs/libbpf.py)
OPEN_HINTS = failures.register(
    Row("legacy-maps", "pre-1.0 map definitions", kind="libbpf-open", log_pattern=r"legacy map definitions",
        fix="the object declares its maps the pre-1.0 way (struct bpf_map_def SEC(\"maps\"), as old "
            "samples and tutorials did), which libbpf 1.x (Debian's 1.1, what xdplab loads with) "
            "refuses: load its C source instead (xdplab rewrites such maps as BTF-defined maps), or "
            "declare them as struct { __uint(type, ...); ... } name SEC(\".maps\"); and rebuild"),
    Row("extern-symbol", "a symbol defined in another BPF object", kind="libbpf-open",
        log_pattern=r"failed to find BTF for extern",
        fix="the object declares a symbol extern (named in the message): it is defined in another BPF "
            "object that its build links in (samples/bpf: `bpftool gen object out.o prog.bpf.o "
            "xdp_sample.bpf.o`); link them and load the linked .o"),
    Row("unknown-section", "a section libbpf does not know", kind="libbpf-open",
        log_pattern=r"missing BPF prog type|failed to guess program type",
        fix='use a section libbpf knows for XDP: SEC("xdp") or SEC("xdp.frags")'),
    Row("bad-object", "not a BPF object libbpf can open", kind="libbpf-open",
        fix="check the object was built with `clang -O2 -g -target bpf` (BTF and a license)"),
)


def open_hint(log: str) -> str:
    """The fix for libbpf's ``log`` of an object it could not open (the 'libbpf-open' rows)."""
    row = failures.find("libbpf-open", log=log)
    return row.fix if row else ""


def explain(message: str, log: str = "", source: str = "", stage: str = "verifier") -> Explanation | None:
    """The first row of ``stage`` that matches (None: no row; compile errors then use COMPILE)."""
    for e in EXPLANATIONS:
        if e.stage == stage and e.matches(message, log, source):
            return e
    return None


def by_key(key: str) -> Explanation | None:
    return failures.by_key(key, "verifier") or failures.by_key(key, "compile")


_FUNC_DEF = re.compile(r"^(?!\s|#|typedef\b|struct\s+\w+\s*\{)[\w\s\*]*?\b(\w+)\s*\(([^;]*)$")


def no_entry_error(spec, what: str, arg: str) -> CompileError:
    """The source has no entry function xdplab recognises: a CompileError on the line of
    the function that was probably meant (static, no pointer, another argument type)."""
    code = _code_lines(spec)
    line = next((n for n, t in enumerate(code, 1) if _FUNC_DEF.match(t) and "BPF_" not in t
                 and not re.match(r"\s*static\b.*(inline|noinline)", t)), None)
    exp = by_key("no-entry")
    msg = f"no {what} function in {spec.origin}"
    if line:
        name = _FUNC_DEF.match(code[line - 1]).group(1)
        msg += f": `{name}` (line {line}) is not `int {name}({arg})`"
    message = msg + (f"\n{_excerpt(spec, line)}" if line else "") + f"\n  why: {_fmt(exp.what, exp, arg)}"
    found = [f"line {n}: {spec.lines[n - 1].strip()}" for n, t in enumerate(code, 1) if _FUNC_DEF.match(t)]
    log = (f"xdplab looks for a non-static `int NAME({arg})`; function definitions in {spec.origin}:\n"
           + ("\n".join(found) or "(none)"))
    err = CompileError(message, log=log, hint=_fmt(exp.fix, exp, arg))
    return _decorate(err, spec, exp.key, line, msg, exp)


# --- clang's and LLVM's diagnostics ------------------------------------------------------

@dataclass
class Diag:
    file: str
    line: int
    col: int
    severity: str          # "fatal error", "error", "warning", "note"
    message: str
    included_from: int | None = None   # the user's #include line, for a diagnostic in a header


_DIAG = re.compile(r"^(?:error: )?(?P<file>[^\s:][^:\n]*):(?P<line>\d+):(?P<col>\d+): "
                   r"(?:(?P<sev>fatal error|error|warning|note): |(?P<fn>in function \S+ [^:\n]*: ))(?P<msg>.*)$")
_INCLUDED = re.compile(r"^In file included from (?P<file>[^:\n]+):(?P<line>\d+):")


def diagnostics(text: str, origin: str) -> list[Diag]:
    out, included = [], None
    for raw in text.splitlines():
        m = _INCLUDED.match(raw)
        if m:
            if m.group("file") == origin and included is None:
                included = int(m.group("line"))
            continue
        m = _DIAG.match(raw)
        if not m:
            continue
        sev = m.group("sev") or "error"          # LLVM's backend: "error: FILE:L:C: in function f ...: msg"
        msg = m.group("msg")
        if m.group("fn"):
            msg = msg.strip()
        out.append(Diag(m.group("file"), int(m.group("line")), int(m.group("col")), sev, msg,
                        included if m.group("file") != origin else None))
        if sev != "note":
            included = None
    return out


def _cause_row(message: str, source: str) -> Explanation | None:
    return next((e for e in EXPLANATIONS if e.stage == "compile" and e.cause and e.matches(message, "", source)),
                None)


def _primary(diags: list[Diag], spec) -> Diag | None:
    """The diagnostic to show: the first error on a user line, unless a warning that causes
    errors (an unterminated string, an undeclared function) comes first; else an error in a
    header the user included (at the #include line)."""
    for d in diags:
        if d.file != spec.origin:
            continue
        if d.severity in ("error", "fatal error"):
            return d
        if d.severity == "warning" and _cause_row(d.message, spec.source):
            return d
    for d in diags:
        if d.severity in ("error", "fatal error") and d.included_from:
            return Diag(spec.origin, d.included_from, 0, d.severity, f"in {d.file}: {d.message}")
    return None


def _without_wrapper(spec):
    """The same program without xdplab's wrapper (count/capture), or None if it has none."""
    if spec.hook != "xdp" or not (getattr(spec, "count", False) or getattr(spec, "capture", False)):
        return None
    return replace(spec, count=False, capture=False)


def _compile_text(spec) -> str:
    """What compiling ``spec`` prints (in a child: it may be what killed the first one)."""
    cflags = [f"-I{INCLUDE_DIR}", "-Wno-unused-value",
              *(spec.all_cflags() if hasattr(spec, "all_cflags") else spec.cflags)]
    out = safecompile.precheck(spec.full_source().encode(), cflags)
    return out.text if out.status in ("failed", "died") else ""


def compile_error(spec, text: str, died: str = "") -> CompileError:
    """``text``: what clang, LLVM and BCC printed; ``died``: how the compiling child ended
    when LLVM stopped it (e.g. "exit status 1")."""
    diags = diagnostics(text, spec.origin)
    primary = _primary(diags, spec)
    if primary is None and any(d.severity in ("error", "fatal error") for d in diags):
        plain = _without_wrapper(spec)          # the error is in xdplab's wrapper: the user's code
        if plain is not None:                   # broke it (a missing brace): ask clang about it alone
            again = _compile_text(plain)
            d2 = diagnostics(again, spec.origin)
            primary = _primary(d2, spec)
            if primary is not None:
                diags, text = d2, again + "\n--- with xdplab's wrapper:\n" + text
    user = [(d.line, d.col, d.severity, d.message) for d in diags if d.file == spec.origin]
    errors = [d for d in diags if d.file == spec.origin and d.severity in ("error", "fatal error")]
    if primary is not None:
        msg, line, col = primary.message, primary.line, primary.col or None
    else:
        loose = [l.strip() for l in text.splitlines()
                 if re.search(r"error|LLVM ERROR|could not open bpf map|Cannot select", l)]
        msg, line, col = (loose[0] if loose else text.strip()[:300] or "unknown clang error"), None, None
        msg = re.sub(r"^(error: |LLVM ERROR: )", "", msg)
        at = re.search(rf"(?<![\w/]){re.escape(spec.origin)}:(\d+):(\d+)", text)   # e.g. "Cannot select: ... cell:6:48"
        if at:
            line, col = int(at.group(1)), int(at.group(2))
    exp = explain(msg, text, spec.source, "compile") or COMPILE
    if exp.locate is not None:
        new = exp.locate(spec, line, re.search(exp.pattern, msg))
        if new != line:
            line, col = new, None
    more = len(errors) - 1 if primary is not None and primary.severity != "warning" else len(errors)
    more = f" (+{more} more)" if more > 0 else ""
    where = f"{spec.origin} line {line}: " if line else f"compiling {spec.origin} failed: "
    message = f"{where}{msg}{more}"
    if line:
        message += "\n" + _excerpt(spec, line, col)
    if died:
        message += (f"\n  (LLVM's BPF backend ends the process that compiles this ({died}); "
                    "xdplab compiled it in a child process first)")
    if exp is not COMPILE:
        message += f"\n  why: {_fmt(exp.what, exp, msg)}"
    hint = dialect_hint(spec) or _fill(exp, msg, text)
    err = CompileError(message, diagnostics=user, log=text, hint=hint)
    err.died = died
    return _decorate(err, spec, exp.key, line, msg, exp, col)


def _fmt(text: str, exp: Explanation, message: str) -> str:
    return Explanation(exp.key, exp.title, exp.pattern, "", text).hint_for(message)


# --- the verifier's message and the instruction it stopped at -------------------------

_INSN = re.compile(r"^\d+: \(|^;|^from \d+ to \d+|^R\d+_?w?=|^\d+: R\d|^processed \d+|^verification time|"
                   r"^stack depth|^mark_precise|^last_idx|^regs=|^parent |^bpf: Failed|^\s*$|^func#|^\d+: ")
_INSN_LINE = re.compile(r"^(\d+): \(")
#: verifier messages the kernel may print on the end of an instruction line (no newline
#: between them), e.g. 6.18's "infinite loop detected at insn N"
_EMBEDDED = re.compile(r"(infinite loop detected at insn \d+|back-edge from insn \d+ to \d+|"
                       r"unreachable insn \d+|jump out of range from insn \d+ to \d+|"
                       r"last insn is not an exit or jmp|BPF program is too large.*)$")


def _verifier_message(log: str) -> str:
    """The verifier's own complaint: the non-instruction lines just before 'processed N insns'
    (also when it ends an instruction line, or 'processed' follows it without a newline)."""
    log = re.sub(r"(?<=\S)(processed \d+ insns)", r"\n\1", log)
    lines = log.splitlines()
    end = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("processed ")), len(lines))
    msg = []
    for line in reversed(lines[:end]):
        if _INSN.match(line):
            embedded = _EMBEDDED.search(line) if not line.startswith(";") else None
            if embedded and not msg:
                msg.append(embedded.group(1))
                break
            if msg:
                break
            continue
        msg.append(line.strip())
    msg = [m for m in reversed(msg) if not m.startswith(("cur state:", "old state:"))]
    return " / ".join(msg) or "the verifier rejected the program"


def _failing_insn(log: str, message: str) -> int | None:
    m = re.search(r"(?:at insn|unreachable insn|jump out of range from insn|back-edge from insn) (\d+)", message)
    if m:
        return int(m.group(1))
    first = message.split(" / ")[0]
    cut = log.find(first) if first else -1
    insn = None
    for line in log[:cut if cut >= 0 else None].splitlines():
        m = _INSN_LINE.match(line)
        if m:
            insn = int(m.group(1))
    return insn


def _line_from_log(log: str, origin: str, upto: int | None = None) -> int | None:
    """The last ``; ... @ origin:N`` annotation (BTF line info) before ``upto``."""
    line = None
    for m in re.finditer(rf"@ {re.escape(origin)}:(\d+)", log[:upto]):
        if int(m.group(1)) > 0:
            line = int(m.group(1))
    return line


def _last_file_in_log(log: str, upto: int | None = None) -> str | None:
    """The file of the last line annotation before ``upto`` (xdplab's wrapper, the prelude or
    the user's)."""
    last = None
    for m in re.finditer(r"^;.* @ (.+):(\d+)$", log[:upto], re.M):
        if int(m.group(2)) > 0:
            last = m.group(1)
    return last


_MARK = "//@xdplab-line:"


def insn_lines(spec) -> dict[int, int]:
    """Instruction index -> user line, from a compile (no load) with a marker comment on
    every user line and BCC's DEBUG_SOURCE disassembly."""
    from bcc import BPF
    out, pending = [], None
    for line in spec.full_source().splitlines():
        m = re.match(r'#line (\d+) "(.*)"$', line)
        if m:
            pending = int(m.group(1)) if m.group(2) == spec.origin else None
            continue
        if pending is not None and not line.endswith("\\"):
            line = f"{line} {_MARK}{pending}"
        out.append(line)
        pending = None
    with _capture_stderr() as err:
        try:
            b = BPF(text="\n".join(out).encode(), cflags=_cflags(spec.cflags),
                    debug=0x8)
            b.cleanup()
        except Exception:
            pass
    mapping, cur, in_entry = {}, None, False
    for line in err["text"].splitlines():
        if line.startswith("Disassembly of function"):
            in_entry = line.split()[-1] == spec.entry
            cur = None
            continue
        m = re.search(rf"{_MARK}(\d+)", line)
        if line.startswith(";"):
            cur = int(m.group(1)) if m else None
            continue
        m = re.match(r"\s*(\d+):\s", line)
        if m and in_entry and cur:
            mapping[int(m.group(1))] = cur
    return mapping


def _reload_log(bpf, entry: str) -> str:
    """Load BCC's instructions ourselves to get the verifier's log BCC did not keep
    (E2BIG). Since 6.4 the log rotates, so the fixed buffer keeps its tail."""
    try:
        insns = bpf.dump_func(entry)
        fd = kernel.prog_load_xdp(insns, name=entry[:15])
    except kernel.BPFError as e:
        return getattr(e, "log", "")
    except Exception:
        return ""
    os.close(fd)
    return ""


# --- building the errors ---------------------------------------------------------------

def _excerpt(spec, line: int | None, col: int | None = None, around: int = 1) -> str:
    if not line or line > len(spec.lines):
        return ""
    out = []
    for n in range(max(1, line - around), min(len(spec.lines), line + around) + 1):
        mark = ">" if n == line else " "
        out.append(f"{mark}{n:4} | {spec.lines[n - 1]}")
        if n == line and col:
            out.append(f"       | {' ' * (col - 1)}^")
    return "\n".join(out)


def _decorate(err, spec, key, line, message, explanation, col=None):
    err.key, err.line, err.column, err.message = key, line, col, message
    # the lines as the user sees them: a cell's ``%%xdp`` line is line 1
    err.explanation, err.source, err.origin, err.entry = explanation, "\n".join(spec.lines), spec.origin, \
        getattr(spec, "func", None) or ""
    err.why = _fmt(explanation.what, explanation, message) if explanation else ""
    return err


def _cause_warning(spec, warnings: str):
    """A clang warning on a user line that explains a later failure (an undeclared function
    clang assumed external): the verifier's complaint about it is only a consequence."""
    for d in diagnostics(warnings or "", spec.origin):
        if d.severity == "warning" and _cause_row(d.message, spec.source):
            return d
    return None


def verifier_error(spec, text: str, exc: Exception, bpf=None, warnings: str = ""):
    """``text``: what BCC printed (the verifier log, or BCC's own E2BIG message); ``bpf``:
    the BCC module, still alive, to fetch a missing log and map instructions to lines;
    ``warnings``: what clang printed compiling it. A ``VerifierError``, or a
    ``CompileError`` when a clang warning is the cause."""
    if _cause_warning(spec, warnings) is not None:
        err = compile_error(spec, warnings + "\n--- the verifier then said:\n" + text)
        return err
    log = text
    if bpf is not None and "processed " not in log:
        log = (_reload_log(bpf, spec.entry) or "") + ("\n" + text if text.strip() else "")
    message = _verifier_message(log) if "processed " in log else (text.strip() or str(exc))
    first = message.split(" / ")[0]
    upto = log.find(first) if first and log.find(first) >= 0 else None
    line = _line_from_log(log, spec.origin, upto)
    insn = _failing_insn(log, message)
    in_wrapper = _last_file_in_log(log, upto) not in (None, spec.origin)
    if in_wrapper or line is None:
        plain = _without_wrapper(spec)              # the log names xdplab's wrapper: load the
        if plain is not None:                       # user's function alone for the user's line
            again = _load_plain(plain)
            if again is not None and getattr(again, "line", None):
                return again
    if line is None and insn is not None:
        try:
            line = insn_lines(spec).get(insn)
        except Exception:
            line = None
    exp = explain(message, log, spec.source)
    if exp is not None and exp.locate is not None:
        line = exp.locate(spec, line, re.search(exp.pattern, message))
    head = f"verifier rejected {spec.entry}"
    if line:
        head += f" at {spec.origin} line {line}"
    body = f"{head}: {message}"
    if line:
        body += "\n" + _excerpt(spec, line)
    if exp:
        body += f"\n  why: {_fmt(exp.what, exp, message)}"
    err = VerifierError(body, line=line, log=log, explanation=exp,
                        hint=dialect_hint(spec) or (_fill(exp, message, log) if exp else ""))
    err.insn = insn
    return _decorate(err, spec, exp.key if exp else None, line, message, exp)


def _load_plain(spec):
    """Load ``spec`` (no wrapper); its error (None if it loads: then close it)."""
    try:
        prog = spec.load()
    except (CompileError, VerifierError) as e:
        return e
    except XDPLabError:
        return None
    prog.close()
    return None


# --- rendering -------------------------------------------------------------------------

_CSS = ("font-family:var(--jp-code-font-family,monospace);font-size:12px;border-left:4px solid #c0392b;"
        "padding:6px 10px;background:#fdf3f2;color:#222")


def to_html(err) -> str:
    """The error as HTML: title, the user's lines with the failing one highlighted, the
    message, the explanation and fix, and the full log in a collapsed <details>."""
    exp = getattr(err, "explanation", None)
    line = getattr(err, "line", None)
    lines = (getattr(err, "source", "") or "").splitlines()
    kind = "compile error" if isinstance(err, CompileError) else "verifier rejected the program"
    title = f"{kind}: {exp.title}" if exp and exp.key != "compile" else kind
    where = f" at {escape(getattr(err, 'origin', 'cell'))} line {line}" if line else ""
    rows = []
    if line and lines:
        for n in range(max(1, line - 3), min(len(lines), line + 2) + 1):
            style = "background:#f9d6d2;font-weight:bold" if n == line else ""
            rows.append(f"<div style='{style};white-space:pre'><span style='color:#888'>{n:4} </span>"
                        f"{escape(lines[n - 1]) or ' '}</div>")
            col = getattr(err, "column", None)
            if n == line and col:
                rows.append(f"<div style='white-space:pre;color:#c0392b'>     {' ' * (col - 1)}^</div>")
    msg = getattr(err, "message", None) or str(err).splitlines()[0]
    parts = [f"<div style='{_CSS}'><b style='color:#c0392b'>{escape(title)}</b>{where}",
             f"<div style='margin:6px 0'>{''.join(rows)}</div>" if rows else "",
             f"<div><b>{'clang' if isinstance(err, CompileError) else 'verifier'}:</b> "
             f"<code>{escape(msg)}</code></div>"]
    if exp and exp.key != "compile":
        why = getattr(err, "why", "") or exp.what
        parts.append(f"<div style='margin-top:4px'><b>why:</b> {escape(why)}</div>")
    fix = getattr(err, "hint", "") or (exp.fix if exp else "")
    if fix:
        parts.append(f"<div><b>fix:</b> {escape(fix)}</div>")
    log = getattr(err, "log", "")
    if log:
        label = "clang output" if isinstance(err, CompileError) else "full verifier log"
        parts.append(f"<details style='margin-top:6px'><summary>{label} ({len(log.splitlines())} lines)"
                     f"</summary><pre style='max-height:30em;overflow:auto'>{escape(log)}</pre></details>")
    parts.append("</div>")
    return "".join(parts)


def to_text(err) -> str:
    return str(err)


def display_error(exc) -> None:
    """Show a compile/verifier error: HTML in a notebook, text on stderr otherwise. Marks it
    ``shown`` so the traceback that follows is one line, not the same text again."""
    if not isinstance(exc, (CompileError, VerifierError)):
        return
    if _in_notebook():
        from IPython.display import HTML, display
        display(HTML(to_html(exc)))
    else:
        print(to_text(exc), file=sys.stderr)
    exc.shown = True
