"""Turn clang diagnostics and verifier logs into short errors about the user's lines.

``compile_error`` and ``verifier_error`` build the exceptions ``Program.load`` raises.
Each carries: ``key`` (which explanation), ``line`` (the user's line), ``message`` (what
clang or the verifier said), ``explanation`` (plain words and the usual fix), the source
(for rendering) and the full ``log``. ``display_error(exc)`` shows it in a notebook as
HTML (the line highlighted, the full log one click away) and as text elsewhere.

Where the verifier's log has no line info (BCC retries a load that failed with EINVAL
without BTF, and E2BIG failures carry no log at all), the instruction is mapped back to
the user's line by recompiling with a marker comment on every line (BCC's DEBUG_SOURCE
disassembly prints the source line above each instruction): nothing is loaded for that.
"""
from __future__ import annotations

import os
import re
import sys
from html import escape

from .. import failures, kernel
from ..display import in_notebook as _in_notebook
from ..errors import CompileError, VerifierError
from ..failures import Row
from .compile import capture_stderr as _capture_stderr, cflags as _cflags


#: an explanation is a failure row (xdplab.failures): key, title, pattern on the verifier's
#: (or clang's) message, what went wrong, the usual fix, optionally a pattern on the whole log
Explanation = Row
E = Explanation
EXPLANATIONS = [
    E("stale-pkt-pointer", "packet pointer used after the packet changed",
      r"invalid mem access 'scalar'|R\d+ invalid mem access 'inv'",
      "bpf_xdp_adjust_head/adjust_meta/adjust_tail may move or reallocate the packet, so the "
      "verifier turns every packet pointer taken before the call into a plain number; "
      "dereferencing one afterwards is refused.",
      "After the helper, reload `data = (void *)(long)ctx->data; data_end = ...` and redo the bounds checks.",
      log_pattern=r"call bpf_xdp_adjust_(head|meta|tail)"),
    E("pkt-end-arith", "arithmetic on data_end",
      r"pointer arithmetic on pkt_end",
      "data_end (pkt_end) may only be compared against; computing `data_end - N` is refused.",
      "Move the arithmetic to the packet pointer: `if (data + N > data_end) ...`."),
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
    E("bad-helper", "helper not available to XDP",
      r"unknown func|program of this type cannot use helper|helper call is not allowed|"
      r"invalid func|calling kernel function .* is not allowed",
      "The helper does not exist for XDP programs (skb, socket and task helpers need a "
      "context XDP does not have) or on this kernel.",
      "Use the XDP equivalent (ctx->data / bpf_xdp_load_bytes for bpf_skb_load_bytes); "
      "`bpftool feature probe` lists what XDP may call here."),
    E("map-type", "map type the helper does not accept",
      r"cannot pass map_type \d+ into func|map_type.*not supported|incompatible map|"
      r"cannot update map|expected=map_ptr",
      "The helper needs a particular map type (bpf_redirect_map: DEVMAP/CPUMAP/XSKMAP; "
      "bpf_tail_call: PROG_ARRAY), or the map cannot be changed from a program.",
      "Declare the map with the type the helper expects (BPF_DEVMAP, BPF_CPUMAP, BPF_XSKMAP, BPF_PROG_ARRAY)."),
    E("ctx-access", "invalid access to struct xdp_md",
      r"invalid bpf_context access|dereference of modified ctx ptr",
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
]

COMPILE_HINTS = [
    (r"use of undeclared identifier '(\w+)'; did you mean '(\w+)'", "a typo? clang suggests `{2}`"),
    (r"use of undeclared identifier", "declare it, or include the header that defines it"),
    (r"implicit declaration of function '(\w+)'",
     "BPF programs cannot call libc or undeclared functions: use a helper or a static inline function"),
    (r"expected ';'", "add the missing `;`"),
    (r"no member named '(\w+)' in '(struct \w+)'", "check the field names of `{2}` in the kernel header"),
    (r"redefinition of", "the name is already defined (the prelude and BCC define some names)"),
    (r"incompatible (pointer|integer) types?", "cast explicitly, e.g. `(void *)(long)ctx->data`"),
]
COMPILE = E("compile", "C compile error", r".", "clang could not compile the program.",
            "Fix the C error at the marked line.", kind="compile")
failures.register(*EXPLANATIONS, COMPILE,
                  *(Row(f"compile-hint-{i}", "clang diagnostic hint", pat, fix=hint, kind="compile-hint")
                    for i, (pat, hint) in enumerate(COMPILE_HINTS)))


def explain(message: str, log: str = "") -> Explanation | None:
    """The verifier row (xdplab.failures, kind 'verifier') that matches."""
    return failures.find("verifier", message, log)


def by_key(key: str) -> Explanation | None:
    return failures.by_key(key, "verifier") or failures.by_key(key, "compile")


# --- the verifier's message and the instruction it stopped at -------------------------

_INSN = re.compile(r"^\d+: \(|^;|^from \d+ to \d+|^R\d+_?w?=|^\d+: R\d|^processed \d+|^verification time|"
                   r"^stack depth|^mark_precise|^last_idx|^regs=|^parent |^bpf: Failed|^\s*$|^func#|^\d+: ")
_INSN_LINE = re.compile(r"^(\d+): \(")


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
    err.explanation, err.source, err.origin, err.entry = explanation, spec.source, spec.origin, \
        getattr(spec, "func", None) or ""
    return err


def compile_error(spec, text: str) -> CompileError:
    diags = []
    for m in re.finditer(rf"^{re.escape(spec.origin)}:(\d+):(\d+): (error|warning): (.*)$", text, re.M):
        diags.append((int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)))
    errors = [d for d in diags if d[2] == "error"]
    line = col = None
    hint = ""
    if errors:
        line, col, _, msg = errors[0]
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        message = f"{spec.origin} line {line}: {msg}{more}\n{_excerpt(spec, line, col)}"
        for pat, h in COMPILE_HINTS:
            m = re.search(pat, msg)
            if m:
                hint = h.format(*([m.group(0)] + list(m.groups())))
                break
    else:
        msg = next((l for l in text.splitlines() if "error" in l), text.strip()[:300]) or "unknown clang error"
        message = f"compiling {spec.origin} failed: {msg}"
    err = CompileError(message, diagnostics=diags, log=text, hint=hint)
    return _decorate(err, spec, "compile", line, msg, COMPILE, col)


def verifier_error(spec, text: str, exc: Exception, bpf=None) -> VerifierError:
    """``text``: what BCC printed (the verifier log, or BCC's own E2BIG message); ``bpf``:
    the BCC module, still alive, to fetch a missing log and map instructions to lines."""
    log = text
    if bpf is not None and "processed " not in log:
        log = (_reload_log(bpf, spec.entry) or "") + ("\n" + text if text.strip() else "")
    message = _verifier_message(log) if "processed " in log else (text.strip() or str(exc))
    first = message.split(" / ")[0]
    line = _line_from_log(log, spec.origin, log.find(first) if first else None)
    insn = _failing_insn(log, message)
    if line is None and insn is not None:
        try:
            line = insn_lines(spec).get(insn)
        except Exception:
            line = None
    exp = explain(message, log)
    head = f"verifier rejected {spec.entry}"
    if line:
        head += f" at {spec.origin} line {line}"
    body = f"{head}: {message}"
    if line:
        body += "\n" + _excerpt(spec, line)
    if exp:
        body += f"\n  why: {exp.what}"
    err = VerifierError(body, line=line, log=log, explanation=exp, hint=exp.fix if exp else "")
    err.insn = insn
    return _decorate(err, spec, exp.key if exp else None, line, message, exp)


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
        parts.append(f"<div style='margin-top:4px'><b>why:</b> {escape(exp.what)}</div>")
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
