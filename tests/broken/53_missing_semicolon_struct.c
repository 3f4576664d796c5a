// expect: missing-semicolon line 6 hint: `;`
// A struct definition without the `;` after its closing brace.
struct counters {
    u64 pass;
    u64 drop;
}

BPF_ARRAY(cnt, struct counters, 1);

int xdp_c(struct xdp_md *ctx)
{
    return XDP_PASS;
}
