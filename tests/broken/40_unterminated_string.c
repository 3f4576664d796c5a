// expect: unterminated-string line 5 hint: Close the literal
// The closing quote of the format string is missing.
int xdp_hello(struct xdp_md *ctx)
{
    bpf_trace_printk("hello\n);
    return XDP_PASS;
}
