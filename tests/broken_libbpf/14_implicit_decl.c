// expect: implicit-function line 10 hint: cannot call libc
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int libc_call(struct xdp_md *ctx)
{
	char a[8] = {}, b[8] = {};

	/* no prototype: clang warns (implicit declaration), libbpf cannot resolve it */
	return compare_bytes(a, b, sizeof(a)) ? XDP_DROP : XDP_PASS;
}
char _license[] SEC("license") = "GPL";
