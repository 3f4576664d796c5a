// expect: pkt-end-arith line 11 hint: data + N > data_end
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int end_minus(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	unsigned char *last;

	last = data_end - 1;
	if ((void *)last < data)
		return XDP_DROP;
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
