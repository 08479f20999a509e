/*
 * dpdk_glue, softdoca target: what the model provides in place of the hardware (its name,
 * per-port counters, why an entry failed) and the softdoca-only knobs of glue_softdoca.h.
 * Compiled only when the glue is built against softdoca (build_glue.py).
 */
#include <softdoca.h>

#include "glue.h"
#include "glue_internal.h"
#include "glue_softdoca.h"

const char *xf_target(void)
{
	return "softdoca";
}

int glue_target_port_stats(uint16_t port_id, struct xf_port_stats *out)
{
	struct softdoca_port_stats s;
	int rc = softdoca_port_stats(port_id, &s);
	if (rc != DOCA_SUCCESS)
		return glue_fail(rc, "softdoca_port_stats", "port %u", port_id);
	*out = (struct xf_port_stats){
		.rx_pkts = s.wire_rx_pkts, .rx_bytes = s.wire_rx_bytes, .tx_pkts = s.wire_tx_pkts,
		.tx_bytes = s.wire_tx_bytes, .rep_rx_pkts = s.rep_rx_pkts, .rep_rx_bytes = s.rep_rx_bytes,
		.rep_tx_pkts = s.rep_tx_pkts, .rep_tx_bytes = s.rep_tx_bytes, .miss_pkts = s.miss_pkts,
		.miss_bytes = s.miss_bytes, .malformed_pkts = s.malformed_pkts, .drop_pkts = s.drop_pkts,
		.tx_fail_pkts = s.tx_fail_pkts, .valid = 1,
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

int xf_set_poll_mode(int busy_poll, uint32_t spin_us, uint32_t sleep_us)
{
	return softdoca_set_poll_mode(busy_poll, spin_us, sleep_us);
}

int xf_fwd_stats(uint64_t *busy_ns, uint64_t *pkts)
{
	return softdoca_fwd_stats(busy_ns, pkts);
}

int xf_bench_bypass(int on, const uint8_t *dst_mac)
{
	return softdoca_set_bench_bypass(on, dst_mac);
}

int xf_classify(uint16_t port_id, uint8_t *frame, uint32_t len)
{
	glue_lock();
	int r = glue_is_open() ? softdoca_classify_frame(port_id, frame, len) : -3;
	glue_unlock();
	return r;
}
