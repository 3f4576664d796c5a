"""Edit -> attach latency: a `%%xdp` cell vs bare BCC (`BPF(text=...)` + load + attach).

Both run in this one process, interleaved (A, B, A, B, ...) so that machine noise hits them
alike; each round changes the source (as an edit does), so nothing can be cached. Prints
medians side by side and the ratio. Target: %%xdp / bare <= 1.2.

    ./lab setup && PYTHONPATH=. /opt/xdplab-venv/bin/python benchmarks/bench_attach.py [rounds]
"""
from __future__ import annotations

import statistics
import sys
import time

from IPython.testing.globalipapp import start_ipython
from tqdm import tqdm

from xdplab.net.topology import Topology

BODY = r"""
int xdp_bench(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || eth->h_proto != htons(ETH_P_IP))
        return XDP_PASS;
    return ip->protocol == %d ? XDP_DROP : XDP_PASS;   /* the edit */
}
"""
BARE_INCLUDES = "#include <uapi/linux/bpf.h>\n#include <uapi/linux/if_ether.h>\n#include <uapi/linux/ip.h>\n"


def main(rounds: int = 20) -> None:
    from bcc import BPF
    topo = Topology(prefix="xb-", net=97).up()
    dev_magic, dev_bare = topo["h1"].outside, topo["h2"].outside
    shell = start_ipython()
    shell.run_line_magic("load_ext", "xdplab")
    magic, bare, prev = [], [], None
    try:
        for i in tqdm(range(rounds), desc="edit -> attach rounds", unit="round"):
            proto = 100 + i
            t = time.perf_counter()
            res = shell.run_cell(f"%%xdp --dev {dev_magic} --name p\n" + BODY % proto)
            magic.append(time.perf_counter() - t)
            if res.error_in_exec:
                raise res.error_in_exec

            t = time.perf_counter()
            b = BPF(text=BARE_INCLUDES + BODY % proto)
            fn = b.load_func(b"xdp_bench", BPF.XDP)
            BPF.attach_xdp(dev_bare, fn, BPF.XDP_FLAGS_DRV_MODE)
            bare.append(time.perf_counter() - t)
            if prev is not None:
                prev.cleanup()
            prev = b
    finally:
        shell.run_line_magic("unload_ext", "xdplab")
        BPF.remove_xdp(dev_bare, BPF.XDP_FLAGS_DRV_MODE)
        if prev is not None:
            prev.cleanup()
        topo.down()
    m, b = statistics.median(magic), statistics.median(bare)
    print(f"\nedit -> attach, median of {rounds} rounds each (interleaved, same process)")
    print(f"  %%xdp cell (compile + verify + bpf_link update) : {m * 1000:8.1f} ms")
    print(f"  bare BCC   (compile + verify + netlink attach)  : {b * 1000:8.1f} ms")
    print(f"  ratio %%xdp / bare                             : {m / b:8.2f}   (target <= 1.2)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
