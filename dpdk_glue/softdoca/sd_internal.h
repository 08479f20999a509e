/*
 * softdoca internals shared by its source files (not part of the DOCA-shaped API).
 *
 * Files: sd_core.c (global state, init/destroy, mode arguments, error names, grace periods),
 * sd_dev.c (the registry of PCI functions, doca_dev / doca_dev_rep, probing into DPDK and the
 * functions' I/O vdevs), sd_match.c (DOCA match/forward -> lookup keys, forward rules),
 * sd_ports.c (flow ports, e-switches, pairs, default miss), sd_pipes.c, sd_entries.c (queued
 * add/update/remove, entries_process), sd_fwd.c (the forwarding thread), sd_parse.c (the
 * frame parser; it uses only the key definitions below, no DPDK).
 *
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
#ifndef SOFTDOCA_INTERNAL_H_
#define SOFTDOCA_INTERNAL_H_

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "doca_dev.h"
#include "doca_dpdk.h"
#include "doca_flow.h"
#include "softdoca.h"

/* DOCA port ids: 2.9 takes a port's id from its DPDK port id, so the range is DPDK's */
#define SD_MAX_PORTS 32
#define SD_MAX_FNS 32 /* registered PCI functions (devices and representors) */
#define SD_MAX_QUEUES 8
#define SD_MAX_CHAIN 8 /* pipe hops per packet: bounds a (misconfigured) forwarding loop */
#define SD_DEFAULT_NR_ENTRIES 8192 /* DOCA's documented default when nr_entries is not set */

/*
 * The lookup key: the header fields softdoca can match, as they sit in the packet (network
 * byte order), plus validity bits.  l3 is the frame's family (4 or 6; 0: no L3 header
 * parsed); a pipe/entry mask that touches an address, ip_proto or an L4 port requires it
 * (mask 0xff, value 4 or 6), one that touches an L4 port also requires l4_ok=1.  So an ARP
 * frame never matches "ipv4_src & 1 == 0" just because its (absent) source address reads as
 * zero, and an IPv4 entry never matches an IPv6 frame nor the reverse.
 * Words 0-2 hold everything IPv4 needs, words 3-6 the IPv6 addresses.  A pipe or entry
 * compares only the words its mask touches (sd_key_words: 3 for IPv4, more only when an
 * IPv6 address is matched), so an IPv4 lookup is the three AND/XOR/OR it always was.
 */
#define SD_KEY_WORDS 7
#define SD_KEY_V4_WORDS 3

struct sd_key {
	union {
		struct {
			uint32_t ip_src; /* IPv4 */
			uint32_t ip_dst;
			uint16_t l4_src;
			uint16_t l4_dst;
			uint16_t eth_type;
			uint16_t port_id; /* ingress DOCA port id (host order) */
			uint8_t ip_proto; /* IPv6: the upper-layer protocol after the extension headers */
			uint8_t l3;
			uint8_t l4_ok;
			uint8_t color; /* meter colour (DOCA's enum); GREEN until a meter marks it */
			uint8_t pad[4];
			uint32_t ip6_src[4];
			uint32_t ip6_dst[4];
		};
		uint64_t w[SD_KEY_WORDS];
	};
};

_Static_assert(sizeof(struct sd_key) == 8 * SD_KEY_WORDS, "sd_key is whole words");

/* nw: the words the mask touches (sd_key_words), at least the three IPv4 ones */
static inline bool sd_key_match(const struct sd_key *pkt, const struct sd_key *mask, const struct sd_key *val,
				unsigned nw)
{
	uint64_t d = ((pkt->w[0] & mask->w[0]) ^ val->w[0]) | ((pkt->w[1] & mask->w[1]) ^ val->w[1]) |
		     ((pkt->w[2] & mask->w[2]) ^ val->w[2]);
	if (__builtin_expect(nw > SD_KEY_V4_WORDS, 0))
		for (unsigned i = SD_KEY_V4_WORDS; i < nw; i++)
			d |= (pkt->w[i] & mask->w[i]) ^ val->w[i];
	return d == 0;
}

static inline bool sd_key_eq(const struct sd_key *a, const struct sd_key *b, unsigned nw)
{
	uint64_t d = (a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]);
	if (__builtin_expect(nw > SD_KEY_V4_WORDS, 0))
		for (unsigned i = SD_KEY_V4_WORDS; i < nw; i++)
			d |= a->w[i] ^ b->w[i];
	return d == 0;
}

static inline uint32_t sd_key_hash(const struct sd_key *k, unsigned nw)
{
	uint64_t h = k->w[0] * 0x9E3779B97F4A7C15ULL;
	h ^= (k->w[1] + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL;
	h ^= (k->w[2] + 0x165667B19E3779F9ULL) * 0x27D4EB2F165667C5ULL;
	if (__builtin_expect(nw > SD_KEY_V4_WORDS, 0))
		for (unsigned i = SD_KEY_V4_WORDS; i < nw; i++) {
			h ^= h >> 31;
			h = (h ^ k->w[i]) * 0x9E3779B97F4A7C15ULL;
		}
	h ^= h >> 29;
	h *= 0xBF58476D1CE4E5B9ULL;
	h ^= h >> 32;
	return (uint32_t)h;
}

/* Parse a frame into a key.  Returns false for a truncated/malformed frame (key then holds
 * whatever could be parsed safely; the caller treats the frame as a miss). */
bool sd_parse(const uint8_t *frame, uint32_t len, uint16_t port_id, struct sd_key *key);

enum sd_fwd_kind { SD_FWD_MISS = 0, SD_FWD_PORT, SD_FWD_PIPE, SD_FWD_DROP };

struct sd_fwd {
	uint8_t kind;
	uint16_t port_id;
	struct doca_flow_pipe *pipe;
};

/* MAC action word: bit 63 = "set dst MAC", low 48 bits = the 6 MAC bytes (byte 0 lowest).
 * One 64-bit word so that an in-place update is a single atomic store (see the top of this file). */
#define SD_MAC_SET (1ULL << 63)

struct doca_flow_pipe_entry;

/*
 * A meter: RFC 2697 srTCM, colour-blind, EBS 0 (green or red).  The bucket holds tokens
 * scaled by 1e9 (one token = SD_NS units), refilled by cir units per nanosecond, so the
 * arithmetic is exact integers.  Its configuration is an immutable blob the control plane
 * publishes (one atomic pointer store); the bucket state has one writer, the forwarder (or
 * softdoca_classify_frame when none runs), which adopts a new blob when its gen changes:
 * it refills at the old rate up to the change (since_ns), then caps the tokens at the new
 * cbs -- the new rate applies from the change on.  A blob with reset set (a shared meter
 * configured afresh) starts the bucket full and the colour counters at zero.
 */
#define SD_NS 1000000000ULL
#define SD_METER_MAX 18000000000ULL /* cir and cbs: cbs * 1e9 must fit in 64 bits */

struct sd_meter_cfg {
	uint64_t gen;
	uint64_t cir, cbs;
	uint64_t since_ns;
	uint8_t bytes; /* limit_type BYTES: a packet costs its length */
	uint8_t reset;
};

struct sd_meter {
	_Atomic(struct sd_meter_cfg *) cfg;
	/* forwarder-owned state */
	uint64_t gen, cir, cbs;
	uint8_t bytes;
	uint64_t tokens; /* scaled by SD_NS */
	uint64_t last_ns;
	uint64_t green, red; /* single writer: the forwarder */
};

/* A shared meter (ids 0 .. nr_shared - 1). */
struct sd_shared_meter {
	struct sd_meter m;
	bool configured;
	bool taken;       /* 3.2+: handed out by doca_flow_port_shared_resource_get */
	uint32_t ports;   /* bit per DOCA port id it is bound to (<= 3.1) or was got from (3.2+) */
	uint32_t refs;    /* entries using it */
};

struct sd_htab {
	uint32_t mask;   /* slots - 1 (power of two) */
	uint32_t used;   /* live entries */
	uint32_t tombs;  /* deleted slots */
	_Atomic(struct doca_flow_pipe_entry *) slot[];
};

struct sd_ctl_snap {
	uint32_t n;
	struct doca_flow_pipe_entry *e[];
};

#define LOAD_ACQ(p) atomic_load_explicit((p), memory_order_acquire)
#define STORE_REL(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define RLX_ADD(p, v) __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + (v), __ATOMIC_RELAXED)
#define RLX_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

struct rte_mempool;

enum sd_estate { SD_E_PENDING = 0, SD_E_ACTIVE, SD_E_FAILED, SD_E_GONE };

struct doca_flow_pipe_entry {
	struct doca_flow_pipe *pipe;
	struct sd_key val;  /* value (already within the mask) */
	struct sd_key mask; /* control entries: own mask; basic entries: copy of the pipe mask */
	uint8_t nw;         /* key words the mask touches (sd_key_words) */
	uint32_t priority;
	uint64_t seq; /* insertion order: tie-break among equal priorities */
	_Atomic uint64_t act_mac;
	struct sd_fwd fwd;
	uint64_t pkts, bytes; /* single writer: the forwarder */
	enum doca_flow_entry_status status;
	enum sd_estate state;
	bool inject_fail;
	bool has_action;  /* it rewrites the frame: it holds actions memory of its pipe's port */
	struct sd_meter *meter;    /* the meter it marks packets with (NULL: none) */
	struct sd_meter own_meter; /* a non-shared meter lives here */
	int32_t shared_id;         /* the shared meter it uses, or -1 */
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
	uint8_t nw;            /* basic: key words its mask touches (sd_key_words) */
	uint8_t fam;           /* basic: the family its mask requires (4, 6; 0 none) */
	uint8_t mac_mode;      /* 0 no MAC action, 1 constant, 2 per entry */
	uint8_t meter_kind;    /* doca_flow_resource_type of its monitor's meter (per entry) */
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
	uint64_t mac; /* UPD: new MAC word, 0 = keep */
	struct sd_meter_cfg *meter; /* UPD: new non-shared meter configuration, NULL = keep */
};

struct sd_queue {
	struct sd_op *ops;
	uint32_t n, cap;
};

/* A port's default miss (what happens to a frame no pipe takes, fwd_miss NULL). */
enum sd_miss { SD_MISS_KERNEL = 0, SD_MISS_RSS, SD_MISS_DROP };

/*
 * A registered PCI function (softdoca_dev_register): a device (PF/SF) or a representor.  Its
 * DOCA handles are embedded, so a handle stays valid memory for the process's lifetime.
 * Probing makes it a DPDK port: with I/O it owns the wire and representor vdevs (and their
 * mbuf pool) until it is closed or unregistered; flow ports only borrow them.
 */
struct sd_fn;
struct doca_devinfo { struct sd_fn *fn; };
struct doca_devinfo_rep { struct sd_fn *fn; };
struct doca_dev { struct sd_fn *fn; };
struct doca_dev_rep { struct sd_fn *fn; };

struct sd_fn {
	bool used;
	uint8_t idx;
	char addr[64];
	int parent;    /* index of the parent device; -1: a device */
	int esw;       /* e-switch id (a representor: its parent's) */
	char iface[32], rep_iface[32], driver[16];
	uint32_t opens; /* doca_dev_open / doca_dev_rep_open refcount */
	bool probed;
	bool has_io;
	uint16_t dpdk_port; /* valid when probed: wire vdev's ethdev id, or a synthetic id (driver none) */
	uint16_t wire_eth, rep_eth;
	char wire_vdev[64], rep_vdev[64];
	struct rte_mempool *pool; /* the function's mbufs (sized for its driver) */
	struct doca_flow_port *port; /* the flow port started on it, if any */
	struct doca_devinfo info;
	struct doca_devinfo_rep info_rep;
	struct doca_dev dev;
	struct doca_dev_rep dev_rep;
};

struct doca_flow_port {
	uint16_t id;
	atomic_int active;
	bool has_io;
	bool is_rep;
	bool is_switch_manager;
	int esw;
	uint64_t start_seq;            /* start order: the "first" e-switch is the oldest manager's */
	struct sd_fn *fn;
	struct doca_flow_port *mgr;    /* switch mode: its e-switch's manager (outlives the port) */
	struct doca_flow_port *pair;   /* vnf mode: the port pipes of this port may forward to */
	uint64_t actions_mem;          /* bytes the port's entries' actions may use (3.0+) */
	uint64_t actions_used;         /* DOCA_FLOW_MAX_ENTRY_ACTIONS_MEM_SIZE per entry with an action */
	atomic_int miss;               /* enum sd_miss, read by the forwarder */
	uint16_t wire_eth, rep_eth;    /* the function's vdevs (owned by the function) */
	_Atomic(struct doca_flow_pipe *) root;
	struct doca_flow_pipe *pipes; /* all pipes created on this port */
	struct sd_queue q[SD_MAX_QUEUES];
	struct softdoca_port_stats st; /* single writer: the forwarder */
};

/* Everything below is internal to the model: hidden from the module's exported symbols. */
#pragma GCC visibility push(hidden)

struct sd_global {
	bool inited;
	bool switch_mode;
	bool isolated; /* "isolated" in the mode arguments (<= 3.2): default miss to the kernel */
	uint16_t queues;
	doca_flow_entry_process_cb cb;
	struct doca_flow_port *ports[SD_MAX_PORTS];
	uint64_t port_seq; /* port start order */
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
	atomic_uint idle_max_us; /* ceiling of the idle sleep; <= sleep_us: a fixed sleep_us */
	uint64_t busy_cycles, busy_pkts; /* forwarder iterations that moved packets (single writer) */
	/* the idle back-off as it stands (single writer: the forwarder): the next sleep's length,
	 * sleeps taken, and back-offs a packet cut short after they had grown */
	uint32_t fwd_sleep_us;
	uint64_t fwd_sleeps, fwd_backoff_resets;
	/* deferred frees (after a grace period) */
	struct doca_flow_pipe_entry *free_entries;
	struct doca_flow_pipe *free_pipes;
	void *free_blobs[64];
	uint32_t n_free_blobs;
	/* the hardware's limits (softdoca_set_capacity), 0 = none */
	uint32_t cap_entries_per_pipe;
	uint32_t cap_pipes;
	/* meters: the budgets declared at init, what is in use, the shared ones, the clock */
	uint32_t nr_meters, meters_used;
	uint32_t nr_shared_meters;
	struct sd_shared_meter *shm;
	uint64_t meter_gen;
	atomic_int manual_clock;
	_Atomic uint64_t clock_ns;
	/* softdoca_classify_frame's trace of the last frame: meters met, the colour left */
	uint32_t trace_meters;
	uint8_t trace_color;
	/* fault injection */
	uint32_t inject_nth;
	int inject_at_process;
};

extern struct sd_global sd_g;

/* sd_core.c: grace periods.  sd_synchronize waits until the forwarder passed a quiescent
 * point (or is offline); sd_defer_blob frees a blob after one; sd_reclaim frees everything
 * deferred (entries, pipes, blobs) after one. */
void sd_synchronize(void);
void sd_defer_blob(void *p);
void sd_reclaim(void);

/* sd_dev.c: the functions' registry; sd_fn_unprobe closes a function's vdevs. */
extern struct sd_fn sd_fns[SD_MAX_FNS];
void sd_fn_unprobe(struct sd_fn *f);

/* sd_ports.c: may a pipe of `owner` forward to (or match ingress on) DOCA port `port_id`?
 * vnf: only itself or its pair; switch: ports of the manager's e-switch. */
doca_error_t sd_port_fwd_allowed(const struct doca_flow_port *owner, uint16_t port_id);
doca_error_t sd_port_match_allowed(const struct doca_flow_port *owner, const struct sd_key *val,
				   const struct sd_key *mask);

/* sd_match.c */
bool sd_mem_is_zero(const void *p, size_t n);
doca_error_t sd_match_to_key(const struct doca_flow_match *m, struct sd_key *k);
doca_error_t sd_mask_finish(struct sd_key *mask, struct sd_key *val, uint8_t *fam);
bool sd_key_within(const struct sd_key *val, const struct sd_key *mask);
void sd_key_full_mask(const struct sd_key *m, struct sd_key *mask);
unsigned sd_key_words(const struct sd_key *mask);
uint64_t sd_mac_word(const uint8_t *mac);
bool sd_mac_all_ones(const uint8_t *mac);
doca_error_t sd_fwd_convert(const struct doca_flow_fwd *f, struct doca_flow_port *owner, struct sd_fwd *out,
			    bool allow_none);

/* sd_fwd.c: the forwarding thread (started with the first port doing packet I/O). */
doca_error_t sd_fwd_start(void);
void sd_fwd_stop(void);

/* sd_pipes.c */
struct sd_htab *sd_htab_new(uint32_t nr_entries);
void sd_pipe_destroy_now(struct doca_flow_pipe *p);
void sd_pipe_unref(struct doca_flow_pipe *p);

/* sd_meter.c: the clock, marking, configuration blobs, monitor validation. */
uint64_t sd_now_ns(void);
uint8_t sd_meter_mark(struct sd_meter *m, uint32_t len);
struct sd_meter_cfg *sd_meter_cfg_new(uint64_t cir, uint64_t cbs, bool bytes, bool reset);
void sd_meter_publish(struct sd_meter *m, struct sd_meter_cfg *c);
doca_error_t sd_meter_check(enum doca_flow_meter_limit_type lt, uint64_t cir, uint64_t cbs);
doca_error_t sd_meters_init(uint32_t nr_meters, uint32_t nr_shared);
void sd_meters_fini(void);
doca_error_t sd_entry_take_meter(struct doca_flow_pipe_entry *e, const struct doca_flow_monitor *mon);
void sd_entry_release_meter(struct doca_flow_pipe_entry *e);

/* sd_entries.c */
void sd_entry_unlink_tables(struct doca_flow_pipe_entry *e);

#pragma GCC visibility pop

#endif
