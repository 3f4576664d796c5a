"""From notebook to production (issue 13, lab 14): lab 14's own libbpf-style program,
compiled by a plain clang command, attached by iproute2 (`ip link ... xdp obj ... sec xdp`),
watched through xdplab.attached(): maps by id, run statistics, BPF_PROG_RUN, the drop
detector naming it; `ip link ... xdp off` takes it off."""
import os
import subprocess
from pathlib import Path

import nbformat
import pytest
from scapy.all import ICMP, IP, UDP, Ether

import xdplab
from xdplab import kernel
from xdplab.programs.byid import AttachedProgram, map_ids
from xdplab.errors import ClosedError, CountersUnavailable, MapKeyError, UsageError

pytestmark = pytest.mark.kernel

LAB = Path(__file__).resolve().parent.parent / "labs" / "14-notebook-to-production.ipynb"


def lab_source() -> str:
    """The C of lab 14's %%writefile cell: the test runs the program the lab teaches."""
    nb = nbformat.read(LAB, as_version=4)
    cell = next(c.source for c in nb.cells if c.source.startswith("%%writefile"))
    return cell.split("\n", 1)[1]


@pytest.fixture
def obj(tmp_path):
    (tmp_path / "icmp_guard.bpf.c").write_text(lab_source())
    with open(tmp_path / "vmlinux.h", "wb") as f:
        subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                       stdout=f, check=True)
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-c", "icmp_guard.bpf.c", "-o", "icmp_guard.bpf.o"],
                   cwd=tmp_path, check=True)
    return tmp_path / "icmp_guard.bpf.o"


IPROUTE2_BPFFS = "/sys/fs/bpf/tc"          # ip's object loader makes tc/globals and the ip, xdp links


@pytest.fixture(autouse=True)
def iproute2_bpffs_dirs():
    """Remove the (empty) bpffs directories iproute2 makes on its first object load, if
    this test made them."""
    existed = os.path.lexists(IPROUTE2_BPFFS)
    yield
    if existed:
        return
    for link in ("/sys/fs/bpf/ip", "/sys/fs/bpf/xdp"):
        if os.path.islink(link) and os.readlink(link).rstrip("/") == IPROUTE2_BPFFS:
            os.unlink(link)
    for d in (IPROUTE2_BPFFS + "/globals", IPROUTE2_BPFFS):
        try:
            os.rmdir(d)                     # only if empty: someone may have pinned there since
        except OSError:
            pass


@pytest.fixture
def ip_attached(topo, obj):
    """The object attached to h1's root-side veth by iproute2; taken off after the test."""
    h1 = topo["h1"]
    subprocess.run(["ip", "link", "set", "dev", h1.outside, "xdp", "obj", str(obj), "sec", "xdp"], check=True)
    try:
        yield h1
    finally:
        subprocess.run(["ip", "link", "set", "dev", h1.outside, "xdp", "off"], check=False)


def test_iproute2_attaches_the_object_and_xdplab_watches_it(ip_attached):
    h1 = ip_attached
    state = kernel.xdp_state(h1.outside)
    assert list(state) == ["native"], state                    # veth: `xdp` picks native
    prod = xdplab.attached(h1)
    assert isinstance(prod, AttachedProgram) and prod.id == state["native"]
    assert (prod.name, prod.ifname, prod.mode) == ("xdp_icmp_guard", h1.outside, "native")
    assert list(prod.maps) == ["proto_stats"] and len(map_ids(prod.fd)) == 1
    assert xdplab.attached(h1.outside).id == prod.id           # by interface name too

    # real packets: pings dropped, counted per protocol in the program's own map
    before, icmp0 = prod.stats(), prod["proto_stats"].sum(1)["packets"]
    assert h1.ping(h1.gw4, count=4, interval=0.05, timeout=0.3) == 0
    h1.send(IP(src=h1.ipv4, dst=h1.gw4) / UDP(sport=4242, dport=9) / (b"x" * 50), count=3)
    d = prod.stats() - before
    assert prod["proto_stats"].sum(1)["packets"] - icmp0 == 4
    assert d.runs >= 7 and d.ns > 0

    # BPF_PROG_RUN on the production program
    assert prod.run(Ether() / IP(dst="10.0.0.1") / ICMP(type=8)).action == "XDP_DROP"
    assert prod.run(Ether() / IP(dst="10.0.0.1") / ICMP(type=0)).action == "XDP_PASS"
    assert prod.run(Ether() / IP(dst="10.0.0.1", ihl=4) / UDP()).action == "XDP_ABORTED"

    with pytest.raises(CountersUnavailable, match="another loader attached it"):
        prod.counters()
    with pytest.raises(MapKeyError, match="no map 'nope'"):
        prod["nope"]

    # the drop detector names the production program (xdp_exception carries its id)
    with xdplab.DropDetector(ifaces=[h1]) as dd:
        dd.clear()
        h1.send(IP(src=h1.ipv4, dst=h1.gw4, ihl=4) / UDP(sport=4242, dport=9) / (b"x" * 32), count=3)
        rows = dd.wait(timeout=2.0, min_drops=3)
    assert [(r.tracepoint, r.action, r.prog_id) for r in rows] == [("xdp_exception", "ABORTED", prod.id)]
    assert f"xdp_icmp_guard#{prod.id}" in set(dd.summary()["program"])

    # close lets go of it; the interface keeps it
    m = prod["proto_stats"]
    prod.close()
    assert kernel.xdp_state(h1.outside) == state
    for use in (lambda: prod.run(Ether() / IP() / ICMP()), prod.stats, lambda: m[1], lambda: prod.fd):
        with pytest.raises(ClosedError):
            use()

    # production's cleanup
    subprocess.run(["ip", "link", "set", "dev", h1.outside, "xdp", "off"], check=True)
    assert kernel.xdp_state(h1.outside) == {}
    assert h1.ping(h1.gw4, count=2, interval=0.05, timeout=0.5) == 2


def test_detach_takes_off_only_the_program_it_found(ip_attached):
    h1 = ip_attached
    prod = xdplab.attached(h1)
    assert prod.still_attached
    prod.detach()                                               # = ip link set dev X xdp off
    assert kernel.xdp_state(h1.outside) == {} and not prod.still_attached
    with pytest.raises(xdplab.XDPLabError, match="no longer attached"):
        prod.detach()
    prod.close()


def test_the_same_object_through_xdplab_and_through_iproute2(topo, obj):
    """The notebook's load of the .o and iproute2's attach run the same instructions:
    the same verdicts on the same packets."""
    h1 = topo["h1"]
    pkts = [Ether() / IP(dst="10.0.0.1") / ICMP(type=8), Ether() / IP(dst="10.0.0.1") / UDP(dport=53),
            Ether() / IP(dst="10.0.0.1", ihl=4) / UDP()]
    with xdplab.Program.from_file(str(obj)).load() as nb:
        assert nb.dialect.dialect == "elf"
        nb_verdicts = [nb.run(p).action for p in pkts]
    subprocess.run(["ip", "link", "set", "dev", h1.outside, "xdp", "obj", str(obj), "sec", "xdp"], check=True)
    try:
        with xdplab.attached(h1) as prod:
            assert [prod.run(p).action for p in pkts] == nb_verdicts == ["XDP_DROP", "XDP_PASS", "XDP_ABORTED"]
    finally:
        subprocess.run(["ip", "link", "set", "dev", h1.outside, "xdp", "off"], check=True)


def test_attached_refuses_bad_input_with_typed_errors(topo):
    h1 = topo["h1"]
    with pytest.raises(UsageError, match=f"no XDP program is attached to {h1.outside}"):
        xdplab.attached(h1)
    with pytest.raises(UsageError, match="no interface 'xdplab-nope0'"):
        xdplab.attached("xdplab-nope0")
    with pytest.raises(UsageError, match="not an interface name"):
        xdplab.attached(7)
    with pytest.raises(UsageError, match="mode 'fast'"):
        xdplab.attached(h1, mode="fast")
    with pytest.raises(UsageError, match="not a positive integer"):
        xdplab.programs.byid.program(-1)
    with pytest.raises(UsageError, match="no BPF program with id"):
        xdplab.programs.byid.program(2**31 - 1)


def test_attached_finds_a_program_xdplab_attached_too(topo):
    """Through a bpf_link of this process: the id netlink reports is the program's."""
    h1 = topo["h1"]
    with xdplab.load("int xdp_pass_it(struct xdp_md *ctx) { return XDP_PASS; }") as p:
        p.attach(h1.outside)
        with xdplab.attached(h1) as a:
            assert a.id == p.id and a.name == "xdp_pass_it"
            assert "xdplab_actions" in a.maps
