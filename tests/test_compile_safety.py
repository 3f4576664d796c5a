"""No C text may kill the process that compiles it (issue 11, item 2).

LLVM's BPF backend ends the compiling process with exit(1) on some C (bpf_printk with 4
values, floating point, a stack over 512 bytes). xdplab compiles in a forked child first:
the user gets a CompileError on their own line and the process lives on. Checked through
``xdplab.load`` in a fresh Python process and through ``%%xdp`` in a real Jupyter kernel
(jupyter_client), which must still answer afterwards.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html import escape
from pathlib import Path

import pytest

from xdplab.programs import safecompile

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).resolve().parent.parent

# (name, source, key, line of the source) — the line the user must change
KILLERS = [
    ("printk4", 'int p(struct xdp_md *ctx)\n{\n    bpf_printk("%d %d %d %d", 1, 2, 3, 4);\n'
                '    return XDP_PASS;\n}\n', "too-many-args", 3),
    ("float", "int p(struct xdp_md *c)\n{\n    double d = (c->data_end - c->data) * 1.5;\n"
              "    return d > 100 ? XDP_DROP : XDP_PASS;\n}\n", "float", 3),
    ("stack", "int p(struct xdp_md *ctx)\n{\n    char buf[640];\n    __builtin_memset(buf, 0, sizeof(buf));\n"
              "    return buf[ctx->ingress_ifindex & 511] ? XDP_DROP : XDP_PASS;\n}\n", "stack-limit", 3),
]

SCRIPT = r"""
import json, sys, xdplab
from xdplab.errors import CompileError
src = sys.stdin.read()
try:
    xdplab.load(src)
    out = {"loaded": True}
except CompileError as e:
    out = {"type": type(e).__name__, "key": e.key, "line": e.line, "text": str(e)}
print("RESULT " + json.dumps(out), flush=True)
"""


def _env(tmp_path) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), XDPLAB_CACHE=str(tmp_path / "cache"))


@pytest.mark.parametrize("name,src,key,line", KILLERS, ids=[k[0] for k in KILLERS])
def test_load_survives_llvm_fatal_error(tmp_path, name, src, key, line):
    """Before the fix the process ended with status 1 and printed nothing."""
    r = subprocess.run([sys.executable, "-c", SCRIPT], input=src, capture_output=True, text=True,
                       env=_env(tmp_path), timeout=300)
    assert r.returncode == 0, f"the process died ({r.returncode}): {r.stderr[-500:]}"
    res = json.loads(next(l for l in r.stdout.splitlines() if l.startswith("RESULT "))[7:])
    assert res.get("type") == "CompileError", res
    assert res["key"] == key and res["line"] == line, res
    assert f"cell line {line}" in res["text"]
    assert "compiled it in a child process" in res["text"]


def test_precheck_reports_death_and_remembers_good_sources(tmp_path, monkeypatch):
    from xdplab.programs.program import INCLUDE_DIR, Program
    monkeypatch.setattr(safecompile, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(safecompile, "CACHE_FILE", tmp_path / "safe-compiles")
    monkeypatch.setattr(safecompile, "_safe", set())
    flags = [f"-I{INCLUDE_DIR}", "-Wno-unused-value"]
    bad = Program(KILLERS[1][1]).full_source().encode()
    out = safecompile.precheck(bad, flags)
    assert out.status == "died" and out.how == "exit status 1" and "floatunsidf" in out.text
    good = Program("int p(struct xdp_md *ctx) { return XDP_PASS; }").full_source().encode()
    first = safecompile.precheck(good, flags)
    assert first.status == "ok" and not first.cached
    again = safecompile.precheck(good, flags)
    assert again.status == "ok" and again.cached
    assert (tmp_path / "safe-compiles").read_text().split() == [safecompile.source_key(good, flags)]
    broken = Program("int p(struct xdp_md *ctx) { return nope; }").full_source().encode()
    assert safecompile.precheck(broken, flags).status == "failed"


def test_magic_in_a_real_kernel_survives_and_shows_the_line(tmp_path):
    """%%xdp in a Jupyter kernel (jupyter_client): each cell ends in a CompileError naming
    the cell line (the %%xdp line is line 1), and the same kernel process answers after."""
    from jupyter_client.manager import start_new_kernel
    km, kc = start_new_kernel(kernel_name="python3", env=_env(tmp_path), cwd=str(tmp_path))
    try:
        def run(code):
            msg_id = kc.execute(code)
            reply = kc.get_shell_msg(timeout=300)
            while reply["parent_header"].get("msg_id") != msg_id:     # e.g. kernel_info replies
                reply = kc.get_shell_msg(timeout=300)
            outputs = []
            while True:
                m = kc.get_iopub_msg(timeout=60)
                if m["parent_header"].get("msg_id") == msg_id:
                    outputs.append(m)
                    if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                        break
            return reply["content"], outputs

        reply, _ = run("import os\npid0 = os.getpid()\n%load_ext xdplab")
        assert reply["status"] == "ok"
        for name, src, key, line in KILLERS:
            reply, outputs = run(f"%%xdp --no-attach\n{src}")
            assert reply["status"] == "error", name
            assert reply["ename"] == "CompileError", (name, reply["ename"], reply["evalue"])
            assert f"cell line {line + 1}" in reply["evalue"], (name, reply["evalue"])
            shown = [o for o in outputs if o["msg_type"] == "display_data"]
            assert shown, f"{name}: the error is shown as HTML"
            html = shown[0]["content"]["data"]["text/html"]
            marked = re.search(r"background:#f9d6d2[^>]*>(.*?)</div>", html).group(1)
            assert escape(src.splitlines()[line - 1]) in marked, "the highlighted line is the faulty one"
            assert f"{line + 1:4} " in marked
        reply, outputs = run("print(os.getpid() == pid0, 6 * 7)")
        assert reply["status"] == "ok"
        text = "".join(o["content"].get("text", "") for o in outputs if o["msg_type"] == "stream")
        assert "True 42" in text, "the same kernel process still runs"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
