// expect: missing-semicolon line 5 hint: `;`
// A missing semicolon.
int semi(struct xdp_md *ctx)
{
    int x = 1
    return x ? XDP_PASS : XDP_DROP;
}
