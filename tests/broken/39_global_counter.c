// expect: global-var line 7 hint: BPF_ARRAY
// A writable global variable: BCC has no global data.
u64 packets = 0;

int xdp_glob(struct xdp_md *ctx)
{
    packets++;
    return XDP_PASS;
}
