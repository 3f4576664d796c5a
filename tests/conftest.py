"""Shared fixtures. Integration tests run on the real kernel as root.

Every test topology gets its own name prefix and subnet (``topo_factory``), so tests,
notebooks and a running lab never share an interface; the session ends by checking
that nothing with a test prefix is left behind.
"""
from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import xdplab
from xdplab import kernel
from xdplab.net import topology
from xdplab.ui import server, workspace

_ids = itertools.count(1)
TEST_PREFIX = "xt"


@pytest.fixture
def topo_factory():
    """Make topologies with unique prefixes (``xt<N>-``) and subnets; all torn down after."""
    made = []

    def make(hosts=("h1", "h2"), **kw):
        # subnets 100..189 are for test topologies (notebooks use 200.., the CLI and
        # JupyterLab tests 196..199, benchmarks 97): in this run two live topologies never
        # share one; one that another pytest run holds is refused by up(): take the next
        for _ in range(90):
            n = next(_ids)
            t = topology.Topology(hosts=hosts, prefix=f"{TEST_PREFIX}{os.getpid() % 100:02d}{n}-",
                                  net=100 + n % 90, **kw)
            made.append(t)
            try:
                return t.up()
            except xdplab.TopologyError as e:
                if "already in use" not in str(e):
                    raise
        pytest.fail("no free test subnet in 10.100-189.x.0/24")

    yield make
    xdplab.detach_all()
    for t in made:
        t.down()


@pytest.fixture
def topo(topo_factory):
    """A two-host topology (h1, h2) of this test's own."""
    return topo_factory()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def jupyter(tmp_path_factory):
    """JupyterLab as `./lab start` runs it, on a free port; kernels it starts get a topology
    prefix of their own. Yields (base URL, token)."""
    port = free_port()
    root = tmp_path_factory.mktemp("jupyter-root")     # working copies, as ./lab start makes them
    workspace.working_copies(dest=root)
    cmd, token = server.command(port=port, root=root)
    env = dict(os.environ, XDPLAB_PREFIX=f"xj{os.getpid() % 100:02d}-", XDPLAB_NET="196",
               PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    # a file, not a pipe: nobody reads a pipe while labs run, and a full one blocks JupyterLab
    log = root / "jupyterlab.log"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "w"), text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start: " + log.read_text()[-2000:])
    yield base, token
    proc.terminate()
    proc.wait(timeout=20)
    topology.remove_all(env["XDPLAB_PREFIX"])


_lab_at_start: dict = {}


def pytest_sessionstart(session):
    _lab_at_start.update(topology.leftovers(topology.DEFAULT_PREFIX))


def _test_leftovers() -> dict:
    """This run's namespaces and links (every test name is x<letters><pid % 100>…; other
    pytest sessions' are not ours), parts of the default lab (xl-) that were not up when the
    run started (a test that forgot its own topology built them), and any interface
    outside the lab that still has an XDP program attached."""
    import re
    ours = re.compile(rf"x[a-z]+{os.getpid() % 100:02d}")
    left = {k: [n for n in v if ours.match(n)] for k, v in topology.leftovers("x").items()}
    for k, names in topology.leftovers(topology.DEFAULT_PREFIX).items():
        left[k] += [n for n in names if n not in _lab_at_start.get(k, [])]
    with kernel.ipr() as ip:
        left["xdp"] = sorted(l.get_attr("IFLA_IFNAME") for l in ip.get_links()
                             if l.get_attr("IFLA_XDP") and l.get_attr("IFLA_XDP").get_attr("IFLA_XDP_ATTACHED")
                             and not l.get_attr("IFLA_IFNAME").startswith(topology.DEFAULT_PREFIX))
    return left


def pytest_sessionfinish(session, exitstatus):
    """A run that leaves anything behind fails: teardown is part of what is tested."""
    xdplab.detach_all()
    left = _test_leftovers()
    if any(left.values()):
        lab = topology.DEFAULT_PREFIX
        for prefix in {n[:n.index("-") + 1] for n in left["netns"] + left["links"] if "-" in n} - {lab}:
            topology.remove_all(prefix)
        # just these: a lab that was up before the run keeps the rest
        topology.remove([n for n in left["links"] if n.startswith(lab)],
                        [n for n in left["netns"] if n.startswith(lab)])
        if not any(topology.leftovers(lab).values()):
            topology.remove_all(lab)             # nothing of the lab left: its state file too
        print(f"\nLEFTOVERS after the run (a teardown bug; removed now): {left}")
        session.exitstatus = 1
