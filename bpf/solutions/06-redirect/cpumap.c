/* Steer IPv4 to the CPU in `target_cpu` (ARP, IPv6 stay on the receiving CPU). */
#include "xdplab_redirect.h"

BPF_CPUMAP_PROG(cpu_map, 64);
BPF_ARRAY(target_cpu, u32, 1);

int xdp_to_cpu(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    u32 zero = 0, *cpu;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    cpu = target_cpu.lookup(&zero);
    if (!cpu)
        return XDP_PASS;
    return cpu_map.redirect_map(*cpu, 0);
}
