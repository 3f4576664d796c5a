// expect: stack-limit line 6 hint: BPF_PERCPU_ARRAY
// Two 320-byte arrays: together over the 512-byte stack.
int big(struct xdp_md *ctx)
{
	u64 a[40];
	u64 b[40];
	for (int i = 0; i < 40; i++) { a[i] = i; b[i] = a[i] * 2; }
	return (a[ctx->rx_queue_index & 31] + b[ctx->rx_queue_index & 31]) ? XDP_PASS : XDP_DROP;
}
