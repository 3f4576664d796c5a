// expect: undeclared line 10 hint: clang suggests
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int typo(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return (data_ned - data) > 100 ? XDP_DROP : XDP_PASS;
}
char _license[] SEC("license") = "GPL";
