/*
 * dpdk_glue internals shared by glue.c and glue_softdoca.c; not part of the cffi interface
 * (glue.h, glue_softdoca.h).
 */
#ifndef XF_GLUE_INTERNAL_H_
#define XF_GLUE_INTERNAL_H_

#include <stdbool.h>
#include <stdint.h>

#include <doca_error.h>

#include "glue.h"

struct doca_flow_pipe_entry;

#pragma GCC visibility push(hidden)

/* glue.c: the mutex every entry point holds while it works, whether the eSwitch is open,
 * and the last error (what xf_last_call / xf_last_detail report); returns rc. */
void glue_lock(void);
void glue_unlock(void);
bool glue_is_open(void);
int glue_fail(int rc, const char *call, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* What the target provides: glue.c for real DOCA, glue_softdoca.c for softdoca.  Called
 * with the mutex held.  port_stats: out is zeroed, port_id is started; sets out->valid if the
 * target counts per port.  entry_error: why an entry's add failed in entries_process (DOCA
 * itself reports only the status). */
int glue_target_port_stats(uint16_t port_id, struct xf_port_stats *out);
doca_error_t glue_target_entry_error(struct doca_flow_pipe_entry *entry);

#pragma GCC visibility pop

#endif
