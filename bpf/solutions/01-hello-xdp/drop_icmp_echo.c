/* Lab 01 solution: drop ICMP echo requests over IPv4 and IPv6, pass everything else.
 * ICMPv6 also carries neighbour discovery (types 133-137): it must pass, or the
 * host loses its neighbours. Only the echo request types (8, 128) are dropped. */

int xdp_drop_icmp_echo(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;

    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        struct icmphdr *icmp;

        if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_ICMP || ip->ihl < 5)
            return XDP_PASS;
        icmp = (void *)ip + ip->ihl * 4;            /* IPv4 options move the ICMP header */
        if ((void *)(icmp + 1) > data_end)
            return XDP_PASS;
        return icmp->type == ICMP_ECHO ? XDP_DROP : XDP_PASS;
    }
    if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        struct icmp6hdr *icmp6 = (void *)(ip6 + 1);

        /* no extension headers here: ping6 puts ICMPv6 right after the fixed header */
        if ((void *)(icmp6 + 1) > data_end || ip6->nexthdr != IPPROTO_ICMPV6)
            return XDP_PASS;
        return icmp6->icmp6_type == ICMPV6_ECHO_REQUEST ? XDP_DROP : XDP_PASS;
    }
    return XDP_PASS;
}
