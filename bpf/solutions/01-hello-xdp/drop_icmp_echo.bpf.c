/* Lab 01 solution, libbpf style: the same program as drop_icmp_echo.c, written the way
 * production code is (xdp-tutorial, kernel samples): vmlinux.h for the kernel's types,
 * libbpf's headers, SEC("xdp") and a license. Compile it by hand with
 *   bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h
 *   clang -O2 -g -target bpf -c drop_icmp_echo.bpf.c -o drop_icmp_echo.bpf.o
 * or give it to xdplab as it is (./lab check 01 drop_icmp_echo.bpf.c). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* vmlinux.h carries types and enums, not #defines */
#define ETH_P_IP            0x0800
#define ETH_P_IPV6          0x86DD
#define ICMP_ECHO           8
#define ICMPV6_ECHO_REQUEST 128
#define IPPROTO_ICMPV6      58          /* a #define in linux/in6.h, not in vmlinux.h */

SEC("xdp")
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

char LICENSE[] SEC("license") = "GPL";
