"""Turn clang diagnostics and verifier logs into short errors about the user's lines.

``compile_error`` and ``verifier_error`` build the exceptions ``Program.load`` raises;
``EXPLANATIONS`` maps a verifier message to a plain explanation and the usual fix.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import CompileError, VerifierError


@dataclass(frozen=True)
class Explanation:
    key: str
    pattern: str
    what: str
    fix: str

    def matches(self, message: str) -> bool:
        return re.search(self.pattern, message) is not None


EXPLANATIONS = [
    Explanation("packet-bounds", r"invalid access to packet|R\d+ offset is outside of the packet",
                "The program reads or writes packet bytes without first proving to the verifier "
                "that they lie before data_end.",
                "Check `if ((void *)(hdr + 1) > data_end) return XDP_DROP;` before touching hdr."),
    Explanation("null-map-value", r"invalid mem access 'map_value_or_null'|map_value_or_null",
                "A map lookup can return NULL, and the program dereferences the result without checking.",
                "Write `if (!value) return XDP_PASS;` right after the lookup."),
    Explanation("uninit-stack", r"invalid (indirect )?read from stack|!read_ok|uninitialized stack",
                "The program reads stack memory it never wrote (e.g. a struct key with padding or "
                "an unset field passed to a helper).",
                "Initialise it: `struct key k = {};` or `__builtin_memset(&k, 0, sizeof(k));`."),
    Explanation("loop", r"back-edge|unbounded loop|infinite loop detected",
                "The verifier found a loop it cannot prove terminates.",
                "Give the loop a constant bound (`for (int i = 0; i < 8; i++)`), or `#pragma unroll`."),
    Explanation("too-complex", r"BPF program is too large|too many states|complexity limit|"
                r"program too large|combined stack size|stack size of",
                "The program is too large or has too many paths for the verifier to explore.",
                "Reduce branching, bound loops tightly, split work into tail calls or smaller functions."),
    Explanation("bad-helper", r"unknown func|program of this type cannot use helper|"
                r"helper call is not allowed|invalid func",
                "The program calls a helper that XDP programs may not use on this kernel.",
                "Use an XDP-allowed helper (see `bpftool feature probe` / the bpf-helpers man page)."),
    Explanation("return-value", r"R0 !read_ok|At program exit the register R0|R0 has value|"
                r"has unknown scalar value should have been in",
                "The program's return value is unset or outside XDP's actions.",
                "Return one of XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT on every path."),
    Explanation("var-offset-pkt", r"variable.*offset|misaligned packet access|misaligned access|"
                r"unbounded (min|max) value|math between pkt pointer and register with unbounded",
                "The packet is accessed at an offset the verifier cannot bound (or misaligned).",
                "Clamp the offset (`off &= 0x3f;`) and re-check data_end after adding it to the pointer."),
    Explanation("pkt-end-arith", r"pointer arithmetic on pkt_end|R\d+ pointer arithmetic on pkt_end",
                "The program does arithmetic on data_end; only comparisons with it are allowed.",
                "Compare `data + N > data_end` instead of computing `data_end - N`."),
    Explanation("map-type", r"cannot pass map_type \d+ into func|map_type.*not supported|"
                r"incompatible map type",
                "The helper does not accept this map type (e.g. bpf_redirect_map on a hash map).",
                "Use the map type the helper expects (BPF_DEVMAP / BPF_CPUMAP / BPF_XSKMAP for redirects)."),
    Explanation("invalid-mem", r"invalid mem access|R\d+ invalid mem access",
                "The program dereferences a value the verifier cannot prove is a valid pointer.",
                "Check pointers for NULL and keep packet pointers derived from ctx->data."),
]


def explain(message: str) -> Explanation | None:
    for e in EXPLANATIONS:
        if e.matches(message):
            return e
    return None


_INSN = re.compile(r"^\d+: \(|^;|^from \d+ to \d+|^R\d+_?w?=|^\d+: R\d|^processed \d+|^verification time|"
                   r"^stack depth|^mark_precise|^last_idx|^regs=|^parent |^bpf: Failed|^\s*$|^func#|^\d+: ")


def _verifier_message(log: str) -> str:
    """The verifier's own complaint: the non-instruction lines just before 'processed N insns'."""
    lines = log.splitlines()
    end = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("processed ")), len(lines))
    msg = []
    for line in reversed(lines[:end]):
        if _INSN.match(line):
            if msg:
                break
            continue
        msg.append(line.strip())
    return " / ".join(reversed(msg)) or "the verifier rejected the program"


def _last_user_line(log: str, origin: str, upto: int | None = None) -> int | None:
    line = None
    for m in re.finditer(rf"@ {re.escape(origin)}:(\d+)", log[:upto]):
        if int(m.group(1)) > 0:
            line = int(m.group(1))
    return line


def _excerpt(spec, line: int | None, col: int | None = None) -> str:
    if not line or line > len(spec.lines):
        return ""
    out = []
    for n in range(max(1, line - 1), min(len(spec.lines), line + 1) + 1):
        mark = ">" if n == line else " "
        out.append(f"{mark}{n:4} | {spec.lines[n - 1]}")
        if n == line and col:
            out.append(f"       | {' ' * (col - 1)}^")
    return "\n".join(out)


def compile_error(spec, text: str) -> CompileError:
    diags = []
    for m in re.finditer(rf"^{re.escape(spec.origin)}:(\d+):(\d+): (error|warning): (.*)$", text, re.M):
        diags.append((int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)))
    errors = [d for d in diags if d[2] == "error"]
    if errors:
        line, col, _, msg = errors[0]
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        message = f"{spec.origin} line {line}: {msg}{more}\n{_excerpt(spec, line, col)}"
    else:
        first = next((l for l in text.splitlines() if "error" in l), text.strip()[:300])
        message = f"compiling {spec.origin} failed: {first or 'unknown clang error'}"
    return CompileError(message, diagnostics=diags, log=text)


def verifier_error(spec, text: str, exc: Exception) -> VerifierError:
    message = _verifier_message(text)
    line = _last_user_line(text, spec.origin, text.find(message.split(" / ")[0]) if message else None)
    exp = explain(message)
    head = f"verifier rejected {spec.entry}"
    if line:
        head += f" at {spec.origin} line {line}"
    body = f"{head}: {message}"
    if line:
        body += "\n" + _excerpt(spec, line)
    if exp:
        body += f"\n  why: {exp.what}"
    if not text.strip():
        body = f"{head}: {exc}"
    return VerifierError(body, line=line, log=text, explanation=exp, hint=exp.fix if exp else "")
