// expect: pkt-end-arith line 6 hint: packet pointer
// Arithmetic on data_end: only comparisons are allowed.
int end_arith(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end - 14;
    if (data > data_end)
        return XDP_PASS;
    return XDP_DROP;
}
