// expect: bpf2bpf line 15 hint: static __always_inline
// A noinline helper function: BCC builds no bpf-to-bpf calls.
static __attribute__((__noinline__)) int is_ipv4(void *data, void *data_end)
{
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return 0;
    return eth->h_proto == htons(ETH_P_IP);
}

int xdp_ipv4_only(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    if (is_ipv4(data, (void *)(long)ctx->data_end))
        return XDP_PASS;
    return XDP_DROP;
}
