// expect: unknown-map-type line 3 hint: BPF_HASH
// A map type name BCC does not know.
BPF_TABLE("hashmap", u32, u64, counts, 16);

int xdp_mt(struct xdp_md *ctx)
{
    u32 k = 0;
    u64 *v = counts.lookup(&k);
    return v ? XDP_PASS : XDP_DROP;
}
