"""The package's floors (ARCHITECTURE.md), checked on the import graph built with ``ast``.

- no import cycles between xdplab modules;
- no import from a lower layer to a higher one (the order is ``LAYERS``);
- a function-level import is only for a heavy optional dependency (``DEFERRABLE``), never
  for an xdplab module (that is how cycles get hidden);
- notebooks (labs/*.ipynb code cells), tests and benchmarks import no private module
  (a name with a leading underscore) of xdplab.

``python -m tests.test_architecture [ROOT]`` prints the figures (cycles, upward imports,
deferred imports), also for an old checkout.
"""
from __future__ import annotations

import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: low -> high. A module may import its own layer and the layers below it.
LAYERS = [
    ("foundation", ["xdplab.errors", "xdplab.failures", "xdplab.paths", "xdplab.display", "xdplab.owners"]),
    ("kernel", ["xdplab.kernel"]),
    ("programs", ["xdplab.programs"]),
    ("net", ["xdplab.net"]),
    ("tools", ["xdplab.tools"]),
    ("labs", ["xdplab.labs", "xdplab.dev"]),
    ("ui", ["xdplab.ui"]),
    ("api", ["xdplab", "xdplab.__main__"]),
]
#: what a function may import lazily: heavy or optional third-party packages (compilers,
#: plotting, notebooks, dataframes), so that ``import xdplab`` stays light
DEFERRABLE = {"bcc", "scapy", "pandas", "numpy", "bokeh", "jupyter_bokeh", "ipywidgets",
              "IPython", "tqdm", "nbclient", "nbformat", "jupyterlab", "playwright", "pyroute2",
              "firstuseauthenticator", "jupyterhub", "tornado"}     # the workshop's (requirements-workshop.txt)
#: third-party packages only the kernel layer may import (every netlink request goes through it)
KERNEL_ONLY = {"pyroute2"}


def layer_of(module: str) -> int | None:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    return rank


@dataclass
class Graph:
    edges: dict = field(default_factory=dict)         # module -> {imported xdplab module: line}
    deferred: list = field(default_factory=list)      # (module, line, imported)
    top: int = 0                                      # module-level import statements
    top_imports: list = field(default_factory=list)   # (module, line, imported) at module level

    def add(self, src, dst, line):
        self.edges.setdefault(src, {}).setdefault(dst, line)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: str, is_pkg: bool, node, modules: set[str]) -> list[str]:
    """The xdplab modules an import statement loads (``from . import a`` loads a)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = _resolve(module, is_pkg, node)
    out = []
    for a in node.names:
        sub = f"{base}.{a.name}"
        out.append(sub if sub in modules else base)
    return out


def build(root: Path = ROOT) -> Graph:
    files = {module_name(p, root): p for p in (root / "xdplab").rglob("*.py")}
    modules = set(files)
    g = Graph()
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        is_pkg = path.name == "__init__.py"
        _walk(tree, mod, is_pkg, modules, g, depth=0)
    return g


def _walk(node, mod, is_pkg, modules, g, depth):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            if isinstance(child, ast.ImportFrom) and child.module == "__future__":
                continue
            for t in _targets(mod, is_pkg, child, modules):
                (g.deferred if depth else g.top_imports).append((mod, child.lineno, t))
                if t.split(".")[0] == "xdplab" and t in modules:
                    g.add(mod, t, child.lineno)
            if not depth:
                g.top += 1
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            _walk(child, mod, is_pkg, modules, g, depth + 1)
        else:
            _walk(child, mod, is_pkg, modules, g, depth)


def cycles(g: Graph, include_deferred: bool = True) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    deferred_edges = {(m, t) for m, _, t in g.deferred}
    adj = {m: [t for t in ts if t != m and (include_deferred or (m, t) not in deferred_edges)]
           for m, ts in g.edges.items()}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj.get(v, []):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(adj):
        if v not in index:
            strong(v)
    return out


def upward(g: Graph) -> list[tuple[str, str, int]]:
    bad = []
    for m, ts in g.edges.items():
        for t, line in ts.items():
            lm, lt = layer_of(m), layer_of(t)
            if lm is not None and lt is not None and lt > lm:
                bad.append((m, t, line))
    return sorted(bad)


def deferred_xdplab(g: Graph) -> list:
    return [d for d in g.deferred if d[2].split(".")[0] == "xdplab"]


def deferred_not_allowed(g: Graph) -> list:
    return [d for d in g.deferred
            if d[2].split(".")[0] != "xdplab" and d[2].split(".")[0] not in DEFERRABLE]


def private_imports(root: Path = ROOT) -> list[tuple[str, str]]:
    """(where, what) for every import of a private xdplab module (or private name from one)
    in notebooks' code cells, tests and benchmarks."""
    found = []

    def scan(code: str, where: str):
        try:
            tree = ast.parse(code)
        except SyntaxError:
            return
        bound = {"xdplab"}            # names bound to xdplab modules in this file
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("xdplab"):
                bound |= {a.asname or a.name for a in n.names if a.name[:1].islower()}
        for n in ast.walk(tree):
            if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in bound
                    and n.value.id != "xdplab" and n.attr.startswith("_") and not n.attr.startswith("__")):
                found.append((where, f"{n.value.id}.{n.attr}"))
            if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("xdplab"):
                parts = (n.module or "").split(".")
                names = [a.name for a in n.names]
                if any(p.startswith("_") and p != "__main__" for p in parts) or any(
                        x.startswith("_") and not x.startswith("__") for x in names):
                    found.append((where, f"from {n.module} import {', '.join(names)}"))
            elif isinstance(n, ast.Import):
                for a in n.names:
                    if a.name.startswith("xdplab") and any(p.startswith("_") for p in a.name.split(".")):
                        found.append((where, f"import {a.name}"))
            elif isinstance(n, ast.Attribute) and n.attr.startswith("_") and not n.attr.startswith("__"):
                chain, v = [n.attr], n.value
                while isinstance(v, ast.Attribute):
                    chain.append(v.attr)
                    v = v.value
                if isinstance(v, ast.Name) and v.id == "xdplab":
                    found.append((where, "xdplab." + ".".join(reversed(chain))))

    for nb in sorted((root / "labs").rglob("*.ipynb")):
        for i, c in enumerate(json.loads(nb.read_text())["cells"]):
            if c["cell_type"] == "code":
                code = "".join(c["source"])
                code = "\n".join("pass" if l.lstrip().startswith(("%", "!")) else l
                                 for l in code.splitlines())
                scan(code, f"{nb.relative_to(root)} cell {i}")
    for d in ("tests", "benchmarks"):
        for p in sorted((root / d).glob("*.py")):
            scan(p.read_text(), str(p.relative_to(root)))
    return found


def figures(root: Path = ROOT) -> dict:
    g = build(root)
    return {"modules": len({*g.edges, *(t for ts in g.edges.values() for t in ts)}),
            "cycles": cycles(g), "upward": upward(g), "deferred_total": len(g.deferred),
            "deferred_xdplab": len(deferred_xdplab(g)), "top_level": g.top,
            "private_imports": len(private_imports(root))}


# --- the tests ---------------------------------------------------------------------------

def test_every_module_has_a_layer():
    g = build()
    missing = sorted(m for m in {*g.edges, *(t for ts in g.edges.values() for t in ts)}
                     if layer_of(m) is None)
    assert not missing, f"modules outside every layer (add them to LAYERS and ARCHITECTURE.md): {missing}"


def test_no_import_cycles():
    assert cycles(build()) == []


def test_no_upward_imports():
    bad = upward(build())
    assert not bad, "lower layer imports a higher one:\n" + "\n".join(
        f"  {m} ({LAYERS[layer_of(m)][0]}) line {line} -> {t} ({LAYERS[layer_of(t)][0]})" for m, t, line in bad)


def test_function_level_imports_only_for_heavy_optional_dependencies():
    g = build()
    bad = deferred_xdplab(g) + deferred_not_allowed(g)
    assert not bad, "function-level imports that are neither heavy nor optional:\n" + "\n".join(
        f"  {m}:{line} imports {t}" for m, line, t in sorted(bad))


def test_only_the_kernel_layer_speaks_netlink():
    """pyroute2 (rtnetlink, generic netlink, netns) is imported by xdplab.kernel only."""
    g = build()
    bad = [(m, line, t) for m, line, t in g.deferred + g.top_imports
           if t.split(".")[0] in KERNEL_ONLY and layer_of(m) != 1]
    assert not bad, "\n".join(f"  {m}:{line} imports {t}" for m, line, t in sorted(bad))
    # nor does anything above it open a netlink socket through the kernel layer's ipr()
    raw = []
    for path in sorted((ROOT / "xdplab").rglob("*.py")):
        if path.relative_to(ROOT / "xdplab").parts[0] == "kernel":
            continue
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.Attribute) and n.attr == "ipr":
                raw.append(f"{path.relative_to(ROOT)}:{n.lineno}")
    assert not raw, "netlink sockets opened above the kernel layer (use kernel.netlink):\n" + "\n".join(raw)


def test_the_kernel_layer_is_used_through_its_public_names():
    """Above the kernel layer nothing reaches for ``kernel._private`` (its public API is
    ``xdplab.kernel``'s names)."""
    bad = []
    for path in sorted((ROOT / "xdplab").rglob("*.py")):
        if "kernel" in path.relative_to(ROOT / "xdplab").parts[:1]:
            continue
        for n in ast.walk(ast.parse(path.read_text())):
            if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "kernel"
                    and n.attr.startswith("_") and not n.attr.startswith("__")):
                bad.append(f"{path.relative_to(ROOT)}:{n.lineno} kernel.{n.attr}")
    assert not bad, "\n".join(bad)


def test_closing_with_a_with_block_is_written_once():
    """``with obj:`` closing ``obj`` (and, where the class asks for it, closing it when it is
    collected) comes from ``errors.Closable``: no other class writes the same
    ``__enter__: return self`` / ``__exit__: self.close()`` pair or ``__del__: self.close()``."""
    bad = []
    for path in sorted((ROOT / "xdplab").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for c in ast.walk(ast.parse(path.read_text())):
            if not isinstance(c, ast.ClassDef) or (rel, c.name) == ("xdplab/errors.py", "Closable"):
                continue
            body = {f.name: [ast.unparse(x) for x in f.body] for f in c.body if isinstance(f, ast.FunctionDef)}
            if body.get("__enter__") == ["return self"] and body.get("__exit__") == ["self.close()"]:
                bad.append(f"{rel}:{c.lineno} {c.name}: __enter__/__exit__")
            if body.get("__del__") == ["try:\n    self.close()\nexcept Exception:\n    pass"]:
                bad.append(f"{rel}:{c.lineno} {c.name}: __del__ (set _close_when_collected = True)")
    assert not bad, "subclass errors.Closable instead:\n" + "\n".join(bad)


def test_notebooks_tests_and_benchmarks_import_no_private_module():
    bad = private_imports()
    assert not bad, "\n".join(f"  {w}: {what}" for w, what in bad)


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    """The checker itself: a fake package with a cycle and an upward import is caught."""
    pkg = tmp_path / "xdplab"
    (pkg / "kernel").mkdir(parents=True)
    (pkg / "net").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "kernel" / "__init__.py").write_text("from ..net import topo\n")
    (pkg / "net" / "__init__.py").write_text("")
    (pkg / "net" / "topo.py").write_text("from .. import kernel\ndef f():\n    from . import other\n")
    (pkg / "net" / "other.py").write_text("import os\n")
    g = build(tmp_path)
    assert cycles(g) == [["xdplab.kernel", "xdplab.net.topo"]]
    assert upward(g) == [("xdplab.kernel", "xdplab.net.topo", 1)]
    assert deferred_xdplab(g) == [("xdplab.net.topo", 3, "xdplab.net.other")]


if __name__ == "__main__":
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT
    f = figures(root)
    print(f"modules {f['modules']}, cycles {len(f['cycles'])} {f['cycles']}, upward imports "
          f"{len(f['upward'])}, deferred imports {f['deferred_total']} (of xdplab modules: "
          f"{f['deferred_xdplab']}) vs {f['top_level']} at module level, private imports from "
          f"notebooks/tests/benchmarks {f['private_imports']}")
    for m, t, line in f["upward"]:
        print(f"  up: {m}:{line} -> {t}")
