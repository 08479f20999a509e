/*
 * dpdk_glue: a small C shim over DOCA Flow + the DPDK EAL, called from Python through cffi
 * (API mode).  It absorbs the DOCA version differences (call names, flag numbers, argument
 * orders) so that Python sees one stable interface, and it turns batches of entries into
 * one queued add + one doca_flow_entries_process, all-or-nothing.
 *
 * All functions return a doca_error_t value (0 = DOCA_SUCCESS).  On failure,
 * xf_last_call() names the DOCA/DPDK call that failed and xf_last_detail() says more.
 * Every function takes an internal mutex, so calls from several threads are serialised.
 *
 * This header is also the cffi cdef: build_glue.py feeds it to cffi after dropping the
 * preprocessor lines, so keep it to plain declarations.  The softdoca-only knobs are in
 * glue_softdoca.h (compiled and declared for the softdoca target only).
 */
#ifndef XF_GLUE_H_
#define XF_GLUE_H_

#include <stdint.h>

/* Match fields in HOST byte order (the glue converts to network order).  An IPv6 address is
 * four host-order 32-bit words, most significant first.  l3: the family a match is about --
 * 0 derive (IPv6 if an ipv6_* field is set, else IPv4 if any IPv4, ip_proto or L4 field is),
 * 4 or 6 (a match of L4 fields alone for an IPv6 service says 6).  ipv4_* with ipv6_* fields,
 * or a family that contradicts them, is refused (DOCA_ERROR_INVALID_VALUE).  meter_color: the
 * colour the last meter marked (enum xf_color; in a mask any non-zero value matches the
 * colour; the glue maps it to DOCA's enum).  52 bytes. */
struct xf_match {
	uint32_t ipv4_src;
	uint32_t ipv4_dst;
	uint16_t eth_type;
	uint16_t l4_src;
	uint16_t l4_dst;
	uint8_t ip_proto;
	uint8_t l3;
	uint32_t ipv6_src[4];
	uint32_t ipv6_dst[4];
	uint8_t meter_color;
	uint8_t pad[3];
};

enum xf_color { XF_COLOR_GREEN = 0, XF_COLOR_YELLOW = 1, XF_COLOR_RED = 2 };

enum xf_fwd_kind { XF_FWD_NONE = 0, XF_FWD_PORT = 1, XF_FWD_PIPE = 2, XF_FWD_DROP = 3 };

enum xf_meter_kind { XF_METER_NONE = 0, XF_METER_ENTRY = 1, XF_METER_SHARED = 2 };

/* One entry to add.  152 bytes, no implicit padding: Python packs these with struct. */
struct xf_entry_spec {
	uint32_t pipe;        /* pipe handle from xf_pipe_create_* */
	uint32_t priority;    /* control (root) entries: 0 = highest */
	struct xf_match match;
	struct xf_match mask; /* control entries only; basic entries use the pipe's mask */
	uint32_t fwd_target;  /* port id (XF_FWD_PORT) or pipe handle (XF_FWD_PIPE) */
	uint8_t fwd_kind;     /* enum xf_fwd_kind; control entries only */
	uint8_t has_mac;      /* set destination MAC (basic entries of pipes that set it: required) */
	uint8_t dst_mac[6];
	uint8_t meter_kind;   /* enum xf_meter_kind: the pipe's (basic entries) */
	uint8_t meter_bytes;  /* XF_METER_ENTRY: limit in bytes (else packets) */
	uint8_t pad[2];
	uint64_t cir;         /* XF_METER_ENTRY: committed rate (per second) */
	uint64_t cbs;         /* XF_METER_ENTRY: committed burst */
	uint32_t shared_meter; /* XF_METER_SHARED: meter handle from xf_meter_create */
	uint32_t pad2;
};

/* A basic pipe's forward, miss and meter.  fwd_kind: XF_FWD_PORT / _PIPE / _DROP (target: a
 * port id or a basic pipe handle); miss_kind: XF_FWD_NONE (the port's default miss) or as
 * fwd_kind; meter_kind: enum xf_meter_kind (given per entry); set_mac: entries set a
 * destination MAC (a drop stage or a match-all meter pipe has none). */
struct xf_pipe_opts {
	uint32_t fwd_target;
	uint32_t miss_target;
	uint8_t fwd_kind;
	uint8_t miss_kind;
	uint8_t meter_kind;
	uint8_t set_mac;
};

enum xf_port_kind { XF_PORT_DEV = 0, XF_PORT_REP = 1 };

/* One eSwitch port to bring up.  Python packs these with cffi (not struct): keep plain. */
struct xf_port_cfg {
	uint16_t id;            /* logical port id (the config's), < 16 */
	uint16_t parent;        /* XF_PORT_REP: id of the device port it is a representor of */
	uint16_t pair;          /* vnf mode: the port this one forwards to (doca_flow_port_pair), or 0xffff */
	uint8_t kind;           /* enum xf_port_kind */
	uint8_t pad;
	char addr[64];          /* PCI address of the function (device or represented); softdoca: any name */
	char devargs[160];      /* XF_PORT_DEV: DPDK devargs for doca_dpdk_port_probe (no PCI address) */
	char target_args[128];  /* softdoca: "iface=..,rep=..,driver=..,esw=N"; ignored by real DOCA */
	uint32_t action_entries; /* 3.0+: entries with actions its pipes may hold (a power of two;
				  * its actions memory is 128 bytes each); 0: 131072 (16 MiB) */
};

struct xf_port_stats {
	uint64_t rx_pkts, rx_bytes;         /* wire side, received */
	uint64_t tx_pkts, tx_bytes;         /* wire side, sent */
	uint64_t rep_rx_pkts, rep_rx_bytes; /* representor side, received (softdoca) */
	uint64_t rep_tx_pkts, rep_tx_bytes; /* representor side, sent (softdoca) */
	uint64_t miss_pkts, miss_bytes;     /* no entry claimed the frame: default miss */
	uint64_t malformed_pkts;            /* of the misses: truncated/malformed (softdoca) */
	uint64_t drop_pkts;
	uint64_t tx_fail_pkts;
	uint64_t miss_rss_pkts;             /* of the misses: to the application's queues, lost (softdoca) */
	uint64_t valid;                     /* 1 if the target provides these counters */
};

/* Where an entry of a batch failed (out_stage). */
enum xf_stage { XF_STAGE_OK = 0, XF_STAGE_GLUE = 1, XF_STAGE_ADD_BASIC = 2, XF_STAGE_ADD_CONTROL = 3,
		XF_STAGE_PROCESS = 4 };

/* EAL (argv as for rte_eal_init, argv[0] = program name) + DOCA Flow ("vnf" or "switch").
 * Once per process: the DPDK EAL cannot be initialised twice.  Real DOCA: the glue adds the
 * allow-list entries that keep the EAL from probing the devices itself (the samples' way). */
int xf_init(int argc, char **argv, const char *mode);
/* xf_init with the meter budgets declared to DOCA Flow at init: per-entry (non-shared)
 * meters and shared meters (xf_init: 131072 and 1024). */
int xf_init_ex(int argc, char **argv, const char *mode, uint32_t nr_meters, uint32_t nr_shared_meters);
/* Bring up all ports at once, as NVIDIA's samples do: open the functions (doca_dev by PCI
 * address, representors of a device as doca_dev_rep), probe them into DPDK, start device
 * ports then representor ports, pair ports (vnf mode), send misses to the kernel.  All or
 * nothing: on failure nothing stays open.  Once per xf_init. */
int xf_ports_start(const struct xf_port_cfg *ports, uint32_t n);

int xf_pipe_create_root(uint16_t port_id, const char *name, uint32_t nr_entries, uint32_t *out_pipe);
int xf_pipe_create_basic(uint16_t port_id, const char *name, const struct xf_match *mask, uint16_t fwd_port,
			 uint32_t nr_entries, uint32_t *out_pipe);
int xf_pipe_create_basic_ex(uint16_t port_id, const char *name, const struct xf_match *mask,
			    const struct xf_pipe_opts *opts, uint32_t nr_entries, uint32_t *out_pipe);
/* Refused (DOCA_ERROR_IN_USE) while entries or pipes forward to it. */
int xf_pipe_destroy(uint32_t pipe);

/* Shared meters (RFC 2697, colour-blind, EBS 0) for the pipes of port_id (its e-switch's in
 * switch mode): cir per second and cbs, in packets or (bytes=1) bytes.  modify: a new rate in
 * place, the entries using it keep it; destroy: refused (DOCA_ERROR_IN_USE) while entries use
 * it. */
int xf_meter_create(uint16_t port_id, uint64_t cir, uint64_t cbs, uint8_t bytes, uint32_t *out_meter);
int xf_meter_modify(uint32_t meter, uint64_t cir, uint64_t cbs);
int xf_meter_destroy(uint32_t meter);

/* Add n entries as one batch (queued, one entries_process per port).  All-or-nothing: if any
 * fails, those that succeeded are removed again.  out_err/out_stage per entry; *out_nfailed. */
int xf_entries_add(const struct xf_entry_spec *specs, uint32_t n, uint64_t *out_handles, int32_t *out_err,
		   uint8_t *out_stage, uint32_t *out_nfailed);
/* New destination MACs (6 bytes each, in order) for basic entries, updated in place. */
int xf_entries_update_mac(const uint64_t *handles, const uint8_t *macs, uint32_t n, int32_t *out_err);
/* New rates (cir[i], cbs[i]) for basic entries with their own meter, in place, counters kept;
 * all-or-nothing (on a failure the ones already changed get their old rates back). */
int xf_entries_update_meter(const uint64_t *handles, const uint64_t *cir, const uint64_t *cbs, uint32_t n,
			    int32_t *out_err);
int xf_entries_remove(const uint64_t *handles, uint32_t n, int32_t *out_err);
int xf_entries_query(const uint64_t *handles, uint32_t n, uint64_t *out_pkts, uint64_t *out_bytes);

int xf_port_stats(uint16_t port_id, struct xf_port_stats *out);
/* Flush pipes, stop ports (switch manager last), destroy DOCA Flow, clean up the EAL. */
int xf_close(void);

int xf_state(void); /* 0 not initialised, 1 open, 2 closed (or failed init) */
const char *xf_last_call(void);
const char *xf_last_detail(void);
const char *xf_error_name(int err);
const char *xf_stage_call(int stage);
const char *xf_target(void);       /* "softdoca" or "doca" */
const char *xf_doca_version(void); /* DOCA_VERSION_STRING it was compiled against */
const char *xf_doca_runtime_version(void); /* doca_version_runtime(): the library it runs with */

#endif
