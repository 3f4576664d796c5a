// expect: signed-division line 7 hint: unsigned
// A signed division: LLVM 14's BPF backend cannot select it (it would abort the process).
BPF_ARRAY(hist, u64, 64);

int h(struct xdp_md *ctx)
{
	int bucket = (int)(ctx->data_end - ctx->data) / 64;
	u32 k = 0;
	u64 *base = hist.lookup(&k);
	if (!base || bucket > 63) return XDP_PASS;
	base[bucket]++;
	return XDP_PASS;
}
