// expect: too-complex line 11 hint: Bound loops
// The loop bound comes from the packet: the verifier walks it iteration by iteration
// until it hits its 1M-instruction budget.
int unbounded(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    volatile u32 n = data_end - data;
    u32 sum = 0;
    u32 i;
    for (i = 0; i < n; i++)
        sum += i;
    return sum ? XDP_PASS : XDP_DROP;
}
