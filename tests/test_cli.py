"""The xdplab command and the ./lab entry point, as a user runs them."""
import os
import subprocess
import sys

import pytest

from xdplab.net import topology

from .helpers import ROOT

pytestmark = pytest.mark.kernel


def xdplab(*args, prefix=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if prefix:
        env.update(XDPLAB_PREFIX=prefix, XDPLAB_NET="198")
    return subprocess.run([sys.executable, "-m", "xdplab", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_doctor_passes_on_this_machine():
    r = xdplab("doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("kernel", "BCC", "compile + load", "tracefs"):
        assert name in r.stdout
    assert "FAIL" not in r.stdout


def test_doctor_exits_nonzero_on_a_failing_check():
    from xdplab.ui import doctor
    report = doctor.run([doctor.check_kernel, lambda: doctor.Check("x", doctor.FAIL, "broken", "fix it")])
    assert not report.ok and "fix: fix it" in str(report) and "FAIL" in report._repr_html_()


def test_up_status_down_cycle():
    prefix = f"xc{os.getpid() % 100}-"
    try:
        assert xdplab("up", prefix=prefix).returncode == 0
        st = xdplab("status", prefix=prefix)
        assert f"{prefix}h1" in st.stdout and " up " in st.stdout
        down = xdplab("down", prefix=prefix)
        assert down.returncode == 0 and f"netns {prefix}h2" in down.stdout
        assert topology.leftovers(prefix) == {"netns": [], "links": []}
    finally:
        topology.remove_all(prefix)


def test_lab_script_help_names_start_and_test():
    r = subprocess.run([str(ROOT / "lab"), "help"], capture_output=True, text=True)
    assert "./lab start" in r.stdout and "./lab test" in r.stdout


def test_setup_is_idempotent_and_installs_nothing_the_second_time():
    r = subprocess.run([str(ROOT / "scripts" / "setup.sh")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "installing:" not in r.stdout and "pip install" not in r.stdout, r.stdout
    assert "all" in r.stdout and "up to date" in r.stdout


def test_features_prints_a_row_per_interface():
    r = xdplab("features", "lo")
    assert r.returncode == 0, r.stderr
    assert "basic" in r.stdout and "\nlo " in r.stdout
