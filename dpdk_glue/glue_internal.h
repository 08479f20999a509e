/*
 * dpdk_glue internals shared by glue.c and glue_softdoca.c; not part of the cffi interface
 * (glue.h, glue_softdoca.h).
 */
#ifndef XF_GLUE_INTERNAL_H_
#define XF_GLUE_INTERNAL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <doca_error.h>
#include <doca_version.h>

#include "glue.h"

struct doca_flow_pipe_entry;
struct doca_flow_port;

#if !defined(DOCA_VERSION_MAJOR) || !defined(DOCA_VERSION_MINOR)
#error "dpdk_glue needs doca_version.h of DOCA 2.9 or later (DOCA_VERSION_MAJOR/_MINOR)"
#endif
#define XF_DOCA_AT_LEAST(ma, mi) \
	(DOCA_VERSION_MAJOR > (ma) || (DOCA_VERSION_MAJOR == (ma) && DOCA_VERSION_MINOR >= (mi)))
#if !XF_DOCA_AT_LEAST(2, 9)
#error "dpdk_glue needs DOCA 2.9 or later"
#endif

/* Run one configuration step unless an earlier one failed; remember which call failed. */
#define STEP(name, expr)                          \
	do {                                      \
		if (rc == DOCA_SUCCESS) {         \
			call = (name);            \
			rc = (expr);              \
		}                                 \
	} while (0)

#define XF_MAX_PORTS 16
#define XF_NO_PORT 0xffff

#pragma GCC visibility push(hidden)

/* glue.c: the mutex every entry point holds while it works, whether the eSwitch is open,
 * and the last error (what xf_last_call / xf_last_detail report); returns rc. */
void glue_lock(void);
void glue_unlock(void);
bool glue_is_open(void);
int glue_fail(int rc, const char *call, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

bool glue_switch_mode(void);
/* An installed entry's DOCA entry (NULL: none); a shared meter's DOCA id. */
struct doca_flow_pipe_entry *glue_entry_of(uint64_t handle);
int glue_meter_doca_id(uint32_t meter, uint32_t *doca_id);

/* glue_ports.c: bring-up and teardown as the samples do it (called with the mutex held).
 * glue_port: the started DOCA port of a logical port id (NULL if none); glue_doca_port_id:
 * the id DOCA knows it by (2.9: its DPDK port); glue_cfg_port_id: the reverse (-1). */
struct doca_flow_port *glue_port(uint16_t id);
uint16_t glue_doca_port_id(uint16_t id);
uint16_t glue_dpdk_port_id(uint16_t id);
int glue_cfg_port_id(int doca_id);
uint16_t glue_nports(void);
uint16_t glue_port_in_order(uint16_t i);
int glue_eal_extra_args(int argc, char **argv, char **extra); /* extra: room for 4 */
void glue_mode_args(const char *mode, char *buf, size_t len);
doca_error_t glue_ports_stop(void);
void glue_ethdevs_close(void);
void glue_functions_close(void);

/* What the target provides: glue.c for real DOCA, glue_softdoca.c for softdoca.  Called
 * with the mutex held.  port_stats: out is zeroed, port_id is started; sets out->valid if the
 * target counts per port.  entry_error: why an entry's add failed in entries_process (DOCA
 * itself reports only the status). */
int glue_target_port_stats(uint16_t port_id, struct xf_port_stats *out);
doca_error_t glue_target_entry_error(struct doca_flow_pipe_entry *entry);
/* Before bring-up: make the ports' functions exist (softdoca registers them from
 * target_args; the hardware has them).  After the functions are closed: forget them. */
void glue_target_prepare(const struct xf_port_cfg *ports, uint32_t n);
void glue_target_forget(void);

#pragma GCC visibility pop

#endif
