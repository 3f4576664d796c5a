// expect: missing-brace line 11 hint: missing `}`
// The `}` of the if block is missing: clang reports it in xdplab's wrapper after the code.
int xdp_brace(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end) {
        return XDP_DROP;
    return XDP_PASS;
}
