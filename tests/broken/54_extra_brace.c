// expect: extra-brace line 7 hint: Remove
// A stray closing brace ends the function early.
int extra(struct xdp_md *ctx)
{
	if (ctx->rx_queue_index > 3)
		return XDP_DROP;
	}
	return XDP_PASS;
}
