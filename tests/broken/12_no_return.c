// expect: return-value line 6 hint: Return one of
// An inline-asm `exit` on a path where R0 (the return value) was never set.
int no_return(struct xdp_md *ctx)
{
    if (ctx->rx_queue_index == 7)
        asm volatile("exit");
    return XDP_PASS;
}
