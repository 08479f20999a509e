/*
 * Standalone driver for glue.c + softdoca under AddressSanitizer/UBSan (test_glue_asan.py).
 *
 *   asan_driver <file-prefix> control   add/update/remove/query/teardown, error paths, and
 *                                       the parser/lookup fed with 200k random/malformed
 *                                       frames (softdoca_classify_frame, no packet I/O)
 *   asan_driver <file-prefix> io <wire> <rep> <inject>
 *                                       the forwarding thread on af_packet vdevs while the
 *                                       control thread churns entries (grace-period reclaim
 *                                       under load); frames are injected on <inject>, the
 *                                       wire's veth peer, good and malformed alike
 * Exits 0 and prints "DRIVER OK" only if every check held; sanitizer reports abort it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "glue.h"
#include "glue_softdoca.h"

#define CHECK(c)                                                                       \
	do {                                                                           \
		if (!(c)) {                                                            \
			fprintf(stderr, "CHECK failed %s:%d: %s (last call %s: %s)\n", __FILE__, __LINE__, #c, \
				xf_last_call(), xf_last_detail());                     \
			exit(2);                                                       \
		}                                                                      \
	} while (0)

#define ERR_INVALID 6
#define ERR_IN_USE 3
#define ERR_FULL 24
#define ERR_EXIST 23

static const uint8_t MAC_A[6] = {2, 0, 0xc6, 0x12, 0, 2};
static const uint8_t MAC_B[6] = {2, 0, 0xc6, 0x12, 0, 3};
#define VIP 0xC6120035u /* 198.18.0.53 */

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

static size_t udp_frame(uint8_t *f, uint32_t src, uint32_t dst, uint16_t dport, size_t payload)
{
	memset(f, 0, 14 + 28 + payload);
	memcpy(f, "\x02\xc6\x12\x00\x00\x35\x02\xc6\x12\x00\x00\x10\x08\x00", 14);
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	uint16_t tot = htons((uint16_t)(28 + payload));
	memcpy(ip + 2, &tot, 2);
	ip[8] = 64;
	ip[9] = 17;
	uint32_t s = htonl(src), d = htonl(dst);
	memcpy(ip + 12, &s, 4);
	memcpy(ip + 16, &d, 4);
	uint16_t sp = htons(4000), dp = htons(dport), ul = htons((uint16_t)(8 + payload));
	memcpy(ip + 20, &sp, 2);
	memcpy(ip + 22, &dp, 2);
	memcpy(ip + 24, &ul, 2);
	return 14 + 28 + payload;
}

static struct xf_entry_spec basic_spec(uint32_t pipe, uint32_t src, const uint8_t *mac)
{
	struct xf_entry_spec s;
	memset(&s, 0, sizeof(s));
	s.pipe = pipe;
	s.match.ipv4_src = src;
	s.has_mac = 1;
	memcpy(s.dst_mac, mac, 6);
	return s;
}

static struct xf_entry_spec root_spec(uint32_t pipe, uint32_t prio, uint8_t kind, uint32_t target)
{
	struct xf_entry_spec s;
	memset(&s, 0, sizeof(s));
	s.pipe = pipe;
	s.priority = prio;
	s.match = (struct xf_match){.eth_type = 0x0800, .ipv4_dst = VIP, .ip_proto = 17, .l4_dst = 53};
	s.mask = (struct xf_match){.eth_type = 0xffff, .ipv4_dst = 0xffffffff, .ip_proto = 0xff, .l4_dst = 0xffff};
	s.fwd_kind = kind;
	s.fwd_target = target;
	return s;
}

static int add(struct xf_entry_spec *s, uint32_t n, uint64_t *h)
{
	int32_t *err = calloc(n, sizeof(*err));
	uint8_t *st = calloc(n, 1);
	uint32_t nf = 0;
	int rc = xf_entries_add(s, n, h, err, st, &nf);
	CHECK((rc == 0) == (nf == 0));
	free(err);
	free(st);
	return rc;
}

static void init(const char *prefix)
{
	char *eal[] = {"asan_driver", "--no-huge", "-m", "256", "--no-pci", "-l", "0-1", "--file-prefix",
		       (char *)prefix, "--log-level", "lib.eal:error"};
	CHECK(xf_init(11, eal, "vnf") == 0);
	CHECK(xf_init(11, eal, "vnf") != 0); /* once per process */
}

/* Two device ports p0, p1, paired both ways (vnf), with softdoca target args each. */
static int start_ports(const char *args0, const char *args1, uint8_t kind1)
{
	struct xf_port_cfg c[2];
	memset(c, 0, sizeof(c));
	for (int i = 0; i < 2; i++) {
		c[i].id = (uint16_t)i;
		c[i].parent = 0xffff;
		c[i].pair = (uint16_t)(1 - i);
		c[i].kind = i ? kind1 : XF_PORT_DEV;
		snprintf(c[i].addr, sizeof(c[i].addr), "p%d", i);
		snprintf(c[i].devargs, sizeof(c[i].devargs), "dv_flow_en=2");
		snprintf(c[i].target_args, sizeof(c[i].target_args), "%s", i ? args1 : args0);
	}
	return xf_ports_start(c, 2);
}

static int run_control(const char *prefix)
{
	init(prefix);
	CHECK(start_ports("driver=none", "driver=none", 7) == ERR_INVALID); /* bad kind: nothing started */
	CHECK(start_ports("driver=none", "driver=none", XF_PORT_DEV) == 0);
	CHECK(start_ports("driver=none", "driver=none", XF_PORT_DEV) != 0); /* once per eSwitch */
	enum { N = 1024 };
	uint32_t root, svc;
	struct xf_match mask = {.ipv4_src = 0x3ff};
	CHECK(xf_pipe_create_root(0, "root", 64, &root) == 0);
	CHECK(xf_pipe_create_basic(0, "svc", &mask, 1, N + 8, &svc) == 0);

	static struct xf_entry_spec specs[N + 1];
	static uint64_t h[N + 1];
	specs[0] = root_spec(root, 10, XF_FWD_PIPE, svc);
	for (uint32_t i = 0; i < N; i++)
		specs[i + 1] = basic_spec(svc, i, (i & 1) ? MAC_B : MAC_A);
	CHECK(add(specs, N + 1, h) == 0);

	uint8_t f[256];
	for (uint32_t i = 0; i < 4 * N; i++) {
		size_t len = udp_frame(f, 0xC6120000u + i, VIP, 53, i % 64);
		CHECK(xf_classify(0, f, (uint32_t)len) == 1);
		CHECK(memcmp(f, (i & 1) ? MAC_B : MAC_A, 6) == 0);
	}
	/* error paths */
	struct xf_entry_spec bad[3] = {basic_spec(svc, 5, MAC_A), basic_spec(svc, 0x400, MAC_A),
				       basic_spec(root, 1, MAC_A)};
	uint64_t bh[3];
	CHECK(add(bad, 1, bh) == ERR_EXIST);      /* duplicate */
	CHECK(add(bad + 1, 1, bh) == ERR_INVALID); /* outside the mask */
	CHECK(add(bad + 2, 1, bh) == ERR_INVALID); /* a root entry without a forward */
	uint32_t full;
	struct xf_match m1 = {.ipv4_src = 1};
	CHECK(xf_pipe_create_basic(0, "full", &m1, 1, 1, &full) == 0);
	struct xf_entry_spec two[2] = {basic_spec(full, 0, MAC_A), basic_spec(full, 1, MAC_A)};
	CHECK(add(two, 2, bh) == ERR_FULL);
	CHECK(xf_fault_inject(1, 0) == 0);
	CHECK(add(two, 1, bh) == ERR_FULL);
	CHECK(xf_fault_inject(1, 1) == 0);
	CHECK(add(two, 1, bh) == ERR_FULL);
	CHECK(add(two, 1, bh) == 0);
	CHECK(xf_pipe_destroy(full) == 0);
	CHECK(xf_pipe_destroy(full) == ERR_INVALID);

	/* update every bucket, query, remove half, re-add, churn */
	static uint8_t macs[N * 6];
	for (uint32_t i = 0; i < N; i++)
		memcpy(macs + 6 * i, (i & 1) ? MAC_A : MAC_B, 6);
	int32_t err[N];
	CHECK(xf_entries_update_mac(h + 1, macs, N, err) == 0);
	size_t len = udp_frame(f, 0xC6120001u, VIP, 53, 10);
	CHECK(xf_classify(0, f, (uint32_t)len) == 1 && memcmp(f, MAC_A, 6) == 0);
	static uint64_t pk[N + 1], by[N + 1];
	CHECK(xf_entries_query(h, N + 1, pk, by) == 0);
	CHECK(pk[0] == 4 * N + 1 && pk[2] == 4 + 1);
	CHECK(xf_entries_remove(h + 1, N / 2, err) == 0);
	CHECK(xf_entries_query(h + 1, 1, pk, by) == ERR_INVALID); /* stale handle */
	CHECK(xf_entries_remove(h + 1, 1, err) == ERR_INVALID);
	CHECK(add(specs + 1, N / 2, h + 1) == 0);
	for (int round = 0; round < 2000; round++) {
		uint32_t k = 1 + rnd() % N;
		CHECK(xf_entries_remove(&h[k], 1, err) == 0);
		CHECK(add(&specs[k], 1, &h[k]) == 0);
	}
	/* parser and lookup against random and mutated frames */
	uint8_t fz[160];
	for (int i = 0; i < 200000; i++) {
		uint32_t l = rnd() % sizeof(fz);
		for (uint32_t j = 0; j < l; j++)
			fz[j] = (uint8_t)rnd();
		if (l >= 14 && (i & 1)) {
			size_t base = udp_frame(fz, rnd(), (i & 2) ? VIP : rnd(), 53, 8);
			(void)base;
			fz[14 + (rnd() % 28)] ^= (uint8_t)rnd(); /* corrupt one header byte */
			if (i & 4)
				l = 14 + rnd() % 30; /* truncate */
		}
		int r = xf_classify(0, fz, l);
		CHECK(r == -1 || r == 1 || r == -2);
	}
	CHECK(xf_classify(0, NULL, 0) == -1);
	/* destroy order, teardown with entries installed */
	CHECK(xf_pipe_destroy(svc) == ERR_IN_USE);
	CHECK(xf_entries_remove(h, 1, err) == 0);
	CHECK(xf_pipe_destroy(svc) == 0);
	uint32_t root1, svc1;
	CHECK(xf_pipe_create_root(1, "root1", 8, &root1) == 0);
	CHECK(xf_pipe_create_basic(1, "svc1", &mask, 0, 4, &svc1) == 0);
	struct xf_entry_spec keep[3] = {root_spec(root1, 1, XF_FWD_PIPE, svc1), basic_spec(svc1, 0, MAC_A),
					root_spec(root1, 0, XF_FWD_DROP, 0)};
	CHECK(add(keep, 3, bh) == 0);
	CHECK(xf_close() == 0);
	CHECK(xf_close() == 0);
	CHECK(xf_entries_add(keep, 1, bh, err, (uint8_t *)macs, NULL) != 0); /* closed */
	return 0;
}

static atomic_int stop_tx;
static const char *inject_if;
static atomic_ulong n_sent;

static void *injector(void *arg)
{
	(void)arg;
	int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	CHECK(s >= 0);
	struct sockaddr_ll sll;
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)if_nametoindex(inject_if);
	sll.sll_protocol = htons(ETH_P_ALL);
	CHECK(sll.sll_ifindex > 0 && bind(s, (struct sockaddr *)&sll, sizeof(sll)) == 0);
	uint8_t f[256];
	uint32_t i = 0;
	while (!atomic_load(&stop_tx)) {
		size_t len = udp_frame(f, 0xC6120000u + (i & 0xff), VIP, (i % 5) ? 53 : 54, i % 40);
		if (i % 7 == 0)
			len = 14 + i % 20; /* truncated */
		if (send(s, f, len < 60 ? 60 : len, 0) > 0)
			atomic_fetch_add(&n_sent, 1);
		i++;
		if ((i & 63) == 0)
			usleep(200);
	}
	close(s);
	return NULL;
}

static int run_io(const char *prefix, const char *wire, const char *rep, const char *inject)
{
	init(prefix);
	char args[128];
	snprintf(args, sizeof(args), "iface=%s,rep=%s,driver=af_packet", wire, rep);
	CHECK(start_ports(args, "driver=none", XF_PORT_DEV) == 0);
	uint8_t f[64];
	CHECK(xf_classify(0, f, sizeof(f)) < -2); /* the forwarder runs: refused */
	uint32_t root, svc;
	struct xf_match mask = {.ipv4_src = 0xff};
	CHECK(xf_pipe_create_root(0, "root", 16, &root) == 0);
	CHECK(xf_pipe_create_basic(0, "svc", &mask, 0, 256, &svc) == 0); /* hairpin out the wire */
	static struct xf_entry_spec specs[257];
	static uint64_t h[257];
	specs[0] = root_spec(root, 10, XF_FWD_PIPE, svc);
	for (uint32_t i = 0; i < 256; i++)
		specs[i + 1] = basic_spec(svc, i, MAC_A);
	CHECK(add(specs, 257, h) == 0);

	inject_if = inject;
	pthread_t th;
	CHECK(pthread_create(&th, NULL, injector, NULL) == 0);
	int32_t err[256];
	static uint8_t macs[256 * 6];
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rounds = 0;
	do {
		for (int i = 0; i < 256; i++)
			memcpy(macs + 6 * i, (rounds & 1) ? MAC_B : MAC_A, 6);
		CHECK(xf_entries_update_mac(h + 1, macs, 256, err) == 0);
		uint32_t k = 1 + rnd() % 256;
		CHECK(xf_entries_remove(&h[k], 1, err) == 0);
		CHECK(add(&specs[k], 1, &h[k]) == 0);
		if (rounds % 50 == 0) { /* the root entry too: control snapshots swap under traffic */
			CHECK(xf_entries_remove(&h[0], 1, err) == 0);
			CHECK(add(&specs[0], 1, &h[0]) == 0);
		}
		rounds++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 2000000000L);
	atomic_store(&stop_tx, 1);
	pthread_join(th, NULL);
	usleep(100000);
	struct xf_port_stats st;
	CHECK(xf_port_stats(0, &st) == 0);
	fprintf(stderr, "io: rounds=%d sent=%lu rx=%lu tx=%lu miss=%lu malformed=%lu\n", rounds,
		(unsigned long)atomic_load(&n_sent), (unsigned long)st.rx_pkts, (unsigned long)st.tx_pkts,
		(unsigned long)st.miss_pkts, (unsigned long)st.malformed_pkts);
	CHECK(st.rx_pkts > 0 && st.tx_pkts > 0 && st.miss_pkts > 0 && st.malformed_pkts > 0);
	CHECK(xf_close() == 0); /* entries still installed, forwarder running */
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[2], "control") == 0)
		run_control(argv[1]);
	else if (argc >= 6 && strcmp(argv[2], "io") == 0)
		run_io(argv[1], argv[3], argv[4], argv[5]);
	else {
		fprintf(stderr, "usage: %s PREFIX control | PREFIX io WIRE REP INJECT\n", argv[0]);
		return 64;
	}
	printf("DRIVER OK\n");
	return 0;
}
