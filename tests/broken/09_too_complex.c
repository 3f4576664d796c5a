// expect: too-complex line 12 hint: Bound loops
// Nested loops with data-dependent branches: more states than the verifier will explore.
BPF_ARRAY(arr, u32, 1024);

int complex(struct xdp_md *ctx)
{
    u32 acc = 0;
    for (u32 i = 0; i < 1024; i++) {
        for (u32 j = 0; j < 1024; j++) {
            u32 k = (i * 1024 + j) & 1023;
            u32 *v = arr.lookup(&k);
            if (v && (*v & 1))
                acc += *v;
            else if (v)
                acc ^= j;
        }
    }
    return acc ? XDP_PASS : XDP_DROP;
}
