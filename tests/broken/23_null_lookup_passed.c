// expect: null-map-value line 11 hint: if (!value)
// A possibly-NULL map value passed to a helper that needs a valid pointer.
BPF_HASH(a, u32, u64, 8);
BPF_HASH(b, u32, u64, 8);

int pass_null(struct xdp_md *ctx)
{
    u32 k = 0;
    u64 *v = a.lookup(&k);
    u32 k2 = 1;
    b.update(&k2, v);
    return XDP_PASS;
}
