/* Lab 06 solution, libbpf style: the same program as icmp6_echo.c (vmlinux.h, SEC("xdp"),
 * a license; the #defines vmlinux.h does not carry; xdplab_redirect.h's helpers as they are). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_ALEN            6
#define ETH_P_IPV6          0x86DD
#define IPPROTO_ICMPV6      58
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY   129

#include "xdplab_redirect.h"

SEC("xdp")
int xdp_icmp6_echo(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct ipv6hdr *ip6;
    struct icmp6hdr *icmp6;
    struct in6_addr addr;
    __be16 old, new;

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
    /* type and code as one 16-bit word. Not *(__be16 *)icmp6: plain clang compiles with
     * strict aliasing, may then read that word before the type is written, and the
     * checksum stays the request's (BCC's compile happens to keep the order). */
    __builtin_memcpy(&old, icmp6, sizeof(old));
    icmp6->icmp6_type = ICMPV6_ECHO_REPLY;
    __builtin_memcpy(&new, icmp6, sizeof(new));
    xdplab_csum_replace2(&icmp6->icmp6_cksum, old, new);
    return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
