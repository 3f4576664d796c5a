// expect: stale-pkt-pointer line 13 hint: reload
// bpf_xdp_adjust_tail may move the packet: data_end from before the call is stale.
int xdp_trim(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (bpf_xdp_adjust_tail(ctx, -4))
        return XDP_PASS;
    if (eth->h_proto == htons(ETH_P_ARP))
        return XDP_DROP;
    return XDP_PASS;
}
