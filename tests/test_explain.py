"""Broken programs (tests/broken/*.c) are rejected with the right explanation at the right
line, and nothing reaches the kernel: no XDP program is left loaded, none is attached."""
from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

import xdplab
from xdplab import kernel
from xdplab.programs import explain
from xdplab.errors import CompileError, VerifierError
from xdplab.programs.program import Program

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.c"))


def expectation(path: Path) -> tuple[str, int]:
    m = re.search(r"expect: ([\w-]+) line (\d+)", path.read_text().splitlines()[0])
    assert m, f"{path.name}: first line must be '// expect: KEY line N'"
    return m.group(1), int(m.group(2))


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
    assert len(BROKEN) >= 20
    for must in ("packet-bounds", "null-map-value", "uninit-stack", "loop", "too-complex", "bad-helper",
                 "return-value", "var-offset-pkt", "pkt-end-arith", "map-type", "compile"):
        assert must in keys, must
    assert keys <= {e.key for e in explain.EXPLANATIONS} | {"compile"}


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_program_is_explained(path):
    key, line = expectation(path)
    spec = Program(path.read_text(), origin=path.name)
    before = xdp_prog_ids(spec.entry)
    with pytest.raises((CompileError, VerifierError)) as info:
        spec.load()
    err = info.value
    assert err.key == key, f"{path.name}: {err.message}"
    assert err.line == line, f"{path.name}: {err.message}"
    assert isinstance(err, CompileError) == (key == "compile")
    assert err.explanation is not None and err.explanation.fix
    # the user's line, the explanation and the full log are all in the rendering
    html = explain.to_html(err)
    assert f"{line:4} " in html and "<details" in html and "background:#f9d6d2" in html
    src_line = path.read_text().splitlines()[line - 1].strip()
    assert explain.escape(src_line) in html
    assert f"line {line}" in str(err)
    assert not (xdp_prog_ids(spec.entry) - before), "a rejected program stayed loaded"


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
