"""Test helpers shared by several test files."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PASS_PROG = "int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }"
def ipv4_program(name: str, body: str) -> str:
    """An XDP function that passes all but IPv4 and runs ``body`` with ``ip`` parsed."""
    return (f"int {name}(struct xdp_md *ctx)\n{{\n"
            "    void *data = (void *)(long)ctx->data;\n"
            "    void *data_end = (void *)(long)ctx->data_end;\n"
            "    struct ethhdr *eth = data;\n"
            "    struct iphdr *ip = (void *)(eth + 1);\n"
            "    if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))\n"
            "        return XDP_PASS;\n"
            f"{body}}}\n")


DROP_ICMP = ipv4_program("xdp_drop_icmp", "    return ip->protocol == IPPROTO_ICMP ? XDP_DROP : XDP_PASS;\n")

# Drops UDP to port 9 (the discard service). Assumes a 20-byte IPv4 header (ignores ihl):
# fine as a traffic receiver, and the bug lab 05's checks must catch.
DROP_UDP9 = r"""
int xdp_drop_udp9(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct udphdr *udp = (void *)(ip + 1);

    if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    return udp->dest == bpf_htons(9) ? XDP_DROP : XDP_PASS;
}
"""


def attach_in_child(ifname: str, source: str = PASS_PROG, mode: str = "native") -> subprocess.Popen:
    """Another process that attaches ``source`` to ``ifname`` through xdplab and waits.
    Returns once it has attached (it prints 'attached')."""
    code = ("import sys, time, xdplab\n"
            f"p = xdplab.load({source!r})\n"
            f"p.attach({ifname!r}, {mode!r})\n"
            "print('attached', p.id, flush=True)\n"
            "time.sleep(600)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    line = child.stdout.readline()
    if not line.startswith("attached"):
        child.kill()
        raise RuntimeError(f"child failed to attach: {line} {child.stderr.read()}")
    child.prog_id = int(line.split()[1])
    return child
