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
    prefix = f"xc{os.getpid() % 100:02d}-"
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


def test_status_and_down_cover_every_topology_of_the_lab():
    """Issue 11.7: labs 08/09 leave a RouterTopology up (FastSlow runs on it); `status`
    listed only h1/h2 and `down` removed only those. Now status shows every topology of
    the lab and what is attached where (XDP on a router port, a host's veth0, the tbf
    qdisc), and down removes them all."""
    import xdplab as xl
    from xdplab.net import redirect
    from xdplab.net.router_topology import RouterTopology
    prefix = f"xc{os.getpid() % 100:02d}-"
    rt = RouterTopology(hosts=("h1", "h2"), prefix=f"{prefix}r", net=199)
    prog = None
    try:
        assert xdplab("up", prefix=prefix).returncode == 0
        rt.up()
        rt.shape("h2", "10mbit")
        prog = xl.load("int st_pass(struct xdp_md *ctx) { return XDP_PASS; }")
        rt.attach(prog, "h1")
        redirect.ensure_peer_program(rt["h2"])
        lab = xl.Topology(prefix=prefix, net=198)
        prog.attach(lab["h1"].outside)
        st = xdplab("status", prefix=prefix)
        assert st.returncode == 0, st.stderr
        out = st.stdout
        lines = {l.split()[0] + ("@r" if f"{prefix}rh" in l else ""): l for l in out.splitlines() if l.startswith("  ")}
        assert f"RouterTopology {prefix}r (router netns {prefix}rrt" in out and "forwarding on" in out, out
        assert f"Topology {prefix} (net 198)" in out, out
        assert f"veth={prefix}rh1 in {prefix}rrt" in lines["h1@r"] and f"st_pass#{prog.id}" in lines["h1@r"], out
        assert "qdisc=tbf" in lines["h2@r"] and "host-veth0-xdp=native" in lines["h2@r"], out
        assert f"veth={prefix}h1 " in lines["h1"] and f"xdp=native st_pass#{prog.id}" in lines["h1"], out
        assert "xdp=-" in lines["h2"], out
        prog.close()
        rt.detach()
        down = xdplab("down", prefix=prefix)
        assert down.returncode == 0, down.stderr
        assert f"netns {prefix}rrt" in down.stdout and f"netns {prefix}h1" in down.stdout, down.stdout
        assert topology.leftovers(prefix) == {"netns": [], "links": []}, down.stdout
        assert "no lab hosts" in xdplab("status", prefix=prefix).stdout
    finally:
        if prog is not None:
            prog.close()
        rt.down()
        topology.remove_all(prefix)


def test_status_names_what_no_topology_recorded():
    prefix = f"xc{os.getpid() % 100:02d}-"
    stray = topology.Topology(hosts=("zz",), prefix=prefix, net=197)
    try:
        stray.up()
        stray.state_file.unlink()              # as if its state file was lost
        out = xdplab("status", prefix=prefix).stdout
        assert f"netns {prefix}zz" in out and "down --all" in out, out
        down = xdplab("down", prefix=prefix)
        assert "down --all" in down.stdout and topology.leftovers(prefix)["netns"] == [f"{prefix}zz"]
        assert f"netns {prefix}zz" in xdplab("down", "--all", "--prefix", prefix, prefix=prefix).stdout
        assert topology.leftovers(prefix) == {"netns": [], "links": []}
    finally:
        topology.remove_all(prefix)


def test_labs_that_leave_a_topology_up_say_so_in_their_last_cell():
    """A lab that builds more than the default hosts leaves them up for the learner and
    says so (with the commands) in its last cell."""
    import nbformat
    labs = sorted((ROOT / "labs").glob("*.ipynb"))
    extra = [p for p in labs if any("router_lab(" in c.source or "RouterTopology(" in c.source
                                    for c in nbformat.read(p, 4).cells)]
    assert {p.stem[:2] for p in extra} >= {"08", "09"}
    for p in extra:
        last = nbformat.read(p, 4).cells[-1].source
        assert "./lab status" in last and "./lab down" in last and "stays up" in last, p.name


def test_doctor_names_the_other_topologies_that_are_up():
    from xdplab.net.router_topology import RouterTopology
    prefix = f"xc{os.getpid() % 100:02d}-"
    rt = RouterTopology(hosts=("h1",), prefix=f"{prefix}r", net=199)
    try:
        rt.up()
        r = xdplab("doctor", prefix=prefix)
        line = next(l for l in r.stdout.splitlines() if "lab topology" in l)
        assert f"RouterTopology {prefix}r" in line and "xdplab status" in line, line
    finally:
        rt.down()
