/*
 * softdoca's enforcement of DOCA's bring-up rules (test_softdoca_enforce.py), compiled once
 * per release profile (-DSOFTDOCA_API=...) against softdoca's sources, driving the
 * DOCA-shaped calls the way an SDK program does: register functions (softdoca.h), find and
 * open them by address, probe them into DPDK, start flow ports, pair, create pipes, add
 * entries, classify frames.  driver=none everywhere: no interfaces needed.
 *
 *   sd_enforce <file-prefix>     prints one JSON object: scenario.check -> DOCA error name
 *                                (or a value), then "ENFORCE DONE"
 *   sd_enforce <file-prefix> io <w0> <r0> <w1> <r1> <w0-peer> <w1-peer>
 *                                (3.2+) two af_packet devices: vdevs opened at probe and
 *                                closed with the device, a paired forward, an RSS miss
 *                                (lost) and a kernel miss (to the representor iface);
 *                                frames are sent on the wires' veth peers
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_ethdev.h>

#include <doca_dev.h>
#include <doca_dpdk.h>
#include <doca_error.h>
#include <doca_flow.h>
#include <doca_version.h>
#include <softdoca.h>

/* ---- results: a flat JSON object ---------------------------------------------------- */

static char out[65536];
static size_t outn;
static const char *scen = "";

static void put_raw(const char *key, const char *json_value)
{
	outn += (size_t)snprintf(out + outn, sizeof(out) - outn, "%s\"%s.%s\": %s", outn > 1 ? ", " : "", scen, key,
				 json_value);
}

static doca_error_t R(const char *key, doca_error_t rc)
{
	char v[80];
	snprintf(v, sizeof(v), "\"%s\"", doca_error_get_name(rc));
	put_raw(key, v);
	return rc;
}

static void V(const char *key, long value)
{
	char v[32];
	snprintf(v, sizeof(v), "%ld", value);
	put_raw(key, v);
}

static void S(const char *key, const char *s)
{
	char v[128];
	snprintf(v, sizeof(v), "\"%s\"", s);
	put_raw(key, v);
}

static void die(const char *what)
{
	fprintf(stderr, "sd_enforce: %s: %s\n", scen, what);
	exit(2);
}

#define MUST(call)                                                                                 \
	do {                                                                                       \
		doca_error_t rc_ = (call);                                                         \
		if (rc_ != DOCA_SUCCESS) {                                                         \
			fprintf(stderr, "%s:%d %s -> %s\n", __FILE__, __LINE__, #call, doca_error_get_name(rc_)); \
			die("setup call failed");                                                  \
		}                                                                                  \
	} while (0)

/* ---- devices, the way samples/common.c finds them ---------------------------------- */

static void reg(const char *addr, const char *parent, int esw)
{
	MUST(softdoca_dev_register(addr, parent, esw, NULL, NULL, "none"));
}

static struct doca_dev *open_dev(const char *addr)
{
	struct doca_devinfo **list;
	uint32_t n;
	struct doca_dev *dev = NULL;
	MUST(doca_devinfo_create_list(&list, &n));
	for (uint32_t i = 0; i < n && dev == NULL; i++) {
		uint8_t eq = 0;
		MUST(doca_devinfo_is_equal_pci_addr(list[i], addr, &eq));
		if (eq)
			MUST(doca_dev_open(list[i], &dev));
	}
	MUST(doca_devinfo_destroy_list(list));
	if (dev == NULL)
		die("device not listed");
	return dev;
}

static struct doca_dev_rep *open_rep(struct doca_dev *dev, const char *addr)
{
	struct doca_devinfo_rep **list;
	uint32_t n;
	struct doca_dev_rep *rep = NULL;
	MUST(doca_devinfo_rep_create_list(dev, DOCA_DEVINFO_REP_FILTER_NET, &list, &n));
	for (uint32_t i = 0; i < n && rep == NULL; i++) {
		uint8_t eq = 0;
		MUST(doca_devinfo_rep_is_equal_pci_addr(list[i], addr, &eq));
		if (eq)
			MUST(doca_dev_rep_open(list[i], &rep));
	}
	MUST(doca_devinfo_rep_destroy_list(list));
	if (rep == NULL)
		die("representor not listed");
	return rep;
}

/* The device's DPDK port id (what 2.9 wants in the devargs); -1 if not probed. */
static int dpdk_port_of(struct doca_dev *dev)
{
	for (int i = 0; i < RTE_MAX_ETHPORTS; i++) {
		struct doca_dev *d;
		if (doca_dpdk_port_as_dev((uint16_t)i, &d) == DOCA_SUCCESS && d == dev)
			return i;
	}
	return -1;
}

/* ---- DOCA Flow ----------------------------------------------------------------------- */

static doca_error_t flow_init(const char *mode_args)
{
	struct doca_flow_cfg *cfg;
	MUST(doca_flow_cfg_create(&cfg));
	MUST(doca_flow_cfg_set_pipe_queues(cfg, 1));
	doca_error_t rc = doca_flow_cfg_set_mode_args(cfg, mode_args);
	if (rc == DOCA_SUCCESS)
		rc = doca_flow_init(cfg);
	doca_flow_cfg_destroy(cfg);
	return rc;
}

struct port_req {
	struct doca_dev *dev;
	struct doca_dev_rep *rep;
	int id;          /* DOCA port id (3.0+: set_port_id; 2.9: the devargs) */
	int no_port_id;  /* 3.0+: do not call set_port_id */
	const char *devargs;
	uint32_t actions_mem; /* 3.0+: doca_flow_port_cfg_set_actions_mem_size, 0 = not called */
};

static doca_error_t start(struct port_req r, struct doca_flow_port **port)
{
	struct doca_flow_port_cfg *cfg;
	MUST(doca_flow_port_cfg_create(&cfg));
	char buf[32];
#if SOFTDOCA_API >= 300
	if (!r.no_port_id)
		MUST(doca_flow_port_cfg_set_port_id(cfg, (uint16_t)r.id));
	if (r.devargs)
		MUST(doca_flow_port_cfg_set_devargs(cfg, r.devargs));
	if (r.actions_mem)
		MUST(doca_flow_port_cfg_set_actions_mem_size(cfg, r.actions_mem));
#else
	snprintf(buf, sizeof(buf), "%d", r.id);
	MUST(doca_flow_port_cfg_set_devargs(cfg, r.devargs ? r.devargs : buf));
#endif
	(void)buf;
	if (r.dev)
		MUST(doca_flow_port_cfg_set_dev(cfg, r.dev));
#if SOFTDOCA_API >= 301
	if (r.rep)
		MUST(doca_flow_port_cfg_set_dev_rep(cfg, r.rep));
#endif
	doca_error_t rc = doca_flow_port_start(cfg, port);
	doca_flow_port_cfg_destroy(cfg);
	return rc;
}

/* A device's port with the id its release allows: 2.9 its DPDK port id, 3.0+ `id`. */
static struct doca_flow_port *start_dev(struct doca_dev *dev, int id, int *used_id)
{
#if SOFTDOCA_API < 300
	id = dpdk_port_of(dev);
#endif
	struct doca_flow_port *p = NULL;
	MUST(start((struct port_req){.dev = dev, .id = id}, &p));
	if (used_id)
		*used_id = id;
	return p;
}

static doca_error_t pipe_make(struct doca_flow_port *port, int root, enum doca_flow_pipe_type type,
			      const struct doca_flow_fwd *fwd, struct doca_flow_pipe **pipe)
{
	struct doca_flow_pipe_cfg *cfg;
	doca_error_t rc = doca_flow_pipe_cfg_create(&cfg, port);
	if (rc != DOCA_SUCCESS)
		return rc;
	MUST(doca_flow_pipe_cfg_set_name(cfg, root ? "root" : "basic"));
	MUST(doca_flow_pipe_cfg_set_type(cfg, type));
	MUST(doca_flow_pipe_cfg_set_is_root(cfg, root));
	MUST(doca_flow_pipe_cfg_set_nr_entries(cfg, 64));
	rc = doca_flow_pipe_create(cfg, fwd, NULL, pipe);
	doca_flow_pipe_cfg_destroy(cfg);
	return rc;
}

static struct doca_flow_fwd fwd_port(int id)
{
	struct doca_flow_fwd f;
	memset(&f, 0, sizeof(f));
	f.type = DOCA_FLOW_FWD_PORT;
	f.port_id = (uint16_t)id;
	return f;
}

/* A control entry; in_port >= 0: match that ingress port exactly. */
static doca_error_t ctl_add(struct doca_flow_pipe *pipe, int in_port, const struct doca_flow_fwd *fwd)
{
	struct doca_flow_match m, mask;
	memset(&m, 0, sizeof(m));
	memset(&mask, 0, sizeof(mask));
	if (in_port >= 0) {
#if SOFTDOCA_API >= 300
		m.parser_meta.port_id = (uint16_t)in_port;
		mask.parser_meta.port_id = 0xffff;
#else
		m.parser_meta.port_meta = (uint32_t)in_port;
		mask.parser_meta.port_meta = 0xffff;
#endif
	}
	struct doca_flow_pipe_entry *e;
#if SOFTDOCA_API >= 303
	return doca_flow_pipe_control_add_entry(0, pipe, &m, &mask, NULL, NULL, NULL, NULL, NULL, 1, fwd, NULL, &e);
#else
	return doca_flow_pipe_control_add_entry(0, 1, pipe, &m, &mask, NULL, NULL, NULL, NULL, NULL, fwd, NULL, &e);
#endif
}

static int classify_udp(int port_id)
{
	uint8_t f[64];
	memset(f, 0, sizeof(f));
	memcpy(f, "\x02\xc6\x12\x00\x00\x35\x02\xc6\x12\x00\x00\x10\x08\x00", 14);
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	ip[3] = 28 + 8;
	ip[8] = 64;
	ip[9] = 17;
	uint32_t s = htonl(0xC6120010u), d = htonl(0xC6120035u);
	memcpy(ip + 12, &s, 4);
	memcpy(ip + 16, &d, 4);
	ip[22] = 0x1f;
	ip[23] = 0x90;
	ip[25] = 16;
	return softdoca_classify_frame((uint16_t)port_id, f, 60);
}

static void teardown(void)
{
	doca_flow_destroy();
	MUST(softdoca_dev_unregister_all()); /* closes what is still open */
}

/* ---- scenarios --------------------------------------------------------------------- */

/* Devices: listing, open refcounts, probing, doca_dpdk_port_as_dev. */
static void sc_devices(void)
{
	scen = "devices";
	reg("pf0", NULL, -1);
	reg("pf0vf0", "pf0", -1);
	R("register_twice", softdoca_dev_register("pf0", NULL, -1, NULL, NULL, "none"));
	R("register_unknown_parent", softdoca_dev_register("x", "nope", -1, NULL, NULL, "none"));
	struct doca_dev *d = open_dev("pf0");
	struct doca_devinfo_rep **l;
	uint32_t n;
	R("rep_list_emulated", doca_devinfo_rep_create_list(d, DOCA_DEVINFO_REP_FILTER_EMULATED, &l, &n));
	if (doca_devinfo_rep_create_list(d, DOCA_DEVINFO_REP_FILTER_ALL, &l, &n) == DOCA_SUCCESS) {
		V("rep_list_all_n", n);
		doca_devinfo_rep_destroy_list(l);
	}
	struct doca_dev *as;
	R("as_dev_before_probe", doca_dpdk_port_as_dev(0, &as));
	R("probe_pci_in_devargs", doca_dpdk_port_probe(d, "dv_flow_en=2,0000:03:00.0"));
	R("probe", doca_dpdk_port_probe(d, "dv_flow_en=2"));
	R("probe_twice", doca_dpdk_port_probe(d, "dv_flow_en=2"));
	int id = dpdk_port_of(d);
	V("dpdk_port", id);
	V("as_dev_same", id >= 0 && doca_dpdk_port_as_dev((uint16_t)id, &as) == DOCA_SUCCESS && as == d);
	struct doca_dev *d2 = open_dev("pf0"); /* a second reference */
	V("open_twice_same", d2 == d);
	R("close_1", doca_dev_close(d));
	V("probed_after_close_1", dpdk_port_of(d) == id);
	R("close_2", doca_dev_close(d));
	V("probed_after_close_2", dpdk_port_of(d) >= 0);
	R("close_3", doca_dev_close(d));
	S("runtime", doca_version_runtime());
	V("runtime_is_string", strcmp(doca_version_runtime(), DOCA_VERSION_STRING) == 0);
	MUST(softdoca_dev_unregister_all());
}

/* Port start: set_dev / set_dev_rep, probing, one port per device, port ids per release. */
static void sc_start(void)
{
	scen = "start";
	reg("pf0", NULL, -1);
	reg("pf1", NULL, -1);
	reg("pf0vf0", "pf0", -1);
	MUST(flow_init("vnf,hws"));
	struct doca_dev *d0 = open_dev("pf0"), *d1 = open_dev("pf1");
	struct doca_dev_rep *r0 = open_rep(d0, "pf0vf0");
	struct doca_flow_port *p;
	R("unprobed", start((struct port_req){.dev = d1, .id = 5}, &p));
#if SOFTDOCA_API >= 301
	R("rep_before_probe", start((struct port_req){.rep = r0, .id = 6}, &p));
	MUST(doca_dpdk_port_probe_with_representors(d0, "dv_flow_en=2", &r0, 1));
#else
	(void)r0;
	MUST(doca_dpdk_port_probe(d0, "dv_flow_en=2"));
#endif
	MUST(doca_dpdk_port_probe(d1, ""));
	int id0 = dpdk_port_of(d0), id1 = dpdk_port_of(d1);
#if SOFTDOCA_API < 300
	R("neither", start((struct port_req){.id = id0}, &p));
#else
	R("neither", start((struct port_req){.id = 0}, &p));
#endif
#if SOFTDOCA_API >= 301
	R("both", start((struct port_req){.dev = d0, .rep = r0, .id = 0}, &p));
#endif
#if SOFTDOCA_API >= 300
	R("no_port_id", start((struct port_req){.dev = d0, .no_port_id = 1}, &p));
	R("dev0", start((struct port_req){.dev = d0, .id = 0, .devargs = "th_win_us=0"}, &p));
	/* a representor started as if it were a device: its device already has a port */
	R("dev0_again", start((struct port_req){.dev = d0, .id = 1}, &p));
	R("id_taken", start((struct port_req){.dev = d1, .id = 0}, &p));
	R("dev1", start((struct port_req){.dev = d1, .id = 1}, &p));
#else
	R("devargs_other_port", start((struct port_req){.dev = d0, .id = id1}, &p));
	R("devargs_not_number", start((struct port_req){.dev = d0, .devargs = "port_id=0"}, &p));
	R("dev0", start((struct port_req){.dev = d0, .id = id0}, &p));
	R("dev0_again", start((struct port_req){.dev = d0, .id = id0}, &p));
	R("dev1", start((struct port_req){.dev = d1, .id = id1}, &p));
#endif
	(void)id0;
	(void)id1;
#if SOFTDOCA_API >= 301
	R("rep", start((struct port_req){.rep = r0, .id = 2}, &p));
	R("rep_again", start((struct port_req){.rep = r0, .id = 3}, &p));
	R("close_dev_with_port", doca_dev_close(d0));
#endif
	teardown();
}

/* vnf mode: forwarding to another port needs doca_flow_port_pair. */
static void sc_vnf(void)
{
	scen = "vnf";
	reg("pf0", NULL, -1);
	reg("pf1", NULL, -1);
	reg("pf2", NULL, -1);
	MUST(flow_init("vnf,hws"));
	struct doca_dev *d[3] = {open_dev("pf0"), open_dev("pf1"), open_dev("pf2")};
	int id[3];
	struct doca_flow_port *p[3];
	for (int i = 0; i < 3; i++) {
		MUST(doca_dpdk_port_probe(d[i], ""));
		p[i] = start_dev(d[i], i, &id[i]);
	}
	V("switch_get_vnf_null", doca_flow_port_switch_get(p[0]) == NULL);
	struct doca_flow_pipe *root, *basic;
	struct doca_flow_fwd to_b = fwd_port(id[1]), to_a = fwd_port(id[0]);
	R("basic_fwd_unpaired", pipe_make(p[0], 0, DOCA_FLOW_PIPE_BASIC, &to_b, &basic));
	MUST(pipe_make(p[0], 1, DOCA_FLOW_PIPE_CONTROL, NULL, &root));
	R("ctl_fwd_unpaired", ctl_add(root, -1, &to_b));
	R("ctl_fwd_self", ctl_add(root, -1, &to_a));
	R("pair_self", doca_flow_port_pair(p[0], p[0]));
	R("pair", doca_flow_port_pair(p[0], p[1]));
	R("pair_again", doca_flow_port_pair(p[0], p[1]));
	R("pair_other", doca_flow_port_pair(p[0], p[2]));
	R("basic_fwd_paired", pipe_make(p[0], 0, DOCA_FLOW_PIPE_BASIC, &to_b, &basic));
	R("ctl_fwd_paired", ctl_add(root, -1, &to_b));
	/* one direction: B's pipes may not forward to A until pair(B, A) */
	struct doca_flow_pipe *root_b;
	MUST(pipe_make(p[1], 1, DOCA_FLOW_PIPE_CONTROL, NULL, &root_b));
	R("ctl_fwd_reverse_unpaired", ctl_add(root_b, -1, &to_a));
	R("pair_reverse", doca_flow_port_pair(p[1], p[0]));
	R("ctl_fwd_reverse_paired", ctl_add(root_b, -1, &to_a));
	MUST(doca_flow_entries_process(p[0], 0, 0, 0));
	MUST(doca_flow_entries_process(p[1], 0, 0, 0));
	teardown();
}

/* switch mode: e-switches, switch managers, representors. */
static void sc_switch(void)
{
	scen = "switch";
	reg("pf0", NULL, 7);  /* pf0 and pf1: one multiport e-switch */
	reg("pf1", NULL, 7);
	reg("pf2", NULL, -1); /* its own e-switch */
	reg("pf0vf0", "pf0", -1);
	MUST(flow_init("switch,hws"));
	struct doca_dev *d[3] = {open_dev("pf0"), open_dev("pf1"), open_dev("pf2")};
	struct doca_dev_rep *r0 = open_rep(d[0], "pf0vf0");
#if SOFTDOCA_API >= 301
	MUST(doca_dpdk_port_probe_with_representors(d[0], "dv_flow_en=2", &r0, 1));
#else
	(void)r0;
	MUST(doca_dpdk_port_probe(d[0], "dv_flow_en=2"));
#endif
	MUST(doca_dpdk_port_probe(d[1], ""));
	MUST(doca_dpdk_port_probe(d[2], ""));
	struct doca_flow_port *p[4];
	int id[4];
#if SOFTDOCA_API >= 301
	R("rep_before_manager", start((struct port_req){.rep = r0, .id = 3}, &p[3]));
#endif
	for (int i = 0; i < 3; i++)
		p[i] = start_dev(d[i], i, &id[i]);
#if SOFTDOCA_API >= 301
	id[3] = 3;
	R("rep", start((struct port_req){.rep = r0, .id = 3}, &p[3]));
	V("switch_get_rep_is_pf0", doca_flow_port_switch_get(p[3]) == p[0]);
#endif
	V("switch_get_pf1_is_pf0", doca_flow_port_switch_get(p[1]) == p[0]);
	V("switch_get_pf2_is_pf2", doca_flow_port_switch_get(p[2]) == p[2]);
	V("switch_get_null_is_pf0", doca_flow_port_switch_get(NULL) == p[0]);
	R("pair", doca_flow_port_pair(p[0], p[2]));
	struct doca_flow_pipe *root, *basic;
	R("pipe_on_non_manager", pipe_make(p[1], 1, DOCA_FLOW_PIPE_CONTROL, NULL, &root));
	MUST(pipe_make(p[0], 1, DOCA_FLOW_PIPE_CONTROL, NULL, &root));
	struct doca_flow_pipe *root2;
	R("second_root", pipe_make(p[0], 1, DOCA_FLOW_PIPE_CONTROL, NULL, &root2));
	struct doca_flow_fwd to1 = fwd_port(id[1]), to2 = fwd_port(id[2]);
	R("basic_fwd_other_esw", pipe_make(p[0], 0, DOCA_FLOW_PIPE_BASIC, &to2, &basic));
	R("basic_fwd_same_esw", pipe_make(p[0], 0, DOCA_FLOW_PIPE_BASIC, &to1, &basic));
	R("ctl_fwd_other_esw", ctl_add(root, id[0], &to2));
	R("ctl_match_other_esw", ctl_add(root, id[2], &to1));
	R("ctl_fwd_same_esw", ctl_add(root, id[0], &to1));
#if SOFTDOCA_API >= 301
	struct doca_flow_fwd to_rep = fwd_port(id[3]);
	R("ctl_fwd_rep", ctl_add(root, id[3], &to_rep)); /* hairpin on the representor */
#endif
	MUST(doca_flow_entries_process(p[0], 0, 0, 0));
	/* a frame from pf1 that no entry takes: the e-switch's default miss */
	V("classify_pf1_miss", classify_udp(id[1]));
	R("stop_manager_first", doca_flow_port_stop(p[0]));
#if SOFTDOCA_API >= 301
	R("stop_rep", doca_flow_port_stop(p[3]));
#endif
	R("stop_pf1", doca_flow_port_stop(p[1]));
	R("stop_manager_last", doca_flow_port_stop(p[0]));
	R("stop_pf2", doca_flow_port_stop(p[2]));
	teardown();
}

/* The miss path: RSS by default, the kernel with "isolated" (<= 3.2) or
 * doca_flow_port_update_default_miss (3.2+); mode-argument tokens per release. */
#if SOFTDOCA_API >= 300
/* A basic pipe on port whose entries set the destination MAC (an action) and go out port id. */
static struct doca_flow_pipe *mac_pipe(struct doca_flow_port *port, int id)
{
	struct doca_flow_pipe_cfg *cfg;
	MUST(doca_flow_pipe_cfg_create(&cfg, port));
	MUST(doca_flow_pipe_cfg_set_name(cfg, "mac"));
	MUST(doca_flow_pipe_cfg_set_type(cfg, DOCA_FLOW_PIPE_BASIC));
	MUST(doca_flow_pipe_cfg_set_nr_entries(cfg, 64));
	struct doca_flow_match m;
	memset(&m, 0, sizeof(m));
	m.outer.l3_type = DOCA_FLOW_L3_TYPE_IP4;
	m.outer.ip4.src_ip = 0xffffffffu;
	MUST(doca_flow_pipe_cfg_set_match(cfg, &m, &m));
	struct doca_flow_actions a, *acts[1] = {&a};
	memset(&a, 0, sizeof(a));
	memset(a.outer.eth.dst_mac, 0xff, 6);
	MUST(doca_flow_pipe_cfg_set_actions(cfg, acts, NULL, NULL, 1));
	struct doca_flow_fwd f = fwd_port(id);
	struct doca_flow_pipe *pipe;
	MUST(doca_flow_pipe_create(cfg, &f, NULL, &pipe));
	doca_flow_pipe_cfg_destroy(cfg);
	return pipe;
}

static doca_error_t mac_add(struct doca_flow_pipe *pipe, uint32_t src, struct doca_flow_pipe_entry **e)
{
	struct doca_flow_match m;
	memset(&m, 0, sizeof(m));
	m.outer.l3_type = DOCA_FLOW_L3_TYPE_IP4;
	m.outer.ip4.src_ip = htonl(src);
	struct doca_flow_actions a;
	memset(&a, 0, sizeof(a));
	memcpy(a.outer.eth.dst_mac, "\x02\x00\xc6\x12\x00\x02", 6);
#if SOFTDOCA_API >= 303
	return doca_flow_pipe_basic_add_entry(0, pipe, &m, 0, &a, NULL, NULL, DOCA_FLOW_ENTRY_FLAGS_NO_WAIT, NULL, e);
#elif SOFTDOCA_API >= 302
	return doca_flow_pipe_add_entry(0, pipe, &m, 0, &a, NULL, NULL, DOCA_FLOW_NO_WAIT, NULL, e);
#else
	return doca_flow_pipe_add_entry(0, pipe, &m, &a, NULL, NULL, DOCA_FLOW_NO_WAIT, NULL, e);
#endif
}

/* Actions memory (3.0+): DOCA's default is zero; each entry with an action takes
 * DOCA_FLOW_MAX_ENTRY_ACTIONS_MEM_SIZE of its port's budget until it is removed. */
static void sc_actions(void)
{
	scen = "actions";
	reg("pf0", NULL, -1);
	reg("pf1", NULL, -1);
	MUST(flow_init("vnf,hws"));
	struct doca_dev *d0 = open_dev("pf0"), *d1 = open_dev("pf1");
	MUST(doca_dpdk_port_probe(d0, ""));
	MUST(doca_dpdk_port_probe(d1, ""));
	struct doca_flow_port_cfg *cfg;
	MUST(doca_flow_port_cfg_create(&cfg));
	R("size_not_pow2", doca_flow_port_cfg_set_actions_mem_size(cfg, 100));
	R("size_too_small", doca_flow_port_cfg_set_actions_mem_size(cfg, 32));
	doca_flow_port_cfg_destroy(cfg);
	struct doca_flow_port *p0, *p1;
	MUST(start((struct port_req){.dev = d0, .id = 0}, &p0)); /* no actions memory: the default */
	MUST(start((struct port_req){.dev = d1, .id = 1, .actions_mem = 2 * DOCA_FLOW_MAX_ENTRY_ACTIONS_MEM_SIZE}, &p1));
	struct doca_flow_pipe_entry *e[3];
	R("default_zero", mac_add(mac_pipe(p0, 0), 1, &e[0]));
	struct doca_flow_pipe *pipe = mac_pipe(p1, 1);
	R("first", mac_add(pipe, 1, &e[0]));
	R("second", mac_add(pipe, 2, &e[1]));
	R("third_no_room", mac_add(pipe, 3, &e[2]));
	MUST(doca_flow_pipe_remove_entry(0, 0, e[0]));
	MUST(doca_flow_entries_process(p1, 0, 0, 0));
	R("after_remove", mac_add(pipe, 3, &e[2]));
	doca_flow_port_pipes_flush(p1);
	pipe = mac_pipe(p1, 1);
	R("after_flush", mac_add(pipe, 4, &e[0]));
	teardown();
}
#endif

/* The hardware's limits (softdoca_set_capacity): DOCA creates a pipe of any nr_entries, and
 * the hardware then fails past its own limits: an entry add past entries_per_pipe in one
 * pipe, a pipe create past pipes on one port, both DOCA_ERROR_DRIVER.  0 lifts them. */
static void sc_capacity(void)
{
	scen = "capacity";
	reg("pf0", NULL, -1);
	MUST(flow_init("vnf,hws"));
	struct doca_dev *d0 = open_dev("pf0");
	MUST(doca_dpdk_port_probe(d0, ""));
	int id0;
	struct doca_flow_port *p0 = start_dev(d0, 0, &id0);
	struct doca_flow_fwd self = fwd_port(id0);
	struct doca_flow_pipe *root, *b1, *b2;
	MUST(softdoca_set_capacity(2, 2));
	R("root", pipe_make(p0, 1, DOCA_FLOW_PIPE_CONTROL, NULL, &root));
	R("basic", pipe_make(p0, 0, DOCA_FLOW_PIPE_BASIC, &self, &b1));
	R("pipe_past", pipe_make(p0, 0, DOCA_FLOW_PIPE_BASIC, &self, &b2));
	doca_flow_pipe_destroy(b1);
	R("pipe_after_destroy", pipe_make(p0, 0, DOCA_FLOW_PIPE_BASIC, &self, &b2));
	R("entry_1", ctl_add(root, -1, &self));
	R("entry_2", ctl_add(root, -1, &self));
	R("entry_past", ctl_add(root, -1, &self)); /* the pipe was made for 64 */
	MUST(softdoca_set_capacity(0, 0));
	R("entry_unlimited", ctl_add(root, -1, &self));
	R("pipe_unlimited", pipe_make(p0, 0, DOCA_FLOW_PIPE_BASIC, &self, &b1));
	teardown();
}

static void sc_miss(void)
{
	scen = "miss";
	R("mode_bogus", flow_init("vnf,hws,bogus"));
	R("mode_isolated", flow_init("vnf,hws,isolated"));
	doca_flow_destroy();
	R("mode_cpds", flow_init("vnf,hws,cpds"));
	doca_flow_destroy();
	R("mode_both", flow_init("vnf,switch,hws"));
	R("mode_none", flow_init("hws"));
	R("mode_hairpinq", flow_init("vnf,hws,hairpinq_num=2"));
	doca_flow_destroy();

	reg("pf0", NULL, -1);
	reg("pf1", NULL, 3);
	reg("pf2", NULL, 3);
	MUST(flow_init("vnf,hws"));
	struct doca_dev *d0 = open_dev("pf0");
	MUST(doca_dpdk_port_probe(d0, ""));
	int id0;
	struct doca_flow_port *p0 = start_dev(d0, 0, &id0);
	V("rss_classify", classify_udp(id0));
	struct softdoca_port_stats st;
	MUST(softdoca_port_stats((uint16_t)id0, &st));
	V("rss_miss_pkts", (long)st.miss_pkts);
	V("rss_miss_rss_pkts", (long)st.miss_rss_pkts);
#if SOFTDOCA_API >= 302
	R("update_kernel", doca_flow_port_update_default_miss(p0, DOCA_FLOW_PORT_DEFAULT_MISS_KERNEL, false));
	V("kernel_classify", classify_udp(id0));
	R("update_drop", doca_flow_port_update_default_miss(p0, DOCA_FLOW_PORT_DEFAULT_MISS_DROP, true));
	V("drop_classify", classify_udp(id0));
	R("update_bad", doca_flow_port_update_default_miss(p0, (enum doca_flow_port_default_miss_type)7, false));
	MUST(softdoca_port_stats((uint16_t)id0, &st));
	V("after_miss_pkts", (long)st.miss_pkts);
	V("after_miss_rss_pkts", (long)st.miss_rss_pkts);
	V("after_drop_pkts", (long)st.drop_pkts);
#else
	(void)p0;
#endif
	doca_flow_destroy();

#if SOFTDOCA_API <= 302
	MUST(flow_init("vnf,hws,isolated"));
	p0 = start_dev(d0, 0, &id0);
	V("isolated_classify", classify_udp(id0));
	doca_flow_destroy();
#endif

#if SOFTDOCA_API >= 302
	/* on a switch manager the default miss is the whole e-switch's */
	MUST(flow_init("switch,hws"));
	struct doca_dev *d1 = open_dev("pf1"), *d2 = open_dev("pf2");
	MUST(doca_dpdk_port_probe(d1, ""));
	MUST(doca_dpdk_port_probe(d2, ""));
	int id1, id2;
	struct doca_flow_port *m = start_dev(d1, 1, &id1);
	start_dev(d2, 2, &id2);
	V("esw_before_classify", classify_udp(id2));
	R("esw_update_kernel",
	  doca_flow_port_update_default_miss(doca_flow_port_switch_get(m), DOCA_FLOW_PORT_DEFAULT_MISS_KERNEL, false));
	V("esw_member_classify", classify_udp(id2));
	V("esw_manager_classify", classify_udp(id1));
	doca_flow_destroy();
#endif
	MUST(softdoca_dev_unregister_all());
}

#if SOFTDOCA_API >= 302
static int raw_socket(const char *ifname)
{
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	struct sockaddr_ll sll;
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	if (fd < 0 || sll.sll_ifindex == 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0)
		die("raw socket");
	return fd;
}

static void send_udp(int fd, uint32_t dst)
{
	uint8_t f[64];
	memset(f, 0, sizeof(f));
	memcpy(f, "\x02\xc6\x12\x00\x00\x35\x02\xc6\x12\x00\x00\x10\x08\x00", 14);
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	ip[3] = 28;
	ip[8] = 64;
	ip[9] = 17;
	uint32_t s = htonl(0xC6120010u), d = htonl(dst);
	memcpy(ip + 12, &s, 4);
	memcpy(ip + 16, &d, 4);
	ip[22] = 0x1f;
	ip[23] = 0x90;
	ip[25] = 8;
	if (send(fd, f, 60, 0) != 60)
		die("send");
}

static void sc_io(char **ifs)
{
	scen = "io";
	const char *w0 = ifs[0], *r0 = ifs[1], *w1 = ifs[2], *r1 = ifs[3];
	MUST(softdoca_dev_register("p0", NULL, -1, w0, r0, "af_packet"));
	MUST(softdoca_dev_register("p1", NULL, -1, w1, r1, "af_packet"));
	struct doca_dev *d0 = open_dev("p0"), *d1 = open_dev("p1");
	V("ethdevs_before_probe", rte_eth_dev_count_avail());
	MUST(doca_dpdk_port_probe(d0, ""));
	MUST(doca_dpdk_port_probe(d1, ""));
	V("ethdevs_probed", rte_eth_dev_count_avail()); /* wire + representor vdev each */
	int id0 = dpdk_port_of(d0), id1 = dpdk_port_of(d1);
	V("p0_dpdk_port", id0);
	V("p1_dpdk_port", id1);
	uint16_t eth;
	V("p0_is_its_wire_vdev", rte_eth_dev_get_port_by_name("net_af_packet_sd0w", &eth) == 0 && eth == id0);
	MUST(flow_init("vnf,hws"));
	struct doca_flow_port *p0, *p1;
	MUST(start((struct port_req){.dev = d0, .id = 0}, &p0));
	MUST(start((struct port_req){.dev = d1, .id = 1}, &p1));
	MUST(doca_flow_port_pair(p0, p1));
	MUST(doca_flow_port_update_default_miss(p1, DOCA_FLOW_PORT_DEFAULT_MISS_KERNEL, false));
	struct doca_flow_pipe *root;
	MUST(pipe_make(p0, 1, DOCA_FLOW_PIPE_CONTROL, NULL, &root));
	struct doca_flow_match m, mask;
	memset(&m, 0, sizeof(m));
	memset(&mask, 0, sizeof(mask));
	m.outer.l3_type = mask.outer.l3_type = DOCA_FLOW_L3_TYPE_IP4;
	m.outer.ip4.dst_ip = htonl(0xC6120035u);
	mask.outer.ip4.dst_ip = 0xffffffffu;
	struct doca_flow_fwd to1 = fwd_port(1);
	struct doca_flow_pipe_entry *e;
#if SOFTDOCA_API >= 303
	MUST(doca_flow_pipe_control_add_entry(0, root, &m, &mask, NULL, NULL, NULL, NULL, NULL, 0, &to1, NULL, &e));
#else
	MUST(doca_flow_pipe_control_add_entry(0, 0, root, &m, &mask, NULL, NULL, NULL, NULL, NULL, &to1, NULL, &e));
#endif
	MUST(doca_flow_entries_process(p0, 0, 0, 0));
	int s0 = raw_socket(ifs[4]), s1 = raw_socket(ifs[5]);
	for (int i = 0; i < 20; i++) {
		send_udp(s0, 0xC6120035u); /* the entry: to p1's wire */
		send_udp(s0, 0xC6120063u); /* p0's default miss: RSS, lost */
		send_udp(s1, 0xC6120063u); /* p1's default miss: the kernel (r1) */
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	close(s0);
	close(s1);
	struct softdoca_port_stats a, b;
	for (int tries = 0; tries < 200; tries++) { /* up to 2 s for the forwarder */
		MUST(softdoca_port_stats(0, &a));
		MUST(softdoca_port_stats(1, &b));
		if (a.wire_rx_pkts >= 40 && b.wire_rx_pkts >= 20 && b.wire_tx_pkts >= 20 && b.rep_tx_pkts >= 20)
			break;
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	V("p0_wire_rx", (long)a.wire_rx_pkts);
	V("p0_miss_rss", (long)a.miss_rss_pkts);
	V("p0_rep_tx", (long)a.rep_tx_pkts);
	V("p1_wire_tx", (long)b.wire_tx_pkts);
	V("p1_miss", (long)b.miss_pkts);
	V("p1_miss_rss", (long)b.miss_rss_pkts);
	V("p1_rep_tx", (long)b.rep_tx_pkts);
	doca_flow_destroy();
	V("ethdevs_after_flow_destroy", rte_eth_dev_count_avail()); /* the devices still own them */
	MUST(doca_dev_close(d0));
	V("ethdevs_after_close_p0", rte_eth_dev_count_avail());
	d0 = open_dev("p0");
	R("reprobe", doca_dpdk_port_probe(d0, ""));
	V("ethdevs_reprobed", rte_eth_dev_count_avail());
	MUST(softdoca_dev_unregister_all());
	V("ethdevs_after_unregister", rte_eth_dev_count_avail());
}
#endif

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: sd_enforce <file-prefix>\n");
		return 1;
	}
	char prefix[96];
	snprintf(prefix, sizeof(prefix), "--file-prefix=%s", argv[1]);
	char *eal[] = {"sd_enforce", "--no-huge", "--no-pci", "-m", "128", prefix, "-l", "0", "--log-level=1", NULL};
	if (rte_eal_init(9, eal) < 0) {
		fprintf(stderr, "rte_eal_init failed\n");
		return 1;
	}
	out[outn++] = '{';
	if (argc >= 9 && strcmp(argv[2], "io") == 0) {
#if SOFTDOCA_API >= 302
		sc_io(argv + 3);
#endif
	} else {
		sc_devices();
		sc_start();
		sc_vnf();
		sc_switch();
		sc_miss();
		sc_capacity();
#if SOFTDOCA_API >= 300
		sc_actions();
#endif
	}
	out[outn++] = '}';
	out[outn] = '\0';
	printf("%s\nENFORCE DONE\n", out);
	rte_eal_cleanup();
	return 0;
}
