/*
 * dpdk_glue: C shim over DOCA Flow (real SDK or softdoca) + the DPDK EAL.  See glue.h.
 *
 * One source, two targets: built against a real DOCA SDK (DOCA 2.7 .. 3.x, hws) or against
 * softdoca (dpdk_glue/softdoca), whose headers are shaped like DOCA's.  Every difference
 * between DOCA generations is decided here with DOCA's own version macros; softdoca can be
 * built as a 2.8-, 3.2- or 3.3-like API (SOFTDOCA_API) so each branch is compiled and tested.
 *
 * This file is the product path only: what a BlueField build compiles.  What the target
 * itself provides (its name, port counters, why an entry failed) is in the "target" section
 * below for real DOCA and in glue_softdoca.c for softdoca, which also holds the softdoca-only
 * knobs (glue_softdoca.h).  Without SOFTDOCA_VERSION the target is a DPDK application whose
 * ethdevs this file configures; softdoca opens its own vdevs.
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

#define XF_DOCA_AT_LEAST(ma, mi) (DOCA_VER_MAJOR > (ma) || (DOCA_VER_MAJOR == (ma) && DOCA_VER_MINOR >= (mi)))

#if !XF_DOCA_AT_LEAST(2, 7)
#error "dpdk_glue needs DOCA Flow 2.7 or later (opaque configuration objects)"
#endif

#if !defined(SOFTDOCA_VERSION) && XF_DOCA_AT_LEAST(3, 1)
#include <doca_dpdk.h> /* 3.1+: ports are bound to a doca_dev */
#endif

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

/* Counters and removal were renamed in 2.9. */
#if XF_DOCA_AT_LEAST(2, 9)
#define XF_CALL_REMOVE "doca_flow_pipe_remove_entry"
#define XF_CALL_QUERY "doca_flow_resource_query_entry"
#else
#define XF_CALL_REMOVE "doca_flow_pipe_rm_entry"
#define XF_CALL_QUERY "doca_flow_query_entry"
#endif

#define XF_MAX_PORTS 16
#define XF_MAX_PIPES 4096
#define XF_PROCESS_TIMEOUT_US 10000
#define XF_PROCESS_DEADLINE_NS 2000000000LL /* give up waiting for completions after 2 s */
#define XF_DEFAULT_PIPE_ENTRIES 8192

/* Run one configuration step unless an earlier one failed; remember which call failed. */
#define STEP(name, expr)                          \
	do {                                      \
		if (rc == DOCA_SUCCESS) {         \
			call = (name);            \
			rc = (expr);              \
		}                                 \
	} while (0)

_Static_assert(sizeof(struct xf_match) == 16, "xf_match layout is shared with Python");
_Static_assert(sizeof(struct xf_entry_spec) == 56, "xf_entry_spec layout is shared with Python");

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
};

struct xf_ent {
	struct doca_flow_pipe_entry *e;
	uint32_t gen;
	uint32_t pipe;      /* index into pipes[] */
	int32_t fwd_pipe;   /* index of the pipe a control entry forwards to, or -1 */
	uint8_t state;
	uint8_t done;       /* completion seen (callback) */
	uint8_t status;     /* enum doca_flow_entry_status from the callback */
	uint32_t next_free;
};

static struct {
	pthread_mutex_t mu;
	int state;
	bool switch_mode;
	struct doca_flow_port *ports[XF_MAX_PORTS];
	uint16_t start_order[XF_MAX_PORTS];
	uint16_t nports;
	struct doca_flow_pipe *switch_root; /* switch mode: the one root pipe, shared by ports */
	uint32_t switch_root_users;
	struct xf_pipe pipes[XF_MAX_PIPES];
	struct xf_ent *ents;
	uint32_t ents_cap;
	uint32_t free_head; /* 1-based, 0 = none */
	uint32_t pending;   /* completions still expected */
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
	return DOCA_VER_STRING;
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
	*idx_out = idx;
	return DOCA_SUCCESS;
}

static void ent_free(uint32_t idx)
{
	struct xf_ent *e = &X.ents[idx];
	if (e->fwd_pipe >= 0 && e->state == XF_E_ACTIVE)
		X.pipes[e->fwd_pipe].refs--;
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

/* The port whose queue carries a pipe's entries (switch mode: the switch manager). */
static struct doca_flow_port *process_port(const struct xf_pipe *p)
{
	if (X.switch_mode)
		return X.ports[X.start_order[0]];
	return X.ports[p->port];
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
		for (int i = 0; i < XF_MAX_PORTS; i++) {
			if (!touched[i] || X.ports[i] == NULL)
				continue;
			doca_error_t rc = doca_flow_entries_process(X.ports[i], 0, XF_PROCESS_TIMEOUT_US, 0);
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
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	if (X.state != XF_ST_FRESH) {
		rc = fail(DOCA_ERROR_BAD_STATE, "rte_eal_init",
			  "the DPDK EAL initialises once per process; this process already used it");
		goto out;
	}
	if (mode == NULL || (strcmp(mode, "vnf") != 0 && strcmp(mode, "switch") != 0)) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "mode must be 'vnf' or 'switch'");
		goto out;
	}
	X.state = XF_ST_CLOSED; /* a failed rte_eal_init cannot be retried either */
	int parsed = rte_eal_init(argc, argv); /* returns the number of arguments parsed */
	if (parsed < 0) {
		rc = fail(DOCA_ERROR_INITIALIZATION, "rte_eal_init", "%s", rte_strerror(rte_errno));
		goto out;
	}
	struct doca_flow_cfg *cfg = NULL;
	char mode_args[32];
	snprintf(mode_args, sizeof(mode_args), "%s,hws", mode);
	const char *call = "doca_flow_cfg_create";
	rc = doca_flow_cfg_create(&cfg);
	STEP("doca_flow_cfg_set_pipe_queues", doca_flow_cfg_set_pipe_queues(cfg, 1));
	STEP("doca_flow_cfg_set_mode_args", doca_flow_cfg_set_mode_args(cfg, mode_args));
	STEP("doca_flow_cfg_set_nr_counters", doca_flow_cfg_set_nr_counters(cfg, 1u << 20));
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

#ifndef SOFTDOCA_VERSION
/* Real DOCA up to 3.2 is a DPDK application: the ethdev is configured and started first. */
static struct rte_mempool *xf_pool;

static int dpdk_port_setup(uint16_t port_id)
{
	if (!rte_eth_dev_is_valid_port(port_id))
		return fail(DOCA_ERROR_NOT_FOUND, "rte_eth_dev_is_valid_port", "no DPDK port %u", port_id);
	if (xf_pool == NULL) {
		xf_pool = rte_pktmbuf_pool_create("xf_mbufs", 8191, 250, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
						  (int)rte_socket_id());
		if (xf_pool == NULL)
			return fail(DOCA_ERROR_NO_MEMORY, "rte_pktmbuf_pool_create", "%s", rte_strerror(rte_errno));
	}
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	int r;
	if ((r = rte_eth_dev_configure(port_id, 1, 1, &conf)) != 0)
		return fail(DOCA_ERROR_DRIVER, "rte_eth_dev_configure", "port %u: %d", port_id, r);
	if ((r = rte_eth_rx_queue_setup(port_id, 0, 1024, rte_eth_dev_socket_id(port_id), NULL, xf_pool)) != 0)
		return fail(DOCA_ERROR_DRIVER, "rte_eth_rx_queue_setup", "port %u: %d", port_id, r);
	if ((r = rte_eth_tx_queue_setup(port_id, 0, 1024, rte_eth_dev_socket_id(port_id), NULL)) != 0)
		return fail(DOCA_ERROR_DRIVER, "rte_eth_tx_queue_setup", "port %u: %d", port_id, r);
	if ((r = rte_eth_dev_start(port_id)) != 0)
		return fail(DOCA_ERROR_DRIVER, "rte_eth_dev_start", "port %u: %d", port_id, r);
	return DOCA_SUCCESS;
}
#endif

int xf_port_start(uint16_t port_id, const char *devargs)
{
	pthread_mutex_lock(&X.mu);
	int rc = DOCA_SUCCESS;
	struct doca_flow_port_cfg *cfg = NULL;
	const char *call = "doca_flow_port_cfg_create";
	if (X.state != XF_ST_OPEN) {
		rc = fail(DOCA_ERROR_BAD_STATE, "dpdk_glue", "the eSwitch is not open");
		goto out;
	}
	if (port_id >= XF_MAX_PORTS || X.ports[port_id] != NULL) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "port id %u out of range or already started", port_id);
		goto out;
	}
#ifndef SOFTDOCA_VERSION
	if (!X.switch_mode || X.nports == 0) {
		rc = dpdk_port_setup(port_id);
		if (rc != DOCA_SUCCESS)
			goto out;
	}
#endif
	rc = doca_flow_port_cfg_create(&cfg);
#if XF_DOCA_AT_LEAST(3, 0)
	/* 3.0+: the logical port id has its own setter */
	STEP("doca_flow_port_cfg_set_port_id", doca_flow_port_cfg_set_port_id(cfg, port_id));
	if (devargs && devargs[0])
		STEP("doca_flow_port_cfg_set_devargs", doca_flow_port_cfg_set_devargs(cfg, devargs));
#else
	/* 2.7..2.10: the port id travels in devargs, as a number */
	char buf[300];
	if (devargs && devargs[0])
		snprintf(buf, sizeof(buf), "%u,%s", port_id, devargs);
	else
		snprintf(buf, sizeof(buf), "%u", port_id);
	STEP("doca_flow_port_cfg_set_devargs", doca_flow_port_cfg_set_devargs(cfg, buf));
#endif
#if !defined(SOFTDOCA_VERSION) && XF_DOCA_AT_LEAST(3, 1)
	/* 3.1+: the port is bound to the doca_dev behind the DPDK port */
	struct doca_dev *dev = NULL;
	STEP("doca_dpdk_port_as_dev", doca_dpdk_port_as_dev(port_id, &dev));
	STEP("doca_flow_port_cfg_set_dev", doca_flow_port_cfg_set_dev(cfg, dev));
#endif
	struct doca_flow_port *port = NULL;
	STEP("doca_flow_port_start", doca_flow_port_start(cfg, &port));
	if (rc != DOCA_SUCCESS) {
		rc = fail(rc, call, "port %u devargs '%s'", port_id, devargs ? devargs : "");
		goto out;
	}
	X.ports[port_id] = port;
	X.start_order[X.nports++] = port_id;
out:
	if (cfg)
		doca_flow_port_cfg_destroy(cfg);
	pthread_mutex_unlock(&X.mu);
	return rc;
}

/* ------------------------------------------------------------------------------------ */
/* pipes                                                                                 */

static void set_l3l4_selectors(struct doca_flow_match *m, const struct xf_match *mask)
{
	if (mask->ipv4_src || mask->ipv4_dst || mask->ip_proto || mask->l4_src || mask->l4_dst)
		m->outer.l3_type = DOCA_FLOW_L3_TYPE_IP4;
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

/* xf_match (host order) -> doca_flow_match (network order).  The l3/l4 selectors (union
 * discriminators) come from the mask: the same in the value and the mask struct. */
static void fill_match(struct doca_flow_match *m, const struct xf_match *x, const struct xf_match *sel_val,
		       const struct xf_match *sel_mask)
{
	memset(m, 0, sizeof(*m));
	m->outer.eth.type = htons(x->eth_type);
	set_l3l4_selectors(m, sel_mask);
	m->outer.ip4.src_ip = htonl(x->ipv4_src);
	m->outer.ip4.dst_ip = htonl(x->ipv4_dst);
	m->outer.ip4.next_proto = x->ip_proto;
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

static int create_pipe(uint16_t port_id, const char *name, bool root, const struct xf_match *mask,
		       uint16_t fwd_port, uint32_t nr_entries, struct doca_flow_pipe **out)
{
	struct doca_flow_pipe_cfg *cfg = NULL;
	struct doca_flow_port *owner = X.switch_mode ? X.ports[X.start_order[0]] : X.ports[port_id];
	const char *call = "doca_flow_pipe_cfg_create";
	doca_error_t rc = doca_flow_pipe_cfg_create(&cfg, owner);
	struct doca_flow_monitor mon;
	memset(&mon, 0, sizeof(mon));
	mon.counter_type = DOCA_FLOW_RESOURCE_TYPE_NON_SHARED;
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
		};
		fill_match(&tmpl, &ones, mask, mask);
		fill_match(&msk, mask, mask, mask);
		struct doca_flow_actions act;
		memset(&act, 0, sizeof(act));
		memset(act.outer.eth.dst_mac, 0xff, 6); /* dst MAC: per entry */
		struct doca_flow_actions *acts[1] = {&act};
		STEP("doca_flow_pipe_cfg_set_match", doca_flow_pipe_cfg_set_match(cfg, &tmpl, &msk));
		STEP("doca_flow_pipe_cfg_set_actions", doca_flow_pipe_cfg_set_actions(cfg, acts, NULL, NULL, 1));
		STEP("doca_flow_pipe_cfg_set_monitor", doca_flow_pipe_cfg_set_monitor(cfg, &mon));
		fwd.type = DOCA_FLOW_FWD_PORT;
		fwd.port_id = fwd_port;
	}
	/* fwd_miss NULL: the default miss (softdoca: the ingress port's representor) */
	STEP("doca_flow_pipe_create", doca_flow_pipe_create(cfg, root ? NULL : &fwd, NULL, out));
	if (cfg)
		doca_flow_pipe_cfg_destroy(cfg);
	if (rc != DOCA_SUCCESS)
		return fail(rc, call, "pipe '%s' on port %u", name, port_id);
	return DOCA_SUCCESS;
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
	if (port_id >= XF_MAX_PORTS || X.ports[port_id] == NULL) {
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
		/* one FDB root on the switch manager; per-port roots are views of it whose
		 * entries also match the ingress port (parser_meta) */
		if (X.switch_root == NULL)
			rc = create_pipe(port_id, "xf_switch_root", true, NULL, 0,
					 nr_entries * XF_MAX_PORTS, &X.switch_root);
		p = X.switch_root;
		if (rc == DOCA_SUCCESS)
			X.switch_root_users++;
	} else {
		rc = create_pipe(port_id, name, true, NULL, 0, nr_entries, &p);
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
	pthread_mutex_lock(&X.mu);
	int rc;
	uint32_t idx = 0;
	if (X.state != XF_ST_OPEN) {
		rc = fail(DOCA_ERROR_BAD_STATE, "dpdk_glue", "the eSwitch is not open");
		goto out;
	}
	if (port_id >= XF_MAX_PORTS || X.ports[port_id] == NULL || fwd_port >= XF_MAX_PORTS ||
	    X.ports[fwd_port] == NULL) {
		rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "port %u or egress port %u is not started", port_id,
			  fwd_port);
		goto out;
	}
	rc = pipe_alloc(&idx);
	if (rc != DOCA_SUCCESS) {
		rc = fail(rc, "dpdk_glue", "too many pipes");
		goto out;
	}
	struct doca_flow_pipe *p = NULL;
	rc = create_pipe(port_id, name, false, mask, fwd_port, nr_entries, &p);
	if (rc != DOCA_SUCCESS)
		goto out;
	X.pipes[idx] = (struct xf_pipe){.p = p, .gen = X.pipes[idx].gen, .port = port_id, .kind = XF_P_BASIC,
					.mask = *mask};
	*out_pipe = pipe_handle(idx);
out:
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
#if XF_DOCA_AT_LEAST(2, 9)
		doca_error_t rc = doca_flow_pipe_remove_entry(0, flags, e->e);
#else
		doca_error_t rc = doca_flow_pipe_rm_entry(0, flags, e->e);
#endif
		if (rc != DOCA_SUCCESS) {
			if (first == DOCA_SUCCESS)
				first = fail(rc, XF_CALL_REMOVE, "entry %u", idx[i]);
			continue;
		}
		X.pending++;
		struct doca_flow_port *pp = process_port(p);
		for (int k = 0; k < XF_MAX_PORTS; k++)
			if (X.ports[k] == pp)
				touched[k] = true;
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
		rc = fail(DOCA_ERROR_IN_USE, "doca_flow_pipe_destroy", "%u root entries still forward to this pipe",
			  p->refs);
		goto out;
	}
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
		if (--X.switch_root_users == 0) {
			doca_flow_pipe_destroy(X.switch_root);
			X.switch_root = NULL;
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
		*stage = XF_STAGE_ADD_BASIC;
		if (!s->has_mac)
			return DOCA_ERROR_INVALID_VALUE;
		/* the l3/l4 selectors are set exactly as in the pipe's template */
		fill_match(&match, &s->match, &p->mask, &p->mask);
#if XF_DOCA_AT_LEAST(3, 3)
		return doca_flow_pipe_basic_add_entry(0, p->p, &match, 0, &act, NULL, NULL, flags, ctx, &e->e);
#else
		act.action_idx = 0;
		return doca_flow_pipe_add_entry(0, p->p, &match, &act, NULL, NULL, flags, ctx, &e->e);
#endif
	}

	*stage = XF_STAGE_ADD_CONTROL;
	fill_match(&match, &s->match, &s->match, &s->mask);
	fill_match(&mask, &s->mask, &s->match, &s->mask);
	if (X.switch_mode) {
		set_match_port(&match, p->port);
		set_match_port(&mask, 0xffff);
	}
	switch (s->fwd_kind) {
	case XF_FWD_PORT:
		if (s->fwd_target >= XF_MAX_PORTS || X.ports[s->fwd_target] == NULL) {
			*stage = XF_STAGE_GLUE;
			return DOCA_ERROR_INVALID_VALUE;
		}
		fwd.type = DOCA_FLOW_FWD_PORT;
		fwd.port_id = (uint16_t)s->fwd_target;
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
		struct doca_flow_port *pp = process_port(p);
		for (int k = 0; k < XF_MAX_PORTS; k++)
			if (X.ports[k] == pp)
				touched[k] = true;
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
					rc = fail(out_err[i], xf_stage_call(out_stage[i]), "%u of %u entries failed; entry %u first",
						  nfailed, n, i);
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
	for (uint32_t i = 0; i < n; i++) {
		out_err[i] = DOCA_SUCCESS;
		struct xf_ent *e = ent_lookup(handles[i], &idx[i]);
		if (e == NULL || e->state != XF_E_ACTIVE || X.pipes[e->pipe].kind != XF_P_BASIC) {
			out_err[i] = DOCA_ERROR_INVALID_VALUE;
			if (rc == DOCA_SUCCESS)
				rc = fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue",
					  "entry %u is not an installed service (basic) entry", i);
		}
	}
	if (rc != DOCA_SUCCESS)
		goto out;
	bool touched[XF_MAX_PORTS] = {false};
	X.pending = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct xf_ent *e = &X.ents[idx[i]];
		struct xf_pipe *p = &X.pipes[e->pipe];
		struct doca_flow_actions act;
		memset(&act, 0, sizeof(act));
		memcpy(act.outer.eth.dst_mac, macs + 6 * (size_t)i, 6);
		uint32_t flags = i + 1 == n ? XF_FLAG_NO_WAIT : XF_FLAG_BATCH;
		e->done = 0;
#if XF_DOCA_AT_LEAST(3, 3)
		doca_error_t r = doca_flow_pipe_basic_update_entry(0, p->p, 0, &act, NULL, NULL, flags, e->e);
#else
		doca_error_t r = doca_flow_pipe_update_entry(0, p->p, &act, NULL, NULL, flags, e->e);
#endif
		if (r != DOCA_SUCCESS) {
			out_err[i] = r;
			if (rc == DOCA_SUCCESS)
				rc = fail(r, XF_CALL_UPDATE, "entry %u of the batch", i);
			continue;
		}
		X.pending++;
		struct doca_flow_port *pp = process_port(p);
		for (int k = 0; k < XF_MAX_PORTS; k++)
			if (X.ports[k] == pp)
				touched[k] = true;
	}
	int prc = process_all(touched);
	if (rc == DOCA_SUCCESS)
		rc = prc;
	for (uint32_t i = 0; i < n && rc == DOCA_SUCCESS; i++) {
		struct xf_ent *e = &X.ents[idx[i]];
		if (!e->done || e->status != DOCA_FLOW_ENTRY_STATUS_SUCCESS) {
			out_err[i] = DOCA_ERROR_DRIVER;
			rc = fail(DOCA_ERROR_DRIVER, "doca_flow_entries_process", "update of entry %u failed", i);
		}
	}
out:
	free(idx);
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
#if XF_DOCA_AT_LEAST(2, 9)
		struct doca_flow_resource_query q;
		memset(&q, 0, sizeof(q));
		doca_error_t r = doca_flow_resource_query_entry(e->e, &q);
		out_pkts[i] = q.counter.total_pkts;
		out_bytes[i] = q.counter.total_bytes;
#else
		struct doca_flow_query q;
		memset(&q, 0, sizeof(q));
		doca_error_t r = doca_flow_query_entry(e->e, &q);
		out_pkts[i] = q.total_pkts;
		out_bytes[i] = q.total_bytes;
#endif
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
	if (X.state != XF_ST_OPEN || port_id >= XF_MAX_PORTS || X.ports[port_id] == NULL) {
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
	/* flush every port's pipes first (entries die with them), then stop the ports in
	 * reverse start order: in switch mode the manager was started first and stops last */
	for (int i = X.nports - 1; i >= 0; i--)
		doca_flow_port_pipes_flush(X.ports[X.start_order[i]]);
	int rc = DOCA_SUCCESS;
	for (int i = X.nports - 1; i >= 0; i--) {
		uint16_t id = X.start_order[i];
		doca_error_t r = doca_flow_port_stop(X.ports[id]);
		if (r != DOCA_SUCCESS && rc == DOCA_SUCCESS)
			rc = fail(r, "doca_flow_port_stop", "port %u", id);
		X.ports[id] = NULL;
#ifndef SOFTDOCA_VERSION
		rte_eth_dev_stop(id);
		rte_eth_dev_close(id);
#endif
	}
	X.nports = 0;
	X.switch_root = NULL;
	X.switch_root_users = 0;
	doca_flow_destroy();
	memset(X.pipes, 0, sizeof(X.pipes));
	free(X.ents);
	X.ents = NULL;
	X.ents_cap = 0;
	X.free_head = 0;
	/* the EAL leaves its runtime dir (/var/run/dpdk/<file-prefix>) behind: the prefix is
	 * this process's own, so remove the files in it and the dir */
	char rdir[PATH_MAX];
	snprintf(rdir, sizeof(rdir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
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
	if (rte_eth_stats_get(port_id, &es) == 0) {
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
