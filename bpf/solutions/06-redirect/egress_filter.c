/* devmap egress program: runs on every frame redirected into the entry's device, after
 * the redirect and before ndo_xdp_xmit. Drops UDP to the discard port (9). */
int xdp_egress_filter(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct udphdr *udp = (void *)(ip + 1);

    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto == bpf_htons(ETH_P_IP) && ip->ihl == 5 && ip->protocol == IPPROTO_UDP &&
        udp->dest == bpf_htons(9))
        return XDP_DROP;
    return XDP_PASS;
}
