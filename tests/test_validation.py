"""Bad arguments get a short typed error naming the value and what is accepted, and create
nothing (issue 11.6). Real kernel, real objects."""
import math
import os

import pytest
from IPython.core.interactiveshell import InteractiveShell
from scapy.layers.inet import IP, UDP

import xdplab
from xdplab import kernel
from xdplab.net import topology
from xdplab.net import traffic
from xdplab.net.afxdp import XSK, XSKError
from xdplab.errors import AttachError, MapError, MapKeyError, UsageError, XDPLabError

from .helpers import DROP_ICMP, PASS_PROG

pytestmark = pytest.mark.kernel


def short(e) -> str:
    """The error as a notebook shows it: one line (plus a hint), no traceback."""
    assert isinstance(e, XDPLabError), f"{type(e).__name__}: {e}"
    assert len(e._render_traceback_()) == 1
    return str(e)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- topology ------------------------------------------------------------------------------

PFX = f"xv{os.getpid() % 100:02d}"


@pytest.mark.parametrize("kw,named", [
    ({"prefix": PFX + " x"}, repr(PFX + " x")),        # netlink EINVAL half-way through up()
    ({"prefix": PFX + "/"}, repr(PFX + "/")),          # FileNotFoundError from /run/netns
    ({"prefix": PFX + ":"}, repr(PFX + ":")),
    ({"prefix": PFX + "-0123456789"}, "15"),            # + "h1" is longer than IFNAMSIZ-1
    ({"prefix": PFX + "-", "net": 300}, "net=300"),   # ValueError from ipaddress
    ({"prefix": PFX + "-", "net": -1}, "net=-1"),
    ({"prefix": PFX + "-", "net": "11"}, "net='11'"),
    ({"prefix": PFX + "-", "hosts": ()}, "hosts=()"),  # max() arg is an empty sequence
    ({"prefix": PFX + "-", "hosts": "h1"}, "hosts='h1'"),
    ({"prefix": PFX + "-", "hosts": ("h 1",)}, "'h 1'"),
    ({"prefix": PFX + "-", "hosts": ("h1", "h1")}, "unique"),
])
def test_bad_topology_is_refused_at_construction_and_creates_nothing(kw, named):
    with pytest.raises(UsageError) as e:
        topology.Topology(**kw).up()
    assert named in short(e.value) and isinstance(e.value, ValueError)
    assert topology.leftovers(PFX) == {"netns": [], "links": []}
    assert not list(topology.STATE_DIR.glob(f"topology-{PFX}*"))


def test_longest_valid_prefix_is_accepted():
    t = topology.Topology(prefix="a" * 13, hosts=("h1",))       # 13 + 2 = 15 characters
    assert t["h1"].outside == "a" * 13 + "h1"


# --- traffic generator ---------------------------------------------------------------------

@pytest.mark.parametrize("kw,named", [
    ({"count": 1000, "rate": -1}, "rate=-1"),      # was accepted: 100,000 frames took 44 s
    ({"count": 1000, "rate": 0}, "rate=0"),
    ({"count": -5}, "count=-5"),                   # sent nothing, silently
    ({"count": 0}, "count=0"),
    ({"duration": -1}, "duration=-1"),             # sent nothing, silently
    ({"count": 1000.5}, "count=1000.5"),           # a raw TypeError
    ({"duration": math.nan}, "duration=nan"),      # a raw ValueError
    ({"duration": math.inf}, "duration=inf"),
    ({"count": True}, "count=True"),
    ({"count": 10, "batch_size": 0}, "batch_size=0"),
])
def test_generator_refuses_bad_amounts_before_loading_anything(topo, kw, named):
    h1 = topo["h1"]
    cached, fds = dict(traffic.PROGRAM_CACHE), open_fds()
    pkt = IP(dst=h1.gw4) / UDP(dport=9)
    with pytest.raises(UsageError) as e:
        traffic.blast(pkt, via=h1, attach_receiver=True, progress=False, **kw)
    assert named in short(e.value)
    assert traffic.PROGRAM_CACHE == cached and open_fds() == fds, "nothing compiled or loaded"
    assert kernel.xdp_state(h1.outside) == {}, "no receiver attached"


def test_generator_run_refuses_bad_amounts(topo):
    h1 = topo["h1"]
    if not traffic.supported():
        pytest.skip("no BPF_PROG_RUN live frames on this kernel")
    with traffic.Generator(IP(dst=h1.gw4) / UDP(dport=9), via=h1, attach_receiver=True) as g:
        for kw, named in (({"count": -5}, "count=-5"), ({"count": 100, "rate": -1}, "rate=-1"),
                          ({"duration": float("nan")}, "duration=nan")):
            with pytest.raises(UsageError, match=named):
                g.run(progress=False, **kw)
        assert g.run(count=1000, rate=1e6, progress=False).sent == 1000


# --- maps ----------------------------------------------------------------------------------

MAPS = r"""
BPF_ARRAY(arr, u64, 4);
BPF_ARRAY(sarr, s32, 4);
BPF_HASH(h, u32, u32, 2);
BPF_PERCPU_ARRAY(pc, u32, 2);
int xdp_maps(struct xdp_md *ctx)
{
    u32 k = 0;
    arr.lookup(&k); sarr.lookup(&k); h.lookup(&k); pc.lookup(&k);
    return XDP_PASS;
}
"""


def test_map_keys_values_and_a_full_hash_get_typed_errors():
    with xdplab.load(MAPS) as p:
        arr, sarr, h, pc = p["arr"], p["sarr"], p["h"], p["pc"]
        for key in (-1, 4, 2**40):
            with pytest.raises(MapKeyError) as e:
                arr[key]                            # was KeyError ''
            assert (f"key {key}" in short(e.value) or f"index {key}" in short(e.value)) and "0..3" in str(e.value)
            assert isinstance(e.value, KeyError)
        with pytest.raises(MapKeyError, match="key 7 is not in map h"):
            h[7]                                    # was KeyError ''
        assert h.get(7, "none") == "none"
        with pytest.raises(MapKeyError, match="no map 'nosuch'.*arr"):
            p["nosuch"]
        with pytest.raises(UsageError) as e:
            arr[0] = -1                             # was stored as 2**64 - 1
        assert "-1" in short(e.value) and "u64" in str(e.value) and "0..18446744073709551615" in str(e.value)
        assert arr.to_dict()[0] == 0, "nothing stored"
        for m, v, accepted in ((arr, 2**64, "u64"), (sarr, 2**31, "-2147483648..2147483647"),
                               (pc, 2**32, "0..4294967295"), (arr, 1.5, "u64")):
            with pytest.raises(UsageError, match=accepted):
                m[0] = v
        arr[0], sarr[1], pc[1] = 2**64 - 1, -5, 7      # the extremes and signed values fit
        assert arr.to_dict()[0] == 2**64 - 1 and sarr.to_dict()[1] == -5 and list(pc.to_dict()[1]) == [7] * len(pc.to_dict()[1])
        h[1], h[2] = 10, 20
        with pytest.raises(MapError) as e:
            h[3] = 30                               # was a raw BCC Exception
        assert "map h is full (2 entries)" in short(e.value) and "key 3" in str(e.value)
        h[1] = 11                                   # updating an existing key still works
        del h[1]
        with pytest.raises(MapKeyError, match="key 1 is not in map h"):
            del h[1]
        assert h.to_dict() == {2: 20}


# --- AF_XDP ------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,named", [
    ({"rx_size": 0}, "rx_size = 0"),           # was silently replaced by ring_size
    ({"tx_size": 0}, "tx_size = 0"),
    ({"fill_size": 100}, "fill_size = 100"),
    ({"ring_size": 2**32}, "ring_size = 4294967296"),
    ({"ring_size": 64.0}, "ring_size = 64.0"),
    ({"num_frames": 0}, "num_frames = 0"),
    ({"queue": -1}, "queue = -1"),
])
def test_xsk_ring_sizes_must_be_powers_of_two_and_nothing_is_created(topo, kw, named):
    fds = open_fds()
    with pytest.raises(UsageError) as e:
        XSK(topo["h1"].outside, **{"queue": 0, **kw})
    assert named in short(e.value) and isinstance(e.value, XSKError)
    assert open_fds() == fds


# --- capture ----------------------------------------------------------------------------

@pytest.mark.parametrize("kw,named", [
    ({"snaplen": -5}, "snaplen=-5"), ({"snaplen": 0}, "snaplen=0"), ({"snaplen": 70000}, "snaplen=70000"),
    ({"snaplen": 1.5}, "snaplen=1.5"), ({"pages": 3}, "pages=3"), ({"filter": 5}, "filter=5"),
])
def test_capture_options_are_checked(kw, named):
    with pytest.raises(UsageError) as e:
        xdplab.Capture(**kw)
    assert named in short(e.value)


def test_bad_capture_option_loads_nothing():
    fds = open_fds()
    with pytest.raises(UsageError, match="snaplen=-5"):
        xdplab.load(PASS_PROG, capture=-5)
    with pytest.raises(UsageError, match="capture=3.5"):
        xdplab.load(PASS_PROG, capture=3.5)
    assert open_fds() == fds


# --- func= names a function of the program -------------------------------------------------

def _never(*a, **kw):
    raise AssertionError("compiled/loaded although func= names no function of the source")


def test_load_func_that_does_not_exist_is_a_usage_error_before_compiling(monkeypatch):
    """xdplab.load(src, func="nosuch") ended in a VerifierError after a compile (BCC); the
    same typed error as %%xdp --func, naming the functions that exist, for both dialects."""
    from pathlib import Path
    from xdplab.programs import libbpf
    from xdplab.programs import safecompile
    monkeypatch.setattr(safecompile, "precheck", _never)        # BCC's first compile step
    monkeypatch.setattr(libbpf, "load_spec", _never)            # libbpf: compile + load
    fds = open_fds()
    with pytest.raises(UsageError) as e:
        xdplab.load(PASS_PROG + "\nint other(struct xdp_md *ctx) { return XDP_DROP; }", func="nosuch")
    assert "func='nosuch'" in short(e.value) and "xdp_pass, other" in e.value.hint
    src = (Path(__file__).parent / "corpus" / "xdp_pass_drop_kern.c").read_text()
    with pytest.raises(UsageError) as e:
        xdplab.Program(src, func="nosuch", origin="xdp_pass_drop_kern.c").load()
    assert "func='nosuch'" in short(e.value) and "xdp_pass_drop_kern.c" in str(e.value)
    assert "xdp_pass_func" in e.value.hint and "xdp_drop_func" in e.value.hint
    with pytest.raises(UsageError, match="not a C function name"):
        xdplab.load(PASS_PROG, func="x; y")
    assert open_fds() == fds
    monkeypatch.undo()
    prog = xdplab.load(src, func="xdp_drop_func")               # an existing one still loads
    assert prog.name == "xdp_drop_func"
    prog.close()


# --- %%xdp options ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "xdplab")
    yield shell
    shell.run_line_magic("unload_ext", "xdplab")


@pytest.mark.parametrize("line,named", [
    ("--dev {dev} --capture 'udp port 53", "no closing quotation"),   # was a raw ValueError
    ("--dev {dev} --func nosuch", "no function 'nosuch'"),           # was a VerifierError
    ("--dev {dev} --frobnicate", "unrecognized arguments: --frobnicate"),
])
def test_xdp_magic_option_errors_are_usage_errors(ip, topo, line, named):
    dev = topo["h1"].outside
    fds = open_fds()
    err = ip.run_cell(f"%%xdp {line.format(dev=dev)}\n"
                      "int first(struct xdp_md *ctx) { return XDP_PASS; }\n"
                      "int second(struct xdp_md *ctx) { return XDP_DROP; }").error_in_exec
    assert isinstance(err, UsageError) and named in short(err)
    if "nosuch" in line:
        assert "first, second" in str(err), "names the functions that exist"
    assert kernel.xdp_state(dev) == {} and open_fds() == fds


# --- ownership message --------------------------------------------------------------------

def test_native_then_generic_from_this_process_says_what_is_attached(topo):
    h1 = topo["h1"]
    with xdplab.load(PASS_PROG) as p, xdplab.load(DROP_ICMP) as q:
        link = p.attach(h1.outside, "native")
        with pytest.raises(AttachError) as e:
            q.attach(h1.outside, "generic")
        msg = short(e.value)
        assert "not attached by this process" not in msg
        assert "native-mode link of this process (program xdp_pass)" in msg
        assert "replace=True" in msg and "detach" in msg
        assert kernel.xdp_state(h1.outside) == {"native": p.id} and link.attached
        generic = q.attach(h1.outside, "generic", replace=True)   # takes our own link off
        assert not link.attached and not p.links
        assert kernel.xdp_state(h1.outside) == {"generic": q.id} and generic.program is q
