/* Lab 12 reference: drop jumbo frames (more than 4000 B in all) that carry the marker
 * byte 0xEE at offset 5000, pass everything else. Only a multi-buffer program can do it:
 * the frame is longer than its first buffer (ctx->data_end - ctx->data is one page at
 * most), so its length comes from bpf_xdp_get_buff_len and the byte from
 * bpf_xdp_load_bytes, which reads across the fragments. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#define MARK_OFF 5000
#define MARK 0xEE

SEC("xdp.frags")
int jumbo_guard(struct xdp_md *ctx)
{
    __u8 b;

    if (bpf_xdp_get_buff_len(ctx) <= 4000)
        return XDP_PASS;
    if (bpf_xdp_load_bytes(ctx, MARK_OFF, &b, 1))
        return XDP_PASS;                      /* shorter than MARK_OFF + 1 */
    return b == MARK ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
