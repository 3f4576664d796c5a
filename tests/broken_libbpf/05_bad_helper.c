// expect: bad-helper line 10 hint: XDP equivalent
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int skb_helper(struct xdp_md *ctx)
{
	char buf[4];

	/* a socket-buffer helper: XDP has no sk_buff */
	if (bpf_skb_load_bytes(ctx, 0, buf, sizeof(buf)))
		return XDP_DROP;
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
