"""Edit -> attach: the libbpf path (clang -target bpf + libbpf) vs the BCC path, same program.

Both go through ``xdplab.load(...).attach(dev)`` in this one process, interleaved (libbpf,
BCC, libbpf, BCC, ...) so that machine noise hits them alike; each round changes the source
(as an edit does), so nothing is cached but the per-kernel vmlinux.h. After the first round
each attach is a BPF_LINK_UPDATE swap, as a re-run cell does. Both programs drop the same
packets (checked with BPF_PROG_RUN every round). Prints medians side by side and the ratio
(issue 13 expects well under 1).

    PYTHONPATH=. /opt/xdplab-venv/bin/python benchmarks/bench_libbpf.py [rounds]
"""
from __future__ import annotations

import statistics
import sys
import time

from tqdm import tqdm

import xdplab
from xdplab.net.topology import Topology

CHECK = r"""
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || eth->h_proto != %(htons)s(ETH_P_IP))
        return XDP_PASS;
    return ip->protocol == %(proto)d ? XDP_DROP : XDP_PASS;   /* the edit */
"""
BCC = "int xdp_bench(struct xdp_md *ctx)\n{" + CHECK + "}\n"
LIBBPF = ("#include <linux/bpf.h>\n#include <linux/if_ether.h>\n#include <linux/ip.h>\n"
          "#include <bpf/bpf_helpers.h>\n#include <bpf/bpf_endian.h>\n\n"
          'SEC("xdp")\nint xdp_bench(struct xdp_md *ctx)\n{' + CHECK + '}\n\nchar _license[] SEC("license") = "GPL";\n')


def main(rounds: int = 15) -> None:
    from scapy.all import IP, UDP
    topo = Topology(prefix="xbl-", net=98).up()
    dev_lib, dev_bcc = topo["h1"].outside, topo["h2"].outside
    t_lib, t_bcc, prev = [], [], {}
    from xdplab.programs import dialects
    dialects.vmlinux_dir()                      # the per-kernel vmlinux.h cache, built once
    try:
        for i in tqdm(range(rounds), desc="edit -> attach rounds", unit="round"):
            proto = 100 + i
            for name, src, dev, times in (("libbpf", LIBBPF % {"htons": "bpf_htons", "proto": proto}, dev_lib, t_lib),
                                          ("bcc", BCC % {"htons": "htons", "proto": proto}, dev_bcc, t_bcc)):
                t = time.perf_counter()
                prog = xdplab.load(src)
                prog.attach(dev)
                times.append(time.perf_counter() - t)
                assert (prog.dialect.dialect if name == "libbpf" else "bcc") == name
                assert prog.run(IP(dst="10.0.0.1", proto=proto) / UDP()).action == "XDP_DROP"
                assert prog.run(IP(dst="10.0.0.1") / UDP()).action == "XDP_PASS"
                if name in prev:
                    prev[name].close()           # its link now holds the new program
                prev[name] = prog
    finally:
        for p in prev.values():
            p.close()
        topo.down()
    lib, bcc = statistics.median(t_lib), statistics.median(t_bcc)
    print(f"\nedit -> attach, median of {rounds} rounds each (interleaved, same process, same program)")
    print(f"  libbpf path (clang -target bpf + libbpf + bpf_link) : {lib * 1000:8.1f} ms")
    print(f"  BCC path    (BCC compile + load + bpf_link)        : {bcc * 1000:8.1f} ms")
    print(f"  ratio libbpf / bcc                                  : {lib / bcc:8.2f}   (expect well under 1)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
