// expect: map-value-bounds line 16 hint: Bound the index
// `<=` instead of `<`: the index may be 4, one past the array inside the map value.
struct stats {
    u64 per_queue[4];
};
BPF_ARRAY(qstats, struct stats, 1);

int xdp_queue_stats(struct xdp_md *ctx)
{
    u32 key = 0;
    struct stats *s = qstats.lookup(&key);
    if (!s)
        return XDP_PASS;
    u32 q = ctx->rx_queue_index;
    if (q <= 4)
        s->per_queue[q]++;
    return XDP_PASS;
}
