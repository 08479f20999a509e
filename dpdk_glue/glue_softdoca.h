/*
 * dpdk_glue's softdoca-only entry points: knobs the behavioural model has and a real DOCA
 * eSwitch does not.  glue_softdoca.c is compiled, and this header declared to cffi, only
 * for the softdoca target; Python reaches them through dpdk_glue.softdoca_ctl.  Same
 * conventions as glue.h (return a doca_error_t, serialised; it is also a cdef: plain
 * declarations only).
 */
#ifndef XF_GLUE_SOFTDOCA_H_
#define XF_GLUE_SOFTDOCA_H_

#include <stdint.h>

/* Fail the nth entry add from now with DOCA_ERROR_FULL: in the add call, or (at_process)
 * in doca_flow_entries_process.  nth = 0 disarms. */
int xf_fault_inject(uint32_t nth, int at_process);
/* The hardware's limits softdoca enforces as the hardware fails past them: at most
 * entries_per_pipe entries in one pipe, pipes pipes on one port (0: no limit).  Past them a
 * pipe create or an entry add fails with DOCA_ERROR_DRIVER. */
int xf_set_capacity(uint32_t entries_per_pipe, uint32_t pipes);
/* Forwarder polling policy: busy-poll (benchmarks), or spin spin_us after the last packet
 * and then sleep sleep_us between empty polls (0 = keep the current value). */
int xf_set_poll_mode(int busy_poll, uint32_t spin_us, uint32_t sleep_us);
/* Ceiling the idle sleep doubles up to after idle_max_us without a packet (0 = keep the
 * current value; <= sleep_us: no growth; at most 1 s). */
int xf_set_idle_max(uint32_t idle_max_us);
/* Forwarder busy time (ns) and the packets moved in those iterations. */
int xf_fwd_stats(uint64_t *busy_ns, uint64_t *pkts);
/* The idle back-off: current sleep (us), sleeps taken, grown back-offs a packet reset. */
int xf_fwd_backoff(uint32_t *sleep_us, uint64_t *sleeps, uint64_t *resets);
/* Benchmarks: plain io loop (port X -> X^1, no lookup) as a baseline. */
int xf_bench_bypass(int on, const uint8_t *dst_mac); /* dst_mac: NULL or 6 bytes */
/* Run one frame through port_id's pipes without packet I/O (tests).
 * Returns egress port id, -1 miss to the kernel (representor), -2 drop, -3 not open / unknown
 * port, -4 the forwarder runs, -5 miss to the application's queues (lost). */
int xf_classify(uint16_t port_id, uint8_t *frame, uint32_t len);

/* Meters: the clock softdoca's meters read -- CLOCK_MONOTONIC, or (manual=1) a manual clock
 * standing at ns until advanced (advancing needs the manual clock). */
int xf_set_clock(int manual, uint64_t ns);
int xf_advance_clock(uint64_t ns);
/* Colour counters (green, red packets) of a shared meter (meter handle) or of a basic entry's
 * own meter (entry handle).  Tests only: DOCA has no such query. */
int xf_meter_stats(uint32_t meter, uint64_t *green, uint64_t *red);
int xf_entry_meter_stats(uint64_t entry, uint64_t *green, uint64_t *red);
/* The last xf_classify: meters that marked the frame and the colour it was left with (enum
 * xf_color; green when none marked it). */
int xf_classify_trace(uint32_t *meters, uint8_t *color);

#endif
