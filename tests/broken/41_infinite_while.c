// expect: loop line 6 hint: Bound the loop
// A loop whose counter never changes on the path the verifier takes.
int xdp_spin(struct xdp_md *ctx)
{
    int i = 0;
    while (i < 10) {
        if (ctx->data == 0)
            i++;
    }
    return XDP_PASS;
}
