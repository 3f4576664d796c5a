/* Lab 06 exercise solution: answer ICMPv6 echo requests (ping -6) with XDP_TX, and
 * leave everything else — neighbour discovery above all — to the stack. */
#include "xdplab_redirect.h"

int xdp_icmp6_echo(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct ipv6hdr *ip6;
    struct icmp6hdr *icmp6;
    struct in6_addr addr;
    __be16 old;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IPV6))
        return XDP_PASS;
    ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_ICMPV6)
        return XDP_PASS;
    icmp6 = (void *)(ip6 + 1);
    if ((void *)(icmp6 + 1) > data_end || icmp6->icmp6_type != ICMPV6_ECHO_REQUEST)
        return XDP_PASS;

    xdplab_swap_macs(eth);
    /* The ICMPv6 checksum covers a pseudo-header with both addresses: swapping them
     * changes the order of the summed words, not the sum. */
    addr = ip6->saddr;
    ip6->saddr = ip6->daddr;
    ip6->daddr = addr;
    old = *(__be16 *)icmp6;                      /* type and code */
    icmp6->icmp6_type = ICMPV6_ECHO_REPLY;
    xdplab_csum_replace2(&icmp6->icmp6_cksum, old, *(__be16 *)icmp6);
    return XDP_TX;
}
