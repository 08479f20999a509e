/*
 * libFuzzer harness for softdoca, through the same C glue the Python module uses.
 *
 * One eSwitch with two ports doing no packet I/O, holding the paper's plan (a root
 * dispatch entry, a 2-bucket basic pipe, a route, a drop entry) and its IPv6 twin (a
 * dispatch entry to a pipe on the source address's low bit; a pipe on the source port, l3=6). Each input is
 * either a frame classified on port 0 (first byte even) or a batch of entry specs
 * added and removed again (first byte odd): both the packet parser and the entry
 * validation see arbitrary bytes. Built with ASan/UBSan; any report fails the run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "glue.h"
#include "glue_softdoca.h"

static uint32_t root, svc, svc6, svc6p;

static void die(const char *what)
{
	fprintf(stderr, "fuzz setup failed in %s: %s (%s)\n", what, xf_last_call(), xf_last_detail());
	abort();
}

/* The IPv6 half: UDP/53 to 2001:db8:53::53 -> a pipe on the source's low bit, and a pipe on
 * the source port's low bit (l3=6) that no root entry reaches but random specs may target. */
static void add_ipv6(void)
{
	struct xf_match mask6 = {.ipv6_src = {0, 0, 0, 1}};
	struct xf_match mask6p = {.l4_src = 1, .l3 = 6};
	if (xf_pipe_create_basic(0, "dns6", &mask6, 1, 2, &svc6) ||
	    xf_pipe_create_basic(0, "dns6p", &mask6p, 1, 2, &svc6p))
		die("pipe create (IPv6)");
	struct xf_entry_spec s[3];
	memset(s, 0, sizeof(s));
	s[0] = (struct xf_entry_spec){.pipe = svc6, .match = {.ipv6_src = {0, 0, 0, 0}}, .has_mac = 1,
				      .dst_mac = {2, 0, 0xc6, 0x12, 0, 2}};
	s[1] = (struct xf_entry_spec){.pipe = svc6, .match = {.ipv6_src = {0, 0, 0, 1}}, .has_mac = 1,
				      .dst_mac = {2, 0, 0xc6, 0x12, 0, 3}};
	s[2] = (struct xf_entry_spec){.pipe = root, .priority = 800,
				      .match = {.eth_type = 0x86dd, .ip_proto = 17, .l4_dst = 53,
						.ipv6_dst = {0x20010db8, 0x00530000, 0, 0x53}},
				      .mask = {.eth_type = 0xffff, .ip_proto = 0xff, .l4_dst = 0xffff,
					       .ipv6_dst = {~0u, ~0u, ~0u, ~0u}},
				      .fwd_kind = XF_FWD_PIPE, .fwd_target = svc6};
	uint64_t h[3];
	int32_t err[3];
	uint8_t stage[3];
	uint32_t nfailed = 0;
	if (xf_entries_add(s, 3, h, err, stage, &nfailed) != 0)
		die("xf_entries_add (IPv6)");
	/* Sanity: a UDP query from 2001:db8::7 (odd) to the IPv6 VIP leaves port 1 with fips3's MAC. */
	uint8_t f[80] = {0x02, 0, 0xc6, 0x12, 0, 0x35, 0x02, 0, 0xc6, 0x12, 0, 0x07, 0x86, 0xdd,
			 0x60, 0, 0, 0, 0, 8, 17, 64,
			 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
			 0x20, 0x01, 0x0d, 0xb8, 0, 0x53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
			 0x9c, 0x40, 0, 53, 0, 8, 0, 0};
	if (xf_classify(0, f, 62) != 1 || f[5] != 3)
		die("sanity classify (IPv6 VIP query)");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "xf-fuzz-%d", (int)getpid());
	char *eal[] = {"fuzz", "--no-huge", "-m", "64", "--no-pci", "-l", "0", "--file-prefix", prefix,
		       "--log-level", "lib.eal:error", NULL};
	if (xf_init(11, eal, "vnf") != 0)
		die("xf_init");
	struct xf_port_cfg ports[2];
	memset(ports, 0, sizeof(ports));
	for (int i = 0; i < 2; i++) { /* two devices without I/O, p0 forwarding to p1 (vnf pair) */
		ports[i] = (struct xf_port_cfg){.id = (uint16_t)i, .parent = 0xffff, .pair = (uint16_t)(1 - i),
						 .kind = XF_PORT_DEV};
		snprintf(ports[i].addr, sizeof(ports[i].addr), "p%d", i);
		snprintf(ports[i].target_args, sizeof(ports[i].target_args), "driver=none");
	}
	if (xf_ports_start(ports, 2))
		die("xf_ports_start");
	struct xf_match mask = {.ipv4_src = 1};
	if (xf_pipe_create_root(0, "root", 16, &root) || xf_pipe_create_basic(0, "dns", &mask, 1, 2, &svc))
		die("pipe create");
	struct xf_entry_spec s[5];
	memset(s, 0, sizeof(s));
	s[0] = (struct xf_entry_spec){.pipe = svc, .match = {.ipv4_src = 0}, .has_mac = 1,
				      .dst_mac = {2, 0, 0xc6, 0x12, 0, 2}};
	s[1] = (struct xf_entry_spec){.pipe = svc, .match = {.ipv4_src = 1}, .has_mac = 1,
				      .dst_mac = {2, 0, 0xc6, 0x12, 0, 3}};
	s[2] = (struct xf_entry_spec){.pipe = root, .priority = 800,
				      .match = {.eth_type = 0x0800, .ip_proto = 17, .ipv4_dst = 0xc6120035, .l4_dst = 53},
				      .mask = {.eth_type = 0xffff, .ip_proto = 0xff, .ipv4_dst = 0xffffffff, .l4_dst = 0xffff},
				      .fwd_kind = XF_FWD_PIPE, .fwd_target = svc};
	s[3] = (struct xf_entry_spec){.pipe = root, .priority = 868, .match = {.eth_type = 0x0800, .ipv4_dst = 0xc6120005},
				      .mask = {.eth_type = 0xffff, .ipv4_dst = 0xffffffff}, .fwd_kind = XF_FWD_PORT,
				      .fwd_target = 1};
	s[4] = (struct xf_entry_spec){.pipe = root, .priority = 900, .match = {.eth_type = 0x0806},
				      .mask = {.eth_type = 0xffff}, .fwd_kind = XF_FWD_DROP};
	uint64_t h[5];
	int32_t err[5];
	uint8_t stage[5];
	uint32_t nfailed = 0;
	if (xf_entries_add(s, 5, h, err, stage, &nfailed) != 0)
		die("xf_entries_add");
	/* Sanity: a UDP query from 198.18.0.7 (odd) to the VIP leaves port 1 with fips3's MAC. */
	uint8_t f[60] = {0x02, 0, 0xc6, 0x12, 0, 0x35, 0x02, 0, 0xc6, 0x12, 0, 0x07, 0x08, 0x00,
			 0x45, 0, 0, 30, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 7, 198, 18, 0, 0x35,
			 0x9c, 0x40, 0, 53, 0, 10, 0, 0};
	if (xf_classify(0, f, sizeof(f)) != 1 || f[5] != 3)
		die("sanity classify (VIP query)");
	f[37] = 54; /* another UDP port: the eSwitch misses */
	if (xf_classify(0, f, sizeof(f)) != -1)
		die("sanity classify (miss)");
	add_ipv6();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if ((data[0] & 1) == 0) {
		uint8_t frame[2048];
		size_t n = size - 1 > sizeof(frame) ? sizeof(frame) : size - 1;
		memcpy(frame, data + 1, n);
		int r = xf_classify(0, frame, (uint32_t)n);
		if (r < -4 || r > 1)
			abort(); /* an egress this eSwitch does not have */
		return 0;
	}
	/* A batch of at most 4 specs from the bytes; pipe handles are steered towards the
	 * real ones half of the time so validation past the handle lookup is reached. */
	struct xf_entry_spec specs[4];
	size_t n = (size - 1) / sizeof(specs[0]);
	if (n == 0)
		return 0;
	if (n > 4)
		n = 4;
	memcpy(specs, data + 1, n * sizeof(specs[0]));
	for (size_t i = 0; i < n; i++) {
		if (specs[i].pipe & 0x80000000u) {
			const uint32_t pipes[4] = {root, svc, svc6, svc6p};
			specs[i].pipe = pipes[specs[i].pipe & 3];
		}
		if (specs[i].fwd_kind == XF_FWD_PIPE && (specs[i].fwd_target & 0x80000000u))
			specs[i].fwd_target = svc;
	}
	uint64_t h[4];
	int32_t err[4];
	uint8_t stage[4];
	uint32_t nfailed = 0;
	memset(h, 0, sizeof(h));
	if (xf_entries_add(specs, (uint32_t)n, h, err, stage, &nfailed) == 0) {
		int32_t rerr[4];
		if (xf_entries_remove(h, (uint32_t)n, rerr) != 0)
			abort(); /* entries that were just added must be removable */
	}
	return 0;
}
