// expect: uninit-stack line 8 hint: Initialise
// Reads a register nothing wrote (at entry only R1 = ctx and R10 = frame pointer are set).
// Note: for privileged loaders (CAP_PERFMON) recent kernels accept reads of uninitialised
// *stack*; registers are always checked, and unprivileged programs get the stack check too.
int uninit_reg(struct xdp_md *ctx)
{
    u64 v;
    asm volatile("%0 = r5" : "=r"(v));
    return v ? XDP_PASS : XDP_DROP;
}
