"""An XDP router on the kernel's FIB (``bpf_fib_lookup``) and how to measure it against
the kernel's own IP forwarding on the same ``RouterTopology``.

    topo = RouterTopology().up()
    r = router.load()                         # xdplab/bpf/programs/fib_router.c
    router.install(topo, r)                   # on every router port + XDP_PASS on the hosts
    topo["h1"].ping(topo["h3"].ipv4)
    router.fib_results(r)                     # {'SUCCESS': 6, 'NOT_FWDED': 2, ...}
    router.forward(topo, count=1_000_000)     # frames h1 -> h3 through the router, pps

``ForwardingTest`` (``forward`` runs one) sends with ``xdplab.traffic`` (BPF_PROG_RUN live
frames from inside h1) and counts what arrives at h3 with an XDP program on h3's veth0
that drops it: both variants (XDP router, kernel forwarding) see the same generator and
the same sink.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .. import paths
from ..errors import Closable
from ..programs.program import Program
from ..net.redirect import ensure_peer_program
from ..net import traffic
from ..programs.program import load as load_prog
from ..net.redirect import remove_peer_program

SOURCE = paths.program("fib_router.c")  # the library's own (lab 09's answer is the learner's)

# enum bpf_fib_lookup_ret (include/uapi/linux/bpf.h)
FIB_RC = ("SUCCESS", "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "NOT_FWDED", "FWD_DISABLED",
          "UNSUPP_LWT", "NO_NEIGH", "FRAG_NEEDED", "NO_SRC_ADDR")

PASS_SOURCE = "int xdp_pass(struct xdp_md *ctx)\n{\n    return XDP_PASS;\n}\n"
SINK_SOURCE = "int xdp_sink(struct xdp_md *ctx)\n{\n    return XDP_DROP;\n}\n"


def load(source: str | None = None, **kw):
    """Load the router (the library's own, or ``source``: e.g. a lab cell's C)."""
    spec = Program(source, **kw) if source is not None else Program.from_file(SOURCE, **kw)
    return spec.load()


def fib_results(prog) -> dict:
    """How often bpf_fib_lookup returned each BPF_FIB_LKUP_RET_* code (non-zero ones)."""
    counts = prog.maps["fib_results"].to_dict(sum_cpus=True)
    return {(FIB_RC[k] if k < len(FIB_RC) else str(k)): v for k, v in sorted(counts.items()) if v}


def install(topo, prog, hosts=None, peers: bool = True) -> list:
    """Attach ``prog`` to the router's port towards each host (default: all), and -- the
    veth rule -- an XDP_PASS program on each host's veth0, without which frames
    bpf_redirect()ed into a veth are dropped (ndo_xdp_xmit needs the peer's NAPI).
    Returns the router's links."""
    hosts = list(hosts or topo.hosts)
    links = [topo.attach(prog, h) for h in hosts]
    if peers:
        for h in hosts:
            ensure_peer_program(topo[h])
    return links


# --- traffic through the router -----------------------------------------------------------

def generator(packet, via, **kw):
    """An ``xdplab.traffic.Generator`` whose frames survive being forwarded: it rewrites
    the headers (first 48 bytes) before each send, see ``traffic.restore_code``."""
    return traffic.Generator(packet, via, restore_headers=48, **kw)




@dataclass
class ForwardResult:
    """``sent`` frames from h1, ``arrived`` at the destination host, ``kernel_forwarded``
    by the router's IP stack (ForwDatagrams), in ``seconds``."""

    path: str
    sent: int
    arrived: int
    kernel_forwarded: int
    seconds: float
    send_pps: float

    @property
    def pps(self) -> float:
        """Forwarding rate: frames that arrived per second of sending."""
        return self.arrived / self.seconds if self.seconds else 0.0

    def __repr__(self) -> str:
        return (f"<ForwardResult {self.path}: {self.arrived:,}/{self.sent:,} arrived, "
                f"{self.pps / 1e6:.2f} Mpps (offered {self.send_pps / 1e6:.2f} Mpps), "
                f"kernel forwarded {self.kernel_forwarded:,}>")

    def _repr_html_(self) -> str:
        return (f"<b>{self.path}</b>: {self.pps / 1e6:.2f} Mpps forwarded ({self.arrived:,} of "
                f"{self.sent:,} frames arrived; offered {self.send_pps / 1e6:.2f} Mpps); "
                f"kernel ForwDatagrams +{self.kernel_forwarded:,}")


class ForwardingTest(Closable):
    """UDP frames from ``src`` to ``dst`` through whatever the router runs, counted where
    they arrive: an XDP_DROP sink on ``dst``'s veth0 (in place of its XDP_PASS peer
    program, which comes back after). Generator and sink load once; ``run()`` as often as needed, with
    other programs attached to the router in between. The router's port towards ``src``
    must have an XDP program (the generator's frames arrive through ndo_xdp_xmit)."""

    def __init__(self, topo, src: str = "h1", dst: str = "h3", size: int = 64):
        from scapy.layers.inet import IP, UDP
        self.topo, self.dst, s, d = topo, dst, topo[src], topo[dst]
        pkt = IP(src=s.ipv4, dst=d.ipv4) / UDP(sport=1234, dport=9)
        self.packet = pkt / (b"\0" * max(0, size - 14 - len(pkt)))
        self.sink = load_prog(SINK_SOURCE, origin="<sink>")
        self.peer = remove_peer_program(d)            # the sink takes its place for the test
        self.link = topo.attach_host(self.sink, dst, replace=True)
        try:
            self.gen = generator(self.packet, s)
        except BaseException:
            self._restore()
            raise

    def run(self, count: int | None = None, duration: float | None = None, *, path: str = "",
            cpus=1, progress: bool = False) -> ForwardResult:
        c0, snmp0 = self.sink.counters()["DROP"], self.topo.snmp()["ForwDatagrams"]
        r = self.gen.run(count, duration, cpus=cpus, progress=progress)
        time.sleep(0.05)                              # the last NAPI polls
        return ForwardResult(path or "through the router", r.sent, self.sink.counters()["DROP"] - c0,
                             self.topo.snmp()["ForwDatagrams"] - snmp0, r.seconds, r.pps)

    def _restore(self) -> None:
        self.sink.close()
        if self.peer:
            ensure_peer_program(self.topo[self.dst])

    def close(self) -> None:
        self._closed = True
        self.gen.close()
        self._restore()


def forward(topo, count: int | None = 1_000_000, *, src: str = "h1", dst: str = "h3", size: int = 64,
            **kw) -> ForwardResult:
    """One ``ForwardingTest`` run (``duration=``, ``path=``, ``cpus=`` as there)."""
    with ForwardingTest(topo, src, dst, size) as f:
        return f.run(count, **kw)
