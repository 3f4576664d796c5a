// expect: too-many-args line 8 hint: at most 3 values per bpf_printk
// bpf_printk with 4 values: LLVM's BPF backend ends the compiling process (exit 1).
int xdp_log(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;

    bpf_printk("len %d if %d q %d x %d", data_end - data, ctx->ingress_ifindex, ctx->rx_queue_index, 1);
    return XDP_PASS;
}
