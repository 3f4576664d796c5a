// expect: missing-brace line 15 hint: missing `}`
// Braces in a comment and a string do not count; the if's brace is missing.
/* drop { everything } that is not IPv4 */
int xdp_v4only(struct xdp_md *ctx) {
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	char *msg = "{";

	if ((void *)(eth + 1) > data_end) {
		return XDP_DROP;
	}
	if (eth->h_proto != htons(ETH_P_IP)) {
		return XDP_DROP;   /* not v4 } */
	return XDP_PASS;
}
