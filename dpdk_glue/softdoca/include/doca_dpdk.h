/*
 * softdoca: the part of DOCA's doca_dpdk.h that dpdk_glue calls: attach a DPDK port to an
 * opened doca_dev (the EAL itself is told not to probe the device), with its representors
 * from DOCA 3.1 on, and map a DPDK port back to its doca_dev.  Written by us from NVIDIA's
 * public samples (samples/doca_flow/flow_common.c, flow_switch_common.c) and header
 * documentation.  In softdoca "attaching" opens the device's wire and representor vdevs.
 */
#ifndef SOFTDOCA_DOCA_DPDK_H_
#define SOFTDOCA_DOCA_DPDK_H_

#include <stdint.h>

#include "doca_error.h"
#include "doca_version.h"

#ifdef __cplusplus
extern "C" {
#endif

struct doca_dev;
struct doca_dev_rep;

/* devargs: DPDK devargs without the PCI address (e.g. "dv_flow_en=2"). */
doca_error_t doca_dpdk_port_probe(struct doca_dev *dev, const char *devargs);
#if SOFTDOCA_API >= 301
/* 3.1+: the device and the given representors become DPDK ports in one probe. */
doca_error_t doca_dpdk_port_probe_with_representors(struct doca_dev *dev, const char *devargs,
						    struct doca_dev_rep **dev_reps, uint32_t nb_reps);
#endif
doca_error_t doca_dpdk_port_as_dev(uint16_t port_id, struct doca_dev **dev);

#ifdef __cplusplus
}
#endif

#endif
