/* SPDX-License-Identifier: GPL-2.0-only */
/* In the style of samples/bpf/xdp1_kern.c: count per protocol, as a multi-buffer
 * ("xdp.frags") program that sees frames larger than a page. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, long);
	__uint(max_entries, 256);
} rxcnt SEC(".maps");

__u64 max_frame = 0;                 /* the largest frame seen, all fragments included */

static int parse_ipv4(void *data, __u64 nh_off, void *data_end)
{
	struct iphdr *iph = data + nh_off;

	if (iph + 1 > data_end)
		return 0;
	return iph->protocol;
}

SEC("xdp.frags")
int xdp_prog1(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	__u64 nh_off = sizeof(*eth);
	__u64 len = bpf_xdp_get_buff_len(ctx);
	__u32 ipproto = 0;
	long *value;

	if (data + nh_off > data_end)
		return XDP_PASS;
	if (len > max_frame)
		max_frame = len;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		ipproto = parse_ipv4(data, nh_off, data_end);
	value = bpf_map_lookup_elem(&rxcnt, &ipproto);
	if (value)
		*value += 1;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
