// expect: negative-index line 11 hint: unsigned
// A signed index that may be negative (only its upper bound is checked).
BPF_ARRAY(hist, u64, 64);

int h(struct xdp_md *ctx)
{
	int bucket = ctx->rx_queue_index - 5;
	u32 k = 0;
	u64 *base = hist.lookup(&k);
	if (!base || bucket > 63) return XDP_PASS;
	base[bucket]++;
	return XDP_PASS;
}
