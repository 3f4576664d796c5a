// expect: packet-bounds line 11 hint: data_end
// Checks the Ethernet header but then reads the IPv4 header past it.
int off_by_one(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if (ip->protocol == IPPROTO_UDP)
        return XDP_DROP;
    return XDP_PASS;
}
