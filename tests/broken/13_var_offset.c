// expect: var-offset-pkt line 12 hint: Bound the offset
// Packet pointer plus an unbounded offset read from the packet.
int var_off(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    unsigned char *p = data;
    if ((void *)(p + 1) > data_end)
        return XDP_PASS;
    u64 off = *p;
    off <<= 56;
    p += off;
    if ((void *)(p + 1) > data_end)
        return XDP_PASS;
    return *p ? XDP_PASS : XDP_DROP;
}
