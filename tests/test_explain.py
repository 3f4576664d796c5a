"""Broken programs (tests/broken/*.c) are rejected with the right explanation at the right
line, and nothing reaches the kernel: no XDP program is left loaded, none is attached."""
from __future__ import annotations

import re
import struct
from html import unescape as html_unescape
from pathlib import Path

import pytest

import xdplab
from xdplab import kernel
from xdplab.programs import explain
from xdplab.errors import CompileError, VerifierError
from xdplab.programs.program import Program

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.c"))


def expectation(path: Path) -> tuple[str, int, str]:
    m = re.search(r"expect: ([\w-]+) line (\d+) hint: (.+)$", path.read_text().splitlines()[0])
    assert m, f"{path.name}: first line must be '// expect: KEY line N hint: TEXT'"
    return m.group(1), int(m.group(2)), m.group(3).strip()


def xdp_prog_ids(name: str) -> set[int]:
    """IDs of the loaded XDP programs called ``name`` (BPF_PROG_GET_NEXT_ID walk; other
    processes may load XDP programs meanwhile, so the name tells ours apart)."""
    ids = set()
    for pid in kernel.prog_ids():
        info = kernel.prog_info_by_id(pid)
        if info and info["type"] == kernel.BPF_PROG_TYPE_XDP and info["name"] == name[:15]:
            ids.add(pid)
    return ids


def test_corpus_is_big_enough_and_covers_the_catalogue():
    keys = {expectation(p)[0] for p in BROKEN}
    assert len(BROKEN) >= 45
    for must in ("packet-bounds", "null-map-value", "uninit-stack", "loop", "too-complex", "bad-helper",
                 "return-value", "var-offset-pkt", "pkt-end-arith", "map-type", "undeclared",
                 # issue 11: LLVM fatal errors, warnings that are the cause, xdplab's wrapper, hints
                 "too-many-args", "float", "stack-limit", "implicit-function", "bpf2bpf", "missing-brace",
                 "pointer-math", "header-not-found", "map-value-bounds", "ctx-var-offset",
                 "unknown-map-type", "map-create", "global-var", "unterminated-string", "extra-brace",
                 "no-entry"):
        assert must in keys, must
    assert keys <= {e.key for e in explain.EXPLANATIONS}


def test_every_row_has_a_known_stage_and_keys_do_not_cross_stages_by_accident():
    for e in explain.EXPLANATIONS:
        assert e.stage in ("compile", "verifier") and e.what and e.fix, e.key
        re.compile(e.pattern)


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_program_is_explained(path):
    key, line, hint = expectation(path)
    spec = Program(path.read_text(), origin=path.name)
    entry = re.search(r"^int (\w+)\(", path.read_text(), re.M).group(1)
    before = xdp_prog_ids(entry)
    with pytest.raises((CompileError, VerifierError)) as info:
        spec.load()
    err = info.value
    assert err.key == key, f"{path.name}: {err.message}"
    assert err.line == line, f"{path.name}: {err.message}"
    assert isinstance(err, CompileError) == (err.explanation.stage == "compile")
    assert err.explanation is not None and err.explanation.fix
    assert hint in err.hint, f"{path.name}: hint {err.hint!r}"
    # the user's line, the explanation and the full log are all in the rendering
    html = explain.to_html(err)
    assert f"{line:4} " in html and "<details" in html and "background:#f9d6d2" in html
    src_line = path.read_text().splitlines()[line - 1]
    marked = re.search(r"background:#f9d6d2[^>]*>(.*?)</div>", html).group(1)
    assert explain.escape(src_line) in marked, "the highlighted line is the user's line"
    assert f"line {line}" in str(err)
    assert not (xdp_prog_ids(entry) - before), "a rejected program stayed loaded"


def test_magic_cell_highlights_the_faulty_line_not_the_next(monkeypatch):
    """The %%xdp line is line 1 of the cell: the headline and the highlighted excerpt agree
    (lab 03: "the highlighted line reads `ip->ihl`")."""
    from IPython.core.interactiveshell import InteractiveShell
    import IPython.display
    shown = []
    monkeypatch.setattr(explain, "_in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    shell = InteractiveShell.instance()
    xdplab.load_ipython_extension(shell)
    cell = ("int xdp_hl(struct xdp_md *ctx)\n{\n"
            "    void *data = (void *)(long)ctx->data;\n"
            "    void *data_end = (void *)(long)ctx->data_end;\n"
            "    struct ethhdr *eth = data;\n"
            "    if ((void *)(eth + 1) > data_end) return XDP_PASS;\n"
            "    struct iphdr *ip = (void *)(eth + 1);\n"
            "    if (ip->ihl < 5)\n        return XDP_DROP;\n    return XDP_PASS;\n}\n")
    with pytest.raises(VerifierError) as info:
        shell.run_cell_magic("xdp", "--no-attach", cell)
    err = info.value
    assert err.line == 9 and "cell line 9" in str(err)     # line 8 of the C + the %%xdp line
    assert ">   9 |     if (ip->ihl < 5)" in str(err)
    html = shown[-1].data
    marked = re.search(r"background:#f9d6d2[^>]*>(.*?)</div>", html).group(1)
    assert "if (ip->ihl < 5)" in html_unescape(marked) and "   9 " in marked


def test_verifier_message_at_the_end_of_an_instruction_line():
    """6.18 prints some reasons on the end of an instruction line (no newline), and
    "processed N insns" may follow a message without one."""
    log = ("0: R1=ctx() R10=fp0\n; for (;;) { @ cell:3\n0: (05) goto pc-1\n"
           "0: (05) goto pc-1infinite loop detected at insn 0\n"
           "processed 9 insns (limit 1000000) max_states_per_insn 0 total_states 1\n")
    spec = Program("int p(struct xdp_md *ctx)\n{\n    for (;;) {}\n    return XDP_PASS;\n}")
    err = explain.verifier_error(spec, log, Exception("Invalid argument"))
    assert err.key == "loop" and err.line == 3 and "infinite loop detected at insn 0" in err.message
    log2 = ("; progs.call(ctx, 0); @ cell:2\n4: (85) call bpf_tail_call#12\n"
            "expected prog array map for tail callprocessed 4 insns (limit 1000000)\n")
    err = explain.verifier_error(Program("int p(struct xdp_md *ctx) {\n progs.call(ctx, 0);\n}"),
                                 log2, Exception("Invalid argument"))
    assert err.message == "expected prog array map for tail call" and err.key == "map-type"


def test_magic_shows_html_and_attaches_nothing(topo, monkeypatch):
    """The %%xdp magic on a broken cell: the error is displayed as HTML, the exception is
    raised, and the interface keeps no XDP program."""
    from IPython.core.interactiveshell import InteractiveShell
    import IPython.display
    shown = []
    monkeypatch.setattr(explain, "_in_notebook", lambda: True)          # render as in a kernel
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    shell = InteractiveShell.instance()
    xdplab.load_ipython_extension(shell)
    src = (Path(__file__).parent / "broken" / "01_no_data_end.c").read_text()
    dev = topo["h1"].outside
    with pytest.raises(VerifierError) as info:
        shell.run_cell_magic("xdp", f"--dev {dev}", src)
    assert info.value.shown and info.value.key == "packet-bounds"
    assert shown and "eth-&gt;h_proto" in shown[0].data and "<details" in shown[0].data
    assert kernel.xdp_state(dev) == {}


def test_plain_text_outside_a_notebook(capsys):
    with pytest.raises(VerifierError) as info:
        xdplab.load((Path(__file__).parent / "broken" / "03_null_map.c").read_text())
    explain.display_error(info.value)
    err = capsys.readouterr().err
    assert "line 9" in err and "if (!value)" in err and info.value.shown
