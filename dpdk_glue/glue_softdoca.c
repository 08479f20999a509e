/*
 * dpdk_glue, softdoca target: what the model provides in place of the hardware (its name,
 * per-port counters, why an entry failed) and the softdoca-only knobs of glue_softdoca.h.
 * Compiled only when the glue is built against softdoca (build_glue.py).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <doca_flow.h>
#include <softdoca.h>

#include "glue.h"
#include "glue_internal.h"
#include "glue_softdoca.h"

const char *xf_target(void)
{
	return "softdoca";
}

/* A port's functions, from its target_args "iface=<wire>,rep=<kernel side>,driver=<d>,esw=<n>":
 * softdoca's stand-in for the BlueField's PCI functions, registered under the port's addr. */
static void register_function(const struct xf_port_cfg *c, const struct xf_port_cfg *parent)
{
	char buf[sizeof(c->target_args)], iface[64] = "", rep[64] = "", driver[16] = "none";
	int esw = -1;
	snprintf(buf, sizeof(buf), "%s", c->target_args);
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *v = strchr(t, '=');
		if (v == NULL)
			continue;
		*v++ = '\0';
		if (strcmp(t, "iface") == 0)
			snprintf(iface, sizeof(iface), "%s", v);
		else if (strcmp(t, "rep") == 0)
			snprintf(rep, sizeof(rep), "%s", v);
		else if (strcmp(t, "driver") == 0)
			snprintf(driver, sizeof(driver), "%s", v);
		else if (strcmp(t, "esw") == 0)
			esw = atoi(v);
	}
	/* a failure shows when the glue opens the function (doca_dev_open / doca_dev_rep_open) */
	softdoca_dev_register(c->addr, parent ? parent->addr : NULL, esw, iface[0] ? iface : NULL,
			      rep[0] ? rep : NULL, driver);
}

void glue_target_prepare(const struct xf_port_cfg *ports, uint32_t n)
{
	for (int kind = XF_PORT_DEV; kind <= XF_PORT_REP; kind++)
		for (uint32_t i = 0; i < n; i++) {
			if (ports[i].kind != kind)
				continue;
			const struct xf_port_cfg *parent = NULL;
			for (uint32_t j = 0; j < n && kind == XF_PORT_REP; j++)
				if (ports[j].id == ports[i].parent)
					parent = &ports[j];
			register_function(&ports[i], parent);
		}
}

void glue_target_forget(void)
{
	softdoca_dev_unregister_all();
}

int glue_target_port_stats(uint16_t port_id, struct xf_port_stats *out)
{
	struct softdoca_port_stats s;
	int rc = softdoca_port_stats(glue_doca_port_id(port_id), &s);
	if (rc != DOCA_SUCCESS)
		return glue_fail(rc, "softdoca_port_stats", "port %u", port_id);
	*out = (struct xf_port_stats){
		.rx_pkts = s.wire_rx_pkts, .rx_bytes = s.wire_rx_bytes, .tx_pkts = s.wire_tx_pkts,
		.tx_bytes = s.wire_tx_bytes, .rep_rx_pkts = s.rep_rx_pkts, .rep_rx_bytes = s.rep_rx_bytes,
		.rep_tx_pkts = s.rep_tx_pkts, .rep_tx_bytes = s.rep_tx_bytes, .miss_pkts = s.miss_pkts,
		.miss_bytes = s.miss_bytes, .malformed_pkts = s.malformed_pkts, .drop_pkts = s.drop_pkts,
		.tx_fail_pkts = s.tx_fail_pkts, .miss_rss_pkts = s.miss_rss_pkts, .valid = 1,
	};
	return DOCA_SUCCESS;
}

doca_error_t glue_target_entry_error(struct doca_flow_pipe_entry *entry)
{
	return softdoca_entry_error(entry); /* the model knows why (duplicate, capacity) */
}

/* ------------------------------------------------------------------------------------ */
/* knobs                                                                                 */

int xf_fault_inject(uint32_t nth, int at_process)
{
	glue_lock();
	int rc = softdoca_inject_add_failure(nth, at_process);
	glue_unlock();
	return rc;
}

int xf_set_capacity(uint32_t entries_per_pipe, uint32_t pipes)
{
	glue_lock();
	int rc = softdoca_set_capacity(entries_per_pipe, pipes);
	glue_unlock();
	return rc;
}

int xf_set_poll_mode(int busy_poll, uint32_t spin_us, uint32_t sleep_us)
{
	return softdoca_set_poll_mode(busy_poll, spin_us, sleep_us);
}

int xf_set_idle_max(uint32_t idle_max_us)
{
	glue_lock(); /* the last error is shared */
	int rc = softdoca_set_idle_max(idle_max_us);
	if (rc != DOCA_SUCCESS)
		rc = glue_fail(rc, "softdoca_set_idle_max", "idle_max_us %u (at most 1000000)", idle_max_us);
	glue_unlock();
	return rc;
}

int xf_fwd_stats(uint64_t *busy_ns, uint64_t *pkts)
{
	return softdoca_fwd_stats(busy_ns, pkts);
}

int xf_fwd_backoff(uint32_t *sleep_us, uint64_t *sleeps, uint64_t *resets)
{
	return softdoca_fwd_backoff(sleep_us, sleeps, resets);
}

int xf_bench_bypass(int on, const uint8_t *dst_mac)
{
	return softdoca_set_bench_bypass(on, dst_mac);
}

int xf_set_clock(int manual, uint64_t ns)
{
	return softdoca_set_clock(manual, ns);
}

int xf_advance_clock(uint64_t ns)
{
	glue_lock();
	int rc = softdoca_advance_clock(ns);
	if (rc != DOCA_SUCCESS)
		rc = glue_fail(rc, "softdoca_advance_clock", "the manual clock is off (set_manual_clock first)");
	glue_unlock();
	return rc;
}

int xf_meter_stats(uint32_t meter, uint64_t *green, uint64_t *red)
{
	glue_lock();
	uint32_t id;
	int rc = glue_meter_doca_id(meter, &id);
	if (rc == DOCA_SUCCESS)
		rc = softdoca_shared_meter_stats(id, green, red);
	if (rc != DOCA_SUCCESS)
		rc = glue_fail(rc, "softdoca_shared_meter_stats", "unknown or destroyed meter");
	glue_unlock();
	return rc;
}

int xf_entry_meter_stats(uint64_t entry, uint64_t *green, uint64_t *red)
{
	glue_lock();
	int rc = softdoca_entry_meter_stats(glue_entry_of(entry), green, red);
	if (rc != DOCA_SUCCESS)
		rc = glue_fail(rc, "softdoca_entry_meter_stats", "not an installed entry with its own meter");
	glue_unlock();
	return rc;
}

int xf_classify_trace(uint32_t *meters, uint8_t *color)
{
	glue_lock();
	uint8_t c = 0;
	int rc = softdoca_classify_trace(meters, &c);
	*color = c == DOCA_FLOW_METER_COLOR_RED ? XF_COLOR_RED :
		 c == DOCA_FLOW_METER_COLOR_YELLOW ? XF_COLOR_YELLOW : XF_COLOR_GREEN;
	glue_unlock();
	return rc;
}

int xf_classify(uint16_t port_id, uint8_t *frame, uint32_t len)
{
	glue_lock();
	int r = -3;
	if (glue_is_open() && glue_port(port_id) != NULL) {
		r = softdoca_classify_frame(glue_doca_port_id(port_id), frame, len);
		if (r >= 0)
			r = glue_cfg_port_id(r); /* egress: back to the logical port id */
	}
	glue_unlock();
	return r;
}
