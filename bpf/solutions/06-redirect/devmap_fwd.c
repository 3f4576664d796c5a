/* Forward IPv4 from one lab host to another through a devmap, without the kernel's
 * IP forwarding: rewrite the Ethernet header for the next hop, then redirect.
 * macs[0] = new destination MAC, macs[1] = new source MAC (redirect.mac_u64). */
#include "xdplab_redirect.h"

BPF_DEVMAP_PROG(tx_port, 8);
BPF_ARRAY(macs, u64, 2);

int xdp_devmap_fwd(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    u32 k_dst = 0, k_src = 1;
    u64 *dst = macs.lookup(&k_dst), *src = macs.lookup(&k_src);

    if ((void *)(eth + 1) > data_end || !dst || !src)
        return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    __builtin_memcpy(eth->h_dest, dst, ETH_ALEN);
    __builtin_memcpy(eth->h_source, src, ETH_ALEN);
    return tx_port.redirect_map(0, 0);
}
