// expect: core-reloc line 20 hint: bpf_core_field_exists
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* a field this kernel's struct iphdr does not have: CO-RE cannot relocate the read */
struct iphdr___future {
	__u8 flow_color;
} __attribute__((preserve_access_index));

SEC("xdp")
int core_missing(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr___future *iph = data + 14;

	if ((void *)(iph + 1) > data_end)
		return XDP_PASS;
	return iph->flow_color ? XDP_DROP : XDP_PASS;
}
char _license[] SEC("license") = "GPL";
