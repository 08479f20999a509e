/*
 * softdoca extensions: knobs that a real DOCA SDK does not have (the software forwarder's
 * polling policy, per-port statistics of the model, fault injection, a parser entry point
 * for fuzzing/ASan tests).  Only glue.c (when built against softdoca) and tests use these.
 */
#ifndef SOFTDOCA_SOFTDOCA_H_
#define SOFTDOCA_SOFTDOCA_H_

#include <stdint.h>

#include "doca_error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct softdoca_port_stats {
	uint64_t wire_rx_pkts, wire_rx_bytes; /* frames read from the wire iface */
	uint64_t wire_tx_pkts, wire_tx_bytes; /* frames written to the wire iface */
	uint64_t rep_rx_pkts, rep_rx_bytes;   /* frames read from the representor iface */
	uint64_t rep_tx_pkts, rep_tx_bytes;   /* frames written to the representor (= kernel default misses) */
	uint64_t miss_pkts, miss_bytes;       /* wire frames no entry claimed (default miss, any target) */
	uint64_t malformed_pkts;              /* of the misses: truncated or malformed frames */
	uint64_t drop_pkts;                   /* dropped by a DROP forward or a "drop" default miss */
	uint64_t tx_fail_pkts;                /* frames a PMD refused to send (queue full) */
	uint64_t miss_rss_pkts;               /* of the misses: to the application's queues (lost) */
};

/* The PCI functions softdoca offers to doca_devinfo_create_list, and their representors to
 * doca_devinfo_rep_create_list: the model's stand-in for a BlueField's functions.  Register
 * them before doca_dev_open (glue_softdoca.c does it from each port's target arguments).
 *   addr:      what doca_devinfo_is_equal_pci_addr / doca_devinfo_rep_is_equal_pci_addr compare,
 *              byte for byte (any string: the lab uses the port names);
 *   parent:    NULL for a device (PF/SF); else the addr of the device whose representor it is;
 *   esw:       a device's e-switch: devices registered with the same number share one (a
 *              multiport e-switch), a negative number gives the device an e-switch of its own;
 *              a representor is in its parent's (esw ignored);
 *   iface, rep_iface, driver: packet I/O, opened when the function is probed into DPDK: the
 *              wire side and the kernel side (where the default miss "kernel" delivers), with
 *              af_packet | af_xdp | none (none: no I/O, ifaces may be NULL).
 * DOCA_ERROR_ALREADY_EXIST for an addr registered twice, DOCA_ERROR_NOT_FOUND for an unknown
 * parent, DOCA_ERROR_INVALID_VALUE for bad arguments. */
doca_error_t softdoca_dev_register(const char *addr, const char *parent, int esw, const char *iface,
				   const char *rep_iface, const char *driver);
/* Forget every registered function, closing (and unprobing) any still open;
 * DOCA_ERROR_IN_USE while a flow port still runs on one (stop the ports first). */
doca_error_t softdoca_dev_unregister_all(void);

/* Busy-poll (1) or back off when idle (0, default).  spin_us: how long to keep polling
 * after the last packet (default 50); sleep_us: nanosleep length between empty polls after
 * that (default 20).  Zero keeps the current value. */
doca_error_t softdoca_set_poll_mode(int busy_poll, uint32_t spin_us, uint32_t sleep_us);

/* The idle back-off's ceiling (default 1000 us): once no packet has come for idle_max_us,
 * the sleep doubles from sleep_us up to idle_max_us, and the next packet brings it back to
 * sleep_us.  A value <= sleep_us keeps the sleep fixed at sleep_us.  Zero keeps the current
 * value; DOCA_ERROR_INVALID_VALUE above 1 s. */
doca_error_t softdoca_set_idle_max(uint32_t idle_max_us);

/* Forwarder work: time spent in loop iterations that moved packets, and those packets
 * (wire and representor); busy_ns / pkts is the forwarder's cost per packet. */
doca_error_t softdoca_fwd_stats(uint64_t *busy_ns, uint64_t *pkts);

/* The idle back-off as it stands: sleep_us, the length of the forwarder's current (or next)
 * idle sleep; sleeps, the idle sleeps taken since the process started; resets, the times a
 * packet cut a back-off short after it had grown past sleep_us. */
doca_error_t softdoca_fwd_backoff(uint32_t *sleep_us, uint64_t *sleeps, uint64_t *resets);

/* Benchmarks only: forward every wire frame of port X to the wire of port X^1 with no
 * parsing or lookup (a plain DPDK io loop, the baseline softdoca's pipeline is measured
 * against).  0 restores normal forwarding. */
doca_error_t softdoca_set_bench_bypass(int on, const uint8_t *dst_mac);

/* Statistics of a started port (by its DOCA port id). */
doca_error_t softdoca_port_stats(uint16_t port_id, struct softdoca_port_stats *stats);

/* Fault injection: the nth entry add from now (1 = the next one) fails.  at_process=0: the
 * add call itself returns DOCA_ERROR_FULL; at_process=1: the add is accepted and the entry
 * fails in doca_flow_entries_process (status ERROR, reported through the callback).
 * nth=0 disarms. */
doca_error_t softdoca_inject_add_failure(uint32_t nth, int at_process);

/* The hardware's limits, which DOCA does not check beforehand: past them the hardware (the
 * driver) fails, and so does softdoca.  entries_per_pipe: an add to a pipe that already holds
 * that many entries fails in the add call with DOCA_ERROR_DRIVER, whatever the pipe's
 * nr_entries; pipes: creating a pipe on a port (switch mode: the manager) that already has
 * that many (root included) fails with DOCA_ERROR_DRIVER.  0: no limit (the default).  A
 * BlueField-3 was seen to fail past 8192 entries in one pipe and ~505 pipes.  Limits lowered
 * below what exists touch nothing installed: only later creates and adds fail. */
doca_error_t softdoca_set_capacity(uint32_t entries_per_pipe, uint32_t pipes);

/* Why an entry's add failed in doca_flow_entries_process (DOCA itself reports only the
 * status ERROR): DOCA_ERROR_ALREADY_EXIST for a duplicate match, DOCA_ERROR_FULL for an
 * injected capacity error, DOCA_SUCCESS if it did not fail. */
struct doca_flow_pipe_entry;
doca_error_t softdoca_entry_error(struct doca_flow_pipe_entry *entry);

/* Parse one frame the way the forwarder does and return what the lookup on port_id's root
 * pipe would do: -1 default miss to the kernel (the representor iface), -2 drop, -5 default
 * miss to the application's RSS queues (DOCA's default without "isolated" / a kernel default
 * miss: nobody polls them, the frame is lost), else the egress DOCA port id.  The
 * frame is rewritten in place (dst MAC) if an entry matches; counters are updated.  For
 * tests (ASan, fuzzing) of the parser and lookup without packet I/O. */
int softdoca_classify_frame(uint16_t port_id, uint8_t *frame, uint32_t len);

/* Meters.  The clock they read: CLOCK_MONOTONIC, or (manual=1) a manual clock that stands
 * at ns until advanced (tests: exact token arithmetic).  Advancing needs the manual clock. */
doca_error_t softdoca_set_clock(int manual, uint64_t ns);
doca_error_t softdoca_advance_clock(uint64_t ns);
/* Colour counters (green, red packets) of a configured shared meter, or of an entry's
 * non-shared meter.  DOCA has no such query: the product counts drops with the drop stage's
 * entry counters; these are for tests. */
doca_error_t softdoca_shared_meter_stats(uint32_t id, uint64_t *green, uint64_t *red);
doca_error_t softdoca_entry_meter_stats(struct doca_flow_pipe_entry *entry, uint64_t *green, uint64_t *red);
/* What the last softdoca_classify_frame met: the number of meters that marked the frame and
 * the colour it was left with (DOCA's enum; GREEN when no meter marked it). */
doca_error_t softdoca_classify_trace(uint32_t *meters, uint8_t *color);

#ifdef __cplusplus
}
#endif

#endif
