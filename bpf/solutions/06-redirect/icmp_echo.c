/* Lab 06 solution: answer ICMP echo requests with XDP_TX.
 * The reply is the request turned around: MACs and IPs swapped, type 8 -> 0. */
#include "xdplab_redirect.h"

int xdp_icmp_echo(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip;
    struct icmphdr *icmp;
    __be32 addr;
    __be16 old;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    icmp = (void *)(ip + 1);
    if ((void *)(icmp + 1) > data_end || icmp->type != ICMP_ECHO)
        return XDP_PASS;

    xdplab_swap_macs(eth);
    /* Swapping the addresses leaves the IP header checksum valid: the same 16-bit
     * words are summed, in another order. */
    addr = ip->saddr;
    ip->saddr = ip->daddr;
    ip->daddr = addr;
    /* type and code share one 16-bit word of the ICMP checksum: update it for 8 -> 0 */
    old = *(__be16 *)icmp;
    icmp->type = ICMP_ECHOREPLY;
    xdplab_csum_replace2(&icmp->checksum, old, *(__be16 *)icmp);
    return XDP_TX;
}
