"""One device notion (xdplab.kernel.Device, resolved in kernel.resolve_device and, with lab
host names, net.device.resolve): a name, an ifindex, (netns, name), a Host of any topology;
attach() and %%xdp --dev take all of them."""
import pytest

import xdplab
from xdplab import kernel
from xdplab.errors import UsageError
from xdplab.kernel import Device
from xdplab.net import device

import itertools
import os

from xdplab.net.router_topology import RouterTopology

_ids = itertools.count(1)


@pytest.fixture
def router_factory():
    """RouterTopologies (prefix xt<pid>d<N>-) on the first router subnet no one else holds
    (other runs share the machine); removed after."""
    made = []

    def make(hosts=("h1", "h2", "h3")):
        n = next(_ids)
        for net in range(30, 90):
            t = RouterTopology(hosts=hosts, prefix=f"xt{os.getpid() % 100:02d}d{n}-", net=net)
            made.append(t)
            try:
                return t.up()
            except xdplab.TopologyError as e:
                if "already in use" not in str(e):
                    raise
                t.down()
        pytest.fail("no free router subnet")
    yield make
    for t in made:
        t.down()

PASS = "int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }"


def test_resolve_takes_every_way_of_naming_a_device(topo_factory):
    t = topo_factory()
    h1 = t["h1"]
    want = Device(h1.outside)
    assert kernel.resolve_device(h1.outside) == want
    assert kernel.resolve_device(h1.ifindex) == want
    assert kernel.resolve_device(h1) == want
    assert kernel.resolve_device(want) is want
    assert kernel.resolve_device((h1.netns, "veth0")) == Device("veth0", h1.netns)
    assert Device("veth0", h1.netns).ifindex > 0
    with pytest.raises(UsageError, match="ifindex 999999"):
        kernel.resolve_device(999999)
    with pytest.raises(UsageError, match="not a device"):
        kernel.resolve_device(3.5)


def test_attach_takes_a_host_an_ifindex_and_a_routed_host(topo_factory, router_factory):
    t = topo_factory()
    prog = xdplab.load(PASS)
    try:
        link = prog.attach(t["h1"])                       # a Host, not only a string
        assert link.ifname == t["h1"].outside
        assert kernel.xdp_state(t["h1"].outside) == {"native": prog.id}
        link.detach()
        link = prog.attach(t["h2"].ifindex, "generic")   # an ifindex
        assert kernel.xdp_state(t["h2"].outside) == {"generic": prog.id}
        link.detach()
        r = router_factory(hosts=("h1", "h2"))
        link = prog.attach(r["h2"])                       # a routed host: the router's port, in its netns
        state = kernel.run_in_netns(r.router, kernel.xdp_state, r["h2"].outside)
        assert state == {"native": prog.id}
        assert kernel.xdp_state(r["h2"].outside) == {}   # nothing of that name in the root netns
    finally:
        prog.close()


def test_dev_names_hosts_of_every_topology_that_is_up(router_factory, monkeypatch):
    """%%xdp --dev h3: h3 exists only in the router lab; the magic resolves through net.device."""
    r = router_factory(hosts=("h1", "h2", "h3"))
    prefix = r.prefix[:3]                                    # 'xt<N>': this run's topologies
    hosts = device.hosts_up(prefix)
    assert hosts["h3"].as_device() == Device(r["h3"].outside, r.router)
    assert device.resolve("h3", prefix=prefix) == Device(r["h3"].outside, r.router)
    assert device.resolve("lo") == Device("lo")             # an interface stays an interface
    from IPython.core.interactiveshell import InteractiveShell
    from xdplab.ui import magics
    monkeypatch.setattr(magics, "resolve_dev", lambda dev: device.resolve(dev, prefix=prefix))
    ip = InteractiveShell.instance()
    ip.extension_manager.load_extension("xdplab")
    ip.run_cell_magic("xdp", "--dev h3 --name p3", PASS)
    p3 = ip.user_ns["p3"]
    try:
        assert kernel.run_in_netns(r.router, kernel.xdp_state, r["h3"].outside) == {"native": p3.id}
    finally:
        p3.close()
