// expect: packet-bounds line 17 hint: data_end
// The UDP header is read without its own bounds check.
int xdp_block_dns(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);

    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP)
        return XDP_PASS;

    struct udphdr *udp = (void *)(ip + 1);

    if (udp->dest == htons(53))
        return XDP_DROP;
    return XDP_PASS;
}
