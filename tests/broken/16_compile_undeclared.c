// expect: undeclared line 6 hint: clang suggests
// A typo: the variable is not declared.
int typo(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    if (dat == 0)
        return XDP_DROP;
    return XDP_PASS;
}
