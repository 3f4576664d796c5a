// expect: implicit-function line 6 hint: bpf_xdp_adjust_head
// A typo in a helper's name (clang only warns).
int strip_vlan(struct xdp_md *ctx)
{
	/* drop the first 4 bytes */
	if (bpf_xdp_adjust_heads(ctx, 4))
		return XDP_ABORTED;
	return XDP_PASS;
}
