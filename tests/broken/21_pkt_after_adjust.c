// expect: stale-pkt-pointer line 12 hint: reload
// bpf_xdp_adjust_head invalidates packet pointers: the old pointer is reused.
int stale(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (bpf_xdp_adjust_head(ctx, -4))
        return XDP_DROP;
    return eth->h_proto ? XDP_PASS : XDP_DROP;
}
