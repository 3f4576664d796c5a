// expect: redefinition line 8 hint: already defined
// The same local variable declared twice.
int xdp_off(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    int off = sizeof(struct ethhdr);
    int off = off + sizeof(struct iphdr);
    if (data + off > data_end)
        return XDP_PASS;
    return XDP_DROP;
}
