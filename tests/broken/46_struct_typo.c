// expect: incomplete-type line 7 hint: struct ipv6hdr
// A misspelled struct name: `struct ip6hdr` is not defined anywhere.
int xdp_v6(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ip6hdr *ip6 = data + sizeof(struct ethhdr);
    if ((void *)(ip6 + 1) > data_end)
        return XDP_PASS;
    return XDP_DROP;
}
