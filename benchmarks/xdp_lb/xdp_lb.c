// SPDX-License-Identifier: GPL-2.0
/* The XDP/eBPF balancer: the paper's comparison point, doing XenoFlow's job.
 *
 * On the ingress interface: IPv4 UDP to VIP:port -> bucket = low `bits` bits of
 * the source address -> destination MAC := the bucket's backend MAC -> redirect
 * out the egress interface (devmap slot 0). Everything else: XDP_PASS.
 * Per-bucket packet counters (per CPU). Non-first IPv4 fragments carry no UDP
 * header and are passed. The source MAC is left alone (as XenoFlow's eSwitch
 * entries do: L2 DSR, the backends answer the client directly).
 *
 * All configuration lives in maps written by benchmarks/xdp_lb/xdplb.py:
 *   xlb_cfg      [0] = {vip (network order), port (network order), bits}
 *   xlb_backends [bucket] = {mac[6], valid}
 *   xlb_tx       devmap, [0] = egress ifindex
 *   xlb_buckets  per-CPU packet count per bucket
 *   xlb_stats    per-CPU: 0 passed, 1 redirected, 2 no backend (passed)
 * Build: clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c xdp_lb.c
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_BUCKETS 256

struct xlb_cfg {
	__u32 vip;      /* network order */
	__u16 port;     /* network order */
	__u16 bits;     /* 0..8 */
};

struct xlb_backend {
	__u8 mac[6];
	__u8 valid;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_cfg);
} xlb_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BUCKETS);
	__type(key, __u32);
	__type(value, struct xlb_backend);
} xlb_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} xlb_tx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} xlb_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} xlb_stats SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&xlb_stats, &idx);
	if (v)
		*v += 1;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct udphdr *udp;
	struct xlb_cfg *cfg;
	struct xlb_backend *be;
	__u32 zero = 0, bucket;
	__u64 *cnt;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end || iph->protocol != IPPROTO_UDP || iph->ihl < 5)
		return XDP_PASS;
	if (iph->frag_off & bpf_htons(0x1fff))      /* non-first fragment: no UDP header */
		return XDP_PASS;
	cfg = bpf_map_lookup_elem(&xlb_cfg, &zero);
	if (!cfg || iph->daddr != cfg->vip)
		return XDP_PASS;
	udp = (void *)iph + iph->ihl * 4;
	if ((void *)(udp + 1) > data_end || udp->dest != cfg->port)
		return XDP_PASS;

	bucket = bpf_ntohl(iph->saddr) & ((1u << (cfg->bits & 7)) - 1);
	if (cfg->bits >= 8)
		bucket = bpf_ntohl(iph->saddr) & 0xff;
	be = bpf_map_lookup_elem(&xlb_backends, &bucket);
	if (!be || !be->valid) {
		stat_inc(2);
		return XDP_PASS;
	}
	__builtin_memcpy(eth->h_dest, be->mac, 6);
	cnt = bpf_map_lookup_elem(&xlb_buckets, &bucket);
	if (cnt)
		*cnt += 1;
	stat_inc(1);
	return bpf_redirect_map(&xlb_tx, 0, 0);
}

char _license[] SEC("license") = "GPL";
