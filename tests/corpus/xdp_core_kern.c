// SPDX-License-Identifier: GPL-2.0
/* CO-RE: types from the running kernel's BTF (vmlinux.h), field offsets relocated by
 * libbpf at load (BPF_CORE_READ_INTO), feature checks against the kernel's BTF. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);              /* IP protocol */
	__type(value, __u64);            /* packets */
} proto_count SEC(".maps");

__u32 has_egress_ifindex = 0;        /* what bpf_core_field_exists said */

SEC("xdp")
int xdp_core(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	__u8 proto = 0;
	__u32 key;
	__u64 one = 1, *v;

	has_egress_ifindex = bpf_core_field_exists(ctx->egress_ifindex);
	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (BPF_CORE_READ_INTO(&proto, iph, protocol))
		return XDP_ABORTED;
	key = proto;
	v = bpf_map_lookup_elem(&proto_count, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&proto_count, &key, &one, BPF_NOEXIST);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
