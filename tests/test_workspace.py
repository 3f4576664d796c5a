"""Issue 14: learners work on copies of the labs (`./lab start`, `./lab reset`), the kernel
the notebooks name is installed, and JupyterLab is configured for a lab."""
import json
import os
import subprocess
import urllib.request
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager

from xdplab.ui import server

from xdplab.ui import workspace
from xdplab.errors import XDPLabError

REPO = Path(__file__).resolve().parent.parent


def test_first_start_copies_every_lab_and_never_overwrites(tmp_path):
    made = workspace.working_copies(dest=tmp_path)
    names = sorted(p.name for p in made)
    assert names == sorted(p.name for p in workspace.shipped()) and len(names) >= 12
    mine = tmp_path / "labs" / "01-hello-xdp.ipynb"
    mine.write_text(mine.read_text().replace("Hello XDP", "Hello mine"))
    assert workspace.working_copies(dest=tmp_path) == []         # nothing new, nothing overwritten
    assert "Hello mine" in mine.read_text()
    (tmp_path / "labs" / "02-maps.ipynb").unlink()                # a lab it lacks (e.g. shipped later)
    assert [p.name for p in workspace.working_copies(dest=tmp_path)] == ["02-maps.ipynb"]


def test_reset_restores_pristine_and_keeps_the_learners_copy(tmp_path):
    workspace.working_copies(dest=tmp_path)
    mine = tmp_path / "labs" / "01-hello-xdp.ipynb"
    edited = mine.read_text().replace("Hello XDP", "Hello mine")
    mine.write_text(edited)
    [(restored, kept)] = workspace.reset(["1"], dest=tmp_path)
    assert restored == mine and mine.read_bytes() == (REPO / "labs" / mine.name).read_bytes()
    assert kept.parent == mine.parent and kept.name.startswith("01-hello-xdp.mine-") and kept.read_text() == edited
    [(_, again)] = workspace.reset(["01-hello-xdp"], dest=tmp_path)
    assert again is None, "an unchanged copy is not kept twice"
    with pytest.raises(XDPLabError, match="no lab named 'zz'") as e:
        workspace.reset(["zz"], dest=tmp_path)
    assert "01-hello-xdp" in e.value.hint


def test_lab_reset_command(tmp_path):
    env = dict(os.environ, XDPLAB_WORKDIR=str(tmp_path))
    workspace.working_copies(dest=tmp_path)
    (tmp_path / "labs" / "04-debugging.ipynb").write_text("{}")
    r = subprocess.run([str(REPO / "lab"), "reset", "04"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "04-debugging.ipynb: pristine (yours is kept as 04-debugging.mine-" in r.stdout, r.stdout
    assert len(list((tmp_path / "labs").glob("04-debugging.mine-*.ipynb"))) == 1
    r = subprocess.run([str(REPO / "lab"), "reset", "99"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no lab named '99'" in r.stderr


def test_the_kernel_every_notebook_names_is_installed():
    specs = KernelSpecManager().get_all_specs()
    for path in workspace.shipped():
        ks = nbformat.read(path, as_version=4).metadata.kernelspec
        assert ks.name in specs, f"{path.name} names kernel {ks.name!r}: not installed ({sorted(specs)})"
        spec = specs[ks.name]["spec"]
        assert spec["display_name"] == ks.display_name, (path.name, spec["display_name"])
    spec = specs[workspace.KERNEL_NAME]["spec"]
    assert Path(spec["argv"][0]).resolve().parent == Path(os.sys.executable).resolve().parent
    assert str(REPO) in spec["env"]["PYTHONPATH"]


def test_command_configures_jupyterlab_for_the_lab(tmp_path):
    argv = server.jupyter_args(root=tmp_path)
    assert f"--LabApp.app_settings_dir={workspace.SETTINGS}" in argv
    assert f"--LabApp.extra_labextensions_path={workspace.LABEXTENSIONS}" in argv
    assert f"--ServerApp.root_dir={tmp_path}" in argv
    overrides = json.loads((workspace.SETTINGS / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"


def test_running_jupyterlab_has_the_settings_and_the_c_cell_extension(jupyter):
    base, token = jupyter
    get = lambda p: json.load(urllib.request.urlopen(f"{base}/{p}?token={token}", timeout=30))   # noqa: E731
    s = get("lab/api/settings/@jupyterlab/apputils-extension:notification")
    props = s["schema"]["properties"]             # overrides.json becomes the defaults
    assert props["fetchNews"]["default"] == "false" and props["checkForUpdates"]["default"] is False
    names = {e["name"] for e in get("lab/api/extensions")}
    assert "xdplab-c-cells" in names, names
    listing = get("api/contents/labs")
    assert {c["name"] for c in listing["content"]} >= {p.name for p in workspace.shipped()}
    js = urllib.request.urlopen(f"{base}/lab/extensions/xdplab-c-cells/static/remoteEntry.js?token={token}",
                                timeout=30).read().decode()
    assert "parseMixed" in js and "%%xdp" in js
