/*
 * softdoca: version header shaped like DOCA's doca_version.h (written from the public
 * documentation; the macro names are the ones DOCA applications test).
 *
 * softdoca can pretend to be one of three DOCA API generations so that glue.c's version
 * branches are all compiled and tested here.  Pick one with -DSOFTDOCA_API=<n>:
 *   208  DOCA 2.8-like  (doca_flow_query_entry, doca_flow_pipe_rm_entry, port id in devargs)
 *   302  DOCA 3.2-like  (resource_query_entry, remove_entry, set_port_id, flags NO_WAIT=0/BATCH=1)
 *   303  DOCA 3.3-like  (basic_add_entry, basic_update_entry, ENTRY_FLAGS NO_WAIT=1/BATCH=2,
 *                       control-entry priority after monitor)
 * Default: 302 (the DOCA generation the original XenoFlow ran, 3.2.2).
 */
#ifndef SOFTDOCA_DOCA_VERSION_H_
#define SOFTDOCA_DOCA_VERSION_H_

#include <stddef.h>

#ifndef SOFTDOCA_API
#define SOFTDOCA_API 302
#endif

/* Present only in softdoca: lets glue.c tell the model from the real SDK. */
#define SOFTDOCA_VERSION "1.0"

#define DOCA_VER_MAJOR (SOFTDOCA_API / 100)
#define DOCA_VER_MINOR (SOFTDOCA_API % 100)
#define DOCA_VER_PATCH 0

#if SOFTDOCA_API == 208
#define DOCA_VER_STRING "2.8.0000-softdoca"
#elif SOFTDOCA_API == 302
#define DOCA_VER_STRING "3.2.0000-softdoca"
#elif SOFTDOCA_API == 303
#define DOCA_VER_STRING "3.3.0000-softdoca"
#else
#error "softdoca: SOFTDOCA_API must be 208, 302 or 303"
#endif

#define DOCA_VERSION_NUM(major, minor, patch) ((size_t)((major) << 24 | (minor) << 16 | (patch)))
#define DOCA_CURRENT_VERSION_NUM DOCA_VERSION_NUM(DOCA_VER_MAJOR, DOCA_VER_MINOR, DOCA_VER_PATCH)
#define DOCA_VERSION_EQ_CURRENT(major, minor, patch) \
	(DOCA_VERSION_NUM(major, minor, patch) == DOCA_CURRENT_VERSION_NUM)
#define DOCA_VERSION_LTE_CURRENT(major, minor, patch) \
	(DOCA_VERSION_NUM(major, minor, patch) <= DOCA_CURRENT_VERSION_NUM)

static inline const char *doca_version(void)
{
	return DOCA_VER_STRING;
}

static inline const char *doca_version_runtime(void)
{
	return DOCA_VER_STRING;
}

#endif
