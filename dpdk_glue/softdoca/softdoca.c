/*
 * softdoca: a behavioural model of the DOCA Flow subset XenoFlow uses, forwarding real
 * packets between DPDK virtual devices (net_af_packet / net_af_xdp on veths).
 *
 * Threads.  The control plane (every doca_flow_* call) runs on the caller's thread; like
 * DOCA, it must be serialised by the caller (glue.c holds a mutex).  One forwarding thread
 * (an EAL worker lcore, or a pthread when the EAL has only one lcore) polls every port.
 *
 * Consistency between the two (the forwarder must never see a half-made change):
 *  - lookup structures are published with atomic pointer stores (release) and read with
 *    acquire loads; a control pipe's entries are an immutable sorted snapshot, rebuilt and
 *    swapped per entries_process; a basic pipe is an open-addressing hash table whose slots
 *    are atomic pointers (insert = one store into a free slot, delete = a tombstone store);
 *  - an in-place update (new dst MAC) is ONE atomic 64-bit store of the entry's action word
 *    (flag + 48-bit MAC), so the forwarder reads either the old or the new MAC, never a mix;
 *    cheaper than an RCU copy of the entry and keeps the entry's counters in place;
 *  - memory that the forwarder may still hold (removed entries, old snapshots/tables,
 *    destroyed pipes) is freed only after a grace period: QSBR, the forwarder bumps a
 *    counter between bursts (it holds no references there) and flags itself offline while
 *    it sleeps; the control plane waits for one bump or for offline once per
 *    entries_process, not per entry.
 * Counters have a single writer (the forwarder), so they are relaxed atomic stores, not
 * locked adds; readers get a possibly slightly stale but untorn value.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_bus_vdev.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>

#include "sd_internal.h"

#define SD_BURST 32
#define SD_RX_DESC 512
#define SD_TX_DESC 512
/* af_packet ring frames per direction (4 MiB each at 2 KiB frames). 512 (2.5 ms at 200 kpps)
 * lost 0.06-0.7 % at 100-200 kpps whenever the forwarder lost its vCPU for a moment on a
 * 2-vCPU VM; 2048 lost nothing at up to 200 kpps in 3 of 3 repetitions (same run, 22-B UDP) */
#define SD_AFP_FRAMES 2048
#define SD_NB_MBUFS 4095          /* per af_packet port (2 vdevs x 512 rx descriptors + in flight) */
#define SD_NB_MBUFS_XDP (2 * 4096 + 2047) /* af_xdp takes 4096 mbufs per rx queue for its UMEM */
#define SD_MBUF_CACHE 256

#define LOAD_ACQ(p) atomic_load_explicit((p), memory_order_acquire)
#define STORE_REL(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define RLX_ADD(p, v) __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + (v), __ATOMIC_RELAXED)
#define RLX_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

/* ------------------------------------------------------------------------------------ */
/* objects                                                                              */

struct doca_flow_cfg {
	uint16_t queues;
	bool mode_set, switch_mode;
	doca_flow_entry_process_cb cb;
};

struct doca_flow_port_cfg {
	int port_id; /* -1: take it from devargs */
	char devargs[256];
};

struct doca_flow_pipe_cfg {
	struct doca_flow_port *port;
	char name[64];
	enum doca_flow_pipe_type type;
	bool is_root;
	uint32_t nr_entries;
	bool has_match, has_mask;
	struct doca_flow_match match, mask;
	bool has_actions;
	struct doca_flow_actions actions;
	bool counters;
};

enum sd_estate { SD_E_PENDING = 0, SD_E_ACTIVE, SD_E_FAILED, SD_E_GONE };

struct doca_flow_pipe_entry {
	struct doca_flow_pipe *pipe;
	struct sd_key val;  /* value (already within the mask) */
	struct sd_key mask; /* control entries: own mask; basic entries: copy of the pipe mask */
	uint32_t priority;
	uint64_t seq; /* insertion order: tie-break among equal priorities */
	_Atomic uint64_t act_mac;
	struct sd_fwd fwd;
	uint64_t pkts, bytes; /* single writer: the forwarder */
	enum doca_flow_entry_status status;
	enum sd_estate state;
	bool inject_fail;
	doca_error_t err; /* why the add failed in entries_process */
	void *usr_ctx;
	struct doca_flow_pipe_entry *prev, *next; /* all entries of the pipe */
	struct doca_flow_pipe_entry *free_next;
};

struct doca_flow_pipe {
	struct doca_flow_port *port;
	char name[64];
	enum doca_flow_pipe_type type;
	bool is_root;
	bool dead;             /* destroyed, kept as a zombie while control entries point here */
	uint32_t refs;         /* control entries forwarding here */
	uint32_t nr_entries;   /* capacity */
	uint32_t nr_used;      /* entries added and not yet removed */
	struct sd_key mask;    /* basic: the pipe's match mask */
	uint8_t mac_mode;      /* 0 no MAC action, 1 constant, 2 per entry */
	uint64_t const_mac;
	struct sd_fwd fwd, fwd_miss;
	bool ctl_dirty;
	_Atomic(struct sd_htab *) htab;         /* basic */
	_Atomic(struct sd_ctl_snap *) snap;     /* control */
	uint64_t miss_pkts, miss_bytes;         /* single writer: the forwarder */
	struct doca_flow_pipe_entry *entries;   /* list of all entries (any state) */
	struct doca_flow_pipe *next_pipe_of_port;
	struct doca_flow_pipe *free_next;
};

enum sd_op_kind { SD_OP_ADD, SD_OP_UPD, SD_OP_DEL };

struct sd_op {
	uint8_t kind;
	struct doca_flow_pipe_entry *e;
	uint64_t mac;
};

struct sd_queue {
	struct sd_op *ops;
	uint32_t n, cap;
};

struct doca_flow_port {
	uint16_t id;
	atomic_int active;
	bool has_io;
	bool is_switch_manager;
	uint16_t wire_eth, rep_eth;
	char wire_vdev[64], rep_vdev[64];
	_Atomic(struct doca_flow_pipe *) root;
	struct doca_flow_pipe *pipes; /* all pipes created on this port */
	struct sd_queue q[SD_MAX_QUEUES];
	struct softdoca_port_stats st; /* single writer: the forwarder */
	struct rte_mempool *pool;      /* the port's mbufs (sized for its driver) */
};

static struct {
	bool inited;
	bool switch_mode;
	uint16_t queues;
	doca_flow_entry_process_cb cb;
	struct doca_flow_port *ports[SD_MAX_PORTS];
	struct doca_flow_port *switch_port;
	uint64_t seq;
	/* forwarder */
	atomic_int fwd_running;
	atomic_int fwd_stop;
	_Atomic uint64_t qs_count;
	atomic_int fwd_offline;
	int fwd_lcore; /* -1: pthread */
	pthread_t fwd_thread;
	atomic_int busy_poll;
	atomic_int bench_bypass; /* benchmark baseline: plain io loop, port X -> port X^1 */
	_Atomic uint64_t bench_mac; /* bypass: dst MAC every frame gets (mac_word), 0 = untouched */
	atomic_uint spin_us, sleep_us;
	uint64_t busy_cycles, busy_pkts; /* forwarder iterations that moved packets (single writer) */
	/* deferred frees (after a grace period) */
	struct doca_flow_pipe_entry *free_entries;
	struct doca_flow_pipe *free_pipes;
	void *free_blobs[64];
	uint32_t n_free_blobs;
	/* fault injection */
	uint32_t inject_nth;
	int inject_at_process;
} G = {.spin_us = 50, .sleep_us = 20, .fwd_lcore = -1}; /* back-off: see bench_glue_forward */

/* ------------------------------------------------------------------------------------ */
/* errors                                                                               */

static const char *const err_names[] = {
	"DOCA_SUCCESS", "DOCA_ERROR_UNKNOWN", "DOCA_ERROR_NOT_PERMITTED", "DOCA_ERROR_IN_USE",
	"DOCA_ERROR_NOT_SUPPORTED", "DOCA_ERROR_AGAIN", "DOCA_ERROR_INVALID_VALUE", "DOCA_ERROR_NO_MEMORY",
	"DOCA_ERROR_INITIALIZATION", "DOCA_ERROR_TIME_OUT", "DOCA_ERROR_SHUTDOWN", "DOCA_ERROR_CONNECTION_RESET",
	"DOCA_ERROR_CONNECTION_ABORTED", "DOCA_ERROR_CONNECTION_INPROGRESS", "DOCA_ERROR_NOT_CONNECTED",
	"DOCA_ERROR_NO_LOCK", "DOCA_ERROR_NOT_FOUND", "DOCA_ERROR_IO_FAILED", "DOCA_ERROR_BAD_STATE",
	"DOCA_ERROR_UNSUPPORTED_VERSION", "DOCA_ERROR_OPERATING_SYSTEM", "DOCA_ERROR_DRIVER",
	"DOCA_ERROR_UNEXPECTED", "DOCA_ERROR_ALREADY_EXIST", "DOCA_ERROR_FULL", "DOCA_ERROR_EMPTY",
	"DOCA_ERROR_IN_PROGRESS", "DOCA_ERROR_TOO_BIG", "DOCA_ERROR_AUTHENTICATION", "DOCA_ERROR_BAD_CONFIG",
	"DOCA_ERROR_SKIPPED", "DOCA_ERROR_DEVICE_FATAL_ERROR",
};

static const char *const err_descr[] = {
	"Success", "Unknown error", "Operation not permitted", "Resource in use", "Operation not supported",
	"Resource temporarily unavailable, try again", "Invalid input", "Memory allocation failure",
	"Resource initialization failure", "Timer expired", "Shut down in process", "Connection reset",
	"Connection aborted", "Connection in progress", "Not connected", "No lock available",
	"Resource not found", "Input/Output operation failed", "Bad state", "Unsupported version",
	"Operating system call failure", "DOCA driver call failure", "Unexpected error",
	"Resource already exists", "No more space in resource", "No data available",
	"Operation in progress", "Value too big", "Authentication failure", "Bad configuration",
	"Operation skipped", "Device fatal error",
};

const char *doca_error_get_name(doca_error_t error)
{
	if ((unsigned)error < sizeof(err_names) / sizeof(err_names[0]))
		return err_names[error];
	return "DOCA_ERROR_UNKNOWN";
}

const char *doca_error_get_descr(doca_error_t error)
{
	if ((unsigned)error < sizeof(err_descr) / sizeof(err_descr[0]))
		return err_descr[error];
	return "Unknown error";
}

/* ------------------------------------------------------------------------------------ */
/* grace periods (QSBR)                                                                 */

static void sd_synchronize(void)
{
	if (!atomic_load(&G.fwd_running))
		return;
	/* Order our unpublishing stores before reading the forwarder's state. */
	atomic_thread_fence(memory_order_seq_cst);
	uint64_t c = atomic_load(&G.qs_count);
	unsigned spins = 0;
	while (atomic_load(&G.fwd_running) && !atomic_load(&G.fwd_offline) && atomic_load(&G.qs_count) == c) {
		if (++spins < 256)
			rte_pause();
		else
			sched_yield();
	}
}

static void sd_defer_blob(void *p)
{
	if (p == NULL)
		return;
	if (G.n_free_blobs == sizeof(G.free_blobs) / sizeof(G.free_blobs[0])) {
		sd_synchronize();
		for (uint32_t i = 0; i < G.n_free_blobs; i++)
			free(G.free_blobs[i]);
		G.n_free_blobs = 0;
	}
	G.free_blobs[G.n_free_blobs++] = p;
}

static void sd_pipe_unref(struct doca_flow_pipe *p);

/* Wait for a grace period, then free everything deferred. */
static void sd_reclaim(void)
{
	if (G.free_entries == NULL && G.free_pipes == NULL && G.n_free_blobs == 0)
		return;
	sd_synchronize();
	for (uint32_t i = 0; i < G.n_free_blobs; i++)
		free(G.free_blobs[i]);
	G.n_free_blobs = 0;
	while (G.free_entries) {
		struct doca_flow_pipe_entry *e = G.free_entries;
		G.free_entries = e->free_next;
		if (e->fwd.kind == SD_FWD_PIPE && e->fwd.pipe)
			sd_pipe_unref(e->fwd.pipe); /* may queue the target pipe on free_pipes */
		free(e);
	}
	while (G.free_pipes) {
		struct doca_flow_pipe *p = G.free_pipes;
		G.free_pipes = p->free_next;
		free(p);
	}
}

/* ------------------------------------------------------------------------------------ */
/* match conversion and validation                                                      */

static bool mem_is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static uint16_t match_port(const struct doca_flow_match *m)
{
#if SOFTDOCA_API >= 300
	return m->parser_meta.port_id;
#else
	return (uint16_t)m->parser_meta.port_meta;
#endif
}

/*
 * Fields softdoca models: outer eth type, IPv4 src/dst/proto, UDP/TCP ports, ingress port.
 * Anything else set in a match or mask is refused (NOT_SUPPORTED) instead of ignored.
 */
static doca_error_t match_to_key(const struct doca_flow_match *m, struct sd_key *k)
{
	memset(k, 0, sizeof(*k));
	if (m == NULL)
		return DOCA_SUCCESS;
	const struct doca_flow_header_format *o = &m->outer;
	if (!mem_is_zero(o->eth.src_mac, 6) || !mem_is_zero(o->eth.dst_mac, 6) || o->l2_valid_headers ||
	    o->eth_vlan[0].tci || o->eth_vlan[1].tci || !mem_is_zero(&m->meta, sizeof(m->meta)) ||
	    m->parser_meta.outer_l3_type || m->parser_meta.outer_l4_type)
		return DOCA_ERROR_NOT_SUPPORTED;
	k->eth_type = o->eth.type;
	k->port_id = match_port(m);
	if (o->l3_type == DOCA_FLOW_L3_TYPE_IP6)
		return DOCA_ERROR_NOT_SUPPORTED;
	if (o->l3_type == DOCA_FLOW_L3_TYPE_IP4) {
		const struct doca_flow_header_ip4 *ip = &o->ip4;
		if (ip->version_ihl || ip->dscp_ecn || ip->total_len || ip->identification ||
		    ip->flags_fragment_offset || ip->ttl)
			return DOCA_ERROR_NOT_SUPPORTED;
		k->ip_src = ip->src_ip;
		k->ip_dst = ip->dst_ip;
		k->ip_proto = ip->next_proto;
	}
	switch (o->l4_type_ext) {
	case DOCA_FLOW_L4_TYPE_EXT_NONE:
		break;
	case DOCA_FLOW_L4_TYPE_EXT_UDP:
	case DOCA_FLOW_L4_TYPE_EXT_TCP:
	case DOCA_FLOW_L4_TYPE_EXT_TRANSPORT:
		/* udp/tcp/transport all start with the same two ports */
		k->l4_src = o->transport.src_port;
		k->l4_dst = o->transport.dst_port;
		break;
	default:
		return DOCA_ERROR_NOT_SUPPORTED;
	}
	return DOCA_SUCCESS;
}

/* Add the validity bits a mask implies (see struct sd_key). */
static void mask_finish(struct sd_key *mask, struct sd_key *val)
{
	if (mask->ip_src || mask->ip_dst || mask->ip_proto) {
		mask->l3_ok = 0xff;
		val->l3_ok = 1;
	}
	if (mask->l4_src || mask->l4_dst) {
		mask->l3_ok = 0xff;
		val->l3_ok = 1;
		mask->l4_ok = 0xff;
		val->l4_ok = 1;
	}
}

/* A field's value must lie within its mask (DOCA rejects such entries; we do too). */
static bool key_within(const struct sd_key *val, const struct sd_key *mask)
{
	for (int i = 0; i < 3; i++)
		if (val->w[i] & ~mask->w[i])
			return false;
	return true;
}

/* Mask derived from a match when no explicit mask is given: every non-zero field, fully. */
static void key_full_mask(const struct sd_key *m, struct sd_key *mask)
{
	memset(mask, 0, sizeof(*mask));
	mask->ip_src = m->ip_src ? 0xffffffffu : 0;
	mask->ip_dst = m->ip_dst ? 0xffffffffu : 0;
	mask->l4_src = m->l4_src ? 0xffff : 0;
	mask->l4_dst = m->l4_dst ? 0xffff : 0;
	mask->eth_type = m->eth_type ? 0xffff : 0;
	mask->port_id = m->port_id ? 0xffff : 0;
	mask->ip_proto = m->ip_proto ? 0xff : 0;
}

static uint64_t mac_word(const uint8_t *mac)
{
	uint64_t w = 0;
	for (int i = 0; i < 6; i++)
		w |= (uint64_t)mac[i] << (8 * i);
	return w | SD_MAC_SET;
}

static bool mac_all_ones(const uint8_t *mac)
{
	for (int i = 0; i < 6; i++)
		if (mac[i] != 0xff)
			return false;
	return true;
}

static doca_error_t fwd_convert(const struct doca_flow_fwd *f, struct doca_flow_port *owner, struct sd_fwd *out,
				bool allow_none)
{
	memset(out, 0, sizeof(*out));
	if (f == NULL || f->type == DOCA_FLOW_FWD_NONE) {
		out->kind = SD_FWD_MISS;
		return allow_none ? DOCA_SUCCESS : DOCA_ERROR_INVALID_VALUE;
	}
	switch (f->type) {
	case DOCA_FLOW_FWD_PORT:
		if (f->port_id >= SD_MAX_PORTS || G.ports[f->port_id] == NULL)
			return DOCA_ERROR_INVALID_VALUE;
		out->kind = SD_FWD_PORT;
		out->port_id = f->port_id;
		return DOCA_SUCCESS;
	case DOCA_FLOW_FWD_PIPE:
		if (f->next_pipe == NULL || f->next_pipe->dead || f->next_pipe->is_root || f->next_pipe->port != owner)
			return DOCA_ERROR_INVALID_VALUE;
		out->kind = SD_FWD_PIPE;
		out->pipe = f->next_pipe;
		return DOCA_SUCCESS;
	case DOCA_FLOW_FWD_DROP:
		out->kind = SD_FWD_DROP;
		return DOCA_SUCCESS;
	default:
		return DOCA_ERROR_NOT_SUPPORTED; /* RSS, targets, ordered lists: not modelled */
	}
}

/* ------------------------------------------------------------------------------------ */
/* global init                                                                          */

doca_error_t doca_flow_cfg_create(struct doca_flow_cfg **cfg)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*cfg = calloc(1, sizeof(**cfg));
	if (*cfg == NULL)
		return DOCA_ERROR_NO_MEMORY;
	(*cfg)->queues = 1;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_cfg_destroy(struct doca_flow_cfg *cfg)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	free(cfg);
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_cfg_set_pipe_queues(struct doca_flow_cfg *cfg, uint16_t pipe_queues)
{
	if (cfg == NULL || pipe_queues == 0 || pipe_queues > SD_MAX_QUEUES)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->queues = pipe_queues;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_cfg_set_mode_args(struct doca_flow_cfg *cfg, const char *mode_args)
{
	if (cfg == NULL || mode_args == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", mode_args);
	bool vnf = false, sw = false;
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, "vnf") == 0)
			vnf = true;
		else if (strcmp(t, "switch") == 0)
			sw = true;
		/* hws, isolated, expert, ...: accepted, nothing to model */
	}
	if (vnf == sw)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->mode_set = true;
	cfg->switch_mode = sw;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_cfg_set_nr_counters(struct doca_flow_cfg *cfg, uint32_t nr_counters)
{
	(void)nr_counters;
	return cfg ? DOCA_SUCCESS : DOCA_ERROR_INVALID_VALUE;
}

doca_error_t doca_flow_cfg_set_queue_depth(struct doca_flow_cfg *cfg, uint32_t queue_depth)
{
	(void)queue_depth;
	return cfg ? DOCA_SUCCESS : DOCA_ERROR_INVALID_VALUE;
}

doca_error_t doca_flow_cfg_set_cb_entry_process(struct doca_flow_cfg *cfg, doca_flow_entry_process_cb cb)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->cb = cb;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_init(struct doca_flow_cfg *cfg)
{
	if (cfg == NULL || !cfg->mode_set)
		return DOCA_ERROR_INVALID_VALUE;
	if (G.inited)
		return DOCA_ERROR_BAD_STATE;
	G.inited = true;
	G.switch_mode = cfg->switch_mode;
	G.queues = cfg->queues;
	G.cb = cfg->cb;
	G.switch_port = NULL;
	G.inject_nth = 0;
	return DOCA_SUCCESS;
}

/* ------------------------------------------------------------------------------------ */
/* forwarding                                                                           */

static inline void apply_mac(struct rte_mbuf *m, uint64_t w)
{
	uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);
	for (int i = 0; i < 6; i++)
		d[i] = (uint8_t)(w >> (8 * i));
}

static inline struct doca_flow_pipe_entry *ctl_lookup(const struct doca_flow_pipe *p, const struct sd_key *k)
{
	const struct sd_ctl_snap *s = LOAD_ACQ(&((struct doca_flow_pipe *)p)->snap);
	if (s == NULL)
		return NULL;
	for (uint32_t i = 0; i < s->n; i++) /* sorted: first match = best priority */
		if (sd_key_match(k, &s->e[i]->mask, &s->e[i]->val))
			return s->e[i];
	return NULL;
}

static inline struct doca_flow_pipe_entry *basic_lookup(const struct doca_flow_pipe *p, const struct sd_key *k)
{
	struct sd_htab *t = LOAD_ACQ(&((struct doca_flow_pipe *)p)->htab);
	if (t == NULL)
		return NULL;
	struct sd_key mk;
	for (int i = 0; i < 3; i++)
		mk.w[i] = k->w[i] & p->mask.w[i];
	uint32_t i = sd_key_hash(&mk) & t->mask;
	for (uint32_t n = 0; n <= t->mask; n++, i = (i + 1) & t->mask) {
		struct doca_flow_pipe_entry *e = LOAD_ACQ(&t->slot[i]);
		if (e == NULL)
			return NULL;
		if ((uintptr_t)e != 1 && sd_key_eq(&e->val, &mk))
			return e;
	}
	return NULL;
}

#define SD_RES_MISS (-1)
#define SD_RES_DROP (-2)

/*
 * Run a frame through the ingress port's root pipe and the pipes it forwards to.
 * mac_out receives the MAC action word to apply (0: none).  Returns the egress port id,
 * SD_RES_MISS or SD_RES_DROP.  Updates entry and pipe counters (forwarder thread only).
 */
static int sd_classify(struct doca_flow_port *in, const uint8_t *frame, uint32_t len, uint64_t *mac_out,
		       bool *malformed)
{
	struct sd_key k;
	*mac_out = 0;
	*malformed = !sd_parse(frame, len, in->id, &k);
	if (*malformed)
		return SD_RES_MISS;
	struct doca_flow_port *owner = G.switch_mode ? G.switch_port : in;
	struct doca_flow_pipe *p = owner ? LOAD_ACQ(&owner->root) : NULL;
	for (int hop = 0; p != NULL && hop < SD_MAX_CHAIN; hop++) {
		struct doca_flow_pipe_entry *e =
			p->type == DOCA_FLOW_PIPE_CONTROL ? ctl_lookup(p, &k) : basic_lookup(p, &k);
		const struct sd_fwd *f;
		if (e == NULL) {
			RLX_ADD(&p->miss_pkts, 1);
			RLX_ADD(&p->miss_bytes, len);
			f = &p->fwd_miss;
		} else {
			RLX_ADD(&e->pkts, 1);
			RLX_ADD(&e->bytes, len);
			uint64_t w = atomic_load_explicit(&e->act_mac, memory_order_relaxed);
			if (w & SD_MAC_SET)
				*mac_out = w;
			f = &e->fwd;
		}
		switch (f->kind) {
		case SD_FWD_PORT:
			return f->port_id;
		case SD_FWD_DROP:
			return SD_RES_DROP;
		case SD_FWD_PIPE:
			p = f->pipe->dead ? NULL : f->pipe;
			continue;
		default:
			return SD_RES_MISS; /* default miss: the ingress port's representor */
		}
	}
	return SD_RES_MISS;
}

struct sd_txbuf {
	uint16_t n;
	struct rte_mbuf *m[SD_BURST];
};

static void tx_flush(uint16_t eth, struct sd_txbuf *b, uint64_t *ok_pkts, uint64_t *ok_bytes, uint64_t *fail)
{
	if (b->n == 0)
		return;
	uint64_t bytes = 0;
	for (uint16_t i = 0; i < b->n; i++) /* read lengths now: sent mbufs belong to the PMD */
		bytes += rte_pktmbuf_pkt_len(b->m[i]);
	uint16_t sent = rte_eth_tx_burst(eth, 0, b->m, b->n);
	for (uint16_t i = sent; i < b->n; i++) {
		bytes -= rte_pktmbuf_pkt_len(b->m[i]);
		rte_pktmbuf_free(b->m[i]);
	}
	RLX_ADD(ok_pkts, sent);
	RLX_ADD(ok_bytes, bytes);
	RLX_ADD(fail, (uint64_t)(b->n - sent));
	b->n = 0;
}

static void process_wire_burst(struct doca_flow_port *in, struct rte_mbuf **bufs, uint16_t n,
			       struct sd_txbuf *tx_wire, struct sd_txbuf *tx_rep)
{
	if (atomic_load_explicit(&G.bench_bypass, memory_order_relaxed)) {
		/* the baseline the benchmark compares against: rx burst -> tx burst, no parsing;
		 * with bench_mac set, testpmd's macfwd (one dst MAC for every frame), which keeps
		 * a switched lab free of loops: nothing leaves as broadcast */
		uint16_t o = in->id ^ 1;
		struct doca_flow_port *out = o < SD_MAX_PORTS ? G.ports[o] : NULL;
		uint64_t bmac = atomic_load_explicit(&G.bench_mac, memory_order_relaxed);
		for (uint16_t i = 0; i < n; i++) {
			if (out == NULL || !out->has_io) {
				rte_pktmbuf_free(bufs[i]);
				continue;
			}
			if (bmac)
				apply_mac(bufs[i], bmac);
			tx_wire[o].m[tx_wire[o].n++] = bufs[i];
		}
		RLX_ADD(&in->st.wire_rx_pkts, n);
		return;
	}
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = bufs[i];
		uint32_t len = rte_pktmbuf_pkt_len(m);
		RLX_ADD(&in->st.wire_rx_pkts, 1);
		RLX_ADD(&in->st.wire_rx_bytes, len);
		uint64_t mac;
		bool malformed;
		/* af_packet/af_xdp deliver single-segment mbufs; only the first segment is parsed */
		int res = sd_classify(in, rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), &mac,
				      &malformed);
		if (res >= 0) {
			struct doca_flow_port *out = G.ports[res];
			if (out == NULL || !atomic_load_explicit(&out->active, memory_order_acquire) || !out->has_io) {
				RLX_ADD(&in->st.drop_pkts, 1);
				rte_pktmbuf_free(m);
				continue;
			}
			if (mac)
				apply_mac(m, mac);
			tx_wire[res].m[tx_wire[res].n++] = m;
		} else if (res == SD_RES_DROP) {
			RLX_ADD(&in->st.drop_pkts, 1);
			rte_pktmbuf_free(m);
		} else {
			RLX_ADD(&in->st.miss_pkts, 1);
			RLX_ADD(&in->st.miss_bytes, len);
			if (malformed)
				RLX_ADD(&in->st.malformed_pkts, 1);
			tx_rep[in->id].m[tx_rep[in->id].n++] = m;
		}
	}
}

static int sd_forwarder(void *arg)
{
	(void)arg;
	/* the default 50 us timer slack would stretch every idle sleep (and the latency a
	 * packet arriving during one sees) far beyond sleep_us */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	struct rte_mbuf *bufs[SD_BURST];
	static struct sd_txbuf tx_wire[SD_MAX_PORTS], tx_rep[SD_MAX_PORTS];
	uint64_t hz = rte_get_tsc_hz();
	uint64_t last_busy = rte_get_tsc_cycles();

	while (!atomic_load_explicit(&G.fwd_stop, memory_order_acquire)) {
		/* quiescent point: no pointer into a pipe or entry is held here */
		atomic_fetch_add_explicit(&G.qs_count, 1, memory_order_release);
		uint64_t t_iter = rte_rdtsc();
		uint32_t total = 0;
		for (int pi = 0; pi < SD_MAX_PORTS; pi++) {
			struct doca_flow_port *p = G.ports[pi];
			if (p == NULL || !p->has_io || !atomic_load_explicit(&p->active, memory_order_acquire))
				continue;
			uint16_t n = rte_eth_rx_burst(p->wire_eth, 0, bufs, SD_BURST);
			if (n) {
				total += n;
				process_wire_burst(p, bufs, n, tx_wire, tx_rep);
				for (int o = 0; o < SD_MAX_PORTS; o++) {
					if (G.ports[o] == NULL)
						continue;
					if (tx_wire[o].n)
						tx_flush(G.ports[o]->wire_eth, &tx_wire[o], &G.ports[o]->st.wire_tx_pkts,
							 &G.ports[o]->st.wire_tx_bytes, &G.ports[o]->st.tx_fail_pkts);
					if (tx_rep[o].n)
						tx_flush(G.ports[o]->rep_eth, &tx_rep[o], &G.ports[o]->st.rep_tx_pkts,
							 &G.ports[o]->st.rep_tx_bytes, &G.ports[o]->st.tx_fail_pkts);
				}
			}
			/* representor -> wire, no lookup (what OVS outputs to port X leaves on X) */
			n = rte_eth_rx_burst(p->rep_eth, 0, bufs, SD_BURST);
			if (n) {
				total += n;
				uint64_t bytes = 0;
				for (uint16_t i = 0; i < n; i++)
					bytes += rte_pktmbuf_pkt_len(bufs[i]);
				RLX_ADD(&p->st.rep_rx_pkts, n);
				RLX_ADD(&p->st.rep_rx_bytes, bytes);
				struct sd_txbuf b = {.n = n};
				memcpy(b.m, bufs, n * sizeof(bufs[0]));
				tx_flush(p->wire_eth, &b, &p->st.wire_tx_pkts, &p->st.wire_tx_bytes, &p->st.tx_fail_pkts);
			}
		}
		if (total) {
			last_busy = rte_get_tsc_cycles();
			RLX_ADD(&G.busy_cycles, last_busy - t_iter);
			RLX_ADD(&G.busy_pkts, total);
			continue;
		}
		if (atomic_load_explicit(&G.busy_poll, memory_order_relaxed)) {
			rte_pause();
			continue;
		}
		uint64_t now = rte_get_tsc_cycles();
		if (now - last_busy < hz / 1000000 * atomic_load_explicit(&G.spin_us, memory_order_relaxed)) {
			rte_pause();
			continue;
		}
		/* Idle: back off.  Offline while asleep, so grace periods need not wait for us. */
		atomic_store(&G.fwd_offline, 1);
		struct timespec ts = {0, (long)atomic_load_explicit(&G.sleep_us, memory_order_relaxed) * 1000L};
		nanosleep(&ts, NULL);
		atomic_store(&G.fwd_offline, 0);
		atomic_thread_fence(memory_order_seq_cst);
	}
	atomic_store(&G.fwd_offline, 1);
	return 0;
}

static void *sd_forwarder_pthread(void *arg)
{
	sd_forwarder(arg);
	return NULL;
}

static doca_error_t fwd_start(void)
{
	if (atomic_load(&G.fwd_running))
		return DOCA_SUCCESS;
	atomic_store(&G.fwd_stop, 0);
	atomic_store(&G.fwd_offline, 0);
	unsigned lc = rte_get_next_lcore(-1, 1, 0);
	if (lc < RTE_MAX_LCORE && rte_eal_get_lcore_state(lc) == WAIT) {
		if (rte_eal_remote_launch(sd_forwarder, NULL, lc) != 0)
			return DOCA_ERROR_DRIVER;
		G.fwd_lcore = (int)lc;
	} else {
		/* single-lcore EAL: a plain thread still works with these PMDs */
		if (pthread_create(&G.fwd_thread, NULL, sd_forwarder_pthread, NULL) != 0)
			return DOCA_ERROR_OPERATING_SYSTEM;
		G.fwd_lcore = -1;
	}
	atomic_store(&G.fwd_running, 1);
	return DOCA_SUCCESS;
}

static void fwd_stop(void)
{
	if (!atomic_load(&G.fwd_running))
		return;
	atomic_store(&G.fwd_stop, 1);
	if (G.fwd_lcore >= 0)
		rte_eal_wait_lcore((unsigned)G.fwd_lcore);
	else
		pthread_join(G.fwd_thread, NULL);
	atomic_store(&G.fwd_running, 0);
}

doca_error_t softdoca_fwd_stats(uint64_t *busy_ns, uint64_t *pkts)
{
	if (busy_ns == NULL || pkts == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	uint64_t hz = rte_get_tsc_hz();
	uint64_t c = RLX_LOAD(&G.busy_cycles);
	*busy_ns = hz ? (uint64_t)((double)c * 1e9 / (double)hz) : 0;
	*pkts = RLX_LOAD(&G.busy_pkts);
	return DOCA_SUCCESS;
}

doca_error_t softdoca_set_bench_bypass(int on, const uint8_t *dst_mac)
{
	atomic_store(&G.bench_mac, dst_mac ? mac_word(dst_mac) : 0);
	atomic_store(&G.bench_bypass, on ? 1 : 0);
	return DOCA_SUCCESS;
}

doca_error_t softdoca_set_poll_mode(int busy_poll, uint32_t spin_us, uint32_t sleep_us)
{
	atomic_store(&G.busy_poll, busy_poll ? 1 : 0);
	if (spin_us)
		atomic_store(&G.spin_us, spin_us);
	if (sleep_us)
		atomic_store(&G.sleep_us, sleep_us);
	return DOCA_SUCCESS;
}

/* ------------------------------------------------------------------------------------ */
/* ports                                                                                */

doca_error_t doca_flow_port_cfg_create(struct doca_flow_port_cfg **cfg)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*cfg = calloc(1, sizeof(**cfg));
	if (*cfg == NULL)
		return DOCA_ERROR_NO_MEMORY;
	(*cfg)->port_id = -1;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_port_cfg_destroy(struct doca_flow_port_cfg *cfg)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	free(cfg);
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_port_cfg_set_devargs(struct doca_flow_port_cfg *cfg, const char *devargs)
{
	if (cfg == NULL || devargs == NULL || strlen(devargs) >= sizeof(cfg->devargs))
		return DOCA_ERROR_INVALID_VALUE;
	snprintf(cfg->devargs, sizeof(cfg->devargs), "%s", devargs);
	return DOCA_SUCCESS;
}

#if SOFTDOCA_API >= 300
doca_error_t doca_flow_port_cfg_set_port_id(struct doca_flow_port_cfg *cfg, uint16_t port_id)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->port_id = port_id;
	return DOCA_SUCCESS;
}
#endif

/* devargs: "port_id=N,iface=<wire>,rep=<representor>,driver=af_packet|af_xdp|none"; a
 * bare number is the DOCA 2.x convention "port id in devargs". */
struct sd_devargs {
	int port_id;
	char iface[32], rep[32], driver[16];
};

static doca_error_t parse_devargs(const char *s, struct sd_devargs *d)
{
	memset(d, 0, sizeof(*d));
	d->port_id = -1;
	snprintf(d->driver, sizeof(d->driver), "none");
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", s);
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		if (eq == NULL) {
			char *end;
			long v = strtol(t, &end, 10);
			if (*end || v < 0 || v >= SD_MAX_PORTS)
				return DOCA_ERROR_INVALID_VALUE;
			d->port_id = (int)v;
			continue;
		}
		*eq = '\0';
		const char *v = eq + 1;
		if (strcmp(t, "port_id") == 0) {
			char *end;
			long n = strtol(v, &end, 10);
			if (*end || n < 0 || n >= SD_MAX_PORTS)
				return DOCA_ERROR_INVALID_VALUE;
			d->port_id = (int)n;
		} else if (strcmp(t, "iface") == 0 && strlen(v) < sizeof(d->iface)) {
			snprintf(d->iface, sizeof(d->iface), "%s", v);
		} else if (strcmp(t, "rep") == 0 && strlen(v) < sizeof(d->rep)) {
			snprintf(d->rep, sizeof(d->rep), "%s", v);
		} else if (strcmp(t, "driver") == 0 &&
			   (strcmp(v, "af_packet") == 0 || strcmp(v, "af_xdp") == 0 || strcmp(v, "none") == 0)) {
			snprintf(d->driver, sizeof(d->driver), "%s", v);
		} else {
			return DOCA_ERROR_INVALID_VALUE;
		}
	}
	if (strcmp(d->driver, "none") != 0 && (d->iface[0] == '\0' || d->rep[0] == '\0'))
		return DOCA_ERROR_INVALID_VALUE;
	return DOCA_SUCCESS;
}

static doca_error_t open_vdev(const char *driver, const char *iface, uint16_t id, char role, char *name,
			      size_t name_len, uint16_t *eth, struct rte_mempool *pool)
{
	char args[160];
	if (strcmp(driver, "af_xdp") == 0) {
		snprintf(name, name_len, "net_af_xdp_sd%u%c", id, role);
		snprintf(args, sizeof(args), "iface=%s,start_queue=0,queue_count=1", iface);
	} else {
		snprintf(name, name_len, "net_af_packet_sd%u%c", id, role);
		/* qdisc_bypass=0: let frames go through the veth's qdisc like any sender */
		snprintf(args, sizeof(args), "iface=%s,qpairs=1,blocksz=4096,framesz=2048,framecnt=%d,qdisc_bypass=0",
			 iface, SD_AFP_FRAMES);
	}
	if (rte_vdev_init(name, args) != 0) {
		name[0] = '\0';
		return DOCA_ERROR_DRIVER;
	}
	if (rte_eth_dev_get_port_by_name(name, eth) != 0)
		return DOCA_ERROR_DRIVER;
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	int sock = rte_eth_dev_socket_id(*eth);
	if (rte_eth_dev_configure(*eth, 1, 1, &conf) != 0 ||
	    rte_eth_rx_queue_setup(*eth, 0, SD_RX_DESC, sock < 0 ? 0 : (unsigned)sock, NULL, pool) != 0 ||
	    rte_eth_tx_queue_setup(*eth, 0, SD_TX_DESC, sock < 0 ? 0 : (unsigned)sock, NULL) != 0 ||
	    rte_eth_dev_start(*eth) != 0)
		return DOCA_ERROR_DRIVER;
	rte_eth_promiscuous_enable(*eth); /* frames to the VIP MAC and backend MACs alike */
	return DOCA_SUCCESS;
}

static void close_vdev(char *name, uint16_t eth)
{
	if (name[0] == '\0')
		return;
	rte_eth_dev_stop(eth);
	rte_eth_dev_close(eth);
	rte_vdev_uninit(name);
	name[0] = '\0';
}

doca_error_t doca_flow_port_start(const struct doca_flow_port_cfg *cfg, struct doca_flow_port **port)
{
	if (!G.inited)
		return DOCA_ERROR_BAD_STATE;
	if (cfg == NULL || port == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	struct sd_devargs d;
	doca_error_t rc = parse_devargs(cfg->devargs, &d);
	if (rc != DOCA_SUCCESS)
		return rc;
	int id = cfg->port_id >= 0 ? cfg->port_id : d.port_id;
	if (id < 0 || id >= SD_MAX_PORTS)
		return DOCA_ERROR_INVALID_VALUE;
	if (G.ports[id] != NULL)
		return DOCA_ERROR_ALREADY_EXIST;
	struct doca_flow_port *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return DOCA_ERROR_NO_MEMORY;
	p->id = (uint16_t)id;
	if (strcmp(d.driver, "none") != 0) {
		char pname[32];
		snprintf(pname, sizeof(pname), "softdoca_mbufs_%u", p->id);
		bool xdp = strcmp(d.driver, "af_xdp") == 0;
		p->pool = rte_pktmbuf_pool_create(pname, xdp ? SD_NB_MBUFS_XDP : SD_NB_MBUFS, SD_MBUF_CACHE, 0,
						  RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
		if (p->pool == NULL) {
			free(p);
			return DOCA_ERROR_NO_MEMORY;
		}
		rc = open_vdev(d.driver, d.iface, p->id, 'w', p->wire_vdev, sizeof(p->wire_vdev), &p->wire_eth, p->pool);
		if (rc == DOCA_SUCCESS)
			rc = open_vdev(d.driver, d.rep, p->id, 'r', p->rep_vdev, sizeof(p->rep_vdev), &p->rep_eth,
				       p->pool);
		if (rc != DOCA_SUCCESS) {
			close_vdev(p->rep_vdev, p->rep_eth);
			close_vdev(p->wire_vdev, p->wire_eth);
			rte_mempool_free(p->pool);
			free(p);
			return rc;
		}
		p->has_io = true;
	}
	if (G.switch_mode && G.switch_port == NULL) {
		p->is_switch_manager = true; /* the first port started is the switch manager */
		G.switch_port = p;
	}
	G.ports[id] = p;
	atomic_store(&p->active, 1);
	if (p->has_io) {
		rc = fwd_start();
		if (rc != DOCA_SUCCESS) {
			doca_flow_port_stop(p);
			return rc;
		}
	}
	*port = p;
	return DOCA_SUCCESS;
}

struct doca_flow_port *doca_flow_port_switch_get(const struct doca_flow_port *port)
{
	(void)port;
	return G.switch_mode ? G.switch_port : NULL;
}

static void pipe_destroy_now(struct doca_flow_pipe *p);

void doca_flow_port_pipes_flush(struct doca_flow_port *port)
{
	if (port == NULL)
		return;
	/* Any order works: a pipe still targeted by another's entries lingers as a zombie. */
	while (port->pipes)
		pipe_destroy_now(port->pipes);
	sd_reclaim();
}

doca_error_t doca_flow_port_stop(struct doca_flow_port *port)
{
	if (port == NULL || G.ports[port->id] != port)
		return DOCA_ERROR_INVALID_VALUE;
	if (port->is_switch_manager) {
		for (int i = 0; i < SD_MAX_PORTS; i++)
			if (G.ports[i] && G.ports[i] != port)
				return DOCA_ERROR_IN_USE; /* the switch manager stops last */
	}
	doca_flow_port_pipes_flush(port);
	atomic_store(&port->active, 0);
	sd_synchronize(); /* the forwarder no longer polls it or sends to it */
	bool any_io = false;
	for (int i = 0; i < SD_MAX_PORTS; i++)
		if (G.ports[i] && G.ports[i] != port && G.ports[i]->has_io)
			any_io = true;
	if (!any_io)
		fwd_stop();
	close_vdev(port->rep_vdev, port->rep_eth);
	close_vdev(port->wire_vdev, port->wire_eth);
	/* af_packet and af_xdp (copy mode) copy a frame on tx and free its mbuf at once, so no
	 * other port holds mbufs of this pool once this port's queues are closed */
	if (port->pool)
		rte_mempool_free(port->pool);
	for (int q = 0; q < SD_MAX_QUEUES; q++)
		free(port->q[q].ops);
	G.ports[port->id] = NULL;
	if (G.switch_port == port)
		G.switch_port = NULL;
	free(port);
	return DOCA_SUCCESS;
}

void doca_flow_destroy(void)
{
	if (!G.inited)
		return;
	/* stop non-manager ports first, manager last */
	for (int pass = 0; pass < 2; pass++)
		for (int i = SD_MAX_PORTS - 1; i >= 0; i--)
			if (G.ports[i] && (pass == 1 || !G.ports[i]->is_switch_manager))
				doca_flow_port_stop(G.ports[i]);
	fwd_stop();
	sd_reclaim();
	G.inited = false;
}

doca_error_t softdoca_port_stats(uint16_t port_id, struct softdoca_port_stats *stats)
{
	if (stats == NULL || port_id >= SD_MAX_PORTS || G.ports[port_id] == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	const uint64_t *src = (const uint64_t *)&G.ports[port_id]->st;
	uint64_t *dst = (uint64_t *)stats;
	for (size_t i = 0; i < sizeof(*stats) / sizeof(uint64_t); i++)
		dst[i] = RLX_LOAD(&src[i]);
	return DOCA_SUCCESS;
}

/* ------------------------------------------------------------------------------------ */
/* pipes                                                                                */

doca_error_t doca_flow_pipe_cfg_create(struct doca_flow_pipe_cfg **cfg, struct doca_flow_port *port)
{
	if (cfg == NULL || port == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*cfg = calloc(1, sizeof(**cfg));
	if (*cfg == NULL)
		return DOCA_ERROR_NO_MEMORY;
	(*cfg)->port = port;
	(*cfg)->nr_entries = SD_DEFAULT_NR_ENTRIES;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_destroy(struct doca_flow_pipe_cfg *cfg)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	free(cfg);
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_name(struct doca_flow_pipe_cfg *cfg, const char *name)
{
	if (cfg == NULL || name == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	snprintf(cfg->name, sizeof(cfg->name), "%s", name);
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_type(struct doca_flow_pipe_cfg *cfg, enum doca_flow_pipe_type type)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (type != DOCA_FLOW_PIPE_BASIC && type != DOCA_FLOW_PIPE_CONTROL)
		return DOCA_ERROR_NOT_SUPPORTED;
	cfg->type = type;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_is_root(struct doca_flow_pipe_cfg *cfg, bool is_root)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->is_root = is_root;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_domain(struct doca_flow_pipe_cfg *cfg, enum doca_flow_pipe_domain domain)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	return domain == DOCA_FLOW_PIPE_DOMAIN_DEFAULT ? DOCA_SUCCESS : DOCA_ERROR_NOT_SUPPORTED;
}

doca_error_t doca_flow_pipe_cfg_set_nr_entries(struct doca_flow_pipe_cfg *cfg, uint32_t nr_entries)
{
	if (cfg == NULL || nr_entries == 0 || nr_entries > (1u << 24))
		return DOCA_ERROR_INVALID_VALUE;
	cfg->nr_entries = nr_entries;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_match(struct doca_flow_pipe_cfg *cfg, const struct doca_flow_match *match,
					  const struct doca_flow_match *match_mask)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->has_match = match != NULL;
	cfg->has_mask = match_mask != NULL;
	if (match)
		cfg->match = *match;
	if (match_mask)
		cfg->mask = *match_mask;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_actions(struct doca_flow_pipe_cfg *cfg, struct doca_flow_actions *const *actions,
					    struct doca_flow_actions *const *actions_masks,
					    struct doca_flow_action_descs *const *action_descs, size_t nr_actions)
{
	(void)actions_masks;
	if (cfg == NULL || actions == NULL || nr_actions == 0)
		return DOCA_ERROR_INVALID_VALUE;
	if (nr_actions > 1 || action_descs != NULL)
		return DOCA_ERROR_NOT_SUPPORTED; /* one action template, no descriptors */
	cfg->has_actions = actions[0] != NULL;
	if (actions[0])
		cfg->actions = *actions[0];
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_monitor(struct doca_flow_pipe_cfg *cfg, const struct doca_flow_monitor *monitor)
{
	if (cfg == NULL || monitor == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (monitor->meter_type != DOCA_FLOW_RESOURCE_TYPE_NONE || monitor->aging_sec ||
	    monitor->counter_type == DOCA_FLOW_RESOURCE_TYPE_SHARED)
		return DOCA_ERROR_NOT_SUPPORTED;
	cfg->counters = monitor->counter_type == DOCA_FLOW_RESOURCE_TYPE_NON_SHARED;
	return DOCA_SUCCESS;
}

static struct sd_htab *htab_new(uint32_t nr_entries)
{
	uint32_t size = 8;
	while (size < 2 * nr_entries)
		size <<= 1;
	struct sd_htab *t = calloc(1, sizeof(*t) + size * sizeof(t->slot[0]));
	if (t)
		t->mask = size - 1;
	return t;
}

doca_error_t doca_flow_pipe_create(const struct doca_flow_pipe_cfg *cfg, const struct doca_flow_fwd *fwd,
				   const struct doca_flow_fwd *fwd_miss, struct doca_flow_pipe **pipe)
{
	if (!G.inited)
		return DOCA_ERROR_BAD_STATE;
	if (cfg == NULL || pipe == NULL || cfg->port == NULL || G.ports[cfg->port->id] != cfg->port)
		return DOCA_ERROR_INVALID_VALUE;
	struct doca_flow_port *port = cfg->port;
	if (G.switch_mode && port != G.switch_port)
		return DOCA_ERROR_INVALID_VALUE; /* switch mode: pipes live on the switch manager */
	if (cfg->is_root && LOAD_ACQ(&port->root) != NULL)
		return DOCA_ERROR_ALREADY_EXIST; /* softdoca: one root pipe per port */
	struct doca_flow_pipe *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return DOCA_ERROR_NO_MEMORY;
	p->port = port;
	snprintf(p->name, sizeof(p->name), "%s", cfg->name);
	p->type = cfg->type;
	p->is_root = cfg->is_root;
	p->nr_entries = cfg->nr_entries;
	doca_error_t rc = DOCA_SUCCESS;

	if (p->type == DOCA_FLOW_PIPE_BASIC) {
		struct sd_key m, k;
		rc = match_to_key(cfg->has_mask ? &cfg->mask : (cfg->has_match ? &cfg->match : NULL), &m);
		if (rc == DOCA_SUCCESS && !cfg->has_mask) {
			/* no explicit mask: all-ones fields are per-entry; other constants not modelled */
			key_full_mask(&m, &k);
			if (!sd_key_eq(&k, &m))
				rc = DOCA_ERROR_NOT_SUPPORTED;
		}
		if (rc == DOCA_SUCCESS) {
			struct sd_key unused = {0};
			mask_finish(&m, &unused);
			p->mask = m;
		}
		if (rc == DOCA_SUCCESS && cfg->has_actions) {
			const uint8_t *mac = cfg->actions.outer.eth.dst_mac;
			if (mac_all_ones(mac))
				p->mac_mode = 2;
			else if (!mem_is_zero(mac, 6)) {
				p->mac_mode = 1;
				p->const_mac = mac_word(mac);
			}
		}
		if (rc == DOCA_SUCCESS) {
			rc = fwd_convert(fwd, port, &p->fwd, false);
			if (rc == DOCA_SUCCESS && fwd && fwd->type == DOCA_FLOW_FWD_PIPE)
				rc = DOCA_ERROR_NOT_SUPPORTED; /* basic -> pipe chaining: not needed, not modelled */
		}
		if (rc == DOCA_SUCCESS) {
			struct sd_htab *t = htab_new(p->nr_entries);
			if (t == NULL)
				rc = DOCA_ERROR_NO_MEMORY;
			else
				atomic_store(&p->htab, t);
		}
	} else {
		if (fwd != NULL && fwd->type != DOCA_FLOW_FWD_NONE)
			rc = DOCA_ERROR_INVALID_VALUE; /* control pipes forward per entry */
		if (cfg->has_actions)
			rc = DOCA_ERROR_NOT_SUPPORTED;
	}
	if (rc == DOCA_SUCCESS) {
		/* NULL fwd_miss: the default miss, i.e. the ingress port's representor (kernel) */
		rc = fwd_convert(fwd_miss, port, &p->fwd_miss, true);
		if (rc == DOCA_SUCCESS && fwd_miss && fwd_miss->type == DOCA_FLOW_FWD_PIPE)
			p->fwd_miss.pipe->refs++;
	}
	if (rc != DOCA_SUCCESS) {
		free(atomic_load(&p->htab));
		free(p);
		return rc;
	}
	p->next_pipe_of_port = port->pipes;
	port->pipes = p;
	if (p->is_root)
		STORE_REL(&port->root, p);
	*pipe = p;
	return DOCA_SUCCESS;
}

static void entry_unlink_tables(struct doca_flow_pipe_entry *e);

/* Remove one queued op list's references to the pipe's entries. */
static void purge_ops_of_pipe(struct doca_flow_pipe *p)
{
	for (int pi = 0; pi < SD_MAX_PORTS; pi++) {
		struct doca_flow_port *port = G.ports[pi];
		if (port == NULL)
			continue;
		for (int q = 0; q < SD_MAX_QUEUES; q++) {
			struct sd_queue *sq = &port->q[q];
			uint32_t w = 0;
			for (uint32_t r = 0; r < sq->n; r++)
				if (sq->ops[r].e->pipe != p)
					sq->ops[w++] = sq->ops[r];
			sq->n = w;
		}
	}
}

static void pipe_destroy_now(struct doca_flow_pipe *p)
{
	struct doca_flow_port *port = p->port;
	if (p->is_root && LOAD_ACQ(&port->root) == p)
		STORE_REL(&port->root, NULL);
	purge_ops_of_pipe(p);
	while (p->entries) {
		struct doca_flow_pipe_entry *e = p->entries;
		p->entries = e->next;
		entry_unlink_tables(e);
		e->state = SD_E_GONE;
		e->free_next = G.free_entries;
		G.free_entries = e;
	}
	sd_defer_blob(atomic_exchange(&p->htab, NULL));
	sd_defer_blob(atomic_exchange(&p->snap, NULL));
	/* unlink from the port's pipe list */
	for (struct doca_flow_pipe **pp = &port->pipes; *pp; pp = &(*pp)->next_pipe_of_port)
		if (*pp == p) {
			*pp = p->next_pipe_of_port;
			break;
		}
	p->dead = true;
	if (p->fwd_miss.kind == SD_FWD_PIPE)
		sd_pipe_unref(p->fwd_miss.pipe);
	if (p->refs == 0) {
		p->free_next = G.free_pipes;
		G.free_pipes = p;
	}
	/* else: a zombie until the last control entry forwarding here is freed */
}

static void sd_pipe_unref(struct doca_flow_pipe *p)
{
	if (--p->refs == 0 && p->dead) {
		p->free_next = G.free_pipes;
		G.free_pipes = p;
	}
}

void doca_flow_pipe_destroy(struct doca_flow_pipe *pipe)
{
	if (pipe == NULL || pipe->dead)
		return;
	pipe_destroy_now(pipe);
	sd_reclaim();
}

/* ------------------------------------------------------------------------------------ */
/* entries                                                                              */

static doca_error_t queue_push(struct doca_flow_port *port, uint16_t queue, uint8_t kind,
			       struct doca_flow_pipe_entry *e, uint64_t mac)
{
	struct sd_queue *q = &port->q[queue];
	if (q->n == q->cap) {
		uint32_t cap = q->cap ? q->cap * 2 : 256;
		struct sd_op *ops = realloc(q->ops, cap * sizeof(*ops));
		if (ops == NULL)
			return DOCA_ERROR_NO_MEMORY;
		q->ops = ops;
		q->cap = cap;
	}
	q->ops[q->n++] = (struct sd_op){.kind = kind, .e = e, .mac = mac};
	return DOCA_SUCCESS;
}

static doca_error_t check_flags(uint32_t flags)
{
#if SOFTDOCA_API >= 303
	/* 3.3 bit flags: 0 (default) allowed; unknown bits are an error */
	return (flags & ~(uint32_t)(DOCA_FLOW_ENTRY_FLAGS_NO_WAIT | DOCA_FLOW_ENTRY_FLAGS_WAIT_FOR_BATCH)) ?
		       DOCA_ERROR_INVALID_VALUE :
		       DOCA_SUCCESS;
#else
	return flags > DOCA_FLOW_WAIT_FOR_BATCH ? DOCA_ERROR_INVALID_VALUE : DOCA_SUCCESS;
#endif
}

/* Common front half of an add: checks done synchronously, like DOCA's add call. */
static doca_error_t entry_prepare(uint16_t queue, struct doca_flow_pipe *pipe, enum doca_flow_pipe_type type,
				  struct doca_flow_pipe_entry **out)
{
	if (!G.inited)
		return DOCA_ERROR_BAD_STATE;
	if (pipe == NULL || pipe->dead || queue >= G.queues || out == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (pipe->type != type)
		return DOCA_ERROR_INVALID_VALUE;
	bool inject = false;
	if (G.inject_nth && --G.inject_nth == 0) {
		if (!G.inject_at_process)
			return DOCA_ERROR_FULL; /* injected capacity error */
		inject = true;
	}
	if (pipe->nr_used >= pipe->nr_entries)
		return DOCA_ERROR_FULL; /* more entries than nr_entries */
	struct doca_flow_pipe_entry *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return DOCA_ERROR_NO_MEMORY;
	e->pipe = pipe;
	e->inject_fail = inject;
	e->status = DOCA_FLOW_ENTRY_STATUS_IN_PROCESS;
	e->state = SD_E_PENDING;
	*out = e;
	return DOCA_SUCCESS;
}

static doca_error_t entry_commit(uint16_t queue, struct doca_flow_pipe_entry *e, void *usr_ctx,
				 struct doca_flow_pipe_entry **entry)
{
	struct doca_flow_pipe *pipe = e->pipe;
	doca_error_t rc = queue_push(pipe->port, queue, SD_OP_ADD, e, 0);
	if (rc != DOCA_SUCCESS) {
		free(e);
		return rc;
	}
	e->usr_ctx = usr_ctx;
	e->seq = ++G.seq;
	e->next = pipe->entries;
	if (pipe->entries)
		pipe->entries->prev = e;
	pipe->entries = e;
	pipe->nr_used++;
	if (e->fwd.kind == SD_FWD_PIPE)
		e->fwd.pipe->refs++;
	*entry = e;
	return DOCA_SUCCESS;
}

static doca_error_t basic_add(uint16_t pipe_queue, struct doca_flow_pipe *pipe, const struct doca_flow_match *match,
			      const struct doca_flow_actions *actions, const struct doca_flow_monitor *monitor,
			      const struct doca_flow_fwd *fwd, uint32_t flags, void *usr_ctx,
			      struct doca_flow_pipe_entry **entry)
{
	(void)monitor;
	doca_error_t rc = check_flags(flags);
	if (rc != DOCA_SUCCESS)
		return rc;
	if (fwd != NULL && fwd->type != DOCA_FLOW_FWD_NONE)
		return DOCA_ERROR_NOT_SUPPORTED; /* per-entry forward in a basic pipe: not modelled */
	if (pipe != NULL && pipe->mac_mode == 2 && actions == NULL)
		return DOCA_ERROR_INVALID_VALUE; /* the pipe's dst MAC is per entry */
	struct sd_key v = {0};
	if (pipe != NULL && !pipe->dead) {
		rc = match_to_key(match, &v);
		if (rc != DOCA_SUCCESS)
			return rc;
		struct sd_key m = pipe->mask;
		mask_finish(&m, &v);
		if (!key_within(&v, &m))
			return DOCA_ERROR_INVALID_VALUE; /* value outside the pipe's mask */
	}
	struct doca_flow_pipe_entry *e;
	rc = entry_prepare(pipe_queue, pipe, DOCA_FLOW_PIPE_BASIC, &e);
	if (rc != DOCA_SUCCESS)
		return rc;
	e->val = v;
	e->mask = pipe->mask;
	e->fwd = pipe->fwd;
	if (pipe->mac_mode == 2)
		atomic_init(&e->act_mac, mac_word(actions->outer.eth.dst_mac));
	else if (pipe->mac_mode == 1)
		atomic_init(&e->act_mac, pipe->const_mac);
	return entry_commit(pipe_queue, e, usr_ctx, entry);
}

static doca_error_t control_add(uint16_t pipe_queue, uint32_t priority, struct doca_flow_pipe *pipe,
				const struct doca_flow_match *match, const struct doca_flow_match *match_mask,
				const struct doca_flow_match_condition *condition, const struct doca_flow_actions *actions,
				const struct doca_flow_actions *actions_mask,
				const struct doca_flow_action_descs *action_descs, const struct doca_flow_fwd *fwd,
				void *usr_ctx, struct doca_flow_pipe_entry **entry)
{
	if (condition != NULL || action_descs != NULL || actions_mask != NULL)
		return DOCA_ERROR_NOT_SUPPORTED;
	struct sd_key v, m;
	doca_error_t rc = match_to_key(match, &v);
	if (rc != DOCA_SUCCESS)
		return rc;
	if (match_mask != NULL)
		rc = match_to_key(match_mask, &m);
	else
		key_full_mask(&v, &m);
	if (rc != DOCA_SUCCESS)
		return rc;
	mask_finish(&m, &v);
	if (!key_within(&v, &m))
		return DOCA_ERROR_INVALID_VALUE; /* value outside the entry's own mask */
	uint64_t mac = 0;
	if (actions != NULL) {
		if (!mem_is_zero(actions->outer.eth.src_mac, 6))
			return DOCA_ERROR_NOT_SUPPORTED;
		if (!mem_is_zero(actions->outer.eth.dst_mac, 6))
			mac = mac_word(actions->outer.eth.dst_mac);
	}
	struct sd_fwd f;
	if (pipe == NULL || pipe->dead)
		return DOCA_ERROR_INVALID_VALUE;
	rc = fwd_convert(fwd, pipe->port, &f, false);
	if (rc != DOCA_SUCCESS)
		return rc;
	if (f.kind == SD_FWD_PIPE && f.pipe == pipe)
		return DOCA_ERROR_INVALID_VALUE;
	struct doca_flow_pipe_entry *e;
	rc = entry_prepare(pipe_queue, pipe, DOCA_FLOW_PIPE_CONTROL, &e);
	if (rc != DOCA_SUCCESS)
		return rc;
	e->val = v;
	e->mask = m;
	e->priority = priority;
	e->fwd = f;
	atomic_init(&e->act_mac, mac);
	return entry_commit(pipe_queue, e, usr_ctx, entry);
}

#if SOFTDOCA_API >= 303
doca_error_t doca_flow_pipe_basic_add_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
					    const struct doca_flow_match *match, uint8_t action_idx,
					    const struct doca_flow_actions *actions,
					    const struct doca_flow_monitor *monitor, const struct doca_flow_fwd *fwd,
					    uint32_t flags, void *usr_ctx, struct doca_flow_pipe_entry **entry)
{
	if (action_idx != 0)
		return DOCA_ERROR_INVALID_VALUE; /* one action template */
	return basic_add(pipe_queue, pipe, match, actions, monitor, fwd, flags, usr_ctx, entry);
}

doca_error_t doca_flow_pipe_control_add_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
					      const struct doca_flow_match *match,
					      const struct doca_flow_match *match_mask,
					      const struct doca_flow_match_condition *condition,
					      const struct doca_flow_actions *actions,
					      const struct doca_flow_actions *actions_mask,
					      const struct doca_flow_action_descs *action_descs,
					      const struct doca_flow_monitor *monitor, uint32_t priority,
					      const struct doca_flow_fwd *fwd, void *usr_ctx,
					      struct doca_flow_pipe_entry **entry)
{
	(void)monitor;
	return control_add(pipe_queue, priority, pipe, match, match_mask, condition, actions, actions_mask,
			   action_descs, fwd, usr_ctx, entry);
}
#else
doca_error_t doca_flow_pipe_add_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
				      const struct doca_flow_match *match, const struct doca_flow_actions *actions,
				      const struct doca_flow_monitor *monitor, const struct doca_flow_fwd *fwd,
				      uint32_t flags, void *usr_ctx, struct doca_flow_pipe_entry **entry)
{
	if (actions != NULL && actions->action_idx != 0)
		return DOCA_ERROR_INVALID_VALUE;
	return basic_add(pipe_queue, pipe, match, actions, monitor, fwd, flags, usr_ctx, entry);
}

doca_error_t doca_flow_pipe_control_add_entry(uint16_t pipe_queue, uint32_t priority, struct doca_flow_pipe *pipe,
					      const struct doca_flow_match *match,
					      const struct doca_flow_match *match_mask,
					      const struct doca_flow_match_condition *condition,
					      const struct doca_flow_actions *actions,
					      const struct doca_flow_actions *actions_mask,
					      const struct doca_flow_action_descs *action_descs,
					      const struct doca_flow_monitor *monitor, const struct doca_flow_fwd *fwd,
					      void *usr_ctx, struct doca_flow_pipe_entry **entry)
{
	(void)monitor;
	return control_add(pipe_queue, priority, pipe, match, match_mask, condition, actions, actions_mask,
			   action_descs, fwd, usr_ctx, entry);
}
#endif

static doca_error_t update_common(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
				  const struct doca_flow_actions *actions, const struct doca_flow_fwd *fwd,
				  uint32_t flags, struct doca_flow_pipe_entry *entry)
{
	doca_error_t rc = check_flags(flags);
	if (rc != DOCA_SUCCESS)
		return rc;
	if (!G.inited)
		return DOCA_ERROR_BAD_STATE;
	if (entry == NULL || pipe == NULL || entry->pipe != pipe || pipe->dead || pipe_queue >= G.queues)
		return DOCA_ERROR_INVALID_VALUE;
	if (pipe->type != DOCA_FLOW_PIPE_BASIC || entry->state == SD_E_GONE)
		return DOCA_ERROR_INVALID_VALUE;
	if (fwd != NULL && fwd->type != DOCA_FLOW_FWD_NONE)
		return DOCA_ERROR_NOT_SUPPORTED;
	if (pipe->mac_mode != 2 || actions == NULL)
		return DOCA_ERROR_INVALID_VALUE; /* only the per-entry dst MAC is changeable */
	return queue_push(pipe->port, pipe_queue, SD_OP_UPD, entry, mac_word(actions->outer.eth.dst_mac));
}

#if SOFTDOCA_API >= 303
doca_error_t doca_flow_pipe_basic_update_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe, uint8_t action_idx,
					       const struct doca_flow_actions *actions,
					       const struct doca_flow_monitor *monitor, const struct doca_flow_fwd *fwd,
					       uint32_t flags, struct doca_flow_pipe_entry *entry)
{
	(void)monitor;
	if (action_idx != 0)
		return DOCA_ERROR_INVALID_VALUE;
	return update_common(pipe_queue, pipe, actions, fwd, flags, entry);
}
#else
doca_error_t doca_flow_pipe_update_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
					 const struct doca_flow_actions *actions, const struct doca_flow_monitor *monitor,
					 const struct doca_flow_fwd *fwd, uint32_t flags,
					 struct doca_flow_pipe_entry *entry)
{
	(void)monitor;
	return update_common(pipe_queue, pipe, actions, fwd, flags, entry);
}
#endif

static doca_error_t remove_common(uint16_t pipe_queue, uint32_t flags, struct doca_flow_pipe_entry *entry)
{
	doca_error_t rc = check_flags(flags);
	if (rc != DOCA_SUCCESS)
		return rc;
	if (!G.inited)
		return DOCA_ERROR_BAD_STATE;
	if (entry == NULL || pipe_queue >= G.queues || entry->pipe == NULL || entry->pipe->dead ||
	    entry->state == SD_E_GONE)
		return DOCA_ERROR_INVALID_VALUE;
	return queue_push(entry->pipe->port, pipe_queue, SD_OP_DEL, entry, 0);
}

static void query_common(struct doca_flow_pipe_entry *entry, uint64_t *pkts, uint64_t *bytes)
{
	*pkts = RLX_LOAD(&entry->pkts);
	*bytes = RLX_LOAD(&entry->bytes);
}

#if SOFTDOCA_API >= 209
doca_error_t doca_flow_pipe_remove_entry(uint16_t pipe_queue, uint32_t flags, struct doca_flow_pipe_entry *entry)
{
	return remove_common(pipe_queue, flags, entry);
}

doca_error_t doca_flow_resource_query_entry(struct doca_flow_pipe_entry *entry,
					    struct doca_flow_resource_query *query_stats)
{
	if (entry == NULL || query_stats == NULL || entry->state == SD_E_GONE)
		return DOCA_ERROR_INVALID_VALUE;
	query_common(entry, &query_stats->counter.total_pkts, &query_stats->counter.total_bytes);
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_resource_query_pipe_miss(struct doca_flow_pipe *pipe,
						struct doca_flow_resource_query *query_stats)
{
	if (pipe == NULL || pipe->dead || query_stats == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	query_stats->counter.total_pkts = RLX_LOAD(&pipe->miss_pkts);
	query_stats->counter.total_bytes = RLX_LOAD(&pipe->miss_bytes);
	return DOCA_SUCCESS;
}
#else
doca_error_t doca_flow_pipe_rm_entry(uint16_t pipe_queue, uint32_t flags, struct doca_flow_pipe_entry *entry)
{
	return remove_common(pipe_queue, flags, entry);
}

doca_error_t doca_flow_query_entry(struct doca_flow_pipe_entry *entry, struct doca_flow_query *query_stats)
{
	if (entry == NULL || query_stats == NULL || entry->state == SD_E_GONE)
		return DOCA_ERROR_INVALID_VALUE;
	query_common(entry, &query_stats->total_pkts, &query_stats->total_bytes);
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_query_pipe_miss(struct doca_flow_pipe *pipe, struct doca_flow_query *query_stats)
{
	if (pipe == NULL || pipe->dead || query_stats == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	query_stats->total_pkts = RLX_LOAD(&pipe->miss_pkts);
	query_stats->total_bytes = RLX_LOAD(&pipe->miss_bytes);
	return DOCA_SUCCESS;
}
#endif

enum doca_flow_entry_status doca_flow_pipe_entry_get_status(struct doca_flow_pipe_entry *entry)
{
	return entry ? entry->status : DOCA_FLOW_ENTRY_STATUS_ERROR;
}

doca_error_t softdoca_entry_error(struct doca_flow_pipe_entry *entry)
{
	return entry ? entry->err : DOCA_ERROR_INVALID_VALUE;
}

doca_error_t softdoca_inject_add_failure(uint32_t nth, int at_process)
{
	G.inject_nth = nth;
	G.inject_at_process = at_process;
	return DOCA_SUCCESS;
}

/* --- entries_process: apply queued ops -------------------------------------------- */

static doca_error_t htab_rebuild(struct doca_flow_pipe *p)
{
	struct sd_htab *old = atomic_load(&p->htab);
	struct sd_htab *t = htab_new(p->nr_entries);
	if (t == NULL)
		return DOCA_ERROR_NO_MEMORY;
	for (uint32_t i = 0; i <= old->mask; i++) {
		struct doca_flow_pipe_entry *e = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
		if (e == NULL || (uintptr_t)e == 1)
			continue;
		uint32_t j = sd_key_hash(&e->val) & t->mask;
		while (atomic_load_explicit(&t->slot[j], memory_order_relaxed))
			j = (j + 1) & t->mask;
		atomic_store_explicit(&t->slot[j], e, memory_order_relaxed);
		t->used++;
	}
	STORE_REL(&p->htab, t); /* publishes the filled table */
	sd_defer_blob(old);
	return DOCA_SUCCESS;
}

/* Insert into the basic pipe's table; ALREADY_EXIST if the same masked value is there. */
static doca_error_t htab_insert(struct doca_flow_pipe *p, struct doca_flow_pipe_entry *e)
{
	struct sd_htab *t = atomic_load(&p->htab);
	if (t->used + t->tombs + 1 > (t->mask + 1) / 4 * 3) {
		doca_error_t rc = htab_rebuild(p); /* drop tombstones */
		if (rc != DOCA_SUCCESS)
			return rc;
		t = atomic_load(&p->htab);
	}
	uint32_t i = sd_key_hash(&e->val) & t->mask;
	int64_t tomb = -1;
	for (;;) {
		struct doca_flow_pipe_entry *x = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (x == NULL)
			break;
		if ((uintptr_t)x == 1) {
			if (tomb < 0)
				tomb = i;
		} else if (sd_key_eq(&x->val, &e->val)) {
			return DOCA_ERROR_ALREADY_EXIST;
		}
		i = (i + 1) & t->mask;
	}
	if (tomb >= 0) {
		i = (uint32_t)tomb;
		t->tombs--;
	}
	STORE_REL(&t->slot[i], e); /* the entry is fully written before it becomes visible */
	t->used++;
	return DOCA_SUCCESS;
}

static void htab_delete(struct doca_flow_pipe *p, struct doca_flow_pipe_entry *e)
{
	struct sd_htab *t = atomic_load(&p->htab);
	if (t == NULL)
		return;
	uint32_t i = sd_key_hash(&e->val) & t->mask;
	for (uint32_t n = 0; n <= t->mask; n++, i = (i + 1) & t->mask) {
		struct doca_flow_pipe_entry *x = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (x == NULL)
			return;
		if (x == e) {
			STORE_REL(&t->slot[i], (struct doca_flow_pipe_entry *)1);
			t->used--;
			t->tombs++;
			return;
		}
	}
}

static void entry_unlink_tables(struct doca_flow_pipe_entry *e)
{
	if (e->state != SD_E_ACTIVE)
		return;
	if (e->pipe->type == DOCA_FLOW_PIPE_BASIC)
		htab_delete(e->pipe, e);
	else
		e->pipe->ctl_dirty = true;
}

static int ctl_cmp(const void *a, const void *b)
{
	const struct doca_flow_pipe_entry *x = *(const struct doca_flow_pipe_entry *const *)a;
	const struct doca_flow_pipe_entry *y = *(const struct doca_flow_pipe_entry *const *)b;
	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1; /* lower value = higher priority (0 first) */
	return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

static doca_error_t ctl_publish(struct doca_flow_pipe *p)
{
	uint32_t n = 0;
	for (struct doca_flow_pipe_entry *e = p->entries; e; e = e->next)
		n += e->state == SD_E_ACTIVE;
	struct sd_ctl_snap *s = malloc(sizeof(*s) + (n ? n : 1) * sizeof(s->e[0]));
	if (s == NULL)
		return DOCA_ERROR_NO_MEMORY;
	s->n = 0;
	for (struct doca_flow_pipe_entry *e = p->entries; e; e = e->next)
		if (e->state == SD_E_ACTIVE)
			s->e[s->n++] = e;
	qsort(s->e, s->n, sizeof(s->e[0]), ctl_cmp);
	sd_defer_blob(atomic_exchange_explicit(&p->snap, s, memory_order_acq_rel));
	p->ctl_dirty = false;
	return DOCA_SUCCESS;
}

static void entry_list_remove(struct doca_flow_pipe_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		e->pipe->entries = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->prev = e->next = NULL;
}

static void notify(struct doca_flow_pipe_entry *e, uint16_t queue, enum doca_flow_entry_status st,
		   enum doca_flow_entry_op op)
{
	if (G.cb)
		G.cb(e, queue, st, op, e->usr_ctx);
}

doca_error_t doca_flow_entries_process(struct doca_flow_port *port, uint16_t pipe_queue, uint64_t timeout,
				       uint32_t max_processed_entries)
{
	(void)timeout; /* everything queued completes synchronously here */
	if (!G.inited)
		return DOCA_ERROR_BAD_STATE;
	if (port == NULL || G.ports[port->id] != port || pipe_queue >= G.queues)
		return DOCA_ERROR_INVALID_VALUE;
	struct sd_queue *q = &port->q[pipe_queue];
	uint32_t todo = q->n;
	if (max_processed_entries && max_processed_entries < todo)
		todo = max_processed_entries;
	struct doca_flow_pipe *dirty[64];
	uint32_t ndirty = 0;
	bool overflow = false;

	for (uint32_t i = 0; i < todo; i++) {
		struct sd_op *op = &q->ops[i];
		struct doca_flow_pipe_entry *e = op->e;
		struct doca_flow_pipe *p = e->pipe;
		enum doca_flow_entry_status st = DOCA_FLOW_ENTRY_STATUS_SUCCESS;
		switch (op->kind) {
		case SD_OP_ADD:
			if (e->inject_fail) {
				st = DOCA_FLOW_ENTRY_STATUS_ERROR;
				e->err = DOCA_ERROR_FULL; /* injected capacity error */
			} else if (p->type == DOCA_FLOW_PIPE_BASIC) {
				e->err = htab_insert(p, e); /* ALREADY_EXIST: duplicate match */
				if (e->err != DOCA_SUCCESS)
					st = DOCA_FLOW_ENTRY_STATUS_ERROR;
			} else {
				p->ctl_dirty = true;
			}
			e->state = st == DOCA_FLOW_ENTRY_STATUS_SUCCESS ? SD_E_ACTIVE : SD_E_FAILED;
			e->status = st;
			notify(e, pipe_queue, st, DOCA_FLOW_ENTRY_OP_ADD);
			break;
		case SD_OP_UPD:
			if (e->state == SD_E_ACTIVE) {
				/* the one store the forwarder can observe: old MAC or new MAC */
				atomic_store_explicit(&e->act_mac, op->mac, memory_order_release);
			} else {
				st = DOCA_FLOW_ENTRY_STATUS_ERROR;
			}
			e->status = st;
			notify(e, pipe_queue, st, DOCA_FLOW_ENTRY_OP_UPD);
			break;
		case SD_OP_DEL:
			if (e->state == SD_E_GONE) {
				st = DOCA_FLOW_ENTRY_STATUS_ERROR;
				notify(e, pipe_queue, st, DOCA_FLOW_ENTRY_OP_DEL);
				break;
			}
			entry_unlink_tables(e);
			entry_list_remove(e);
			p->nr_used--;
			e->state = SD_E_GONE;
			notify(e, pipe_queue, st, DOCA_FLOW_ENTRY_OP_DEL);
			e->free_next = G.free_entries;
			G.free_entries = e;
			break;
		}
		if (p->type == DOCA_FLOW_PIPE_CONTROL && p->ctl_dirty) {
			bool seen = false;
			for (uint32_t d = 0; d < ndirty; d++)
				seen |= dirty[d] == p;
			if (!seen) {
				if (ndirty < 64)
					dirty[ndirty++] = p;
				else
					overflow = true;
			}
		}
	}
	memmove(q->ops, q->ops + todo, (q->n - todo) * sizeof(q->ops[0]));
	q->n -= todo;

	doca_error_t rc = DOCA_SUCCESS;
	for (uint32_t d = 0; d < ndirty; d++)
		if (ctl_publish(dirty[d]) != DOCA_SUCCESS)
			rc = DOCA_ERROR_NO_MEMORY;
	if (overflow)
		for (struct doca_flow_pipe *p = port->pipes; p; p = p->next_pipe_of_port)
			if (p->ctl_dirty && ctl_publish(p) != DOCA_SUCCESS)
				rc = DOCA_ERROR_NO_MEMORY;
	sd_reclaim(); /* one grace period for the whole batch */
	return rc;
}

/* ------------------------------------------------------------------------------------ */
/* test entry point                                                                     */

int softdoca_classify_frame(uint16_t port_id, uint8_t *frame, uint32_t len)
{
	if (port_id >= SD_MAX_PORTS || G.ports[port_id] == NULL)
		return -3;
	if (atomic_load(&G.fwd_running))
		return -4; /* counters have one writer: the forwarder, when it runs */
	struct doca_flow_port *in = G.ports[port_id];
	uint64_t mac;
	bool malformed;
	RLX_ADD(&in->st.wire_rx_pkts, 1);
	RLX_ADD(&in->st.wire_rx_bytes, len);
	int res = sd_classify(in, frame, len, &mac, &malformed);
	if (res >= 0 && mac && len >= 6)
		for (int i = 0; i < 6; i++)
			frame[i] = (uint8_t)(mac >> (8 * i));
	if (res == SD_RES_MISS) {
		RLX_ADD(&in->st.miss_pkts, 1);
		RLX_ADD(&in->st.miss_bytes, len);
		if (malformed)
			RLX_ADD(&in->st.malformed_pkts, 1);
	} else if (res == SD_RES_DROP) {
		RLX_ADD(&in->st.drop_pkts, 1);
	}
	return res;
}
