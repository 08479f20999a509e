/*
 * softdoca meters: RFC 2697 srTCM buckets (colour-blind, EBS 0), per entry (non-shared) or
 * shared by id; the clock they read (CLOCK_MONOTONIC, or a manual one tests set); the shared
 * meters' DOCA calls per release; the softdoca-only queries (colour counters, classify trace).
 * Consistency with the forwarder: see struct sd_meter in sd_internal.h.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sd_internal.h"

uint64_t sd_now_ns(void)
{
	if (atomic_load_explicit(&sd_g.manual_clock, memory_order_relaxed))
		return atomic_load_explicit(&sd_g.clock_ns, memory_order_relaxed);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SD_NS + (uint64_t)ts.tv_nsec;
}

/* Add the tokens earned from last_ns to now (never past cbs). */
static void refill(struct sd_meter *m, uint64_t now)
{
	if (now <= m->last_ns)
		return;
	unsigned __int128 t = (unsigned __int128)m->cir * (now - m->last_ns) + m->tokens;
	uint64_t cap = m->cbs * SD_NS;
	m->tokens = t > cap ? cap : (uint64_t)t;
	m->last_ns = now;
}

/* Adopt a newly published configuration (forwarder side). */
static void adopt(struct sd_meter *m, const struct sd_meter_cfg *c, uint64_t now)
{
	bool fresh = m->gen == 0 || c->reset;
	if (!fresh)
		refill(m, c->since_ns < now ? c->since_ns : now); /* the old rate up to the change */
	m->cir = c->cir;
	m->cbs = c->cbs;
	m->bytes = c->bytes;
	if (fresh) {
		m->tokens = c->cbs * SD_NS; /* a bucket starts full */
		m->last_ns = now;
		if (c->reset) {
			__atomic_store_n(&m->green, 0, __ATOMIC_RELAXED);
			__atomic_store_n(&m->red, 0, __ATOMIC_RELAXED);
		}
	} else {
		if (m->tokens > c->cbs * SD_NS)
			m->tokens = c->cbs * SD_NS;
		if (c->since_ns > m->last_ns && c->since_ns <= now)
			m->last_ns = c->since_ns;
	}
	m->gen = c->gen;
}

uint8_t sd_meter_mark(struct sd_meter *m, uint32_t len)
{
	const struct sd_meter_cfg *c = LOAD_ACQ(&m->cfg);
	uint64_t now = sd_now_ns();
	if (__builtin_expect(c->gen != m->gen, 0))
		adopt(m, c, now);
	refill(m, now);
	uint64_t cost = (m->bytes ? (uint64_t)len : 1) * SD_NS;
	if (m->tokens >= cost) {
		m->tokens -= cost;
		RLX_ADD(&m->green, 1);
		return DOCA_FLOW_METER_COLOR_GREEN;
	}
	RLX_ADD(&m->red, 1);
	return DOCA_FLOW_METER_COLOR_RED;
}

struct sd_meter_cfg *sd_meter_cfg_new(uint64_t cir, uint64_t cbs, bool bytes, bool reset)
{
	struct sd_meter_cfg *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	*c = (struct sd_meter_cfg){.gen = ++sd_g.meter_gen, .cir = cir, .cbs = cbs, .since_ns = sd_now_ns(),
				   .bytes = bytes, .reset = reset};
	return c;
}

/* Control plane: make c the meter's configuration; the old blob is freed after a grace period. */
void sd_meter_publish(struct sd_meter *m, struct sd_meter_cfg *c)
{
	sd_defer_blob(atomic_exchange_explicit(&m->cfg, c, memory_order_acq_rel));
}

doca_error_t sd_meter_check(enum doca_flow_meter_limit_type lt, uint64_t cir, uint64_t cbs)
{
	if (lt != DOCA_FLOW_METER_LIMIT_TYPE_BYTES && lt != DOCA_FLOW_METER_LIMIT_TYPE_PACKETS)
		return DOCA_ERROR_INVALID_VALUE;
	if (cir == 0 || cbs == 0 || cir > SD_METER_MAX || cbs > SD_METER_MAX)
		return DOCA_ERROR_INVALID_VALUE;
	return DOCA_SUCCESS;
}

doca_error_t sd_meters_init(uint32_t nr_meters, uint32_t nr_shared)
{
	sd_g.nr_meters = nr_meters;
	sd_g.meters_used = 0;
	sd_g.nr_shared_meters = nr_shared;
	sd_g.shm = NULL;
	if (nr_shared) {
		sd_g.shm = calloc(nr_shared, sizeof(*sd_g.shm));
		if (sd_g.shm == NULL)
			return DOCA_ERROR_NO_MEMORY;
	}
	return DOCA_SUCCESS;
}

/* After the forwarder stopped. */
void sd_meters_fini(void)
{
	for (uint32_t i = 0; i < sd_g.nr_shared_meters && sd_g.shm; i++)
		free(atomic_load(&sd_g.shm[i].m.cfg));
	free(sd_g.shm);
	sd_g.shm = NULL;
	sd_g.nr_shared_meters = 0;
}

/* An entry's meter from its monitor, as its pipe's template says (add time). */
doca_error_t sd_entry_take_meter(struct doca_flow_pipe_entry *e, const struct doca_flow_monitor *mon)
{
	const struct doca_flow_pipe *p = e->pipe;
	e->shared_id = -1;
	enum doca_flow_resource_type t = mon ? mon->meter_type : DOCA_FLOW_RESOURCE_TYPE_NONE;
	if (t != p->meter_kind)
		return DOCA_ERROR_INVALID_VALUE; /* a meter the pipe has none of, or none it needs */
	if (t == DOCA_FLOW_RESOURCE_TYPE_NON_SHARED) {
		const typeof(mon->non_shared_meter) *n = &mon->non_shared_meter;
		doca_error_t rc = sd_meter_check(n->limit_type, n->cir, n->cbs);
		if (rc != DOCA_SUCCESS)
			return rc;
		if (sd_g.meters_used >= sd_g.nr_meters)
			return DOCA_ERROR_FULL; /* nr_meters declared at init */
		struct sd_meter_cfg *c = sd_meter_cfg_new(n->cir, n->cbs, n->limit_type == DOCA_FLOW_METER_LIMIT_TYPE_BYTES,
							  false);
		if (c == NULL)
			return DOCA_ERROR_NO_MEMORY;
		atomic_init(&e->own_meter.cfg, c);
		e->meter = &e->own_meter;
		sd_g.meters_used++;
	} else if (t == DOCA_FLOW_RESOURCE_TYPE_SHARED) {
		uint32_t id = mon->shared_meter.shared_meter_id;
		if (id >= sd_g.nr_shared_meters || !sd_g.shm[id].configured ||
		    !(sd_g.shm[id].ports & (1u << p->port->id)))
			return DOCA_ERROR_INVALID_VALUE; /* unknown, unconfigured or not this port's */
		sd_g.shm[id].refs++;
		e->shared_id = (int32_t)id;
		e->meter = &sd_g.shm[id].m;
	}
	return DOCA_SUCCESS;
}

/* The entry is gone (removed, or its pipe destroyed): its meter no longer counts against
 * the budget (a shared one: one user less).  Its own blob is freed with the entry. */
void sd_entry_release_meter(struct doca_flow_pipe_entry *e)
{
	if (e->meter == &e->own_meter) {
		sd_g.meters_used--;
	} else if (e->shared_id >= 0 && sd_g.shm) {
		sd_g.shm[e->shared_id].refs--;
	}
	e->meter = NULL;
	e->shared_id = -1;
}

/* ------------------------------------------------------------------------------------ */
/* shared meters                                                                         */

static doca_error_t shared_set_cfg(uint32_t id, const struct doca_flow_shared_resource_cfg *cfg)
{
	if (!sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	if (cfg == NULL || id >= sd_g.nr_shared_meters)
		return DOCA_ERROR_INVALID_VALUE; /* ids are below nr_shared_resource (METER) */
	const struct doca_flow_resource_meter_cfg *m = &cfg->meter_cfg;
	if (m->alg != DOCA_FLOW_METER_ALGORITHM_TYPE_RFC2697 || m->color_mode != DOCA_FLOW_METER_COLOR_MODE_BLIND ||
	    m->rfc2697.ebs != 0)
		return DOCA_ERROR_NOT_SUPPORTED; /* modelled: srTCM, colour-blind, EBS 0 */
	if (cfg->domain != DOCA_FLOW_PIPE_DOMAIN_DEFAULT)
		return DOCA_ERROR_NOT_SUPPORTED;
	doca_error_t rc = sd_meter_check(m->limit_type, m->cir, m->cbs);
	if (rc != DOCA_SUCCESS)
		return rc;
	struct sd_shared_meter *s = &sd_g.shm[id];
	/* unused: configured afresh (full, counters zero); in use: a new rate in place */
	struct sd_meter_cfg *c = sd_meter_cfg_new(m->cir, m->cbs, m->limit_type == DOCA_FLOW_METER_LIMIT_TYPE_BYTES,
						  s->refs == 0);
	if (c == NULL)
		return DOCA_ERROR_NO_MEMORY;
	sd_meter_publish(&s->m, c);
	s->configured = true;
	return DOCA_SUCCESS;
}

#if SOFTDOCA_API <= 302
doca_error_t doca_flow_shared_resource_set_cfg(enum doca_flow_shared_resource_type type, uint32_t id,
					       struct doca_flow_shared_resource_cfg *cfg)
{
	if (type != DOCA_FLOW_SHARED_RESOURCE_METER)
		return DOCA_ERROR_NOT_SUPPORTED;
	return shared_set_cfg(id, cfg);
}

doca_error_t doca_flow_shared_resources_bind(enum doca_flow_shared_resource_type type, uint32_t *res_array,
					     uint32_t res_array_len, void *bindable_obj)
{
	if (type != DOCA_FLOW_SHARED_RESOURCE_METER)
		return DOCA_ERROR_NOT_SUPPORTED;
	struct doca_flow_port *port = bindable_obj;
	if (!sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	if (res_array == NULL || port == NULL || port->id >= SD_MAX_PORTS || sd_g.ports[port->id] != port)
		return DOCA_ERROR_INVALID_VALUE;
	for (uint32_t i = 0; i < res_array_len; i++)
		if (res_array[i] >= sd_g.nr_shared_meters || !sd_g.shm[res_array[i]].configured)
			return DOCA_ERROR_INVALID_VALUE;
	for (uint32_t i = 0; i < res_array_len; i++)
		sd_g.shm[res_array[i]].ports |= 1u << port->id;
	return DOCA_SUCCESS;
}
#endif

#if SOFTDOCA_API >= 302
doca_error_t doca_flow_port_shared_resource_get(struct doca_flow_port *port,
						enum doca_flow_shared_resource_type type, uint32_t *res_id)
{
	if (type != DOCA_FLOW_SHARED_RESOURCE_METER)
		return DOCA_ERROR_NOT_SUPPORTED;
	if (!sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	if (port == NULL || res_id == NULL || port->id >= SD_MAX_PORTS || sd_g.ports[port->id] != port)
		return DOCA_ERROR_INVALID_VALUE;
	for (uint32_t i = 0; i < sd_g.nr_shared_meters; i++)
		if (!sd_g.shm[i].taken && !sd_g.shm[i].configured) {
			sd_g.shm[i].taken = true;
			sd_g.shm[i].ports = 1u << port->id;
			*res_id = i;
			return DOCA_SUCCESS;
		}
	return DOCA_ERROR_FULL; /* nr_shared_resource (METER) declared at init */
}

doca_error_t doca_flow_port_shared_resource_set_cfg(struct doca_flow_port *port,
						    enum doca_flow_shared_resource_type type, uint32_t res_id,
						    struct doca_flow_shared_resource_cfg *cfg)
{
	if (type != DOCA_FLOW_SHARED_RESOURCE_METER)
		return DOCA_ERROR_NOT_SUPPORTED;
	if (port == NULL || res_id >= sd_g.nr_shared_meters || !(sd_g.shm[res_id].ports & (1u << port->id)))
		return DOCA_ERROR_INVALID_VALUE; /* not an id this port handed out */
	return shared_set_cfg(res_id, cfg);
}
#endif

/* ------------------------------------------------------------------------------------ */
/* softdoca-only                                                                         */

doca_error_t softdoca_set_clock(int manual, uint64_t ns)
{
	atomic_store(&sd_g.clock_ns, ns);
	atomic_store(&sd_g.manual_clock, manual ? 1 : 0);
	return DOCA_SUCCESS;
}

doca_error_t softdoca_advance_clock(uint64_t ns)
{
	if (!atomic_load(&sd_g.manual_clock))
		return DOCA_ERROR_BAD_STATE;
	atomic_fetch_add(&sd_g.clock_ns, ns);
	return DOCA_SUCCESS;
}

static void meter_counts(const struct sd_meter *m, uint64_t *green, uint64_t *red)
{
	*green = RLX_LOAD(&m->green);
	*red = RLX_LOAD(&m->red);
}

doca_error_t softdoca_shared_meter_stats(uint32_t id, uint64_t *green, uint64_t *red)
{
	if (green == NULL || red == NULL || id >= sd_g.nr_shared_meters || !sd_g.shm[id].configured)
		return DOCA_ERROR_INVALID_VALUE;
	meter_counts(&sd_g.shm[id].m, green, red);
	return DOCA_SUCCESS;
}

doca_error_t softdoca_entry_meter_stats(struct doca_flow_pipe_entry *e, uint64_t *green, uint64_t *red)
{
	if (e == NULL || green == NULL || red == NULL || e->state == SD_E_GONE || e->meter != &e->own_meter)
		return DOCA_ERROR_INVALID_VALUE; /* not an entry with a non-shared meter */
	meter_counts(&e->own_meter, green, red);
	return DOCA_SUCCESS;
}

doca_error_t softdoca_classify_trace(uint32_t *meters, uint8_t *color)
{
	if (meters == NULL || color == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*meters = sd_g.trace_meters;
	*color = sd_g.trace_color;
	return DOCA_SUCCESS;
}
