"""Lab 13 exercise: make the given port filter faster, same verdicts, and prove it with
the harness (the given program and yours measured side by side, several loads of each,
run by run interleaved: ``progcost.measure_ab``; the verdict must be "faster", beyond the
noise)."""
import statistics

from scapy.layers.inet import IP, IPOption_RR, TCP, UDP
from scapy.layers.l2 import Ether

from .grading import exercise
from ..programs.program import load
from ..tools import progcost

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


def measure(prog, rounds: int = 12, copies_each: int = 4) -> dict:
    """The given program and ``prog`` measured side by side, as the regression harness does
    (``progcost.measure_ab``: ``copies_each`` loads of each and the empty hook, run by run
    interleaved) on a UDP packet to an open port (what most traffic is). Returns each one's
    ns/packet per round (``given``, ``yours``, ``hook``: median, min, max) and the harness's
    ``verdict`` on yours against the given one."""
    frame = bytes(Ether() / IP(src=A, dst=B) / UDP(sport=4242, dport=53) / (b"x" * 18))
    counted = bool(getattr(getattr(prog, "spec", None), "count", False))      # %%xdp counts actions:
    given = lambda: load(GIVEN_C, count=counted)                               # the given one alike
    rec = progcost.measure_ab(given, prog, copies_each=copies_each, rounds=rounds, frame=frame, setup=fill_rules)
    per_round = lambda side: [statistics.fmean(c[r] for c in rec[side]) for r in range(len(rec["hook"]))]
    return {"given": progcost.summary(per_round("base")), "yours": progcost.summary(per_round("current")),
            "hook": progcost.summary(rec["hook"]), "record": rec, "verdict": progcost.judge_ab(rec)}


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
                f"(change {v['change']:+.0%}, noise threshold "
                f"{'-' if v['threshold'] is None else format(v['threshold'], '.0%')}): stop walking every rule "
                "slot for every packet")
