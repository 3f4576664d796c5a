"""Lab hosts on the real kernel: build, use, remove — also after a crash."""
import os
import signal
import subprocess
import sys

import pytest

from xdplab.net import topology
from xdplab.net.topology import Topology

from .helpers import ROOT

pytestmark = pytest.mark.kernel


def test_up_builds_hosts_that_reach_their_gateway_v4_and_v6(topo):
    h1, h2 = topo["h1"], topo["h2"]
    assert topo.is_up()
    assert h1.ping(h1.gw4, count=2, interval=0.05) == 2
    assert h2.ping(h2.gw6, count=2, interval=0.05) == 2
    out = h1.run(["ip", "-br", "addr", "show", "veth0"]).stdout
    assert h1.ipv4 in out and h1.ipv6 in out


def test_up_is_idempotent_and_down_removes_exactly_its_own(topo_factory):
    a = topo_factory()
    b = topo_factory()
    Topology(hosts=a.hosts, prefix=a.prefix, net=a.net).up()      # again: nothing new
    assert len(topology.leftovers(a.prefix)["netns"]) == 2
    removed = a.down()
    assert f"netns {a['h1'].netns}" in removed
    assert topology.leftovers(a.prefix) == {"netns": [], "links": []}
    assert b.is_up(), "removing one topology must not touch another"


def test_a_subnet_in_use_is_refused_and_nothing_is_left(topo):
    """Another topology on the same net= would make two connected routes to one /24."""
    clash = Topology(hosts=("h1",), prefix=topo.prefix[:-1] + "c-", net=topo.net)
    with pytest.raises(topology.TopologyError, match=rf"10\.{topo.net}\.1\.0/24.*in use: {topo['h1'].outside}"):
        clash.up()
    clash.down()
    assert topology.leftovers(clash.prefix) == {"netns": [], "links": []}
    assert topo["h1"].ping(topo["h1"].gw4, count=1) == 1      # the first one still works


def test_send_delivers_scapy_frames_to_the_root_side(topo):
    from scapy.all import IP, UDP, AsyncSniffer, conf
    h1 = topo["h1"]
    sniffer = AsyncSniffer(iface=h1.outside, filter="udp and port 5555")
    sniffer.start()
    import time
    time.sleep(0.3)
    assert h1.send(IP(src=h1.ipv4, dst=h1.gw4) / UDP(dport=5555), count=3) == 3
    time.sleep(0.3)
    got = sniffer.stop()
    assert len(got) == 3 and got[0].src == h1.mac


def test_down_after_the_creating_process_was_killed(tmp_path):
    prefix = f"xk{os.getpid() % 100:02d}-"
    code = ("import os, signal, xdplab.net.topology as t\n"
            f"t.Topology(prefix={prefix!r}, net=199).up()\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == -signal.SIGKILL
    assert len(topology.leftovers(prefix)["netns"]) == 2, "the killed process left its hosts"
    Topology(prefix=prefix, net=199).down()          # a new process, from the state file
    assert topology.leftovers(prefix) == {"netns": [], "links": []}


def test_remove_all_clears_a_half_built_topology():
    prefix = f"xh{os.getpid() % 100:02d}-"
    from pyroute2 import netns
    netns.create(f"{prefix}h1")                      # as if up() died right after this
    assert topology.leftovers(prefix)["netns"] == [f"{prefix}h1"]
    topology.remove_all(prefix)
    assert topology.leftovers(prefix) == {"netns": [], "links": []}
