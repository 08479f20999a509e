/*
 * softdoca pipes: doca_flow_pipe_cfg, pipe create (control and basic pipes, their match
 * templates, actions and forwards) and destroy (zombies while control entries point here).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_internal.h"

struct doca_flow_pipe_cfg {
	struct doca_flow_port *port;
	char name[64];
	enum doca_flow_pipe_type type;
	bool is_root;
	uint32_t nr_entries;
	bool has_match, has_mask;
	struct doca_flow_match match, mask;
	bool has_actions;
	struct doca_flow_actions actions;
	bool counters;
	uint8_t meter_kind;
};

doca_error_t doca_flow_pipe_cfg_create(struct doca_flow_pipe_cfg **cfg, struct doca_flow_port *port)
{
	if (cfg == NULL || port == NULL || port->id >= SD_MAX_PORTS || sd_g.ports[port->id] != port)
		return DOCA_ERROR_INVALID_VALUE;
	if (sd_g.switch_mode && !port->is_switch_manager)
		return DOCA_ERROR_INVALID_VALUE; /* switch mode: pipes live on doca_flow_port_switch_get() */
	*cfg = calloc(1, sizeof(**cfg));
	if (*cfg == NULL)
		return DOCA_ERROR_NO_MEMORY;
	(*cfg)->port = port;
	(*cfg)->nr_entries = SD_DEFAULT_NR_ENTRIES;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_destroy(struct doca_flow_pipe_cfg *cfg)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	free(cfg);
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_name(struct doca_flow_pipe_cfg *cfg, const char *name)
{
	if (cfg == NULL || name == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	snprintf(cfg->name, sizeof(cfg->name), "%s", name);
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_type(struct doca_flow_pipe_cfg *cfg, enum doca_flow_pipe_type type)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (type != DOCA_FLOW_PIPE_BASIC && type != DOCA_FLOW_PIPE_CONTROL)
		return DOCA_ERROR_NOT_SUPPORTED;
	cfg->type = type;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_is_root(struct doca_flow_pipe_cfg *cfg, bool is_root)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->is_root = is_root;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_domain(struct doca_flow_pipe_cfg *cfg, enum doca_flow_pipe_domain domain)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	return domain == DOCA_FLOW_PIPE_DOMAIN_DEFAULT ? DOCA_SUCCESS : DOCA_ERROR_NOT_SUPPORTED;
}

doca_error_t doca_flow_pipe_cfg_set_nr_entries(struct doca_flow_pipe_cfg *cfg, uint32_t nr_entries)
{
	if (cfg == NULL || nr_entries == 0 || nr_entries > (1u << 24))
		return DOCA_ERROR_INVALID_VALUE;
	cfg->nr_entries = nr_entries;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_match(struct doca_flow_pipe_cfg *cfg, const struct doca_flow_match *match,
					  const struct doca_flow_match *match_mask)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->has_match = match != NULL;
	cfg->has_mask = match_mask != NULL;
	if (match)
		cfg->match = *match;
	if (match_mask)
		cfg->mask = *match_mask;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_actions(struct doca_flow_pipe_cfg *cfg, struct doca_flow_actions *const *actions,
					    struct doca_flow_actions *const *actions_masks,
					    struct doca_flow_action_descs *const *action_descs, size_t nr_actions)
{
	(void)actions_masks;
	if (cfg == NULL || actions == NULL || nr_actions == 0)
		return DOCA_ERROR_INVALID_VALUE;
	if (nr_actions > 1 || action_descs != NULL)
		return DOCA_ERROR_NOT_SUPPORTED; /* one action template, no descriptors */
	cfg->has_actions = actions[0] != NULL;
	if (actions[0])
		cfg->actions = *actions[0];
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_cfg_set_monitor(struct doca_flow_pipe_cfg *cfg, const struct doca_flow_monitor *monitor)
{
	if (cfg == NULL || monitor == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (monitor->aging_sec || monitor->counter_type == DOCA_FLOW_RESOURCE_TYPE_SHARED)
		return DOCA_ERROR_NOT_SUPPORTED;
	/* meters: given per entry (the template's all-ones); one rate or id for every entry of
	 * the pipe is not modelled */
	if (monitor->meter_type == DOCA_FLOW_RESOURCE_TYPE_NON_SHARED &&
	    (monitor->non_shared_meter.cir != UINT64_MAX || monitor->non_shared_meter.cbs != UINT64_MAX))
		return DOCA_ERROR_NOT_SUPPORTED;
	if (monitor->meter_type == DOCA_FLOW_RESOURCE_TYPE_SHARED && monitor->shared_meter.shared_meter_id != UINT32_MAX)
		return DOCA_ERROR_NOT_SUPPORTED;
	if ((unsigned)monitor->meter_type > DOCA_FLOW_RESOURCE_TYPE_NON_SHARED)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->meter_kind = (uint8_t)monitor->meter_type;
	cfg->counters = monitor->counter_type == DOCA_FLOW_RESOURCE_TYPE_NON_SHARED;
	return DOCA_SUCCESS;
}

struct sd_htab *sd_htab_new(uint32_t nr_entries)
{
	uint32_t size = 8;
	while (size < 2 * nr_entries)
		size <<= 1;
	struct sd_htab *t = calloc(1, sizeof(*t) + size * sizeof(t->slot[0]));
	if (t)
		t->mask = size - 1;
	return t;
}

/* Pipes created on the port and not destroyed (zombies are off the list). */
static uint32_t pipes_of(const struct doca_flow_port *port)
{
	uint32_t n = 0;
	for (const struct doca_flow_pipe *p = port->pipes; p; p = p->next_pipe_of_port)
		n++;
	return n;
}

doca_error_t softdoca_set_capacity(uint32_t entries_per_pipe, uint32_t pipes)
{
	sd_g.cap_entries_per_pipe = entries_per_pipe;
	sd_g.cap_pipes = pipes;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_pipe_create(const struct doca_flow_pipe_cfg *cfg, const struct doca_flow_fwd *fwd,
				   const struct doca_flow_fwd *fwd_miss, struct doca_flow_pipe **pipe)
{
	if (!sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	if (cfg == NULL || pipe == NULL || cfg->port == NULL || sd_g.ports[cfg->port->id] != cfg->port)
		return DOCA_ERROR_INVALID_VALUE;
	struct doca_flow_port *port = cfg->port;
	if (sd_g.switch_mode && !port->is_switch_manager)
		return DOCA_ERROR_INVALID_VALUE; /* switch mode: pipes live on a switch manager */
	if (cfg->is_root && LOAD_ACQ(&port->root) != NULL)
		return DOCA_ERROR_ALREADY_EXIST; /* softdoca: one root pipe per port (per manager) */
	if (sd_g.cap_pipes && pipes_of(port) >= sd_g.cap_pipes)
		return DOCA_ERROR_DRIVER; /* the hardware's limit (softdoca_set_capacity) */
	struct doca_flow_pipe *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return DOCA_ERROR_NO_MEMORY;
	p->port = port;
	snprintf(p->name, sizeof(p->name), "%s", cfg->name);
	p->type = cfg->type;
	p->is_root = cfg->is_root;
	p->nr_entries = cfg->nr_entries;
	doca_error_t rc = DOCA_SUCCESS;

	if (p->type == DOCA_FLOW_PIPE_BASIC) {
		struct sd_key m, k;
		rc = sd_match_to_key(cfg->has_mask ? &cfg->mask : (cfg->has_match ? &cfg->match : NULL), &m);
		if (rc == DOCA_SUCCESS && !cfg->has_mask) {
			/* no explicit mask: all-ones fields are per-entry; other constants not modelled */
			sd_key_full_mask(&m, &k);
			if (!sd_key_eq(&k, &m, SD_KEY_WORDS))
				rc = DOCA_ERROR_NOT_SUPPORTED;
		}
		if (rc == DOCA_SUCCESS) {
			struct sd_key unused = {0};
			rc = sd_mask_finish(&m, &unused, &p->fam);
			p->mask = m;
			p->nw = (uint8_t)sd_key_words(&m);
		}
		if (rc == DOCA_SUCCESS && cfg->has_actions) {
			const uint8_t *mac = cfg->actions.outer.eth.dst_mac;
			if (sd_mac_all_ones(mac))
				p->mac_mode = 2;
			else if (!sd_mem_is_zero(mac, 6)) {
				p->mac_mode = 1;
				p->const_mac = sd_mac_word(mac);
			}
		}
		if (rc == DOCA_SUCCESS)
			rc = sd_fwd_convert(fwd, port, &p->fwd, false); /* a port, a (non-root) pipe, or drop */
		p->meter_kind = cfg->meter_kind;
		if (rc == DOCA_SUCCESS) {
			struct sd_htab *t = sd_htab_new(p->nr_entries);
			if (t == NULL)
				rc = DOCA_ERROR_NO_MEMORY;
			else
				atomic_store(&p->htab, t);
		}
	} else {
		if (fwd != NULL && fwd->type != DOCA_FLOW_FWD_NONE)
			rc = DOCA_ERROR_INVALID_VALUE; /* control pipes forward per entry */
		if (cfg->has_actions || cfg->meter_kind)
			rc = DOCA_ERROR_NOT_SUPPORTED;
	}
	if (rc == DOCA_SUCCESS) {
		/* NULL fwd_miss: the ingress port's default miss (kernel, RSS queues or drop) */
		rc = sd_fwd_convert(fwd_miss, port, &p->fwd_miss, true);
		if (rc == DOCA_SUCCESS && fwd_miss && fwd_miss->type == DOCA_FLOW_FWD_PIPE)
			p->fwd_miss.pipe->refs++;
		if (rc == DOCA_SUCCESS && p->fwd.kind == SD_FWD_PIPE)
			p->fwd.pipe->refs++; /* a basic pipe's forward to the next pipe */
	}
	if (rc != DOCA_SUCCESS) {
		free(atomic_load(&p->htab));
		free(p);
		return rc;
	}
	p->next_pipe_of_port = port->pipes;
	port->pipes = p;
	if (p->is_root)
		STORE_REL(&port->root, p);
	*pipe = p;
	return DOCA_SUCCESS;
}


/* Remove one queued op list's references to the pipe's entries. */
static void purge_ops_of_pipe(struct doca_flow_pipe *p)
{
	for (int pi = 0; pi < SD_MAX_PORTS; pi++) {
		struct doca_flow_port *port = sd_g.ports[pi];
		if (port == NULL)
			continue;
		for (int q = 0; q < SD_MAX_QUEUES; q++) {
			struct sd_queue *sq = &port->q[q];
			uint32_t w = 0;
			for (uint32_t r = 0; r < sq->n; r++)
				if (sq->ops[r].e->pipe != p)
					sq->ops[w++] = sq->ops[r];
			sq->n = w;
		}
	}
}

void sd_pipe_destroy_now(struct doca_flow_pipe *p)
{
	struct doca_flow_port *port = p->port;
	if (p->is_root && LOAD_ACQ(&port->root) == p)
		STORE_REL(&port->root, NULL);
	purge_ops_of_pipe(p);
	while (p->entries) {
		struct doca_flow_pipe_entry *e = p->entries;
		p->entries = e->next;
		sd_entry_unlink_tables(e);
		if (e->has_action)
			port->actions_used -= DOCA_FLOW_MAX_ENTRY_ACTIONS_MEM_SIZE;
		sd_entry_release_meter(e);
		e->state = SD_E_GONE;
		e->free_next = sd_g.free_entries;
		sd_g.free_entries = e;
	}
	sd_defer_blob(atomic_exchange(&p->htab, NULL));
	sd_defer_blob(atomic_exchange(&p->snap, NULL));
	/* unlink from the port's pipe list */
	for (struct doca_flow_pipe **pp = &port->pipes; *pp; pp = &(*pp)->next_pipe_of_port)
		if (*pp == p) {
			*pp = p->next_pipe_of_port;
			break;
		}
	p->dead = true;
	if (p->fwd_miss.kind == SD_FWD_PIPE)
		sd_pipe_unref(p->fwd_miss.pipe);
	if (p->type == DOCA_FLOW_PIPE_BASIC && p->fwd.kind == SD_FWD_PIPE)
		sd_pipe_unref(p->fwd.pipe);
	if (p->refs == 0) {
		p->free_next = sd_g.free_pipes;
		sd_g.free_pipes = p;
	}
	/* else: a zombie until the last control entry forwarding here is freed */
}

void sd_pipe_unref(struct doca_flow_pipe *p)
{
	if (--p->refs == 0 && p->dead) {
		p->free_next = sd_g.free_pipes;
		sd_g.free_pipes = p;
	}
}

void doca_flow_pipe_destroy(struct doca_flow_pipe *pipe)
{
	if (pipe == NULL || pipe->dead)
		return;
	sd_pipe_destroy_now(pipe);
	sd_reclaim();
}
