"""requirements.txt, pyproject.toml and environment.yml list the same packages and versions;
BCC is in none of them (it comes from the OS packages, see environment.yml)."""
from __future__ import annotations

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
