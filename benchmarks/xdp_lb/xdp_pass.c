// SPDX-License-Identifier: GPL-2.0
/* XDP_PASS for the receiving peer of a veth that XDP_REDIRECT targets: native
 * XDP on veth accepts redirected frames only when the peer has XDP (NAPI) on. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
