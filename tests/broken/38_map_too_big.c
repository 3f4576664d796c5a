// expect: map-create line 6 hint: smaller
// 4 million 64 KiB values: far more memory than the kernel will give (ENOMEM).
struct flow_log {
    char bytes[65536];
};
BPF_ARRAY(flow_logs, struct flow_log, 4000000);

int xdp_big(struct xdp_md *ctx)
{
    u32 k = 1;
    struct flow_log *f = flow_logs.lookup(&k);
    return f ? XDP_DROP : XDP_PASS;
}
