"""Broken libbpf-style programs (tests/broken_libbpf/*.c): each is rejected with the right
explanation (key), on the user's own line (BTF line info in the verifier log, clang's
diagnostics), with the right hint, and nothing stays in the kernel."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from xdplab.programs import explain
from xdplab.errors import CompileError, VerifierError
from xdplab.programs.program import Program

from .test_explain import xdp_prog_ids

BROKEN = sorted((Path(__file__).parent / "broken_libbpf").glob("*.c"))
pytestmark = pytest.mark.kernel


def expectation(path: Path) -> tuple[str, int, str, str | None]:
    head = path.read_text().splitlines()
    m = re.match(r"// expect: ([\w-]+) line (\d+) hint: (.+)$", head[0])
    assert m, f"{path.name}: first line must be '// expect: KEY line N hint: TEXT'"
    d = re.match(r"// dialect: (\w+)", head[1])
    return m.group(1), int(m.group(2)), m.group(3).strip(), d.group(1) if d else None


def test_corpus_is_big_enough():
    assert len(BROKEN) >= 12
    keys = {expectation(p)[0] for p in BROKEN}
    assert keys <= {e.key for e in explain.EXPLANATIONS} | {"compile"}, keys


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_libbpf_program_is_explained(path):
    key, line, hint, dialect = expectation(path)
    spec = Program.from_file(str(path), dialect=dialect)
    entry = re.search(r"^int (\w+)\(", path.read_text(), re.M).group(1)
    before = xdp_prog_ids(entry)
    with pytest.raises((CompileError, VerifierError)) as info:
        spec.load()
    err = info.value
    src_line = path.read_text().splitlines()[line - 1].strip()
    assert (err.key, err.line) == (key, line), f"{path.name}: {err.key} line {err.line}: {err}"
    assert hint in err.hint, f"{path.name}: hint {err.hint!r}"
    assert f"line {line}" in str(err) and src_line in str(err)
    html = explain.to_html(err)
    assert explain.escape(src_line) in html and "<details" in html
    assert not (xdp_prog_ids(entry) - before), "a rejected program stayed loaded"
