// expect: pointer-math line 5 hint: not a pointer
// Returning the context pointer as the action.
int xdp_ret(struct xdp_md *ctx)
{
    return (long)ctx;
}
