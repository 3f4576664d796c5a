// expect: float line 5 hint: Use integers
// Floating point: BPF has none, and LLVM's BPF backend ends the compiling process.
int xdp_scale(struct xdp_md *c)
{
    double d = (c->data_end - c->data) * 1.5;
    if (d > 1000)
        return XDP_DROP;
    return XDP_PASS;
}
