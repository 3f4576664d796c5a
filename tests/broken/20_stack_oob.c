// expect: stack-bounds line 8 hint: Bound the index
// Reading past the end of a stack array with an index the verifier cannot bound.
int stack_oob(struct xdp_md *ctx)
{
    volatile char buf[16] = {};
    u32 i = ctx->rx_queue_index;
    buf[0] = 1;
    return buf[i] ? XDP_PASS : XDP_DROP;
}
