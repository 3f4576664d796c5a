// expect: implicit-function line 8 hint: bpf_redirect
// A typo'd helper: clang only warns (implicit declaration); the verifier then says
// "last insn is not an exit or jmp".
BPF_DEVMAP(tx_port, 8);

int xdp_redirect_prog(struct xdp_md *ctx)
{
    return bpf_redirec(3, 0);
}
