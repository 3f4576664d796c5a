// expect: null-map-value line 9 hint: if (!value)
// Dereferences a map lookup result without checking it for NULL.
BPF_HASH(seen, u32, u64, 64);

int null_map(struct xdp_md *ctx)
{
    u32 key = ctx->ingress_ifindex;
    u64 *v = seen.lookup(&key);
    *v += 1;
    return XDP_PASS;
}
