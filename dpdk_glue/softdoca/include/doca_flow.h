/*
 * softdoca: the subset of DOCA Flow that dpdk_glue/glue.c calls, declared the way each
 * DOCA release declares it (written by us from NVIDIA's public samples and header
 * documentation; no header text copied).  The release is chosen by SOFTDOCA_API
 * (doca_version.h): a call whose name, argument order or types changed between 2.9 and 3.3
 * changes here the same way, so glue.c compiles only with the form of the release it is
 * built for.  dpdk_glue/softdoca/README.md names the public source of each form.
 */
#ifndef SOFTDOCA_DOCA_FLOW_H_
#define SOFTDOCA_DOCA_FLOW_H_

#include <stdbool.h>
#include <stdint.h>

#include "doca_dev.h"
#include "doca_error.h"
#include "doca_flow_net.h"
#include "doca_version.h"

#ifdef __cplusplus
extern "C" {
#endif

struct doca_flow_cfg;
struct doca_flow_port_cfg;
struct doca_flow_pipe_cfg;
struct doca_flow_port;
struct doca_flow_pipe;
struct doca_flow_pipe_entry;
struct doca_flow_action_descs;
struct doca_flow_match_condition;

enum doca_flow_pipe_type {
	DOCA_FLOW_PIPE_BASIC = 0,
	DOCA_FLOW_PIPE_CONTROL = 1,
	DOCA_FLOW_PIPE_LPM = 2,
	DOCA_FLOW_PIPE_CT = 3,
	DOCA_FLOW_PIPE_ACL = 4,
	DOCA_FLOW_PIPE_ORDERED_LIST = 5,
	DOCA_FLOW_PIPE_HASH = 6,
};

enum doca_flow_pipe_domain {
	DOCA_FLOW_PIPE_DOMAIN_DEFAULT = 0,
	DOCA_FLOW_PIPE_DOMAIN_SECURE_INGRESS,
	DOCA_FLOW_PIPE_DOMAIN_EGRESS,
	DOCA_FLOW_PIPE_DOMAIN_SECURE_EGRESS,
};

enum doca_flow_fwd_type {
	DOCA_FLOW_FWD_NONE = 0,
	DOCA_FLOW_FWD_RSS,
	DOCA_FLOW_FWD_PORT,
	DOCA_FLOW_FWD_PIPE,
	DOCA_FLOW_FWD_DROP,
	DOCA_FLOW_FWD_TARGET,
	DOCA_FLOW_FWD_ORDERED_LIST_PIPE,
};

enum doca_flow_resource_type {
	DOCA_FLOW_RESOURCE_TYPE_NONE = 0,
	DOCA_FLOW_RESOURCE_TYPE_SHARED,
	DOCA_FLOW_RESOURCE_TYPE_NON_SHARED,
};

enum doca_flow_entry_status {
	DOCA_FLOW_ENTRY_STATUS_IN_PROCESS = 0,
	DOCA_FLOW_ENTRY_STATUS_SUCCESS,
	DOCA_FLOW_ENTRY_STATUS_ERROR,
};

enum doca_flow_entry_op {
	DOCA_FLOW_ENTRY_OP_ADD = 0,
	DOCA_FLOW_ENTRY_OP_DEL,
	DOCA_FLOW_ENTRY_OP_UPD,
	DOCA_FLOW_ENTRY_OP_AGED,
};

/* Entry flags: the enum and its numbers changed in DOCA 3.3. */
#if SOFTDOCA_API >= 303
enum doca_flow_entry_flags {
	DOCA_FLOW_ENTRY_FLAGS_NO_WAIT = 1u << 0,
	DOCA_FLOW_ENTRY_FLAGS_WAIT_FOR_BATCH = 1u << 1,
};
#else
enum doca_flow_flags_type {
	DOCA_FLOW_NO_WAIT = 0,
	DOCA_FLOW_WAIT_FOR_BATCH = 1,
};
#endif

enum doca_flow_l3_meta {
	DOCA_FLOW_L3_META_NONE = 0,
	DOCA_FLOW_L3_META_IPV4,
	DOCA_FLOW_L3_META_IPV6,
};

enum doca_flow_l4_meta {
	DOCA_FLOW_L4_META_NONE = 0,
	DOCA_FLOW_L4_META_TCP,
	DOCA_FLOW_L4_META_UDP,
	DOCA_FLOW_L4_META_ICMP,
	DOCA_FLOW_L4_META_ESP,
};

#if SOFTDOCA_API >= 302
/* What a port does with a packet no pipe takes (3.2+; before, "isolated" in the mode
 * arguments sends it to the kernel). */
enum doca_flow_port_default_miss_type {
	DOCA_FLOW_PORT_DEFAULT_MISS_KERNEL = 0,
	DOCA_FLOW_PORT_DEFAULT_MISS_RSS,
	DOCA_FLOW_PORT_DEFAULT_MISS_DROP,
};
#endif

/* Meters (DOCA's names and numbers).  A meter only marks a packet's colour; a later pipe
 * matches parser_meta.meter_color (the samples mask it with 3, its two bits). */
enum doca_flow_meter_color {
	DOCA_FLOW_METER_COLOR_RED = 0,
	DOCA_FLOW_METER_COLOR_YELLOW,
	DOCA_FLOW_METER_COLOR_GREEN,
};

enum doca_flow_meter_limit_type {
	DOCA_FLOW_METER_LIMIT_TYPE_BYTES = 0,
	DOCA_FLOW_METER_LIMIT_TYPE_PACKETS,
};

enum doca_flow_meter_algorithm_type {
	DOCA_FLOW_METER_ALGORITHM_TYPE_RFC2697 = 0,
	DOCA_FLOW_METER_ALGORITHM_TYPE_RFC2698,
	DOCA_FLOW_METER_ALGORITHM_TYPE_RFC4115,
};

enum doca_flow_meter_color_mode {
	DOCA_FLOW_METER_COLOR_MODE_BLIND = 0,
	DOCA_FLOW_METER_COLOR_MODE_AWARE,
};

enum doca_flow_shared_resource_type {
	DOCA_FLOW_SHARED_RESOURCE_METER = 0,
	DOCA_FLOW_SHARED_RESOURCE_COUNTER,
	DOCA_FLOW_SHARED_RESOURCE_RSS,
	DOCA_FLOW_SHARED_RESOURCE_MIRROR,
	DOCA_FLOW_SHARED_RESOURCE_PSP,
	DOCA_FLOW_SHARED_RESOURCE_ENCAP,
	DOCA_FLOW_SHARED_RESOURCE_DECAP,
	DOCA_FLOW_SHARED_RESOURCE_IPSEC_SA,
};

/* A shared meter's configuration (shared_resource_set_cfg). */
struct doca_flow_resource_meter_cfg {
	enum doca_flow_meter_limit_type limit_type;
	enum doca_flow_meter_color_mode color_mode;
	enum doca_flow_meter_algorithm_type alg;
	uint64_t cir; /* committed rate: bytes or packets per second */
	uint64_t cbs; /* committed burst: bytes or packets */
	union {
		struct {
			uint64_t ebs;
		} rfc2697;
		struct {
			uint64_t pir;
			uint64_t pbs;
		} rfc2698;
		struct {
			uint64_t eir;
			uint64_t ebs;
		} rfc4115;
	};
};

struct doca_flow_shared_resource_cfg {
	enum doca_flow_pipe_domain domain;
	union {
		struct doca_flow_resource_meter_cfg meter_cfg;
	};
};

#define DOCA_FLOW_META_U32_WORDS 7

/* Actions memory one entry may use at most (sizing doca_flow_port_cfg_set_actions_mem_size). */
#define DOCA_FLOW_MAX_ENTRY_ACTIONS_MEM_SIZE (128)

struct doca_flow_meta {
	uint32_t pkt_meta;
	uint32_t u32[DOCA_FLOW_META_U32_WORDS];
};

struct doca_flow_parser_meta {
#if SOFTDOCA_API >= 300
	uint16_t port_id; /* ingress port (3.0+) */
#else
	uint32_t port_meta; /* ingress port (before 3.0) */
#endif
	enum doca_flow_l3_meta outer_l3_type;
	enum doca_flow_l4_meta outer_l4_type;
	enum doca_flow_meter_color meter_color; /* the colour the last meter marked */
};

struct doca_flow_match {
#if SOFTDOCA_API < 302
	uint32_t flags;
#endif
	struct doca_flow_meta meta;
	struct doca_flow_parser_meta parser_meta;
	struct doca_flow_header_format outer;
};

struct doca_flow_actions {
#if SOFTDOCA_API < 303
	uint8_t action_idx; /* template index; an explicit argument from 3.3 on */
	uint32_t flags;
#endif
	struct doca_flow_meta meta;
	struct doca_flow_header_format outer;
};

/* Pipe template: a non-shared meter with cir and cbs all ones, or a shared meter id all
 * ones, is given per entry. */
struct doca_flow_monitor {
	enum doca_flow_resource_type meter_type;
	union {
		struct {
			enum doca_flow_meter_limit_type limit_type;
			uint64_t cir;
			uint64_t cbs;
		} non_shared_meter;
		struct {
			uint32_t shared_meter_id;
			enum doca_flow_meter_color meter_init_color;
		} shared_meter;
	};
	enum doca_flow_resource_type counter_type;
	uint32_t aging_sec;
};

struct doca_flow_fwd {
	enum doca_flow_fwd_type type;
	union {
		uint16_t port_id;
		struct doca_flow_pipe *next_pipe;
	};
};

/* Counter query result (2.9+). */
struct doca_flow_resource_query {
	union {
		struct {
			uint64_t total_bytes;
			uint64_t total_pkts;
		} counter;
	};
};

typedef void (*doca_flow_entry_process_cb)(struct doca_flow_pipe_entry *entry, uint16_t pipe_queue,
					   enum doca_flow_entry_status status, enum doca_flow_entry_op op,
					   void *user_ctx);

/* Global configuration (opaque since 2.7). */
doca_error_t doca_flow_cfg_create(struct doca_flow_cfg **cfg);
doca_error_t doca_flow_cfg_destroy(struct doca_flow_cfg *cfg);
doca_error_t doca_flow_cfg_set_pipe_queues(struct doca_flow_cfg *cfg, uint16_t pipe_queues);
doca_error_t doca_flow_cfg_set_mode_args(struct doca_flow_cfg *cfg, const char *mode_args);
doca_error_t doca_flow_cfg_set_nr_counters(struct doca_flow_cfg *cfg, uint32_t nr_counters);
/* Resources declared at init (the "system" resource mode the glue uses): non-shared meters,
 * and shared resources of one type (their ids are 0 .. nr - 1). */
doca_error_t doca_flow_cfg_set_nr_meters(struct doca_flow_cfg *cfg, uint32_t nr_meters);
doca_error_t doca_flow_cfg_set_nr_shared_resource(struct doca_flow_cfg *cfg, uint32_t nr_shared_resource,
						  enum doca_flow_shared_resource_type type);
doca_error_t doca_flow_cfg_set_queue_depth(struct doca_flow_cfg *cfg, uint32_t queue_depth);
doca_error_t doca_flow_cfg_set_cb_entry_process(struct doca_flow_cfg *cfg, doca_flow_entry_process_cb cb);
doca_error_t doca_flow_init(struct doca_flow_cfg *cfg);
void doca_flow_destroy(void);

/* Ports. */
doca_error_t doca_flow_port_cfg_create(struct doca_flow_port_cfg **cfg);
doca_error_t doca_flow_port_cfg_destroy(struct doca_flow_port_cfg *cfg);
doca_error_t doca_flow_port_cfg_set_devargs(struct doca_flow_port_cfg *cfg, const char *devargs);
doca_error_t doca_flow_port_cfg_set_dev(struct doca_flow_port_cfg *cfg, struct doca_dev *dev);
#if SOFTDOCA_API >= 300
doca_error_t doca_flow_port_cfg_set_port_id(struct doca_flow_port_cfg *cfg, uint16_t port_id);
#endif
#if SOFTDOCA_API >= 300
/* The memory the port's entries' actions may use, a power of two >= 64 bytes; default zero. */
doca_error_t doca_flow_port_cfg_set_actions_mem_size(struct doca_flow_port_cfg *cfg, uint32_t size);
#endif
#if SOFTDOCA_API >= 301
/* 3.1+: the port is a representor (calling it is what says so). */
doca_error_t doca_flow_port_cfg_set_dev_rep(struct doca_flow_port_cfg *cfg, struct doca_dev_rep *dev);
#endif
doca_error_t doca_flow_port_start(const struct doca_flow_port_cfg *cfg, struct doca_flow_port **port);
doca_error_t doca_flow_port_stop(struct doca_flow_port *port);
/* vnf mode: packets a pipe of port forwards to pair_port are hairpinned to it. */
doca_error_t doca_flow_port_pair(struct doca_flow_port *port, struct doca_flow_port *pair_port);
struct doca_flow_port *doca_flow_port_switch_get(const struct doca_flow_port *port);
void doca_flow_port_pipes_flush(struct doca_flow_port *port);
#if SOFTDOCA_API >= 302
doca_error_t doca_flow_port_update_default_miss(struct doca_flow_port *port,
						enum doca_flow_port_default_miss_type default_miss, bool counter_en);
#endif

/* Pipes. */
doca_error_t doca_flow_pipe_cfg_create(struct doca_flow_pipe_cfg **cfg, struct doca_flow_port *port);
doca_error_t doca_flow_pipe_cfg_destroy(struct doca_flow_pipe_cfg *cfg);
doca_error_t doca_flow_pipe_cfg_set_name(struct doca_flow_pipe_cfg *cfg, const char *name);
doca_error_t doca_flow_pipe_cfg_set_type(struct doca_flow_pipe_cfg *cfg, enum doca_flow_pipe_type type);
doca_error_t doca_flow_pipe_cfg_set_is_root(struct doca_flow_pipe_cfg *cfg, bool is_root);
doca_error_t doca_flow_pipe_cfg_set_domain(struct doca_flow_pipe_cfg *cfg, enum doca_flow_pipe_domain domain);
doca_error_t doca_flow_pipe_cfg_set_nr_entries(struct doca_flow_pipe_cfg *cfg, uint32_t nr_entries);
doca_error_t doca_flow_pipe_cfg_set_match(struct doca_flow_pipe_cfg *cfg, const struct doca_flow_match *match,
					  const struct doca_flow_match *match_mask);
doca_error_t doca_flow_pipe_cfg_set_actions(struct doca_flow_pipe_cfg *cfg, struct doca_flow_actions *const *actions,
					    struct doca_flow_actions *const *actions_masks,
					    struct doca_flow_action_descs *const *action_descs, size_t nr_actions);
doca_error_t doca_flow_pipe_cfg_set_monitor(struct doca_flow_pipe_cfg *cfg, const struct doca_flow_monitor *monitor);
doca_error_t doca_flow_pipe_create(const struct doca_flow_pipe_cfg *cfg, const struct doca_flow_fwd *fwd,
				   const struct doca_flow_fwd *fwd_miss, struct doca_flow_pipe **pipe);
void doca_flow_pipe_destroy(struct doca_flow_pipe *pipe);

/* Entries.  Add: 9 arguments up to 3.1 (template from actions->action_idx); 3.2 adds
 * uint8_t action_idx after match (10); 3.3 renames it doca_flow_pipe_basic_add_entry.
 * Control entries: the priority moved from second to after monitor in 3.3. */
#if SOFTDOCA_API >= 303
doca_error_t doca_flow_pipe_basic_add_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
					    const struct doca_flow_match *match, uint8_t action_idx,
					    const struct doca_flow_actions *actions,
					    const struct doca_flow_monitor *monitor, const struct doca_flow_fwd *fwd,
					    uint32_t flags, void *usr_ctx, struct doca_flow_pipe_entry **entry);
doca_error_t doca_flow_pipe_basic_update_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe, uint8_t action_idx,
					       const struct doca_flow_actions *actions,
					       const struct doca_flow_monitor *monitor, const struct doca_flow_fwd *fwd,
					       uint32_t flags, struct doca_flow_pipe_entry *entry);
doca_error_t doca_flow_pipe_control_add_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
					      const struct doca_flow_match *match,
					      const struct doca_flow_match *match_mask,
					      const struct doca_flow_match_condition *condition,
					      const struct doca_flow_actions *actions,
					      const struct doca_flow_actions *actions_mask,
					      const struct doca_flow_action_descs *action_descs,
					      const struct doca_flow_monitor *monitor, uint32_t priority,
					      const struct doca_flow_fwd *fwd, void *usr_ctx,
					      struct doca_flow_pipe_entry **entry);
#else
#if SOFTDOCA_API >= 302
doca_error_t doca_flow_pipe_add_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
				      const struct doca_flow_match *match, uint8_t action_idx,
				      const struct doca_flow_actions *actions, const struct doca_flow_monitor *monitor,
				      const struct doca_flow_fwd *fwd, uint32_t flags, void *usr_ctx,
				      struct doca_flow_pipe_entry **entry);
#else
doca_error_t doca_flow_pipe_add_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
				      const struct doca_flow_match *match, const struct doca_flow_actions *actions,
				      const struct doca_flow_monitor *monitor, const struct doca_flow_fwd *fwd,
				      uint32_t flags, void *usr_ctx, struct doca_flow_pipe_entry **entry);
#endif
doca_error_t doca_flow_pipe_update_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
					 const struct doca_flow_actions *actions, const struct doca_flow_monitor *monitor,
					 const struct doca_flow_fwd *fwd, uint32_t flags,
					 struct doca_flow_pipe_entry *entry);
doca_error_t doca_flow_pipe_control_add_entry(uint16_t pipe_queue, uint32_t priority, struct doca_flow_pipe *pipe,
					      const struct doca_flow_match *match,
					      const struct doca_flow_match *match_mask,
					      const struct doca_flow_match_condition *condition,
					      const struct doca_flow_actions *actions,
					      const struct doca_flow_actions *actions_mask,
					      const struct doca_flow_action_descs *action_descs,
					      const struct doca_flow_monitor *monitor, const struct doca_flow_fwd *fwd,
					      void *usr_ctx, struct doca_flow_pipe_entry **entry);
#endif

doca_error_t doca_flow_pipe_remove_entry(uint16_t pipe_queue, uint32_t flags, struct doca_flow_pipe_entry *entry);
doca_error_t doca_flow_resource_query_entry(struct doca_flow_pipe_entry *entry,
					    struct doca_flow_resource_query *query_stats);
doca_error_t doca_flow_resource_query_pipe_miss(struct doca_flow_pipe *pipe,
						struct doca_flow_resource_query *query_stats);

/* Shared meters.  Up to 3.1: the application picks an id below nr_shared_resource,
 * configures it, and binds it to the port whose pipes use it.  3.2 on (the samples' form): the
 * port hands out an id, which is configured through the port. */
#if SOFTDOCA_API <= 302
doca_error_t doca_flow_shared_resource_set_cfg(enum doca_flow_shared_resource_type type, uint32_t id,
					       struct doca_flow_shared_resource_cfg *cfg);
doca_error_t doca_flow_shared_resources_bind(enum doca_flow_shared_resource_type type, uint32_t *res_array,
					     uint32_t res_array_len, void *bindable_obj);
#endif
#if SOFTDOCA_API >= 302
doca_error_t doca_flow_port_shared_resource_get(struct doca_flow_port *port,
						enum doca_flow_shared_resource_type type, uint32_t *res_id);
doca_error_t doca_flow_port_shared_resource_set_cfg(struct doca_flow_port *port,
						    enum doca_flow_shared_resource_type type, uint32_t res_id,
						    struct doca_flow_shared_resource_cfg *cfg);
#endif

doca_error_t doca_flow_entries_process(struct doca_flow_port *port, uint16_t pipe_queue, uint64_t timeout,
				       uint32_t max_processed_entries);
enum doca_flow_entry_status doca_flow_pipe_entry_get_status(struct doca_flow_pipe_entry *entry);

#ifdef __cplusplus
}
#endif

#endif
