/*
 * softdoca forwarder: one thread (an EAL worker lcore, or a pthread when the EAL has one
 * lcore) polls every port with packet I/O, runs wire frames through the pipes and sends
 * representor frames out the wire; its polling policy, its cost counters, the benchmark
 * bypass, and softdoca_classify_frame (the same lookup without packet I/O, for tests).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>

#include "sd_internal.h"

#define SD_BURST 32

static inline void apply_mac(struct rte_mbuf *m, uint64_t w)
{
	uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);
	for (int i = 0; i < 6; i++)
		d[i] = (uint8_t)(w >> (8 * i));
}

static inline struct doca_flow_pipe_entry *ctl_lookup(const struct doca_flow_pipe *p, const struct sd_key *k)
{
	const struct sd_ctl_snap *s = LOAD_ACQ(&((struct doca_flow_pipe *)p)->snap);
	if (s == NULL)
		return NULL;
	for (uint32_t i = 0; i < s->n; i++) /* sorted: first match = best priority */
		if (sd_key_match(k, &s->e[i]->mask, &s->e[i]->val, s->e[i]->nw))
			return s->e[i];
	return NULL;
}

static inline struct doca_flow_pipe_entry *basic_lookup(const struct doca_flow_pipe *p, const struct sd_key *k)
{
	struct sd_htab *t = LOAD_ACQ(&((struct doca_flow_pipe *)p)->htab);
	if (t == NULL)
		return NULL;
	struct sd_key mk;
	unsigned nw = p->nw;
	mk.w[0] = k->w[0] & p->mask.w[0];
	mk.w[1] = k->w[1] & p->mask.w[1];
	mk.w[2] = k->w[2] & p->mask.w[2];
	for (unsigned i = SD_KEY_V4_WORDS; i < nw; i++) /* IPv6 addresses: only when matched */
		mk.w[i] = k->w[i] & p->mask.w[i];
	uint32_t i = sd_key_hash(&mk, nw) & t->mask;
	for (uint32_t n = 0; n <= t->mask; n++, i = (i + 1) & t->mask) {
		struct doca_flow_pipe_entry *e = LOAD_ACQ(&t->slot[i]);
		if (e == NULL)
			return NULL;
		if ((uintptr_t)e != 1 && sd_key_eq(&e->val, &mk, nw))
			return e;
	}
	return NULL;
}

#define SD_RES_MISS (-1)
#define SD_RES_DROP (-2)
#define SD_RES_MISS_RSS (-5) /* softdoca_classify_frame only: a default miss to the RSS queues */

/*
 * Run a frame through the ingress port's root pipe and the pipes it forwards to.
 * mac_out receives the MAC action word to apply (0: none).  Returns the egress port id,
 * SD_RES_MISS or SD_RES_DROP.  Updates entry and pipe counters (forwarder thread only).
 */
static int sd_classify(struct doca_flow_port *in, const uint8_t *frame, uint32_t len, uint64_t *mac_out,
		       bool *malformed, uint32_t *meters)
{
	struct sd_key k;
	*mac_out = 0;
	*malformed = !sd_parse(frame, len, in->id, &k);
	if (*malformed)
		return SD_RES_MISS;
	k.color = DOCA_FLOW_METER_COLOR_GREEN; /* until a meter marks it (see README) */
	struct doca_flow_port *owner = sd_g.switch_mode ? in->mgr : in; /* switch: its e-switch's pipes */
	struct doca_flow_pipe *p = owner ? LOAD_ACQ(&owner->root) : NULL;
	for (int hop = 0; p != NULL && hop < SD_MAX_CHAIN; hop++) {
		struct doca_flow_pipe_entry *e =
			p->type == DOCA_FLOW_PIPE_CONTROL ? ctl_lookup(p, &k) : basic_lookup(p, &k);
		const struct sd_fwd *f;
		if (e == NULL) {
			RLX_ADD(&p->miss_pkts, 1);
			RLX_ADD(&p->miss_bytes, len);
			f = &p->fwd_miss;
		} else {
			RLX_ADD(&e->pkts, 1);
			RLX_ADD(&e->bytes, len);
			uint64_t w = atomic_load_explicit(&e->act_mac, memory_order_relaxed);
			if (w & SD_MAC_SET)
				*mac_out = w;
			if (e->meter) { /* marks the colour a later pipe matches */
				k.color = sd_meter_mark(e->meter, len);
				if (meters) {
					(*meters)++;
					sd_g.trace_color = k.color;
				}
			}
			f = &e->fwd;
		}
		switch (f->kind) {
		case SD_FWD_PORT:
			return f->port_id;
		case SD_FWD_DROP:
			return SD_RES_DROP;
		case SD_FWD_PIPE:
			p = f->pipe->dead ? NULL : f->pipe;
			continue;
		default:
			return SD_RES_MISS; /* the ingress port's default miss */
		}
	}
	return SD_RES_MISS;
}

/* Count a default miss on the ingress port; returns where it goes (enum sd_miss). */
static inline int count_miss(struct doca_flow_port *in, uint32_t len, bool malformed)
{
	int miss = atomic_load_explicit(&in->miss, memory_order_relaxed);
	RLX_ADD(&in->st.miss_pkts, 1);
	RLX_ADD(&in->st.miss_bytes, len);
	if (malformed)
		RLX_ADD(&in->st.malformed_pkts, 1);
	if (miss == SD_MISS_RSS)
		RLX_ADD(&in->st.miss_rss_pkts, 1);
	else if (miss == SD_MISS_DROP)
		RLX_ADD(&in->st.drop_pkts, 1);
	return miss;
}

struct sd_txbuf {
	uint16_t n;
	struct rte_mbuf *m[SD_BURST];
};

static void tx_flush(uint16_t eth, struct sd_txbuf *b, uint64_t *ok_pkts, uint64_t *ok_bytes, uint64_t *fail)
{
	if (b->n == 0)
		return;
	uint64_t bytes = 0;
	for (uint16_t i = 0; i < b->n; i++) /* read lengths now: sent mbufs belong to the PMD */
		bytes += rte_pktmbuf_pkt_len(b->m[i]);
	uint16_t sent = rte_eth_tx_burst(eth, 0, b->m, b->n);
	for (uint16_t i = sent; i < b->n; i++) {
		bytes -= rte_pktmbuf_pkt_len(b->m[i]);
		rte_pktmbuf_free(b->m[i]);
	}
	RLX_ADD(ok_pkts, sent);
	RLX_ADD(ok_bytes, bytes);
	RLX_ADD(fail, (uint64_t)(b->n - sent));
	b->n = 0;
}

static void process_wire_burst(struct doca_flow_port *in, struct rte_mbuf **bufs, uint16_t n,
			       struct sd_txbuf *tx_wire, struct sd_txbuf *tx_rep)
{
	if (atomic_load_explicit(&sd_g.bench_bypass, memory_order_relaxed)) {
		/* the baseline the benchmark compares against: rx burst -> tx burst, no parsing;
		 * with bench_mac set, testpmd's macfwd (one dst MAC for every frame), which keeps
		 * a switched lab free of loops: nothing leaves as broadcast */
		uint16_t o = in->id ^ 1;
		struct doca_flow_port *out = o < SD_MAX_PORTS ? sd_g.ports[o] : NULL;
		uint64_t bmac = atomic_load_explicit(&sd_g.bench_mac, memory_order_relaxed);
		for (uint16_t i = 0; i < n; i++) {
			if (out == NULL || !out->has_io) {
				rte_pktmbuf_free(bufs[i]);
				continue;
			}
			if (bmac)
				apply_mac(bufs[i], bmac);
			tx_wire[o].m[tx_wire[o].n++] = bufs[i];
		}
		RLX_ADD(&in->st.wire_rx_pkts, n);
		return;
	}
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = bufs[i];
		uint32_t len = rte_pktmbuf_pkt_len(m);
		RLX_ADD(&in->st.wire_rx_pkts, 1);
		RLX_ADD(&in->st.wire_rx_bytes, len);
		uint64_t mac;
		bool malformed;
		/* af_packet/af_xdp deliver single-segment mbufs; only the first segment is parsed */
		int res = sd_classify(in, rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), &mac,
				      &malformed, NULL);
		if (res >= 0) {
			struct doca_flow_port *out = sd_g.ports[res];
			if (out == NULL || !atomic_load_explicit(&out->active, memory_order_acquire) || !out->has_io) {
				RLX_ADD(&in->st.drop_pkts, 1);
				rte_pktmbuf_free(m);
				continue;
			}
			if (mac)
				apply_mac(m, mac);
			tx_wire[res].m[tx_wire[res].n++] = m;
		} else if (res == SD_RES_DROP) {
			RLX_ADD(&in->st.drop_pkts, 1);
			rte_pktmbuf_free(m);
		} else {
			int miss = count_miss(in, len, malformed);
			if (miss == SD_MISS_KERNEL)
				tx_rep[in->id].m[tx_rep[in->id].n++] = m;
			else
				rte_pktmbuf_free(m); /* dropped, or to RSS queues nobody polls: lost */
		}
	}
}

static int sd_forwarder(void *arg)
{
	(void)arg;
	/* the default 50 us timer slack would stretch every idle sleep (and the latency a
	 * packet arriving during one sees) far beyond sleep_us */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	struct rte_mbuf *bufs[SD_BURST];
	static struct sd_txbuf tx_wire[SD_MAX_PORTS], tx_rep[SD_MAX_PORTS];
	uint64_t hz = rte_get_tsc_hz();
	uint64_t last_busy = rte_get_tsc_cycles();
	uint32_t cur_sleep = 0; /* the idle sleep in force; 0: not backing off since the last packet */

	while (!atomic_load_explicit(&sd_g.fwd_stop, memory_order_acquire)) {
		/* quiescent point: no pointer into a pipe or entry is held here */
		atomic_fetch_add_explicit(&sd_g.qs_count, 1, memory_order_release);
		uint64_t t_iter = rte_rdtsc();
		uint32_t total = 0;
		for (int pi = 0; pi < SD_MAX_PORTS; pi++) {
			struct doca_flow_port *p = sd_g.ports[pi];
			if (p == NULL || !p->has_io || !atomic_load_explicit(&p->active, memory_order_acquire))
				continue;
			uint16_t n = rte_eth_rx_burst(p->wire_eth, 0, bufs, SD_BURST);
			if (n) {
				total += n;
				process_wire_burst(p, bufs, n, tx_wire, tx_rep);
				for (int o = 0; o < SD_MAX_PORTS; o++) {
					if (sd_g.ports[o] == NULL)
						continue;
					if (tx_wire[o].n)
						tx_flush(sd_g.ports[o]->wire_eth, &tx_wire[o], &sd_g.ports[o]->st.wire_tx_pkts,
							 &sd_g.ports[o]->st.wire_tx_bytes, &sd_g.ports[o]->st.tx_fail_pkts);
					if (tx_rep[o].n)
						tx_flush(sd_g.ports[o]->rep_eth, &tx_rep[o], &sd_g.ports[o]->st.rep_tx_pkts,
							 &sd_g.ports[o]->st.rep_tx_bytes, &sd_g.ports[o]->st.tx_fail_pkts);
				}
			}
			/* representor -> wire, no lookup (what OVS outputs to port X leaves on X) */
			n = rte_eth_rx_burst(p->rep_eth, 0, bufs, SD_BURST);
			if (n) {
				total += n;
				uint64_t bytes = 0;
				for (uint16_t i = 0; i < n; i++)
					bytes += rte_pktmbuf_pkt_len(bufs[i]);
				RLX_ADD(&p->st.rep_rx_pkts, n);
				RLX_ADD(&p->st.rep_rx_bytes, bytes);
				struct sd_txbuf b = {.n = n};
				memcpy(b.m, bufs, n * sizeof(bufs[0]));
				tx_flush(p->wire_eth, &b, &p->st.wire_tx_pkts, &p->st.wire_tx_bytes, &p->st.tx_fail_pkts);
			}
		}
		if (total) {
			last_busy = rte_get_tsc_cycles();
			RLX_ADD(&sd_g.busy_cycles, last_busy - t_iter);
			RLX_ADD(&sd_g.busy_pkts, total);
			if (cur_sleep) {
				/* traffic again: the next idle period starts from the short sleep */
				uint32_t base = atomic_load_explicit(&sd_g.sleep_us, memory_order_relaxed);
				__atomic_store_n(&sd_g.fwd_sleep_us, base, __ATOMIC_RELAXED);
				if (cur_sleep > base) /* release: whoever sees the reset sees the short sleep */
					__atomic_store_n(&sd_g.fwd_backoff_resets, sd_g.fwd_backoff_resets + 1,
							 __ATOMIC_RELEASE);
				cur_sleep = 0;
			}
			continue;
		}
		if (atomic_load_explicit(&sd_g.busy_poll, memory_order_relaxed)) {
			rte_pause();
			continue;
		}
		uint64_t now = rte_get_tsc_cycles();
		uint64_t cyc_us = hz / 1000000;
		if (now - last_busy < cyc_us * atomic_load_explicit(&sd_g.spin_us, memory_order_relaxed)) {
			rte_pause();
			continue;
		}
		/*
		 * Idle: back off.  Short sleeps (sleep_us) keep the latency of traffic with gaps low;
		 * each wake-up costs the VM a few µs, so a forwarder that sleeps 20 µs forever burns
		 * a good part of a core doing nothing.  Once nothing has come for as long as the
		 * ceiling (a gap no steady traffic leaves), the sleep doubles up to the ceiling: idle
		 * costs one wake-up per ceiling, the first packet after it waits at most one ceiling,
		 * and traffic whose gaps stay under the ceiling never sees more than sleep_us.
		 */
		uint32_t base = atomic_load_explicit(&sd_g.sleep_us, memory_order_relaxed);
		uint32_t ceil = atomic_load_explicit(&sd_g.idle_max_us, memory_order_relaxed);
		if (ceil < base)
			ceil = base;
		if (cur_sleep < base)
			cur_sleep = base;
		else if (cur_sleep < ceil && now - last_busy >= cyc_us * ceil)
			cur_sleep = cur_sleep > ceil / 2 ? ceil : cur_sleep * 2;
		if (cur_sleep > ceil) /* the ceiling was lowered */
			cur_sleep = ceil;
		__atomic_store_n(&sd_g.fwd_sleep_us, cur_sleep, __ATOMIC_RELAXED);
		RLX_ADD(&sd_g.fwd_sleeps, 1);
		/* Offline while asleep, so grace periods need not wait for us. */
		atomic_store(&sd_g.fwd_offline, 1);
		struct timespec ts = {(time_t)(cur_sleep / 1000000), (long)(cur_sleep % 1000000) * 1000L};
		nanosleep(&ts, NULL);
		atomic_store(&sd_g.fwd_offline, 0);
		atomic_thread_fence(memory_order_seq_cst);
	}
	atomic_store(&sd_g.fwd_offline, 1);
	return 0;
}

static void *sd_forwarder_pthread(void *arg)
{
	sd_forwarder(arg);
	return NULL;
}

doca_error_t sd_fwd_start(void)
{
	if (atomic_load(&sd_g.fwd_running))
		return DOCA_SUCCESS;
	atomic_store(&sd_g.fwd_stop, 0);
	atomic_store(&sd_g.fwd_offline, 0);
	unsigned lc = rte_get_next_lcore(-1, 1, 0);
	if (lc < RTE_MAX_LCORE && rte_eal_get_lcore_state(lc) == WAIT) {
		if (rte_eal_remote_launch(sd_forwarder, NULL, lc) != 0)
			return DOCA_ERROR_DRIVER;
		sd_g.fwd_lcore = (int)lc;
	} else {
		/* single-lcore EAL: a plain thread still works with these PMDs */
		if (pthread_create(&sd_g.fwd_thread, NULL, sd_forwarder_pthread, NULL) != 0)
			return DOCA_ERROR_OPERATING_SYSTEM;
		sd_g.fwd_lcore = -1;
	}
	atomic_store(&sd_g.fwd_running, 1);
	return DOCA_SUCCESS;
}

void sd_fwd_stop(void)
{
	if (!atomic_load(&sd_g.fwd_running))
		return;
	atomic_store(&sd_g.fwd_stop, 1);
	if (sd_g.fwd_lcore >= 0)
		rte_eal_wait_lcore((unsigned)sd_g.fwd_lcore);
	else
		pthread_join(sd_g.fwd_thread, NULL);
	atomic_store(&sd_g.fwd_running, 0);
}

doca_error_t softdoca_fwd_stats(uint64_t *busy_ns, uint64_t *pkts)
{
	if (busy_ns == NULL || pkts == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	uint64_t hz = rte_get_tsc_hz();
	uint64_t c = RLX_LOAD(&sd_g.busy_cycles);
	*busy_ns = hz ? (uint64_t)((double)c * 1e9 / (double)hz) : 0;
	*pkts = RLX_LOAD(&sd_g.busy_pkts);
	return DOCA_SUCCESS;
}

doca_error_t softdoca_fwd_backoff(uint32_t *sleep_us, uint64_t *sleeps, uint64_t *resets)
{
	if (sleep_us == NULL || sleeps == NULL || resets == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*resets = __atomic_load_n(&sd_g.fwd_backoff_resets, __ATOMIC_ACQUIRE);
	*sleep_us = __atomic_load_n(&sd_g.fwd_sleep_us, __ATOMIC_RELAXED);
	*sleeps = RLX_LOAD(&sd_g.fwd_sleeps);
	return DOCA_SUCCESS;
}

doca_error_t softdoca_set_bench_bypass(int on, const uint8_t *dst_mac)
{
	atomic_store(&sd_g.bench_mac, dst_mac ? sd_mac_word(dst_mac) : 0);
	atomic_store(&sd_g.bench_bypass, on ? 1 : 0);
	return DOCA_SUCCESS;
}

doca_error_t softdoca_set_poll_mode(int busy_poll, uint32_t spin_us, uint32_t sleep_us)
{
	atomic_store(&sd_g.busy_poll, busy_poll ? 1 : 0);
	if (spin_us)
		atomic_store(&sd_g.spin_us, spin_us);
	if (sleep_us)
		atomic_store(&sd_g.sleep_us, sleep_us);
	return DOCA_SUCCESS;
}

doca_error_t softdoca_set_idle_max(uint32_t idle_max_us)
{
	if (idle_max_us > 1000000) /* a forwarder asleep for seconds looks dead */
		return DOCA_ERROR_INVALID_VALUE;
	if (idle_max_us)
		atomic_store(&sd_g.idle_max_us, idle_max_us);
	return DOCA_SUCCESS;
}

/* ------------------------------------------------------------------------------------ */
/* test entry point                                                                     */

int softdoca_classify_frame(uint16_t port_id, uint8_t *frame, uint32_t len)
{
	if (port_id >= SD_MAX_PORTS || sd_g.ports[port_id] == NULL)
		return -3;
	if (atomic_load(&sd_g.fwd_running))
		return -4; /* counters have one writer: the forwarder, when it runs */
	struct doca_flow_port *in = sd_g.ports[port_id];
	uint64_t mac;
	bool malformed;
	RLX_ADD(&in->st.wire_rx_pkts, 1);
	RLX_ADD(&in->st.wire_rx_bytes, len);
	sd_g.trace_meters = 0;
	sd_g.trace_color = DOCA_FLOW_METER_COLOR_GREEN;
	int res = sd_classify(in, frame, len, &mac, &malformed, &sd_g.trace_meters);
	if (res >= 0 && mac && len >= 6)
		for (int i = 0; i < 6; i++)
			frame[i] = (uint8_t)(mac >> (8 * i));
	if (res == SD_RES_MISS) {
		int miss = count_miss(in, len, malformed);
		return miss == SD_MISS_KERNEL ? SD_RES_MISS : miss == SD_MISS_DROP ? SD_RES_DROP : SD_RES_MISS_RSS;
	}
	if (res == SD_RES_DROP)
		RLX_ADD(&in->st.drop_pkts, 1);
	return res;
}
