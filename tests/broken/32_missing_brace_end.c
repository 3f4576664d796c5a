// expect: missing-brace line 12 hint: missing `}`
// The function's closing brace is missing.
int xdp_count_ipv6(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto == htons(ETH_P_IPV6))
        return XDP_DROP;
