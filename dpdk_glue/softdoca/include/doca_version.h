/*
 * softdoca: doca_version.h, one profile per DOCA release the glue supports.
 *
 * The macro names and their meaning are DOCA's (2.7 and later): DOCA_VERSION_MAJOR /
 * _MINOR / _PATCH / _STRING, DOCA_VERSION_CALC_EXACT / _EXACT / _CALC / _OFFICIAL and the
 * comparison helpers.  Written by us from NVIDIA's public header documentation.
 *
 * Pick the release with -DSOFTDOCA_API=<n> (default 302):
 *   209  DOCA 2.9.0072      300  DOCA 3.0.0058      301  DOCA 3.1.0105
 *   302  DOCA 3.2.0118      303  DOCA 3.3.0 (the public samples give no build number)
 * The declarations in doca_flow.h, doca_dev.h and doca_dpdk.h change with the profile the way
 * the release changed them; dpdk_glue/softdoca/README.md names the public source of each.
 *
 * SOFTDOCA_VERSION marks the model.  With -DSOFTDOCA_PROTOTYPES_ONLY it is not defined, so
 * glue.c compiles its real-DOCA code path against these prototypes (a compile-only check of
 * every call form per release; nothing links against it).
 */
#ifndef SOFTDOCA_DOCA_VERSION_H_
#define SOFTDOCA_DOCA_VERSION_H_

#include <stddef.h>

#ifndef SOFTDOCA_API
#define SOFTDOCA_API 302
#endif

#ifndef SOFTDOCA_PROTOTYPES_ONLY
#define SOFTDOCA_VERSION "2.0"
#endif

#if SOFTDOCA_API == 209
#define DOCA_VERSION_MAJOR 2
#define DOCA_VERSION_MINOR 9
#define DOCA_VERSION_PATCH 72
#define DOCA_VERSION_STRING "2.9.0072"
#elif SOFTDOCA_API == 300
#define DOCA_VERSION_MAJOR 3
#define DOCA_VERSION_MINOR 0
#define DOCA_VERSION_PATCH 58
#define DOCA_VERSION_STRING "3.0.0058"
#elif SOFTDOCA_API == 301
#define DOCA_VERSION_MAJOR 3
#define DOCA_VERSION_MINOR 1
#define DOCA_VERSION_PATCH 105
#define DOCA_VERSION_STRING "3.1.0105"
#elif SOFTDOCA_API == 302
#define DOCA_VERSION_MAJOR 3
#define DOCA_VERSION_MINOR 2
#define DOCA_VERSION_PATCH 118
#define DOCA_VERSION_STRING "3.2.0118"
#elif SOFTDOCA_API == 303
#define DOCA_VERSION_MAJOR 3
#define DOCA_VERSION_MINOR 3
#define DOCA_VERSION_PATCH 0
#define DOCA_VERSION_STRING "3.3.0000"
#else
#error "softdoca: SOFTDOCA_API must be 209, 300, 301, 302 or 303"
#endif

#define DOCA_VERSION_CALC_EXACT(major, minor, patch) ((size_t)((major) << 24 | (minor) << 16 | (patch)))
#define DOCA_VERSION_EXACT DOCA_VERSION_CALC_EXACT(DOCA_VERSION_MAJOR, DOCA_VERSION_MINOR, DOCA_VERSION_PATCH)
#define DOCA_VERSION_CALC(major, minor, patch) ((size_t)((major) << 24 | (minor) << 16 | ((patch) * 1000)))
#define DOCA_VERSION_OFFICIAL DOCA_VERSION_CALC(DOCA_VERSION_MAJOR, DOCA_VERSION_MINOR, DOCA_VERSION_PATCH)
#define DOCA_VERSION_EQ_CURRENT(major, minor, patch) (DOCA_VERSION_CALC(major, minor, patch) == DOCA_VERSION_OFFICIAL)
#define DOCA_VERSION_LTE_CURRENT(major, minor, patch) (DOCA_VERSION_CALC(major, minor, patch) <= DOCA_VERSION_OFFICIAL)

static inline const char *doca_version(void)
{
	return DOCA_VERSION_STRING;
}

const char *doca_version_runtime(void);

#endif
