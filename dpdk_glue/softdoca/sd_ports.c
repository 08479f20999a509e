/*
 * softdoca flow ports: doca_flow_port_cfg, port start/stop with DOCA's rules (one port per
 * probed doca_dev / doca_dev_rep, port ids per release), e-switches and their switch
 * managers, vnf port pairs, the default miss, pipes flush, port statistics.  A port borrows
 * its function's packet I/O (sd_dev.c opened it at probe time).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_internal.h"

struct doca_flow_port_cfg {
	int port_id; /* -1: not set (2.9: taken from devargs) */
	char devargs[256];
	struct doca_dev *dev;
	struct doca_dev_rep *dev_rep;
	uint32_t actions_mem; /* 3.0+: doca_flow_port_cfg_set_actions_mem_size (default zero) */
};

doca_error_t doca_flow_port_cfg_create(struct doca_flow_port_cfg **cfg)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*cfg = calloc(1, sizeof(**cfg));
	if (*cfg == NULL)
		return DOCA_ERROR_NO_MEMORY;
	(*cfg)->port_id = -1;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_port_cfg_destroy(struct doca_flow_port_cfg *cfg)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	free(cfg);
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_port_cfg_set_devargs(struct doca_flow_port_cfg *cfg, const char *devargs)
{
	if (cfg == NULL || devargs == NULL || strlen(devargs) >= sizeof(cfg->devargs))
		return DOCA_ERROR_INVALID_VALUE;
	snprintf(cfg->devargs, sizeof(cfg->devargs), "%s", devargs);
	return DOCA_SUCCESS;
}

#if SOFTDOCA_API >= 300
doca_error_t doca_flow_port_cfg_set_port_id(struct doca_flow_port_cfg *cfg, uint16_t port_id)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->port_id = port_id;
	return DOCA_SUCCESS;
}


/* DOCA's default is zero: a port whose size was never set has no room for an entry's
 * actions (the samples size it from the entries they plan, 2.10 on). */
doca_error_t doca_flow_port_cfg_set_actions_mem_size(struct doca_flow_port_cfg *cfg, uint32_t size)
{
	if (cfg == NULL || size < 64 || (size & (size - 1)) != 0)
		return DOCA_ERROR_INVALID_VALUE; /* a power of two, at least 64 bytes */
	cfg->actions_mem = size;
	return DOCA_SUCCESS;
}
#endif

doca_error_t doca_flow_port_cfg_set_dev(struct doca_flow_port_cfg *cfg, struct doca_dev *dev)
{
	if (cfg == NULL || dev == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->dev = dev;
	return DOCA_SUCCESS;
}

#if SOFTDOCA_API >= 301
doca_error_t doca_flow_port_cfg_set_dev_rep(struct doca_flow_port_cfg *cfg, struct doca_dev_rep *dev)
{
	if (cfg == NULL || dev == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->dev_rep = dev;
	return DOCA_SUCCESS;
}
#endif

/* The switch manager of e-switch esw: its first started device port (it stops last). */
static struct doca_flow_port *esw_manager(int esw)
{
	for (int i = 0; i < SD_MAX_PORTS; i++)
		if (sd_g.ports[i] && sd_g.ports[i]->is_switch_manager && sd_g.ports[i]->esw == esw)
			return sd_g.ports[i];
	return NULL;
}

static bool fn_ok(const struct sd_fn *f)
{
	return f != NULL && f >= sd_fns && f < sd_fns + SD_MAX_FNS && f->used;
}

#if SOFTDOCA_API < 300
/* 2.9: the port id is the devargs string, a DPDK port id in decimal. */
static int devargs_port_id(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || v >= SD_MAX_PORTS)
		return -1;
	return (int)v;
}
#endif

doca_error_t doca_flow_port_start(const struct doca_flow_port_cfg *cfg, struct doca_flow_port **port)
{
	if (!sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	if (cfg == NULL || port == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	/* exactly one of set_dev / set_dev_rep: a port is a device's or a representor's */
	bool is_rep = cfg->dev_rep != NULL;
	if ((cfg->dev != NULL) == is_rep)
		return DOCA_ERROR_INVALID_VALUE;
	struct sd_fn *f = is_rep ? cfg->dev_rep->fn : cfg->dev->fn;
	if (!fn_ok(f) || (f->parent >= 0) != is_rep)
		return DOCA_ERROR_INVALID_VALUE;
	if (f->opens == 0 || !f->probed)
		return DOCA_ERROR_BAD_STATE; /* not a DPDK port yet */
	if (f->port != NULL)
		return DOCA_ERROR_IN_USE; /* one port per device: a representor needs set_dev_rep */
#if SOFTDOCA_API >= 300
	if (cfg->port_id < 0)
		return DOCA_ERROR_INVALID_VALUE; /* 3.0+: doca_flow_port_cfg_set_port_id */
	int id = cfg->port_id;
#else
	int id = devargs_port_id(cfg->devargs);
	if (id < 0 || id != f->dpdk_port)
		return DOCA_ERROR_INVALID_VALUE; /* 2.9: the devargs name the device's DPDK port */
#endif
	if (id >= SD_MAX_PORTS)
		return DOCA_ERROR_INVALID_VALUE;
	if (sd_g.ports[id] != NULL)
		return DOCA_ERROR_ALREADY_EXIST;
	struct doca_flow_port *mgr = NULL;
	if (sd_g.switch_mode) {
		mgr = esw_manager(f->esw);
		if (is_rep && sd_fns[f->parent].port == NULL)
			return DOCA_ERROR_BAD_STATE; /* its device's port (the switch manager) starts first */
	}
	struct doca_flow_port *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return DOCA_ERROR_NO_MEMORY;
	p->id = (uint16_t)id;
	p->fn = f;
#if SOFTDOCA_API >= 300
	p->actions_mem = cfg->actions_mem;
#else
	p->actions_mem = UINT64_MAX; /* 2.9 has no such setting: not modelled */
#endif
	p->is_rep = is_rep;
	p->esw = f->esw;
	p->has_io = f->has_io;
	p->wire_eth = f->wire_eth;
	p->rep_eth = f->rep_eth;
	p->start_seq = ++sd_g.port_seq;
	/* default miss: to the kernel when isolated, else to the application's RSS queues; a
	 * port joining an e-switch takes what its manager set for the e-switch */
	int miss = sd_g.isolated ? SD_MISS_KERNEL : SD_MISS_RSS;
	if (sd_g.switch_mode) {
		if (mgr == NULL) {
			p->is_switch_manager = true;
			mgr = p;
		} else {
			miss = atomic_load(&mgr->miss);
		}
		p->mgr = mgr;
	}
	atomic_init(&p->miss, miss);
	sd_g.ports[id] = p;
	f->port = p;
	atomic_store(&p->active, 1);
	if (p->has_io) {
		doca_error_t rc = sd_fwd_start();
		if (rc != DOCA_SUCCESS) {
			doca_flow_port_stop(p);
			return rc;
		}
	}
	*port = p;
	return DOCA_SUCCESS;
}

static bool port_ok(const struct doca_flow_port *p)
{
	return p != NULL && p->id < SD_MAX_PORTS && sd_g.ports[p->id] == p;
}

struct doca_flow_port *doca_flow_port_switch_get(const struct doca_flow_port *port)
{
	if (!sd_g.switch_mode)
		return NULL;
	if (port != NULL)
		return port_ok(port) ? port->mgr : NULL;
	/* no port: the first e-switch's manager */
	struct doca_flow_port *best = NULL;
	for (int i = 0; i < SD_MAX_PORTS; i++) {
		struct doca_flow_port *p = sd_g.ports[i];
		if (p && p->is_switch_manager && (best == NULL || p->start_seq < best->start_seq))
			best = p;
	}
	return best;
}

doca_error_t doca_flow_port_pair(struct doca_flow_port *port, struct doca_flow_port *pair_port)
{
	if (!sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	if (!port_ok(port) || !port_ok(pair_port))
		return DOCA_ERROR_INVALID_VALUE;
	if (sd_g.switch_mode)
		return DOCA_ERROR_NOT_SUPPORTED; /* a vnf-mode call */
	if (port == pair_port)
		return DOCA_ERROR_INVALID_VALUE; /* a port cannot be paired with itself */
	if (port->pair != NULL && port->pair != pair_port)
		return DOCA_ERROR_IN_USE;
	port->pair = pair_port; /* one direction: port's pipes may now forward to pair_port */
	return DOCA_SUCCESS;
}

#if SOFTDOCA_API >= 302
doca_error_t doca_flow_port_update_default_miss(struct doca_flow_port *port,
						enum doca_flow_port_default_miss_type default_miss, bool counter_en)
{
	(void)counter_en; /* misses are always counted here (softdoca_port_stats) */
	if (!sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	if (!port_ok(port))
		return DOCA_ERROR_INVALID_VALUE;
	int miss;
	switch (default_miss) {
	case DOCA_FLOW_PORT_DEFAULT_MISS_KERNEL:
		miss = SD_MISS_KERNEL;
		break;
	case DOCA_FLOW_PORT_DEFAULT_MISS_RSS:
		miss = SD_MISS_RSS;
		break;
	case DOCA_FLOW_PORT_DEFAULT_MISS_DROP:
		miss = SD_MISS_DROP;
		break;
	default:
		return DOCA_ERROR_INVALID_VALUE;
	}
	if (sd_g.switch_mode && port->is_switch_manager) {
		/* on a switch manager: the whole e-switch (and ports that join it later) */
		for (int i = 0; i < SD_MAX_PORTS; i++)
			if (sd_g.ports[i] && sd_g.ports[i]->mgr == port)
				atomic_store(&sd_g.ports[i]->miss, miss);
	} else {
		atomic_store(&port->miss, miss);
	}
	return DOCA_SUCCESS;
}
#endif

doca_error_t sd_port_fwd_allowed(const struct doca_flow_port *owner, uint16_t port_id)
{
	if (port_id >= SD_MAX_PORTS || sd_g.ports[port_id] == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	const struct doca_flow_port *dst = sd_g.ports[port_id];
	if (sd_g.switch_mode)
		return dst->esw == owner->esw ? DOCA_SUCCESS : DOCA_ERROR_INVALID_VALUE; /* other e-switch */
	return dst == owner || owner->pair == dst ? DOCA_SUCCESS : DOCA_ERROR_INVALID_VALUE; /* not paired */
}

doca_error_t sd_port_match_allowed(const struct doca_flow_port *owner, const struct sd_key *val,
				   const struct sd_key *mask)
{
	if (!sd_g.switch_mode || mask->port_id != 0xffff)
		return DOCA_SUCCESS;
	const struct doca_flow_port *in = val->port_id < SD_MAX_PORTS ? sd_g.ports[val->port_id] : NULL;
	/* switch mode: an ingress port the manager never sees cannot be matched */
	return in != NULL && in->esw == owner->esw ? DOCA_SUCCESS : DOCA_ERROR_INVALID_VALUE;
}

void doca_flow_port_pipes_flush(struct doca_flow_port *port)
{
	if (port == NULL)
		return;
	/* Any order works: a pipe still targeted by another's entries lingers as a zombie. */
	while (port->pipes)
		sd_pipe_destroy_now(port->pipes);
	sd_reclaim();
}

doca_error_t doca_flow_port_stop(struct doca_flow_port *port)
{
	if (!port_ok(port))
		return DOCA_ERROR_INVALID_VALUE;
	if (port->is_switch_manager) {
		for (int i = 0; i < SD_MAX_PORTS; i++)
			if (sd_g.ports[i] && sd_g.ports[i] != port && sd_g.ports[i]->mgr == port)
				return DOCA_ERROR_IN_USE; /* the switch manager stops last in its e-switch */
	}
	doca_flow_port_pipes_flush(port);
	atomic_store(&port->active, 0);
	sd_synchronize(); /* the forwarder no longer polls it or sends to it */
	bool any_io = false;
	for (int i = 0; i < SD_MAX_PORTS; i++) {
		struct doca_flow_port *o = sd_g.ports[i];
		if (o == NULL || o == port)
			continue;
		any_io |= o->has_io && atomic_load(&o->active);
		if (o->pair == port)
			o->pair = NULL;
	}
	if (!any_io)
		sd_fwd_stop();
	/* the I/O vdevs stay open: they are the function's until it is closed */
	for (int q = 0; q < SD_MAX_QUEUES; q++)
		free(port->q[q].ops);
	sd_g.ports[port->id] = NULL;
	port->fn->port = NULL;
	free(port);
	return DOCA_SUCCESS;
}

doca_error_t softdoca_port_stats(uint16_t port_id, struct softdoca_port_stats *stats)
{
	if (stats == NULL || port_id >= SD_MAX_PORTS || sd_g.ports[port_id] == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	const uint64_t *src = (const uint64_t *)&sd_g.ports[port_id]->st;
	uint64_t *dst = (uint64_t *)stats;
	for (size_t i = 0; i < sizeof(*stats) / sizeof(uint64_t); i++)
		dst[i] = RLX_LOAD(&src[i]);
	return DOCA_SUCCESS;
}
