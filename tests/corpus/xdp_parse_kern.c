/* SPDX-License-Identifier: GPL-2.0 */
/* In the style of xdp-tutorial packet01: parse with helpers from a header, drop ICMP echo
 * requests whose sequence number is even. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "parsing_helpers.h"

SEC("xdp")
int  xdp_parser_func(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct icmphdr *icmph;
	__u32 action = XDP_PASS; /* Default action */
	struct hdr_cursor nh;
	int nh_type;

	/* Start next header cursor position at data start */
	nh.pos = data;

	nh_type = parse_ethhdr(&nh, data_end, &eth);
	if (nh_type != bpf_htons(ETH_P_IP))
		goto out;

	nh_type = parse_iphdr(&nh, data_end, &iph);
	if (nh_type != IPPROTO_ICMP)
		goto out;

	if (parse_icmphdr(&nh, data_end, &icmph) != ICMP_ECHO)
		goto out;

	if (bpf_ntohs(icmph->un.echo.sequence) % 2 == 0)
		action = XDP_DROP;
out:
	return action;
}

char _license[] SEC("license") = "GPL";
