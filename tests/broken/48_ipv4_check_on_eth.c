// expect: packet-bounds line 13 hint: data_end
// The bounds check covers the Ethernet header; the IPv4 header after it is unchecked.
int xdp_ttl(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if (data + sizeof(*eth) > data_end)
        return XDP_PASS;
    if (eth->h_proto != htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = data + sizeof(*eth);
    if (ip->ttl < 2)
        return XDP_DROP;
    return XDP_PASS;
}
