/*
 * dpdk_glue: C shim over DOCA Flow (real SDK or softdoca) + the DPDK EAL.  See glue.h.
 *
 * One source, two targets: built against a real DOCA SDK (2.9 .. 3.3, hws) or against
 * softdoca (dpdk_glue/softdoca), whose headers declare each release's calls the way that
 * release does.  Every difference between releases is decided here and in glue_ports.c with
 * DOCA's own version macros (DOCA_VERSION_MAJOR / _MINOR, through XF_DOCA_AT_LEAST).
 *
 * This file: the EAL and DOCA Flow init, pipes, entries, counters, close.  glue_ports.c:
 * the port bring-up and teardown of the samples.  What the target itself provides (its
 * name, port counters, why an entry failed) is in the "target" section below for real DOCA
 * and in glue_softdoca.c for softdoca, which also holds the softdoca-only knobs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>

#include <doca_error.h>
#include <doca_flow.h>
#include <doca_version.h>

#include "glue.h"
#include "glue_internal.h"

/* Entry flags: an enum with new names AND new numbers in 3.3 (NO_WAIT 0->1, BATCH 1->2). */
#if XF_DOCA_AT_LEAST(3, 3)
#define XF_FLAG_BATCH DOCA_FLOW_ENTRY_FLAGS_WAIT_FOR_BATCH
#define XF_FLAG_NO_WAIT DOCA_FLOW_ENTRY_FLAGS_NO_WAIT
#define XF_CALL_BASIC_ADD "doca_flow_pipe_basic_add_entry"
#define XF_CALL_UPDATE "doca_flow_pipe_basic_update_entry"
#else
#define XF_FLAG_BATCH DOCA_FLOW_WAIT_FOR_BATCH
#define XF_FLAG_NO_WAIT DOCA_FLOW_NO_WAIT
#define XF_CALL_BASIC_ADD "doca_flow_pipe_add_entry"
#define XF_CALL_UPDATE "doca_flow_pipe_update_entry"
#endif

#define XF_CALL_REMOVE "doca_flow_pipe_remove_entry"
#define XF_CALL_QUERY "doca_flow_resource_query_entry"

#define XF_MAX_PIPES 4096
#define XF_MAX_EAL_ARGS 120
#define XF_PROCESS_TIMEOUT_US 10000
#define XF_PROCESS_DEADLINE_NS 2000000000LL /* give up waiting for completions after 2 s */
#define XF_DEFAULT_PIPE_ENTRIES 8192
#define XF_DEFAULT_METERS 131072
#define XF_DEFAULT_SHARED_METERS 1024
#define XF_COLOR_MASK 3 /* the colour's two bits, as the samples mask it */

_Static_assert(sizeof(struct xf_match) == 52, "xf_match layout is shared with Python");
_Static_assert(sizeof(struct xf_entry_spec) == 152, "xf_entry_spec layout is shared with Python");

enum { XF_ST_FRESH = 0, XF_ST_OPEN = 1, XF_ST_CLOSED = 2 };
enum { XF_P_FREE = 0, XF_P_ROOT, XF_P_BASIC };
enum { XF_E_FREE = 0, XF_E_PENDING, XF_E_ACTIVE, XF_E_FAILED };

struct xf_pipe {
	struct doca_flow_pipe *p;
	uint32_t gen;
	uint16_t port;
	uint8_t kind;
	uint32_t refs; /* control entries forwarding here */
	struct xf_match mask; /* basic pipes: the match mask (entries' selectors follow it) */
	int8_t fam;           /* basic pipes: the family of its template (0, 4 or 6) */
	uint8_t set_mac;      /* basic pipes: entries set a destination MAC */
	uint8_t meter_kind;   /* basic pipes: enum xf_meter_kind */
	int32_t next[2];      /* basic pipes: the pipes its fwd / fwd_miss go to (-1: none) */
};

struct xf_ent {
	struct doca_flow_pipe_entry *e;
	uint32_t gen;
	uint32_t pipe;      /* index into pipes[] */
	int32_t fwd_pipe;   /* index of the pipe a control entry forwards to, or -1 */
	uint8_t state;
	uint8_t done;       /* completion seen (callback) */
	uint8_t status;     /* enum doca_flow_entry_status from the callback */
	uint8_t has_mac, mac[6]; /* basic entries: kept to restate in updates */
	uint8_t meter_kind, meter_bytes;
	uint64_t cir, cbs;  /* XF_METER_ENTRY */
	int32_t shared;     /* XF_METER_SHARED: index into meters[], or -1 */
	uint32_t next_free;
};

/* A shared meter: its DOCA id (<= 3.1 the glue's pick, its index; 3.2+ handed out by the
 * port, kept for reuse when the meter is destroyed), the port it was bound to / got from. */
struct xf_meter {
	uint32_t doca_id;
	uint32_t gen;
	uint32_t refs;  /* entries using it */
	uint16_t port;  /* DOCA owner: its index in glue_port order (logical id) */
	uint8_t used;
	uint8_t has_id; /* doca_id valid (3.2+: got from port) */
	uint8_t bytes;
	uint64_t cir, cbs;
};

/* switch mode: one root pipe per switch manager (e-switch), shared by its ports' root views */
struct xf_switch_root {
	struct doca_flow_port *manager;
	struct doca_flow_pipe *pipe;
	uint32_t users;
};

static struct {
	pthread_mutex_t mu;
	int state;
	bool switch_mode;
	struct xf_switch_root sroots[XF_MAX_PORTS];
	struct xf_pipe pipes[XF_MAX_PIPES];
	struct xf_ent *ents;
	uint32_t ents_cap;
	uint32_t free_head; /* 1-based, 0 = none */
	uint32_t pending;   /* completions still expected */
	uint32_t nr_meters, nr_shared;
	struct xf_meter *meters; /* nr_shared of them */
	char last_call[96];
	char last_detail[256];
} X = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ------------------------------------------------------------------------------------ */

static int vfail(int rc, const char *call, const char *fmt, va_list ap)
{
	snprintf(X.last_call, sizeof(X.last_call), "%s", call);
	X.last_detail[0] = '\0';
	if (fmt)
		vsnprintf(X.last_detail, sizeof(X.last_detail), fmt, ap);
	return rc;
}

static int fail(int rc, const char *call, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rc = vfail(rc, call, fmt, ap);
	va_end(ap);
	return rc;
}

int glue_fail(int rc, const char *call, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rc = vfail(rc, call, fmt, ap);
	va_end(ap);
	return rc;
}

void glue_lock(void)
{
	pthread_mutex_lock(&X.mu);
}

void glue_unlock(void)
{
	pthread_mutex_unlock(&X.mu);
}

bool glue_is_open(void)
{
	return X.state == XF_ST_OPEN;
}

bool glue_switch_mode(void)
{
	return X.switch_mode;
}

const char *xf_last_call(void)
{
	return X.last_call;
}

const char *xf_last_detail(void)
{
	return X.last_detail;
}

const char *xf_error_name(int err)
{
	return doca_error_get_name((doca_error_t)err);
}

const char *xf_stage_call(int stage)
{
	switch (stage) {
	case XF_STAGE_GLUE:
		return "dpdk_glue";
	case XF_STAGE_ADD_BASIC:
		return XF_CALL_BASIC_ADD;
	case XF_STAGE_ADD_CONTROL:
		return "doca_flow_pipe_control_add_entry";
	case XF_STAGE_PROCESS:
		return "doca_flow_entries_process";
	default:
		return "";
	}
}

const char *xf_doca_version(void)
{
	return DOCA_VERSION_STRING;
}

const char *xf_doca_runtime_version(void)
{
	return doca_version_runtime();
}

int xf_state(void)
{
	return X.state;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------ */
/* handles: (generation << 32) | (index + 1); 0 is never valid                           */

static uint64_t ent_handle(uint32_t idx)
{
	return ((uint64_t)X.ents[idx].gen << 32) | (idx + 1);
}

static struct xf_ent *ent_lookup(uint64_t h, uint32_t *idx_out)
{
	uint32_t idx = (uint32_t)(h & 0xffffffffu);
	if (idx == 0 || idx > X.ents_cap)
		return NULL;
	struct xf_ent *e = &X.ents[idx - 1];
	if (e->gen != (uint32_t)(h >> 32) || (e->state != XF_E_ACTIVE && e->state != XF_E_FAILED))
		return NULL;
	if (idx_out)
		*idx_out = idx - 1;
	return e;
}

static int ent_alloc(uint32_t *idx_out)
{
	if (X.free_head == 0) {
		uint32_t cap = X.ents_cap ? X.ents_cap * 2 : 1024;
		struct xf_ent *n = realloc(X.ents, cap * sizeof(*n));
		if (n == NULL)
			return DOCA_ERROR_NO_MEMORY;
		memset(n + X.ents_cap, 0, (cap - X.ents_cap) * sizeof(*n));
		/* push new slots so that the lowest index is handed out first */
		for (uint32_t i = cap; i > X.ents_cap; i--) {
			n[i - 1].next_free = X.free_head;
			X.free_head = i;
		}
		X.ents = n;
		X.ents_cap = cap;
	}
	uint32_t idx = X.free_head - 1;
	X.free_head = X.ents[idx].next_free;
	struct xf_ent *e = &X.ents[idx];
	uint32_t gen = e->gen + 1;
	memset(e, 0, sizeof(*e));
	e->gen = gen ? gen : 1;
	e->fwd_pipe = -1;
	e->shared = -1;
	*idx_out = idx;
	return DOCA_SUCCESS;
}

static void ent_free(uint32_t idx)
{
	struct xf_ent *e = &X.ents[idx];
	if (e->fwd_pipe >= 0 && e->state == XF_E_ACTIVE)
		X.pipes[e->fwd_pipe].refs--;
	if (e->shared >= 0)
		X.meters[e->shared].refs--;
	e->shared = -1;
	e->state = XF_E_FREE;
	e->e = NULL;
	e->next_free = X.free_head;
	X.free_head = idx + 1;
}

static struct xf_pipe *pipe_lookup(uint32_t h, uint32_t *idx_out)
{
	uint32_t idx = h & 0xffffu;
	if (idx == 0 || idx > XF_MAX_PIPES)
		return NULL;
	struct xf_pipe *p = &X.pipes[idx - 1];
	if (p->kind == XF_P_FREE || p->gen != (h >> 16))
		return NULL;
	if (idx_out)
		*idx_out = idx - 1;
	return p;
}

static int pipe_alloc(uint32_t *idx_out)
{
	for (uint32_t i = 0; i < XF_MAX_PIPES; i++)
		if (X.pipes[i].kind == XF_P_FREE) {
			X.pipes[i].gen = (X.pipes[i].gen + 1) & 0xffffu;
			if (X.pipes[i].gen == 0)
				X.pipes[i].gen = 1;
			*idx_out = i;
			return DOCA_SUCCESS;
		}
	return DOCA_ERROR_FULL;
}

static uint32_t pipe_handle(uint32_t idx)
{
	return (X.pipes[idx].gen << 16) | (idx + 1);
}

/* The port that owns a port's pipes and whose queue carries their entries: in switch mode
 * the switch manager of the port's e-switch. */
static struct doca_flow_port *owner_port(uint16_t port_id)
{
	struct doca_flow_port *p = glue_port(port_id);
	if (X.switch_mode && p != NULL)
		return doca_flow_port_switch_get(p);
	return p;
}

static struct doca_flow_port *process_port(const struct xf_pipe *p)
{
	return owner_port(p->port);
}

static void touch(bool *touched, struct doca_flow_port *pp)
{
	for (uint16_t k = 0; k < XF_MAX_PORTS; k++)
		if (glue_port(k) != NULL && glue_port(k) == pp)
			touched[k] = true;
}

/* ------------------------------------------------------------------------------------ */
/* completion                                                                            */

static void entry_cb(struct doca_flow_pipe_entry *entry, uint16_t pipe_queue, enum doca_flow_entry_status status,
		     enum doca_flow_entry_op op, void *user_ctx)
{
	(void)entry;
	(void)pipe_queue;
	(void)op;
	uint32_t idx = (uint32_t)(uintptr_t)user_ctx - 1; /* an index: the table may move */
	if (idx < X.ents_cap) {
		X.ents[idx].done = 1;
		X.ents[idx].status = (uint8_t)status;
	}
	if (X.pending)
		X.pending--;
}

/* Drive entries_process on every port with queued work until all completions arrived. */
static int process_all(const bool *touched)
{
	int64_t deadline = now_ns() + XF_PROCESS_DEADLINE_NS;
	for (;;) {
		for (uint16_t i = 0; i < XF_MAX_PORTS; i++) {
			if (!touched[i] || glue_port(i) == NULL)
				continue;
			doca_error_t rc = doca_flow_entries_process(glue_port(i), 0, XF_PROCESS_TIMEOUT_US, 0);
			if (rc != DOCA_SUCCESS)
				return fail(rc, "doca_flow_entries_process", "port %d", i);
		}
		if (X.pending == 0)
			return DOCA_SUCCESS;
		if (now_ns() > deadline)
			return fail(DOCA_ERROR_TIME_OUT, "doca_flow_entries_process", "%u completions missing",
				    X.pending);
	}
}

/* ------------------------------------------------------------------------------------ */
/* init / ports                                                                          */

int xf_init(int argc, char **argv, const char *mode)
{
	return xf_init_ex(argc, argv, mode, XF_DEFAULT_METERS, XF_DEFAULT_SHARED_METERS);
}

int xf_init_ex(int argc, char **argv, const char *mode, uint32_t nr_meters, uint32_t nr_shared_meters)
{
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	if (X.state != XF_ST_FRESH) {
		rc = fail(DOCA_ERROR_BAD_STATE, "rte_eal_init",
			  "the DPDK EAL initialises once per process; this process already used it");
		goto out;
	}
	if (argc < 1 || argc > XF_MAX_EAL_ARGS) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "1 to %d EAL arguments, not %d", XF_MAX_EAL_ARGS, argc);
		goto out;
	}
	if (mode == NULL || (strcmp(mode, "vnf") != 0 && strcmp(mode, "switch") != 0)) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "mode must be 'vnf' or 'switch'");
		goto out;
	}
	if (nr_shared_meters >= (1u << 20)) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "at most %u shared meters, not %u", (1u << 20) - 1,
			  nr_shared_meters);
		goto out;
	}
	free(X.meters);
	X.meters = nr_shared_meters ? calloc(nr_shared_meters, sizeof(*X.meters)) : NULL;
	if (nr_shared_meters && X.meters == NULL) {
		rc = fail(DOCA_ERROR_NO_MEMORY, "dpdk_glue", "%u shared meters", nr_shared_meters);
		goto out;
	}
	X.nr_meters = nr_meters;
	X.nr_shared = nr_shared_meters;
	X.state = XF_ST_CLOSED; /* a failed rte_eal_init cannot be retried either */
	static char *eal_argv[XF_MAX_EAL_ARGS + 5]; /* the EAL may keep pointers into it */
	memcpy(eal_argv, argv, sizeof(argv[0]) * (size_t)argc);
	int eal_argc = argc + glue_eal_extra_args(argc, argv, eal_argv + argc);
	eal_argv[eal_argc] = NULL;
	int parsed = rte_eal_init(eal_argc, eal_argv); /* returns the number of arguments parsed */
	if (parsed < 0) {
		rc = fail(DOCA_ERROR_INITIALIZATION, "rte_eal_init", "%s", rte_strerror(rte_errno));
		goto out;
	}
	struct doca_flow_cfg *cfg = NULL;
	char mode_args[32];
	glue_mode_args(mode, mode_args, sizeof(mode_args));
	const char *call = "doca_flow_cfg_create";
	rc = doca_flow_cfg_create(&cfg);
	STEP("doca_flow_cfg_set_pipe_queues", doca_flow_cfg_set_pipe_queues(cfg, 1));
	STEP("doca_flow_cfg_set_mode_args", doca_flow_cfg_set_mode_args(cfg, mode_args));
	STEP("doca_flow_cfg_set_nr_counters", doca_flow_cfg_set_nr_counters(cfg, 1u << 20));
	/* meters, declared like the counters (system resource mode) */
	STEP("doca_flow_cfg_set_nr_meters", doca_flow_cfg_set_nr_meters(cfg, nr_meters));
	STEP("doca_flow_cfg_set_nr_shared_resource",
	     doca_flow_cfg_set_nr_shared_resource(cfg, nr_shared_meters, DOCA_FLOW_SHARED_RESOURCE_METER));
	STEP("doca_flow_cfg_set_cb_entry_process", doca_flow_cfg_set_cb_entry_process(cfg, entry_cb));
	STEP("doca_flow_init", doca_flow_init(cfg));
	if (cfg)
		doca_flow_cfg_destroy(cfg);
	if (rc != DOCA_SUCCESS) {
		rc = fail(rc, call, "mode_args=%s", mode_args);
		rte_eal_cleanup();
		goto out;
	}
	X.switch_mode = strcmp(mode, "switch") == 0;
	X.state = XF_ST_OPEN;
out:
	pthread_mutex_unlock(&X.mu);
	return rc;
}

/* ------------------------------------------------------------------------------------ */
/* pipes                                                                                 */

static bool ip6_set(const uint32_t *a)
{
	return (a[0] | a[1] | a[2] | a[3]) != 0;
}

/* The family a match states by itself: its l3, else its addresses (0: none stated);
 * -1 when it contradicts itself (IPv4 and IPv6 addresses, an l3 not 0/4/6 or against them). */
static int stated_family(const struct xf_match *x)
{
	bool v6 = ip6_set(x->ipv6_src) || ip6_set(x->ipv6_dst);
	bool v4 = x->ipv4_src || x->ipv4_dst;
	if ((x->l3 != 0 && x->l3 != 4 && x->l3 != 6) || (v4 && v6))
		return -1;
	int f = v6 ? 6 : v4 ? 4 : 0;
	if (x->l3 && f && x->l3 != f)
		return -1;
	return x->l3 ? x->l3 : f;
}

/* The family (the l3 selector) of a value and its mask: IPv6 when either states it; else
 * IPv4 when the mask needs an L3 header (addresses, ip_proto, ports) or l3=4 is stated --
 * for IPv4 exactly the rule the glue always had (the mask decides).  -1: they disagree. */
static int match_family(const struct xf_match *val, const struct xf_match *mask)
{
	int a = stated_family(val), b = stated_family(mask);
	if (a < 0 || b < 0)
		return -1;
	if (a == 6 || b == 6)
		return a == 4 || b == 4 ? -1 : 6;
	if (b == 4 || val->l3 == 4 || mask->ip_proto || mask->l4_src || mask->l4_dst)
		return 4;
	return 0;
}

static enum doca_flow_l4_type_ext l4_selector(const struct xf_match *val, const struct xf_match *mask)
{
	if (!(mask->l4_src || mask->l4_dst))
		return DOCA_FLOW_L4_TYPE_EXT_NONE;
	if (mask->ip_proto == 0xff && val->ip_proto == IPPROTO_UDP)
		return DOCA_FLOW_L4_TYPE_EXT_UDP;
	if (mask->ip_proto == 0xff && val->ip_proto == IPPROTO_TCP)
		return DOCA_FLOW_L4_TYPE_EXT_TCP;
	return DOCA_FLOW_L4_TYPE_EXT_TRANSPORT; /* UDP or TCP ports */
}

/* The glue's colour -> DOCA's enum (whose numbers differ). */
static enum doca_flow_meter_color doca_color(uint8_t c)
{
	return c == XF_COLOR_RED ? DOCA_FLOW_METER_COLOR_RED :
	       c == XF_COLOR_YELLOW ? DOCA_FLOW_METER_COLOR_YELLOW : DOCA_FLOW_METER_COLOR_GREEN;
}

/* xf_match (host order) -> doca_flow_match (network order).  fam is the l3 selector
 * (match_family); the l4 selector comes from the mask.  Both are union discriminators, the
 * same in the value and the mask struct.  is_mask: x is a mask (or a template), so its
 * meter colour is the colour's bits, not a colour. */
static void fill_match(struct doca_flow_match *m, const struct xf_match *x, int fam, const struct xf_match *sel_val,
		       const struct xf_match *sel_mask, bool is_mask)
{
	memset(m, 0, sizeof(*m));
	if (sel_mask->meter_color)
		m->parser_meta.meter_color = is_mask ? (enum doca_flow_meter_color)XF_COLOR_MASK : doca_color(x->meter_color);
	m->outer.eth.type = htons(x->eth_type);
	if (fam == 6) {
		m->outer.l3_type = DOCA_FLOW_L3_TYPE_IP6;
		for (int i = 0; i < 4; i++) {
			m->outer.ip6.src_ip[i] = htonl(x->ipv6_src[i]);
			m->outer.ip6.dst_ip[i] = htonl(x->ipv6_dst[i]);
		}
		m->outer.ip6.next_proto = x->ip_proto;
	} else {
		if (fam == 4)
			m->outer.l3_type = DOCA_FLOW_L3_TYPE_IP4;
		m->outer.ip4.src_ip = htonl(x->ipv4_src);
		m->outer.ip4.dst_ip = htonl(x->ipv4_dst);
		m->outer.ip4.next_proto = x->ip_proto;
	}
	m->outer.l4_type_ext = l4_selector(sel_val, sel_mask);
	/* udp and tcp both begin with l4_port {src_port, dst_port} */
	m->outer.udp.l4_port.src_port = htons(x->l4_src);
	m->outer.udp.l4_port.dst_port = htons(x->l4_dst);
}

static void set_match_port(struct doca_flow_match *m, uint16_t port)
{
#if XF_DOCA_AT_LEAST(3, 0)
	m->parser_meta.port_id = port;
#else
	m->parser_meta.port_meta = port;
#endif
}

/* An xf forward (kind, target) -> doca_flow_fwd; *next: the pipe index it goes to (or -1). */
static int fill_fwd(struct doca_flow_fwd *f, uint8_t kind, uint32_t target, int32_t *next)
{
	memset(f, 0, sizeof(*f));
	*next = -1;
	switch (kind) {
	case XF_FWD_PORT:
		if (target >= XF_MAX_PORTS || glue_port((uint16_t)target) == NULL)
			return DOCA_ERROR_INVALID_VALUE;
		f->type = DOCA_FLOW_FWD_PORT;
		f->port_id = glue_doca_port_id((uint16_t)target);
		return DOCA_SUCCESS;
	case XF_FWD_PIPE: {
		uint32_t tidx;
		struct xf_pipe *t = pipe_lookup(target, &tidx);
		if (t == NULL || t->kind != XF_P_BASIC)
			return DOCA_ERROR_INVALID_VALUE;
		f->type = DOCA_FLOW_FWD_PIPE;
		f->next_pipe = t->p;
		*next = (int32_t)tidx;
		return DOCA_SUCCESS;
	}
	case XF_FWD_DROP:
		f->type = DOCA_FLOW_FWD_DROP;
		return DOCA_SUCCESS;
	default:
		return DOCA_ERROR_INVALID_VALUE;
	}
}

/* The pipe template's monitor: a counter per entry, and the meter given per entry (all ones). */
static void pipe_monitor(struct doca_flow_monitor *mon, uint8_t meter_kind)
{
	memset(mon, 0, sizeof(*mon));
	mon->counter_type = DOCA_FLOW_RESOURCE_TYPE_NON_SHARED;
	if (meter_kind == XF_METER_ENTRY) {
		mon->meter_type = DOCA_FLOW_RESOURCE_TYPE_NON_SHARED;
		mon->non_shared_meter.limit_type = DOCA_FLOW_METER_LIMIT_TYPE_PACKETS;
		mon->non_shared_meter.cir = UINT64_MAX;
		mon->non_shared_meter.cbs = UINT64_MAX;
	} else if (meter_kind == XF_METER_SHARED) {
		mon->meter_type = DOCA_FLOW_RESOURCE_TYPE_SHARED;
		mon->shared_meter.shared_meter_id = UINT32_MAX;
	}
}

static int create_pipe(uint16_t port_id, const char *name, bool root, const struct xf_match *mask,
		       const struct xf_pipe_opts *o, const struct doca_flow_fwd *fwd_miss, uint32_t nr_entries,
		       struct doca_flow_pipe **out)
{
	struct doca_flow_pipe_cfg *cfg = NULL;
	struct doca_flow_port *owner = owner_port(port_id);
	const char *call = "doca_flow_pipe_cfg_create";
	doca_error_t rc = doca_flow_pipe_cfg_create(&cfg, owner);
	struct doca_flow_monitor mon;
	pipe_monitor(&mon, root ? XF_METER_NONE : o->meter_kind);
	STEP("doca_flow_pipe_cfg_set_name", doca_flow_pipe_cfg_set_name(cfg, name));
	STEP("doca_flow_pipe_cfg_set_type", doca_flow_pipe_cfg_set_type(cfg, root ? DOCA_FLOW_PIPE_CONTROL : DOCA_FLOW_PIPE_BASIC));
	STEP("doca_flow_pipe_cfg_set_is_root", doca_flow_pipe_cfg_set_is_root(cfg, root));
	STEP("doca_flow_pipe_cfg_set_nr_entries", doca_flow_pipe_cfg_set_nr_entries(cfg, nr_entries));
	struct doca_flow_fwd fwd;
	memset(&fwd, 0, sizeof(fwd));
	if (!root) {
		/* template: masked fields are changeable (all ones); the mask says which bits */
		struct doca_flow_match tmpl, msk;
		struct xf_match ones = {
			.ipv4_src = mask->ipv4_src ? 0xffffffffu : 0,
			.ipv4_dst = mask->ipv4_dst ? 0xffffffffu : 0,
			.eth_type = mask->eth_type ? 0xffff : 0,
			.l4_src = mask->l4_src ? 0xffff : 0,
			.l4_dst = mask->l4_dst ? 0xffff : 0,
			.ip_proto = mask->ip_proto ? 0xff : 0,
			.meter_color = mask->meter_color ? XF_COLOR_MASK : 0,
		};
		memset(ones.ipv6_src, ip6_set(mask->ipv6_src) ? 0xff : 0, sizeof(ones.ipv6_src));
		memset(ones.ipv6_dst, ip6_set(mask->ipv6_dst) ? 0xff : 0, sizeof(ones.ipv6_dst));
		int fam = match_family(mask, mask);
		fill_match(&tmpl, &ones, fam, mask, mask, true);
		fill_match(&msk, mask, fam, mask, mask, true);
		struct doca_flow_actions act;
		memset(&act, 0, sizeof(act));
		memset(act.outer.eth.dst_mac, 0xff, 6); /* dst MAC: per entry */
		struct doca_flow_actions *acts[1] = {&act};
		STEP("doca_flow_pipe_cfg_set_match", doca_flow_pipe_cfg_set_match(cfg, &tmpl, &msk));
		if (o->set_mac)
			STEP("doca_flow_pipe_cfg_set_actions", doca_flow_pipe_cfg_set_actions(cfg, acts, NULL, NULL, 1));
		STEP("doca_flow_pipe_cfg_set_monitor", doca_flow_pipe_cfg_set_monitor(cfg, &mon));
		int32_t unused;
		fill_fwd(&fwd, o->fwd_kind, o->fwd_target, &unused); /* validated by the caller */
	}
	/* fwd_miss NULL: the port's default miss, which bring-up set to the kernel (glue_ports.c) */
	STEP("doca_flow_pipe_create", doca_flow_pipe_create(cfg, root ? NULL : &fwd, fwd_miss, out));
	if (cfg)
		doca_flow_pipe_cfg_destroy(cfg);
	if (rc != DOCA_SUCCESS)
		return fail(rc, call, "pipe '%s' on port %u", name, port_id);
	return DOCA_SUCCESS;
}

static struct xf_switch_root *switch_root_of(struct doca_flow_port *manager)
{
	struct xf_switch_root *free_slot = NULL;
	for (int i = 0; i < XF_MAX_PORTS; i++) {
		if (X.sroots[i].manager == manager)
			return &X.sroots[i];
		if (X.sroots[i].manager == NULL && free_slot == NULL)
			free_slot = &X.sroots[i];
	}
	if (free_slot)
		*free_slot = (struct xf_switch_root){.manager = manager};
	return free_slot;
}

int xf_pipe_create_root(uint16_t port_id, const char *name, uint32_t nr_entries, uint32_t *out_pipe)
{
	pthread_mutex_lock(&X.mu);
	int rc;
	uint32_t idx = 0;
	if (X.state != XF_ST_OPEN) {
		rc = fail(DOCA_ERROR_BAD_STATE, "dpdk_glue", "the eSwitch is not open");
		goto out;
	}
	if (glue_port(port_id) == NULL) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "port %u is not started", port_id);
		goto out;
	}
	for (uint32_t i = 0; i < XF_MAX_PIPES; i++)
		if (X.pipes[i].kind == XF_P_ROOT && X.pipes[i].port == port_id) {
			rc = fail(DOCA_ERROR_ALREADY_EXIST, "dpdk_glue", "port %u already has a root pipe", port_id);
			goto out;
		}
	rc = pipe_alloc(&idx);
	if (rc != DOCA_SUCCESS) {
		rc = fail(rc, "dpdk_glue", "too many pipes");
		goto out;
	}
	struct doca_flow_pipe *p = NULL;
	if (X.switch_mode) {
		/* one FDB root per e-switch, on its switch manager; per-port roots are views of
		 * it whose entries also match the ingress port (parser_meta) */
		struct xf_switch_root *sr = switch_root_of(owner_port(port_id));
		if (sr == NULL) {
			rc = fail(DOCA_ERROR_FULL, "dpdk_glue", "too many e-switches");
			goto out;
		}
		if (sr->pipe == NULL)
			rc = create_pipe(port_id, "xf_switch_root", true, NULL, NULL, NULL, nr_entries * XF_MAX_PORTS,
					 &sr->pipe);
		p = sr->pipe;
		if (rc == DOCA_SUCCESS)
			sr->users++;
	} else {
		rc = create_pipe(port_id, name, true, NULL, NULL, NULL, nr_entries, &p);
	}
	if (rc != DOCA_SUCCESS)
		goto out;
	X.pipes[idx] = (struct xf_pipe){.p = p, .gen = X.pipes[idx].gen, .port = port_id, .kind = XF_P_ROOT};
	*out_pipe = pipe_handle(idx);
out:
	pthread_mutex_unlock(&X.mu);
	return rc;
}

int xf_pipe_create_basic(uint16_t port_id, const char *name, const struct xf_match *mask, uint16_t fwd_port,
			 uint32_t nr_entries, uint32_t *out_pipe)
{
	struct xf_pipe_opts o = {.fwd_kind = XF_FWD_PORT, .fwd_target = fwd_port, .set_mac = 1};
	return xf_pipe_create_basic_ex(port_id, name, mask, &o, nr_entries, out_pipe);
}

/* What is wrong with a basic pipe's options (NULL: nothing); fills its fwd_miss. */
static const char *check_opts(const struct xf_pipe_opts *o, struct doca_flow_fwd *miss, int32_t next[2])
{
	struct doca_flow_fwd fwd;
	if (o->fwd_kind == XF_FWD_NONE || fill_fwd(&fwd, o->fwd_kind, o->fwd_target, &next[0]) != DOCA_SUCCESS)
		return "its forward is not a started port, a basic pipe or drop";
	next[1] = -1;
	if (o->miss_kind != XF_FWD_NONE && fill_fwd(miss, o->miss_kind, o->miss_target, &next[1]) != DOCA_SUCCESS)
		return "its miss forward is not a started port, a basic pipe or drop";
	if (o->meter_kind > XF_METER_SHARED)
		return "meter kind not none, entry or shared";
	if (o->meter_kind == XF_METER_ENTRY && X.nr_meters == 0)
		return "per-entry meters need a budget (meters=0 at init)";
	if (o->meter_kind == XF_METER_SHARED && X.nr_shared == 0)
		return "shared meters need a budget (shared_meters=0 at init)";
	return NULL;
}

int xf_pipe_create_basic_ex(uint16_t port_id, const char *name, const struct xf_match *mask,
			    const struct xf_pipe_opts *opts, uint32_t nr_entries, uint32_t *out_pipe)
{
	pthread_mutex_lock(&X.mu);
	int rc;
	uint32_t idx = 0;
	if (X.state != XF_ST_OPEN) {
		rc = fail(DOCA_ERROR_BAD_STATE, "dpdk_glue", "the eSwitch is not open");
		goto out;
	}
	if (glue_port(port_id) == NULL) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "port %u is not started", port_id);
		goto out;
	}
	struct doca_flow_fwd miss;
	int32_t next[2];
	const char *bad = check_opts(opts, &miss, next);
	if (bad != NULL) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "pipe '%s': %s", name, bad);
		goto out;
	}
	int fam = match_family(mask, mask);
	if (fam < 0) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue",
			  "pipe '%s': the mask mixes IPv4 and IPv6 (l3=%u, ipv4_* with ipv6_* fields)", name, mask->l3);
		goto out;
	}
	rc = pipe_alloc(&idx);
	if (rc != DOCA_SUCCESS) {
		rc = fail(rc, "dpdk_glue", "too many pipes");
		goto out;
	}
	struct doca_flow_pipe *p = NULL;
	rc = create_pipe(port_id, name, false, mask, opts, opts->miss_kind != XF_FWD_NONE ? &miss : NULL, nr_entries,
			 &p);
	if (rc != DOCA_SUCCESS)
		goto out;
	X.pipes[idx] = (struct xf_pipe){.p = p, .gen = X.pipes[idx].gen, .port = port_id, .kind = XF_P_BASIC,
					.mask = *mask, .fam = (int8_t)fam, .set_mac = opts->set_mac,
					.meter_kind = opts->meter_kind, .next = {next[0], next[1]}};
	for (int i = 0; i < 2; i++) /* pipes this one forwards to stay until it is gone */
		if (next[i] >= 0)
			X.pipes[next[i]].refs++;
	*out_pipe = pipe_handle(idx);
out:
	pthread_mutex_unlock(&X.mu);
	return rc;
}

static struct xf_meter *meter_lookup(uint32_t h, uint32_t *idx_out)
{
	uint32_t idx = h & 0xfffffu;
	if (idx == 0 || idx > X.nr_shared || X.meters == NULL)
		return NULL;
	struct xf_meter *m = &X.meters[idx - 1];
	if (!m->used || (m->gen & 0xfffu) != (h >> 20))
		return NULL;
	if (idx_out)
		*idx_out = idx - 1;
	return m;
}

/* ------------------------------------------------------------------------------------ */
/* shared meters                                                                         */

static void meter_cfg(struct doca_flow_shared_resource_cfg *c, const struct xf_meter *m)
{
	memset(c, 0, sizeof(*c));
	c->meter_cfg.limit_type = m->bytes ? DOCA_FLOW_METER_LIMIT_TYPE_BYTES : DOCA_FLOW_METER_LIMIT_TYPE_PACKETS;
	c->meter_cfg.color_mode = DOCA_FLOW_METER_COLOR_MODE_BLIND;
	c->meter_cfg.alg = DOCA_FLOW_METER_ALGORITHM_TYPE_RFC2697;
	c->meter_cfg.cir = m->cir;
	c->meter_cfg.cbs = m->cbs;
	c->meter_cfg.rfc2697.ebs = 0; /* green or red: the drop stage drops red */
}

/* Configure the meter's DOCA id (getting one first where the release hands them out). */
static int meter_configure(struct xf_meter *m, const char **call_out)
{
	const char *call = "dpdk_glue";
	struct doca_flow_shared_resource_cfg c;
	meter_cfg(&c, m);
	struct doca_flow_port *owner = owner_port(m->port);
	int rc = DOCA_SUCCESS;
#if XF_DOCA_AT_LEAST(3, 2)
	if (!m->has_id) {
		STEP("doca_flow_port_shared_resource_get",
		     doca_flow_port_shared_resource_get(owner, DOCA_FLOW_SHARED_RESOURCE_METER, &m->doca_id));
		m->has_id = rc == DOCA_SUCCESS;
	}
	STEP("doca_flow_port_shared_resource_set_cfg",
	     doca_flow_port_shared_resource_set_cfg(owner, DOCA_FLOW_SHARED_RESOURCE_METER, m->doca_id, &c));
#else
	STEP("doca_flow_shared_resource_set_cfg",
	     doca_flow_shared_resource_set_cfg(DOCA_FLOW_SHARED_RESOURCE_METER, m->doca_id, &c));
	STEP("doca_flow_shared_resources_bind",
	     doca_flow_shared_resources_bind(DOCA_FLOW_SHARED_RESOURCE_METER, &m->doca_id, 1, owner));
#endif
	*call_out = call;
	return rc;
}

/* A free slot: 3.2+ one whose id the same owner handed out, else one never used. */
static int meter_slot(uint16_t port_id)
{
	int fresh = -1;
	for (uint32_t i = 0; i < X.nr_shared; i++) {
		struct xf_meter *m = &X.meters[i];
		if (m->used)
			continue;
		if (!m->has_id && fresh < 0)
			fresh = (int)i;
		if (m->has_id && owner_port(m->port) == owner_port(port_id))
			return (int)i;
	}
	return fresh;
}

int xf_meter_create(uint16_t port_id, uint64_t cir, uint64_t cbs, uint8_t bytes, uint32_t *out_meter)
{
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	const char *call = "dpdk_glue";
	if (X.state != XF_ST_OPEN || glue_port(port_id) == NULL) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "port %u is not started", port_id);
		goto out;
	}
	if (cir == 0 || cbs == 0) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "a meter's cir and cbs must be > 0");
		goto out;
	}
	int i = meter_slot(port_id);
	if (i < 0) {
		rc = fail(DOCA_ERROR_FULL, "dpdk_glue", "the shared meters declared at init (shared_meters=%u) are used up",
			  X.nr_shared);
		goto out;
	}
	struct xf_meter *m = &X.meters[i];
	m->port = port_id;
	m->cir = cir;
	m->cbs = cbs;
	m->bytes = bytes ? 1 : 0;
#if !XF_DOCA_AT_LEAST(3, 2)
	m->doca_id = (uint32_t)i; /* ids 0 .. nr_shared_resource - 1 are the application's */
	m->has_id = 1;
#endif
	rc = meter_configure(m, &call);
	if (rc != DOCA_SUCCESS) {
		rc = fail(rc, call, "shared meter on port %u (shared_meters=%u declared at init)", port_id, X.nr_shared);
		goto out;
	}
	m->used = 1;
	m->refs = 0;
	m->gen = (m->gen + 1) & 0xfffu;
	*out_meter = (m->gen << 20) | (uint32_t)(i + 1);
out:
	pthread_mutex_unlock(&X.mu);
	return rc;
}

int xf_meter_modify(uint32_t meter, uint64_t cir, uint64_t cbs)
{
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	const char *call = "dpdk_glue";
	struct xf_meter *m = X.state == XF_ST_OPEN ? meter_lookup(meter, NULL) : NULL;
	if (m == NULL) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "unknown or destroyed meter");
		goto out;
	}
	if (cir == 0 || cbs == 0) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "a meter's cir and cbs must be > 0");
		goto out;
	}
	uint64_t oc = m->cir, ob = m->cbs;
	m->cir = cir;
	m->cbs = cbs;
	rc = meter_configure(m, &call); /* in place: the entries using it keep it */
	if (rc != DOCA_SUCCESS) {
		m->cir = oc;
		m->cbs = ob;
		rc = fail(rc, call, "shared meter %u", m->doca_id);
	}
out:
	pthread_mutex_unlock(&X.mu);
	return rc;
}

struct doca_flow_pipe_entry *glue_entry_of(uint64_t handle)
{
	struct xf_ent *e = X.state == XF_ST_OPEN ? ent_lookup(handle, NULL) : NULL;
	return e && e->state == XF_E_ACTIVE ? e->e : NULL;
}

int glue_meter_doca_id(uint32_t meter, uint32_t *doca_id)
{
	struct xf_meter *m = X.state == XF_ST_OPEN ? meter_lookup(meter, NULL) : NULL;
	if (m == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*doca_id = m->doca_id;
	return DOCA_SUCCESS;
}

int xf_meter_destroy(uint32_t meter)
{
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	struct xf_meter *m = X.state == XF_ST_OPEN ? meter_lookup(meter, NULL) : NULL;
	if (m == NULL) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "unknown or destroyed meter");
	} else if (m->refs) {
		rc = fail(DOCA_ERROR_IN_USE, "dpdk_glue", "%u entries still use this meter", m->refs);
	} else {
		m->used = 0; /* its DOCA id stays the glue's, for the next meter */
	}
	pthread_mutex_unlock(&X.mu);
	return rc;
}

/* Remove entries by index (already validated), then wait for completions; frees slots. */
static int remove_idx(const uint32_t *idx, uint32_t n)
{
	bool touched[XF_MAX_PORTS] = {false};
	int first = DOCA_SUCCESS;
	X.pending = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct xf_ent *e = &X.ents[idx[i]];
		struct xf_pipe *p = &X.pipes[e->pipe];
		e->done = 0;
		uint32_t flags = i + 1 == n ? XF_FLAG_NO_WAIT : XF_FLAG_BATCH;
		doca_error_t rc = doca_flow_pipe_remove_entry(0, flags, e->e);
		if (rc != DOCA_SUCCESS) {
			if (first == DOCA_SUCCESS)
				first = fail(rc, XF_CALL_REMOVE, "entry %u", idx[i]);
			continue;
		}
		X.pending++;
		touch(touched, process_port(p));
	}
	int rc = process_all(touched);
	for (uint32_t i = 0; i < n; i++)
		ent_free(idx[i]);
	return first != DOCA_SUCCESS ? first : rc;
}

int xf_pipe_destroy(uint32_t pipe)
{
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	uint32_t pidx;
	struct xf_pipe *p;
	if (X.state != XF_ST_OPEN) {
		rc = fail(DOCA_ERROR_BAD_STATE, "dpdk_glue", "the eSwitch is not open");
		goto out;
	}
	if ((p = pipe_lookup(pipe, &pidx)) == NULL) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "unknown or destroyed pipe");
		goto out;
	}
	if (p->refs) {
		rc = fail(DOCA_ERROR_IN_USE, "doca_flow_pipe_destroy",
			  "%u root entries or pipes still forward to this pipe", p->refs);
		goto out;
	}
	for (int i = 0; i < 2 && p->kind == XF_P_BASIC; i++)
		if (p->next[i] >= 0)
			X.pipes[p->next[i]].refs--;
	bool shared_root = X.switch_mode && p->kind == XF_P_ROOT;
	/* release the glue's records of the pipe's entries (DOCA destroys them with the pipe;
	 * a shared switch root keeps living, so its entries of this port are removed) */
	uint32_t *rm = NULL, nrm = 0;
	if (shared_root)
		rm = malloc(sizeof(*rm) * (X.ents_cap ? X.ents_cap : 1));
	for (uint32_t i = 0; i < X.ents_cap; i++) {
		struct xf_ent *e = &X.ents[i];
		if ((e->state == XF_E_ACTIVE || e->state == XF_E_FAILED) && e->pipe == pidx) {
			if (shared_root && rm)
				rm[nrm++] = i;
			else
				ent_free(i);
		}
	}
	if (shared_root) {
		if (nrm)
			rc = remove_idx(rm, nrm);
		free(rm);
		struct xf_switch_root *sr = switch_root_of(owner_port(p->port));
		if (sr && --sr->users == 0) {
			doca_flow_pipe_destroy(sr->pipe);
			*sr = (struct xf_switch_root){0};
		}
	} else {
		doca_flow_pipe_destroy(p->p);
	}
	p->kind = XF_P_FREE;
	p->p = NULL;
out:
	pthread_mutex_unlock(&X.mu);
	return rc;
}

/* ------------------------------------------------------------------------------------ */
/* entries                                                                               */

/* An entry's monitor: its counter and, in a metered pipe, its meter. */
static void entry_monitor(struct doca_flow_monitor *mon, const struct xf_ent *e)
{
	memset(mon, 0, sizeof(*mon));
	mon->counter_type = DOCA_FLOW_RESOURCE_TYPE_NON_SHARED;
	if (e->meter_kind == XF_METER_ENTRY) {
		mon->meter_type = DOCA_FLOW_RESOURCE_TYPE_NON_SHARED;
		mon->non_shared_meter.limit_type =
			e->meter_bytes ? DOCA_FLOW_METER_LIMIT_TYPE_BYTES : DOCA_FLOW_METER_LIMIT_TYPE_PACKETS;
		mon->non_shared_meter.cir = e->cir;
		mon->non_shared_meter.cbs = e->cbs;
	} else if (e->meter_kind == XF_METER_SHARED) {
		mon->meter_type = DOCA_FLOW_RESOURCE_TYPE_SHARED;
		mon->shared_meter.shared_meter_id = X.meters[e->shared].doca_id;
	}
}

/* A basic entry's meter and MAC, checked against its pipe and kept in its record. */
static doca_error_t basic_entry_record(const struct xf_entry_spec *s, const struct xf_pipe *p, struct xf_ent *e)
{
	if (s->has_mac != p->set_mac || s->meter_kind != p->meter_kind)
		return DOCA_ERROR_INVALID_VALUE; /* a MAC or a meter the pipe has none of, or none it needs */
	if (p->mask.meter_color && s->match.meter_color > XF_COLOR_RED)
		return DOCA_ERROR_INVALID_VALUE;
	e->has_mac = s->has_mac;
	memcpy(e->mac, s->dst_mac, 6);
	e->meter_kind = s->meter_kind;
	if (s->meter_kind == XF_METER_ENTRY) {
		if (s->cir == 0 || s->cbs == 0)
			return DOCA_ERROR_INVALID_VALUE;
		e->cir = s->cir;
		e->cbs = s->cbs;
		e->meter_bytes = s->meter_bytes;
	} else if (s->meter_kind == XF_METER_SHARED) {
		uint32_t midx;
		struct xf_meter *m = meter_lookup(s->shared_meter, &midx);
		if (m == NULL || owner_port(m->port) != owner_port(p->port))
			return DOCA_ERROR_INVALID_VALUE; /* unknown, destroyed, or another e-switch's */
		e->shared = (int32_t)midx;
		m->refs++; /* released in ent_free */
	}
	return DOCA_SUCCESS;
}

static doca_error_t add_one(const struct xf_entry_spec *s, uint32_t slot, struct xf_pipe *p, uint32_t flags,
			    uint8_t *stage, int32_t *fwd_pipe)
{
	struct doca_flow_match match, mask;
	struct doca_flow_actions act;
	struct doca_flow_monitor mon;
	struct doca_flow_fwd fwd;
	memset(&act, 0, sizeof(act));
	memset(&mon, 0, sizeof(mon));
	memset(&fwd, 0, sizeof(fwd));
	mon.counter_type = DOCA_FLOW_RESOURCE_TYPE_NON_SHARED;
	void *ctx = (void *)(uintptr_t)(slot + 1);
	struct xf_ent *e = &X.ents[slot];
	*fwd_pipe = -1;
	if (s->has_mac)
		memcpy(act.outer.eth.dst_mac, s->dst_mac, 6);

	if (p->kind == XF_P_BASIC) {
		*stage = XF_STAGE_GLUE;
		doca_error_t r = basic_entry_record(s, p, e);
		if (r != DOCA_SUCCESS)
			return r;
		*stage = XF_STAGE_ADD_BASIC;
		entry_monitor(&mon, e);
		const struct doca_flow_actions *pa = p->set_mac ? &act : NULL;
		/* the selectors are the pipe's; an entry of the other family (IPv6 in an IPv4 pipe
		 * or the reverse) keeps its own, which DOCA refuses against the template */
		int fam = stated_family(&s->match);
		if (fam < 0) {
			*stage = XF_STAGE_GLUE;
			return DOCA_ERROR_INVALID_VALUE;
		}
		bool other = fam && fam != p->fam && (fam == 6 || p->fam == 6);
#ifndef SOFTDOCA_VERSION
		if (other) { /* refused here: what the hardware makes of it is not documented */
			*stage = XF_STAGE_GLUE;
			return DOCA_ERROR_INVALID_VALUE;
		}
#endif
		fill_match(&match, &s->match, other ? fam : p->fam, &p->mask, &p->mask, false);
		/* one action template: index 0 (an argument from 3.2 on, a field of actions before) */
#if XF_DOCA_AT_LEAST(3, 3)
		return doca_flow_pipe_basic_add_entry(0, p->p, &match, 0, pa, &mon, NULL, flags, ctx, &e->e);
#elif XF_DOCA_AT_LEAST(3, 2)
		return doca_flow_pipe_add_entry(0, p->p, &match, 0, pa, &mon, NULL, flags, ctx, &e->e);
#else
		act.action_idx = 0;
		return doca_flow_pipe_add_entry(0, p->p, &match, pa, &mon, NULL, flags, ctx, &e->e);
#endif
	}

	*stage = XF_STAGE_ADD_CONTROL;
	int fam = match_family(&s->match, &s->mask);
	if (fam < 0) {
		*stage = XF_STAGE_GLUE;
		return DOCA_ERROR_INVALID_VALUE;
	}
	if (s->mask.meter_color && s->match.meter_color > XF_COLOR_RED) {
		*stage = XF_STAGE_GLUE;
		return DOCA_ERROR_INVALID_VALUE;
	}
	fill_match(&match, &s->match, fam, &s->match, &s->mask, false);
	fill_match(&mask, &s->mask, fam, &s->match, &s->mask, true);
	if (X.switch_mode) {
		set_match_port(&match, glue_doca_port_id(p->port));
		set_match_port(&mask, 0xffff);
	}
	switch (s->fwd_kind) {
	case XF_FWD_PORT:
		if (s->fwd_target >= XF_MAX_PORTS || glue_port((uint16_t)s->fwd_target) == NULL) {
			*stage = XF_STAGE_GLUE;
			return DOCA_ERROR_INVALID_VALUE;
		}
		fwd.type = DOCA_FLOW_FWD_PORT;
		fwd.port_id = glue_doca_port_id((uint16_t)s->fwd_target);
		break;
	case XF_FWD_PIPE: {
		uint32_t tidx;
		struct xf_pipe *t = pipe_lookup(s->fwd_target, &tidx);
		if (t == NULL || t->kind != XF_P_BASIC) {
			*stage = XF_STAGE_GLUE;
			return DOCA_ERROR_INVALID_VALUE;
		}
		fwd.type = DOCA_FLOW_FWD_PIPE;
		fwd.next_pipe = t->p;
		*fwd_pipe = (int32_t)tidx;
		break;
	}
	case XF_FWD_DROP:
		fwd.type = DOCA_FLOW_FWD_DROP;
		break;
	default:
		*stage = XF_STAGE_GLUE;
		return DOCA_ERROR_INVALID_VALUE;
	}
	(void)flags; /* control entries have no flags argument */
#if XF_DOCA_AT_LEAST(3, 3)
	return doca_flow_pipe_control_add_entry(0, p->p, &match, &mask, NULL, s->has_mac ? &act : NULL, NULL, NULL,
						&mon, s->priority, &fwd, ctx, &e->e);
#else
	return doca_flow_pipe_control_add_entry(0, s->priority, p->p, &match, &mask, NULL, s->has_mac ? &act : NULL,
						NULL, NULL, &mon, &fwd, ctx, &e->e);
#endif
}

int xf_entries_add(const struct xf_entry_spec *specs, uint32_t n, uint64_t *out_handles, int32_t *out_err,
		   uint8_t *out_stage, uint32_t *out_nfailed)
{
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	uint32_t nfailed = 0;
	uint32_t *slots = NULL;
	if (X.state != XF_ST_OPEN) {
		rc = fail(DOCA_ERROR_BAD_STATE, "dpdk_glue", "the eSwitch is not open");
		goto out;
	}
	slots = malloc(sizeof(*slots) * (n ? n : 1));
	if (slots == NULL) {
		rc = fail(DOCA_ERROR_NO_MEMORY, "dpdk_glue", "batch of %u", n);
		goto out;
	}
	bool touched[XF_MAX_PORTS] = {false};
	X.pending = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct xf_entry_spec *s = &specs[i];
		out_handles[i] = 0;
		out_err[i] = DOCA_SUCCESS;
		out_stage[i] = XF_STAGE_OK;
		slots[i] = UINT32_MAX;
		uint32_t pidx;
		struct xf_pipe *p = pipe_lookup(s->pipe, &pidx);
		if (p == NULL) {
			out_err[i] = DOCA_ERROR_INVALID_VALUE;
			out_stage[i] = XF_STAGE_GLUE;
			nfailed++;
			continue;
		}
		uint32_t slot;
		doca_error_t r = ent_alloc(&slot);
		if (r != DOCA_SUCCESS) {
			out_err[i] = r;
			out_stage[i] = XF_STAGE_GLUE;
			nfailed++;
			continue;
		}
		/* the last entry of the batch flushes it */
		uint32_t flags = i + 1 == n ? XF_FLAG_NO_WAIT : XF_FLAG_BATCH;
		int32_t fwd_pipe;
		uint8_t stage;
		X.ents[slot].pipe = pidx;
		r = add_one(s, slot, p, flags, &stage, &fwd_pipe);
		if (r != DOCA_SUCCESS) {
			out_err[i] = r;
			out_stage[i] = stage;
			nfailed++;
			ent_free(slot);
			continue;
		}
		X.ents[slot].state = XF_E_PENDING;
		X.ents[slot].fwd_pipe = fwd_pipe;
		slots[i] = slot;
		X.pending++;
		touch(touched, process_port(p));
	}
	rc = process_all(touched);
	/* classify completions */
	for (uint32_t i = 0; i < n; i++) {
		if (slots[i] == UINT32_MAX)
			continue;
		struct xf_ent *e = &X.ents[slots[i]];
		if (e->done && e->status == DOCA_FLOW_ENTRY_STATUS_SUCCESS) {
			e->state = XF_E_ACTIVE;
			if (e->fwd_pipe >= 0)
				X.pipes[e->fwd_pipe].refs++;
		} else {
			e->state = XF_E_FAILED;
			out_err[i] = e->done ? glue_target_entry_error(e->e) : DOCA_ERROR_TIME_OUT;
			out_stage[i] = XF_STAGE_PROCESS;
			nfailed++;
		}
	}
	if (nfailed) {
		/* all-or-nothing: take back what this batch installed (and release failures) */
		uint32_t nrm = 0;
		for (uint32_t i = 0; i < n; i++)
			if (slots[i] != UINT32_MAX)
				slots[nrm++] = slots[i];
		remove_idx(slots, nrm);
		for (uint32_t i = 0; i < n; i++)
			out_handles[i] = 0;
		if (rc == DOCA_SUCCESS) {
			for (uint32_t i = 0; i < n; i++)
				if (out_err[i] != DOCA_SUCCESS) {
					if (out_err[i] == DOCA_ERROR_FULL && specs[i].meter_kind == XF_METER_ENTRY &&
					    out_stage[i] == XF_STAGE_ADD_BASIC)
						rc = fail(out_err[i], xf_stage_call(out_stage[i]),
							  "%u of %u entries failed; entry %u first: the per-entry meters "
							  "declared at init (meters=%u) are used up", nfailed, n, i, X.nr_meters);
					else
						rc = fail(out_err[i], xf_stage_call(out_stage[i]),
							  "%u of %u entries failed; entry %u first", nfailed, n, i);
					break;
				}
		}
	} else if (rc == DOCA_SUCCESS) {
		for (uint32_t i = 0; i < n; i++)
			out_handles[i] = ent_handle(slots[i]);
	}
out:
	free(slots);
	if (out_nfailed)
		*out_nfailed = nfailed;
	pthread_mutex_unlock(&X.mu);
	return rc;
}

/* Queue an in-place update restating the entry's record (MAC and meter): DOCA's update
 * takes the entry's actions and monitor as a whole. */
static doca_error_t queue_update(struct xf_ent *e, uint32_t flags)
{
	struct xf_pipe *p = &X.pipes[e->pipe];
	struct doca_flow_actions act;
	struct doca_flow_monitor mon;
	memset(&act, 0, sizeof(act));
	memcpy(act.outer.eth.dst_mac, e->mac, 6);
	entry_monitor(&mon, e);
	const struct doca_flow_actions *pa = e->has_mac ? &act : NULL;
	const struct doca_flow_monitor *pm = e->meter_kind ? &mon : NULL;
	e->done = 0;
#if XF_DOCA_AT_LEAST(3, 3)
	return doca_flow_pipe_basic_update_entry(0, p->p, 0, pa, pm, NULL, flags, e->e);
#else
	return doca_flow_pipe_update_entry(0, p->p, pa, pm, NULL, flags, e->e);
#endif
}

/* Queue the updates of idx[0..n) and wait for them; out_err per entry; 0 or the first error. */
static int update_batch(const uint32_t *idx, uint32_t n, int32_t *out_err)
{
	int rc = DOCA_SUCCESS;
	bool touched[XF_MAX_PORTS] = {false};
	X.pending = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct xf_ent *e = &X.ents[idx[i]];
		uint32_t flags = i + 1 == n ? XF_FLAG_NO_WAIT : XF_FLAG_BATCH;
		e->status = DOCA_FLOW_ENTRY_STATUS_ERROR;
		doca_error_t r = queue_update(e, flags);
		if (r != DOCA_SUCCESS) {
			out_err[i] = r;
			if (rc == DOCA_SUCCESS)
				rc = fail(r, XF_CALL_UPDATE, "entry %u of the batch", i);
			continue;
		}
		X.pending++;
		touch(touched, process_port(&X.pipes[e->pipe]));
	}
	int prc = process_all(touched);
	if (rc == DOCA_SUCCESS)
		rc = prc;
	for (uint32_t i = 0; i < n; i++) {
		struct xf_ent *e = &X.ents[idx[i]];
		if (out_err[i] == DOCA_SUCCESS && (!e->done || e->status != DOCA_FLOW_ENTRY_STATUS_SUCCESS)) {
			out_err[i] = DOCA_ERROR_DRIVER;
			if (rc == DOCA_SUCCESS)
				rc = fail(DOCA_ERROR_DRIVER, "doca_flow_entries_process", "update of entry %u failed", i);
		}
	}
	return rc;
}

/* Validate a batch of handles: installed basic entries (with their own meter if meter). */
static int update_targets(const uint64_t *handles, uint32_t n, bool meter, uint32_t *idx, int32_t *out_err)
{
	int rc = DOCA_SUCCESS;
	for (uint32_t i = 0; i < n; i++) {
		out_err[i] = DOCA_SUCCESS;
		struct xf_ent *e = ent_lookup(handles[i], &idx[i]);
		bool ok = e != NULL && e->state == XF_E_ACTIVE && X.pipes[e->pipe].kind == XF_P_BASIC;
		const char *what = "an installed service (basic) entry";
		if (ok && meter && e->meter_kind != XF_METER_ENTRY) {
			ok = false;
			what = "an entry with its own meter (a pipe with meter=entry)";
		} else if (ok && !meter && !e->has_mac) {
			ok = false;
			what = "an entry that sets a destination MAC";
		}
		for (uint32_t j = 0; j < i && ok; j++)
			if (idx[j] == idx[i]) {
				ok = false;
				what = "given once in the batch";
			}
		if (!ok) {
			out_err[i] = DOCA_ERROR_INVALID_VALUE;
			if (rc == DOCA_SUCCESS)
				rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "entry %u is not %s", i, what);
		}
	}
	return rc;
}

int xf_entries_update_mac(const uint64_t *handles, const uint8_t *macs, uint32_t n, int32_t *out_err)
{
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	uint32_t *idx = NULL;
	if (X.state != XF_ST_OPEN) {
		rc = fail(DOCA_ERROR_BAD_STATE, "dpdk_glue", "the eSwitch is not open");
		goto out;
	}
	idx = malloc(sizeof(*idx) * (n ? n : 1));
	if (idx == NULL) {
		rc = fail(DOCA_ERROR_NO_MEMORY, "dpdk_glue", "batch of %u", n);
		goto out;
	}
	/* validate the whole batch before queueing anything */
	rc = update_targets(handles, n, false, idx, out_err);
	if (rc != DOCA_SUCCESS)
		goto out;
	for (uint32_t i = 0; i < n; i++)
		memcpy(X.ents[idx[i]].mac, macs + 6 * (size_t)i, 6);
	rc = update_batch(idx, n, out_err);
out:
	free(idx);
	pthread_mutex_unlock(&X.mu);
	return rc;
}

int xf_entries_update_meter(const uint64_t *handles, const uint64_t *cir, const uint64_t *cbs, uint32_t n,
			    int32_t *out_err)
{
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	uint32_t *idx = NULL;
	uint64_t *old = NULL;
	if (X.state != XF_ST_OPEN) {
		rc = fail(DOCA_ERROR_BAD_STATE, "dpdk_glue", "the eSwitch is not open");
		goto out;
	}
	idx = malloc(sizeof(*idx) * (n ? n : 1));
	old = malloc(sizeof(*old) * 2 * (n ? n : 1));
	if (idx == NULL || old == NULL) {
		rc = fail(DOCA_ERROR_NO_MEMORY, "dpdk_glue", "batch of %u", n);
		goto out;
	}
	rc = update_targets(handles, n, true, idx, out_err);
	for (uint32_t i = 0; i < n && rc == DOCA_SUCCESS; i++)
		if (cir[i] == 0 || cbs[i] == 0)
			rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "entry %u: cir and cbs must be > 0", i);
	if (rc != DOCA_SUCCESS)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		struct xf_ent *e = &X.ents[idx[i]];
		old[2 * i] = e->cir;
		old[2 * i + 1] = e->cbs;
		e->cir = cir[i];
		e->cbs = cbs[i];
	}
	rc = update_batch(idx, n, out_err);
	if (rc != DOCA_SUCCESS) {
		/* all-or-nothing: the entries that took the new rate get their old one back */
		uint32_t nb = 0;
		for (uint32_t i = 0; i < n; i++) {
			struct xf_ent *e = &X.ents[idx[i]];
			e->cir = old[2 * i];
			e->cbs = old[2 * i + 1];
			if (out_err[i] == DOCA_SUCCESS)
				idx[nb++] = idx[i];
		}
		int32_t *tmp = calloc(nb ? nb : 1, sizeof(*tmp));
		char call[96], detail[256];
		snprintf(call, sizeof(call), "%s", X.last_call);
		snprintf(detail, sizeof(detail), "%s", X.last_detail);
		if (tmp && nb)
			update_batch(idx, nb, tmp);
		free(tmp);
		fail(rc, call, "%s (the batch was rolled back)", detail);
	}
out:
	free(idx);
	free(old);
	pthread_mutex_unlock(&X.mu);
	return rc;
}

int xf_entries_remove(const uint64_t *handles, uint32_t n, int32_t *out_err)
{
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	uint32_t *idx = NULL;
	if (X.state != XF_ST_OPEN) {
		rc = fail(DOCA_ERROR_BAD_STATE, "dpdk_glue", "the eSwitch is not open");
		goto out;
	}
	idx = malloc(sizeof(*idx) * (n ? n : 1));
	if (idx == NULL) {
		rc = fail(DOCA_ERROR_NO_MEMORY, "dpdk_glue", "batch of %u", n);
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		out_err[i] = DOCA_SUCCESS;
		if (ent_lookup(handles[i], &idx[i]) == NULL) {
			out_err[i] = DOCA_ERROR_INVALID_VALUE;
			if (rc == DOCA_SUCCESS)
				rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "entry %u is not installed", i);
		}
		for (uint32_t j = 0; j < i && rc == DOCA_SUCCESS; j++)
			if (idx[j] == idx[i])
				rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "entry %u given twice", i);
	}
	if (rc == DOCA_SUCCESS)
		rc = remove_idx(idx, n);
out:
	free(idx);
	pthread_mutex_unlock(&X.mu);
	return rc;
}

int xf_entries_query(const uint64_t *handles, uint32_t n, uint64_t *out_pkts, uint64_t *out_bytes)
{
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	if (X.state != XF_ST_OPEN) {
		rc = fail(DOCA_ERROR_BAD_STATE, "dpdk_glue", "the eSwitch is not open");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct xf_ent *e = ent_lookup(handles[i], NULL);
		if (e == NULL || e->state != XF_E_ACTIVE) {
			rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "entry %u is not installed", i);
			goto out;
		}
		struct doca_flow_resource_query q;
		memset(&q, 0, sizeof(q));
		doca_error_t r = doca_flow_resource_query_entry(e->e, &q);
		out_pkts[i] = q.counter.total_pkts;
		out_bytes[i] = q.counter.total_bytes;
		if (r != DOCA_SUCCESS) {
			rc = fail(r, XF_CALL_QUERY, "entry %u of the batch", i);
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&X.mu);
	return rc;
}

/* ------------------------------------------------------------------------------------ */
/* stats, close                                                                          */

int xf_port_stats(uint16_t port_id, struct xf_port_stats *out)
{
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	memset(out, 0, sizeof(*out));
	if (X.state != XF_ST_OPEN || glue_port(port_id) == NULL) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "port %u is not started", port_id);
		goto out;
	}
	rc = glue_target_port_stats(port_id, out);
out:
	pthread_mutex_unlock(&X.mu);
	return rc;
}

static void remove_runtime_dir(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return;
	struct dirent *de;
	char f[PATH_MAX + 256];
	while ((de = readdir(d)) != NULL) {
		if (de->d_type == DT_DIR)
			continue;
		snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
		unlink(f);
	}
	closedir(d);
	rmdir(path);
}

int xf_close(void)
{
	pthread_mutex_lock(&X.mu);
	if (X.state != XF_ST_OPEN) {
		pthread_mutex_unlock(&X.mu);
		return DOCA_SUCCESS;
	}
	/* the samples' order: pipes flushed and ports stopped (switch managers last), DOCA Flow
	 * destroyed, ethdevs closed, the EAL cleaned up, and only then the functions closed */
	int rc = glue_ports_stop();
	memset(X.sroots, 0, sizeof(X.sroots));
	doca_flow_destroy();
	memset(X.pipes, 0, sizeof(X.pipes));
	free(X.meters);
	X.meters = NULL;
	X.nr_shared = 0;
	free(X.ents);
	X.ents = NULL;
	X.ents_cap = 0;
	X.free_head = 0;
	/* the EAL leaves its runtime dir (/var/run/dpdk/<file-prefix>) behind: the prefix is
	 * this process's own, so remove the files in it and the dir */
	char rdir[PATH_MAX];
	snprintf(rdir, sizeof(rdir), "%s", rte_eal_get_runtime_dir());
	glue_ethdevs_close();
#ifdef SOFTDOCA_VERSION
	glue_functions_close(); /* softdoca's functions are DPDK vdevs: they go before the EAL does */
	rte_eal_cleanup();
#else
	rte_eal_cleanup();
	glue_functions_close();
#endif
	remove_runtime_dir(rdir);
	X.state = XF_ST_CLOSED;
	pthread_mutex_unlock(&X.mu);
	return rc;
}

/* ------------------------------------------------------------------------------------ */
/* target: real DOCA (softdoca's is glue_softdoca.c)                                     */

#ifndef SOFTDOCA_VERSION
const char *xf_target(void)
{
	return "doca";
}

/* The hardware counts misses only if the root pipe has a miss counter; report the ethdev
 * counters and leave the miss fields invalid (valid=0). */
int glue_target_port_stats(uint16_t port_id, struct xf_port_stats *out)
{
	struct rte_eth_stats es;
	uint16_t pid = glue_dpdk_port_id(port_id); /* representors: none of their own here */
	if (pid != XF_NO_PORT && rte_eth_stats_get(pid, &es) == 0) {
		out->rx_pkts = es.ipackets;
		out->rx_bytes = es.ibytes;
		out->tx_pkts = es.opackets;
		out->tx_bytes = es.obytes;
	}
	out->valid = 0;
	return DOCA_SUCCESS;
}

doca_error_t glue_target_entry_error(struct doca_flow_pipe_entry *entry)
{
	(void)entry;
	return DOCA_ERROR_DRIVER; /* the SDK reports only the status; details are in its log */
}
#endif
