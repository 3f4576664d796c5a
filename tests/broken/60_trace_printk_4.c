// expect: too-many-args line 8 hint: at most 3 values
// bpf_trace_printk with 4 values.
int dbg(struct xdp_md *ctx)
{
	u32 a = ctx->ingress_ifindex;
	u32 b = ctx->rx_queue_index;

	bpf_trace_printk("a=%u b=%u c=%u d=%u\n", a, b, a + b, a - b);
	return XDP_PASS;
}
