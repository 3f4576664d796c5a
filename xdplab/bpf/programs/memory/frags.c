/* Multi-buffer: a frags-aware program sees the whole frame (bpf_xdp_get_buff_len) and
 * reads bytes past the first buffer (bpf_xdp_load_bytes). `seen`: 0 whole length,
 * 1 linear part (data_end - data), 2 the byte at offset PROBE_OFF (+1, 0: none), 3 frames. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PROBE_OFF 5000
#define ETH_P_IP 0x0800

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} seen SEC(".maps");

static __always_inline void put(__u32 k, __u64 v)
{
    bpf_map_update_elem(&seen, &k, &v, BPF_ANY);
}

SEC("xdp.frags")
int frags(struct xdp_md *ctx)
{
    struct ethhdr eth;
    __u8 b = 0;
    __u64 len = bpf_xdp_get_buff_len(ctx);

    if (bpf_xdp_load_bytes(ctx, 0, &eth, sizeof(eth)) || eth.h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    put(0, len);
    put(1, ctx->data_end - ctx->data);
    put(2, (len > PROBE_OFF && !bpf_xdp_load_bytes(ctx, PROBE_OFF, &b, 1)) ? b + 1 : 0);
    __u32 k = 3;
    __u64 *n = bpf_map_lookup_elem(&seen, &k);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
