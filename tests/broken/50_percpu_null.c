// expect: null-map-value line 10 hint: if (!value)
// A per-CPU hash lookup used without a NULL check.
BPF_PERCPU_HASH(proto_count, u32, u64, 256);

int xdp_proto(struct xdp_md *ctx)
{
    u32 key = 17;
    u64 *count;
    count = proto_count.lookup(&key);
    *count += 1;
    return XDP_PASS;
}
