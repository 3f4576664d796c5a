// SPDX-License-Identifier: GPL-2.0
/* In the style of the kernel's BPF selftests: global data. The loader sets the
 * const volatile (.rodata) knobs before load; .bss and .data are read after. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

const volatile __u8 drop_proto = 0;         /* .rodata: 0 = drop nothing */
const volatile __u32 max_len = 1514;        /* .rodata */
__u64 seen_pkts = 0;                        /* .bss */
__u64 dropped_pkts = 0;                     /* .bss */
__u32 last_len = 0xffffffff;                /* .data */

SEC("xdp")
int xdp_global(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);

	__sync_fetch_and_add(&seen_pkts, 1);
	last_len = data_end - data;
	if (last_len > max_len)
		return XDP_DROP;
	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (drop_proto && iph->protocol == drop_proto) {
		__sync_fetch_and_add(&dropped_pkts, 1);
		return XDP_DROP;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
