"""requirements.txt, pyproject.toml and environment.yml list the same packages and versions;
BCC is in none of them (it comes from the OS packages, see environment.yml)."""
from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _norm(spec: str) -> tuple[str, str]:
    """'jupyter_bokeh>=4.0' -> ('jupyter-bokeh', '>=4.0'); conda's 'python=3.11' style too."""
    r = Requirement(re.sub(r"^([\w.-]+)=(?!=)", r"\1==", spec.strip()))
    return re.sub(r"[-_.]+", "-", r.name).lower(), str(r.specifier)


def requirements_txt() -> dict:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return dict(_norm(l) for l in lines if l.strip() and not l.lstrip().startswith("#"))


def pyproject() -> dict:
    p = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(p["dependencies"]) + [s for extra in p.get("optional-dependencies", {}).values()
                                       for s in extra]
    return dict(map(_norm, specs))


def environment_yml() -> tuple[dict, dict]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = {}, {}
    for d in env["dependencies"]:
        if isinstance(d, dict):
            pip.update(_norm(s) for s in d.get("pip", []))
        else:
            conda.update([_norm(d)])
    return env, {**{k: v for k, v in conda.items() if k not in ("python", "pip")}, **pip}


def test_three_files_agree():
    req, proj = requirements_txt(), pyproject()
    _, env = environment_yml()
    assert req == proj, f"requirements.txt vs pyproject.toml: {set(req.items()) ^ set(proj.items())}"
    assert req == env, f"requirements.txt vs environment.yml: {set(req.items()) ^ set(env.items())}"


def test_python_versions_agree():
    env, _ = environment_yml()
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    pinned = _norm(py)[1].lstrip("=")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet
    assert pinned in SpecifierSet(requires), f"environment.yml {py} outside requires-python {requires}"


@pytest.mark.parametrize("name", ["bcc", "bpfcc", "python3-bpfcc"])
def test_bcc_comes_from_the_os(name):
    req, proj = requirements_txt(), pyproject()
    _, env = environment_yml()
    for where, deps in (("requirements.txt", req), ("pyproject.toml", proj), ("environment.yml", env)):
        assert name not in deps, f"{where} lists {name!r}: PyPI's/conda's bcc is not BCC"


def test_environment_yml_explains_bcc():
    env, _ = environment_yml()
    text = (ROOT / "environment.yml").read_text()
    assert env.get("variables", {}).get("PYTHONPATH") == "/usr/lib/python3/dist-packages"
    assert "python3-bpfcc" in text and "conda-forge has no bcc" in text


def test_requirements_really_installed():
    """The venv the lab runs in satisfies the list (catches a requirement nobody installed)."""
    from importlib.metadata import PackageNotFoundError, version
    from packaging.specifiers import SpecifierSet
    bad = []
    for name, spec in requirements_txt().items():
        try:
            v = version(name)
        except PackageNotFoundError:
            bad.append(f"{name} missing")
            continue
        if v not in SpecifierSet(spec):
            bad.append(f"{name} {v} not {spec}")
    assert not bad, "; ".join(bad)


# --- a non-editable install, outside the checkout ------------------------------------------

INSTALLED_CHECK = r"""
import importlib.metadata as md, os, sys, time, xdplab
t0 = time.monotonic()
from xdplab import paths
assert xdplab.__file__.startswith(sys.prefix), xdplab.__file__       # the venv's copy, not the checkout
import pyroute2, scapy, IPython
for m in (pyroute2, scapy, IPython):                 # its dependencies came with it, from PyPI
    assert m.__file__.startswith(sys.prefix), m.__file__
import bcc                                           # ... and BCC from Debian's python3-bpfcc
assert bcc.__file__.startswith("/usr/lib/python3/dist-packages"), bcc.__file__
assert paths.CHECKOUT is None and paths.INCLUDE_DIR.joinpath("xdplab.h").is_file()
assert paths.program("policer.c").is_file() and paths.program("fib_router.c").is_file()
import xdplab.labs, xdplab.dev.smoke, xdplab.ui.cli          # every subpackage is there
from xdplab.labs import grading
grading.discover()
assert {"01", "05", "11"} <= set(grading.EXERCISES), sorted(grading.EXERCISES)
from xdplab.labs import lab07_drivers                # lab 07's grader lives with its lab
from xdplab.net.topology import Topology
t = None
for net in range(180, 190):                 # a test subnet no live topology holds
    try:
        t = Topology(prefix=f"xp{os.getpid() % 100:02d}k-", net=net).up()
        break
    except xdplab.TopologyError as e:
        if "already in use" not in str(e):
            raise
try:
    prog = xdplab.load("int xdp_drop_icmp(struct xdp_md *ctx) {\n"
                       "    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;\n"
                       "    struct ethhdr *eth = data; struct iphdr *ip = data + sizeof(*eth);\n"
                       "    if ((void *)(ip + 1) > end) return XDP_PASS;\n"
                       "    return ip->protocol == IPPROTO_ICMP ? XDP_DROP : XDP_PASS;\n}\n")
    prog.attach(t["h1"])
    assert t["h1"].ping(t["h1"].gw4, count=2, interval=0.1) == 0
    assert prog.counters()["DROP"] >= 2, prog.counters()
    from xdplab.tools import qos
    qos.load_policer(rate="10mbit").close()   # a program the library ships as package data
    prog.close()
    print("installed xdplab compiled, loaded, attached and dropped:", prog.id)
finally:
    xdplab.detach_all()
    t.down()
print(f"check took {time.monotonic() - t0:.1f} s")
"""


def _checkout_files(top: Path) -> set[str]:
    """The package's files (modules and data) relative to ``top``/xdplab."""
    return {str(p.relative_to(top)) for p in top.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")}


@pytest.mark.kernel
@pytest.mark.slow
def test_pip_install_outside_the_checkout_compiles_loads_and_attaches(tmp_path):
    """`pip install <checkout>` (not editable) into a fresh venv, used from a directory
    outside the checkout, compiles, loads and attaches a program to a lab host and reads
    its counters.

    The venv is made with --system-site-packages for one reason: BCC is not on PyPI (PyPI's
    `bcc` is another project); it exists only as Debian's python3-bpfcc, in
    /usr/lib/python3/dist-packages. Everything else (pyroute2, scapy, numpy, IPython: the
    core dependencies in pyproject.toml) pip installs from PyPI into the new venv (its
    cache makes a second run fast); the notebook UI (`.[notebook]`) is not needed for this.
    Nothing of the lab venv or the checkout is on the path."""
    import shutil
    import subprocess
    import time
    times = {}
    t0 = time.monotonic()
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    times["venv"] = time.monotonic() - t0
    build = tmp_path / "src"                     # pip builds from a copy: the checkout stays clean
    top_only = {".git", "build", "labs", "tests", "benchmarks", "bpf"}    # lab material stays behind

    def ignore(d, names):
        skip = {n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".egg-info")}
        return skip | (top_only & set(names) if Path(d) == ROOT else set())
    shutil.copytree(ROOT, build, ignore=ignore)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    t0 = time.monotonic()
    # --no-compile: no .pyc for every file of IPython, numpy & co. (a quarter of the time);
    # Python compiles what the check imports
    r = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "--no-compile", str(build)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    times["pip install"] = time.monotonic() - t0
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # every subpackage, module and data file of the checkout's package was installed
    missing = _checkout_files(ROOT / "xdplab") - _checkout_files(site / "xdplab")
    assert not missing, f"not installed: {sorted(missing)[:20]}"
    t0 = time.monotonic()
    r = subprocess.run([str(py), "-c", INSTALLED_CHECK], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=240)
    times["compile, load, attach"] = time.monotonic() - t0
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "dropped" in r.stdout
    r = subprocess.run([str(venv / "bin" / "xdplab"), "check", "--list"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "11" in r.stdout, r.stdout + r.stderr
    print("pip install outside the checkout: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))


def test_core_dependencies_are_lean():
    """A library install pulls only what compiling, loading, attaching, lab hosts and grading
    need; the notebook UI is the `notebook` extra (the lab's venv installs both)."""
    p = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_norm(s)[0] for s in p["dependencies"]}
    assert core == {"pyroute2", "scapy", "numpy", "ipython"}, core
    assert {"jupyterlab", "bokeh", "pandas", "ipywidgets"} <= {_norm(s)[0] for s in
                                                               p["optional-dependencies"]["notebook"]}


def test_every_subpackage_is_packaged():
    """setuptools finds every directory of xdplab/ with modules (package-data keeps the rest)."""
    from setuptools import find_packages
    p = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_packages(str(ROOT), include=p["packages"]["find"]["include"]))
    dirs = {".".join(d.relative_to(ROOT).parts) for d in (ROOT / "xdplab").rglob("*")
            if d.is_dir() and any(d.glob("*.py")) and "__pycache__" not in d.parts}
    assert dirs <= found, dirs - found
