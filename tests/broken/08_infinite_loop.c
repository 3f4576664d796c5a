// expect: loop line 7 hint: Bound the loop
// A loop that never ends.
int forever(struct xdp_md *ctx)
{
    volatile int x = 0;
    while (1) {
        x++;
    }
    return XDP_PASS;
}
