"""Lab 13 exercise: make the given port filter faster, same verdicts, and prove it with
the harness (xdplab.bench: the given program and yours measured interleaved, each
relative to the hook's own cost; the verdict must be "faster", beyond the noise)."""
from scapy.layers.inet import IP, IPOption_RR, TCP, UDP
from scapy.layers.l2 import Ether

from .grading import exercise
from ..programs.program import load
from ..tools import bench

ex = exercise("13", "performance", solution="13-performance/port_filter.c",
              title="the port filter, faster: same verdicts, proven faster by the harness")

BLOCKED = (7, 9, 19, 23, 69, 111, 137, 161)

#: the program the learner is given: correct, but it walks all 64 rule slots (a map
#: lookup each) for every UDP packet, and keeps going after a match
GIVEN_C = r"""
/* Drop UDP to the blocked ports (up to 64 rules in `rules`, 0 = unused), pass the rest. */
BPF_ARRAY(rules, u16, 64);

int xdp_port_filter(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct udphdr *udp;
    int verdict = XDP_PASS;

    if ((void *)(ip + 1) > data_end || eth->h_proto != htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    udp = (void *)ip + ip->ihl * 4;
    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    #pragma unroll
    for (int i = 0; i < 64; i++) {             /* every rule, for every packet */
        u32 k = i;
        u16 *port = rules.lookup(&k);
        if (port && *port && *port == ntohs(udp->dest))
            verdict = XDP_DROP;
    }
    return verdict;
}
"""

A, B = "10.0.0.2", "10.0.0.1"


def fill_rules(prog) -> None:
    """Write the blocked ports into the program's ``rules`` map, if it has one."""
    if "rules" in getattr(prog, "maps", {}):
        for i, port in enumerate(BLOCKED):
            prog["rules"][i] = port


def measure(prog, rounds: int = 7, repeat: int = 60_000) -> dict:
    """The given program and ``prog`` (and the empty hook) measured interleaved with
    BPF_PROG_RUN on a UDP packet to an open port (what most traffic is)."""
    given, hook = load(GIVEN_C, count=False), load(bench.HOOK_C, count=False)
    try:
        fill_rules(given)
        frame = bytes(Ether() / IP(src=A, dst=B) / UDP(sport=4242, dport=53) / (b"x" * 18))
        m = bench.measure_programs({"hook": hook, "given": given, "yours": prog}, rounds=rounds,
                                   repeat=repeat, frame=frame, progress=False)
    finally:
        given.close()
        hook.close()
    m["verdict"] = bench.judge(m["given"], m["yours"], base_ref=m["hook"], cur_ref=m["hook"])
    return m


@ex.unit
def same_verdicts(c):
    fill_rules(c.prog)
    for port in BLOCKED:
        c.packet(f"UDP to port {port} is dropped", IP(src=A, dst=B) / UDP(sport=1234, dport=port), "XDP_DROP")
    for port in (53, 80, 443, 8):
        c.packet(f"UDP to port {port} passes", IP(src=A, dst=B) / UDP(sport=1234, dport=port), "XDP_PASS")
    c.packet("UDP *from* port 23 passes", IP(src=A, dst=B) / UDP(sport=23, dport=4000), "XDP_PASS",
             hint="the rule is on the destination port")
    c.packet("TCP to port 23 passes", IP(src=A, dst=B) / TCP(dport=23), "XDP_PASS", hint="only UDP is filtered")
    c.packet("UDP to port 9 behind IPv4 options is dropped",
             IP(src=A, dst=B, options=[IPOption_RR()]) / UDP(dport=9), "XDP_DROP",
             hint="the UDP header starts ihl * 4 bytes after the IPv4 header")
    c.packet("a frame cut inside the UDP header passes", bytes(Ether() / IP(src=A, dst=B) / UDP(dport=9))[:38],
             "XDP_PASS")


@ex.unit
def faster(c):
    m = measure(c.prog)
    v = m["verdict"]
    c.that("the harness finds yours faster than the given program (beyond the noise)", "faster", v["verdict"], kind="harness",
           hint=f"given {m['given']['median']:.0f} ns/packet, yours {m['yours']['median']:.0f} "
                f"(change {v['change']:+.0%}, noise threshold {v['threshold']:.0%}): stop walking every rule "
                "slot for every packet")
