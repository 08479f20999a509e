/*
 * softdoca entries: add / update / remove are queued per port and queue and applied in
 * doca_flow_entries_process (basic pipes: a hash table; control pipes: a sorted snapshot),
 * counters, fault injection.
 */
#include <stdlib.h>
#include <string.h>

#include "sd_internal.h"

static doca_error_t queue_push(struct doca_flow_port *port, uint16_t queue, uint8_t kind,
			       struct doca_flow_pipe_entry *e, uint64_t mac)
{
	struct sd_queue *q = &port->q[queue];
	if (q->n == q->cap) {
		uint32_t cap = q->cap ? q->cap * 2 : 256;
		struct sd_op *ops = realloc(q->ops, cap * sizeof(*ops));
		if (ops == NULL)
			return DOCA_ERROR_NO_MEMORY;
		q->ops = ops;
		q->cap = cap;
	}
	q->ops[q->n++] = (struct sd_op){.kind = kind, .e = e, .mac = mac};
	return DOCA_SUCCESS;
}

static doca_error_t check_flags(uint32_t flags)
{
#if SOFTDOCA_API >= 303
	/* 3.3 bit flags: 0 (default) allowed; unknown bits are an error */
	return (flags & ~(uint32_t)(DOCA_FLOW_ENTRY_FLAGS_NO_WAIT | DOCA_FLOW_ENTRY_FLAGS_WAIT_FOR_BATCH)) ?
		       DOCA_ERROR_INVALID_VALUE :
		       DOCA_SUCCESS;
#else
	return flags > DOCA_FLOW_WAIT_FOR_BATCH ? DOCA_ERROR_INVALID_VALUE : DOCA_SUCCESS;
#endif
}

/* Common front half of an add: checks done synchronously, like DOCA's add call. */
static doca_error_t entry_prepare(uint16_t queue, struct doca_flow_pipe *pipe, enum doca_flow_pipe_type type,
				  struct doca_flow_pipe_entry **out)
{
	if (!sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	if (pipe == NULL || pipe->dead || queue >= sd_g.queues || out == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (pipe->type != type)
		return DOCA_ERROR_INVALID_VALUE;
	bool inject = false;
	if (sd_g.inject_nth && --sd_g.inject_nth == 0) {
		if (!sd_g.inject_at_process)
			return DOCA_ERROR_FULL; /* injected capacity error */
		inject = true;
	}
	if (pipe->nr_used >= pipe->nr_entries)
		return DOCA_ERROR_FULL; /* more entries than nr_entries */
	if (sd_g.cap_entries_per_pipe && pipe->nr_used >= sd_g.cap_entries_per_pipe)
		return DOCA_ERROR_DRIVER; /* the hardware's limit (softdoca_set_capacity) */
	struct doca_flow_pipe_entry *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return DOCA_ERROR_NO_MEMORY;
	e->pipe = pipe;
	e->inject_fail = inject;
	e->status = DOCA_FLOW_ENTRY_STATUS_IN_PROCESS;
	e->state = SD_E_PENDING;
	*out = e;
	return DOCA_SUCCESS;
}

/* An entry that rewrites the frame takes actions memory of its pipe's port (in switch mode
 * the manager); none was given (DOCA's default is zero) or it is used up: no room. */
static doca_error_t actions_room(const struct doca_flow_port *port, const struct doca_flow_pipe_entry *e)
{
	if (e->has_action && port->actions_used + DOCA_FLOW_MAX_ENTRY_ACTIONS_MEM_SIZE > port->actions_mem)
		return DOCA_ERROR_NO_MEMORY;
	return DOCA_SUCCESS;
}

static doca_error_t entry_commit(uint16_t queue, struct doca_flow_pipe_entry *e, void *usr_ctx,
				 struct doca_flow_pipe_entry **entry)
{
	struct doca_flow_pipe *pipe = e->pipe;
	doca_error_t rc = actions_room(pipe->port, e);
	if (rc == DOCA_SUCCESS)
		rc = queue_push(pipe->port, queue, SD_OP_ADD, e, 0);
	if (rc != DOCA_SUCCESS) {
		sd_entry_release_meter(e);
		free(atomic_load(&e->own_meter.cfg));
		free(e);
		return rc;
	}
	e->usr_ctx = usr_ctx;
	e->seq = ++sd_g.seq;
	if (e->has_action)
		pipe->port->actions_used += DOCA_FLOW_MAX_ENTRY_ACTIONS_MEM_SIZE;
	e->next = pipe->entries;
	if (pipe->entries)
		pipe->entries->prev = e;
	pipe->entries = e;
	pipe->nr_used++;
	if (e->fwd.kind == SD_FWD_PIPE)
		e->fwd.pipe->refs++;
	*entry = e;
	return DOCA_SUCCESS;
}

static doca_error_t basic_add(uint16_t pipe_queue, struct doca_flow_pipe *pipe, const struct doca_flow_match *match,
			      const struct doca_flow_actions *actions, const struct doca_flow_monitor *monitor,
			      const struct doca_flow_fwd *fwd, uint32_t flags, void *usr_ctx,
			      struct doca_flow_pipe_entry **entry)
{
	doca_error_t rc = check_flags(flags);
	if (rc != DOCA_SUCCESS)
		return rc;
	if (fwd != NULL && fwd->type != DOCA_FLOW_FWD_NONE)
		return DOCA_ERROR_NOT_SUPPORTED; /* per-entry forward in a basic pipe: not modelled */
	if (pipe != NULL && pipe->mac_mode == 2 && actions == NULL)
		return DOCA_ERROR_INVALID_VALUE; /* the pipe's dst MAC is per entry */
	struct sd_key v = {0};
	if (pipe != NULL && !pipe->dead) {
		rc = sd_match_to_key(match, &v);
		if (rc != DOCA_SUCCESS)
			return rc;
		/* an IPv6 entry in a pipe whose template is not IPv6, or an IPv4 one in an IPv6 pipe */
		if (v.l3 && v.l3 != pipe->fam && (v.l3 == 6 || pipe->fam == 6))
			return DOCA_ERROR_INVALID_VALUE;
		const struct sd_key m = pipe->mask; /* finished at create: the validity bits are the pipe's */
		v.l3 = pipe->fam;
		v.l4_ok = m.l4_ok ? 1 : 0;
		if (!sd_key_within(&v, &m))
			return DOCA_ERROR_INVALID_VALUE; /* value outside the pipe's mask */
		rc = sd_port_match_allowed(pipe->port, &v, &m);
		if (rc != DOCA_SUCCESS)
			return rc;
	}
	struct doca_flow_pipe_entry *e;
	rc = entry_prepare(pipe_queue, pipe, DOCA_FLOW_PIPE_BASIC, &e);
	if (rc != DOCA_SUCCESS)
		return rc;
	e->val = v;
	e->mask = pipe->mask;
	e->nw = pipe->nw;
	e->fwd = pipe->fwd;
	if (pipe->mac_mode == 2)
		atomic_init(&e->act_mac, sd_mac_word(actions->outer.eth.dst_mac));
	else if (pipe->mac_mode == 1)
		atomic_init(&e->act_mac, pipe->const_mac);
	e->has_action = pipe->mac_mode != 0;
	rc = sd_entry_take_meter(e, monitor); /* FULL: past nr_meters */
	if (rc != DOCA_SUCCESS) {
		free(e);
		return rc;
	}
	return entry_commit(pipe_queue, e, usr_ctx, entry);
}

static doca_error_t control_add(uint16_t pipe_queue, uint32_t priority, struct doca_flow_pipe *pipe,
				const struct doca_flow_match *match, const struct doca_flow_match *match_mask,
				const struct doca_flow_match_condition *condition, const struct doca_flow_actions *actions,
				const struct doca_flow_actions *actions_mask,
				const struct doca_flow_action_descs *action_descs, const struct doca_flow_fwd *fwd,
				void *usr_ctx, struct doca_flow_pipe_entry **entry)
{
	if (condition != NULL || action_descs != NULL || actions_mask != NULL)
		return DOCA_ERROR_NOT_SUPPORTED;
	struct sd_key v, m;
	doca_error_t rc = sd_match_to_key(match, &v);
	if (rc != DOCA_SUCCESS)
		return rc;
	if (match_mask != NULL)
		rc = sd_match_to_key(match_mask, &m);
	else
		sd_key_full_mask(&v, &m);
	if (rc != DOCA_SUCCESS)
		return rc;
	uint8_t fam;
	rc = sd_mask_finish(&m, &v, &fam); /* INVALID_VALUE: value and mask of other families */
	if (rc != DOCA_SUCCESS)
		return rc;
	if (!sd_key_within(&v, &m))
		return DOCA_ERROR_INVALID_VALUE; /* value outside the entry's own mask */
	uint64_t mac = 0;
	if (actions != NULL) {
		if (!sd_mem_is_zero(actions->outer.eth.src_mac, 6))
			return DOCA_ERROR_NOT_SUPPORTED;
		if (!sd_mem_is_zero(actions->outer.eth.dst_mac, 6))
			mac = sd_mac_word(actions->outer.eth.dst_mac);
	}
	struct sd_fwd f;
	if (pipe == NULL || pipe->dead)
		return DOCA_ERROR_INVALID_VALUE;
	rc = sd_port_match_allowed(pipe->port, &v, &m);
	if (rc != DOCA_SUCCESS)
		return rc;
	rc = sd_fwd_convert(fwd, pipe->port, &f, false);
	if (rc != DOCA_SUCCESS)
		return rc;
	if (f.kind == SD_FWD_PIPE && f.pipe == pipe)
		return DOCA_ERROR_INVALID_VALUE;
	struct doca_flow_pipe_entry *e;
	rc = entry_prepare(pipe_queue, pipe, DOCA_FLOW_PIPE_CONTROL, &e);
	if (rc != DOCA_SUCCESS)
		return rc;
	e->val = v;
	e->mask = m;
	e->nw = (uint8_t)sd_key_words(&m);
	e->priority = priority;
	e->fwd = f;
	atomic_init(&e->act_mac, mac);
	e->has_action = mac != 0;
	return entry_commit(pipe_queue, e, usr_ctx, entry);
}

#if SOFTDOCA_API >= 303
doca_error_t doca_flow_pipe_basic_add_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
					    const struct doca_flow_match *match, uint8_t action_idx,
					    const struct doca_flow_actions *actions,
					    const struct doca_flow_monitor *monitor, const struct doca_flow_fwd *fwd,
					    uint32_t flags, void *usr_ctx, struct doca_flow_pipe_entry **entry)
{
	if (action_idx != 0)
		return DOCA_ERROR_INVALID_VALUE; /* one action template */
	return basic_add(pipe_queue, pipe, match, actions, monitor, fwd, flags, usr_ctx, entry);
}

doca_error_t doca_flow_pipe_control_add_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
					      const struct doca_flow_match *match,
					      const struct doca_flow_match *match_mask,
					      const struct doca_flow_match_condition *condition,
					      const struct doca_flow_actions *actions,
					      const struct doca_flow_actions *actions_mask,
					      const struct doca_flow_action_descs *action_descs,
					      const struct doca_flow_monitor *monitor, uint32_t priority,
					      const struct doca_flow_fwd *fwd, void *usr_ctx,
					      struct doca_flow_pipe_entry **entry)
{
	(void)monitor;
	return control_add(pipe_queue, priority, pipe, match, match_mask, condition, actions, actions_mask,
			   action_descs, fwd, usr_ctx, entry);
}
#else
#if SOFTDOCA_API >= 302
/* 3.2: the template index became an argument */
doca_error_t doca_flow_pipe_add_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
				      const struct doca_flow_match *match, uint8_t action_idx,
				      const struct doca_flow_actions *actions, const struct doca_flow_monitor *monitor,
				      const struct doca_flow_fwd *fwd, uint32_t flags, void *usr_ctx,
				      struct doca_flow_pipe_entry **entry)
{
	if (action_idx != 0)
		return DOCA_ERROR_INVALID_VALUE; /* one action template */
	return basic_add(pipe_queue, pipe, match, actions, monitor, fwd, flags, usr_ctx, entry);
}
#else
/* up to 3.1: the template index is actions->action_idx */
doca_error_t doca_flow_pipe_add_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
				      const struct doca_flow_match *match, const struct doca_flow_actions *actions,
				      const struct doca_flow_monitor *monitor, const struct doca_flow_fwd *fwd,
				      uint32_t flags, void *usr_ctx, struct doca_flow_pipe_entry **entry)
{
	if (actions != NULL && actions->action_idx != 0)
		return DOCA_ERROR_INVALID_VALUE;
	return basic_add(pipe_queue, pipe, match, actions, monitor, fwd, flags, usr_ctx, entry);
}
#endif

doca_error_t doca_flow_pipe_control_add_entry(uint16_t pipe_queue, uint32_t priority, struct doca_flow_pipe *pipe,
					      const struct doca_flow_match *match,
					      const struct doca_flow_match *match_mask,
					      const struct doca_flow_match_condition *condition,
					      const struct doca_flow_actions *actions,
					      const struct doca_flow_actions *actions_mask,
					      const struct doca_flow_action_descs *action_descs,
					      const struct doca_flow_monitor *monitor, const struct doca_flow_fwd *fwd,
					      void *usr_ctx, struct doca_flow_pipe_entry **entry)
{
	(void)monitor;
	return control_add(pipe_queue, priority, pipe, match, match_mask, condition, actions, actions_mask,
			   action_descs, fwd, usr_ctx, entry);
}
#endif

/* A new rate for an entry's non-shared meter (NULL: none asked); a shared meter stays. */
static doca_error_t update_meter(const struct doca_flow_pipe_entry *entry, const struct doca_flow_monitor *mon,
				 struct sd_meter_cfg **out)
{
	*out = NULL;
	if (mon == NULL || mon->meter_type == DOCA_FLOW_RESOURCE_TYPE_NONE)
		return DOCA_SUCCESS;
	if (mon->meter_type != entry->pipe->meter_kind)
		return DOCA_ERROR_INVALID_VALUE;
	if (mon->meter_type == DOCA_FLOW_RESOURCE_TYPE_SHARED)
		return (int32_t)mon->shared_meter.shared_meter_id == entry->shared_id ? DOCA_SUCCESS :
										       DOCA_ERROR_NOT_SUPPORTED;
	const typeof(mon->non_shared_meter) *n = &mon->non_shared_meter;
	doca_error_t rc = sd_meter_check(n->limit_type, n->cir, n->cbs);
	if (rc != DOCA_SUCCESS)
		return rc;
	*out = sd_meter_cfg_new(n->cir, n->cbs, n->limit_type == DOCA_FLOW_METER_LIMIT_TYPE_BYTES, false);
	return *out ? DOCA_SUCCESS : DOCA_ERROR_NO_MEMORY;
}

static doca_error_t update_common(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
				  const struct doca_flow_actions *actions, const struct doca_flow_monitor *monitor,
				  const struct doca_flow_fwd *fwd, uint32_t flags, struct doca_flow_pipe_entry *entry)
{
	doca_error_t rc = check_flags(flags);
	if (rc != DOCA_SUCCESS)
		return rc;
	if (!sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	if (entry == NULL || pipe == NULL || entry->pipe != pipe || pipe->dead || pipe_queue >= sd_g.queues)
		return DOCA_ERROR_INVALID_VALUE;
	if (pipe->type != DOCA_FLOW_PIPE_BASIC || entry->state == SD_E_GONE)
		return DOCA_ERROR_INVALID_VALUE;
	if (fwd != NULL && fwd->type != DOCA_FLOW_FWD_NONE)
		return DOCA_ERROR_NOT_SUPPORTED;
	/* changeable: the per-entry dst MAC and the entry's non-shared meter */
	if (actions != NULL && pipe->mac_mode != 2)
		return DOCA_ERROR_INVALID_VALUE;
	struct sd_meter_cfg *mc;
	rc = update_meter(entry, monitor, &mc);
	if (rc != DOCA_SUCCESS)
		return rc;
	if (actions == NULL && mc == NULL)
		return DOCA_ERROR_INVALID_VALUE; /* nothing to update */
	rc = queue_push(pipe->port, pipe_queue, SD_OP_UPD, entry, actions ? sd_mac_word(actions->outer.eth.dst_mac) : 0);
	if (rc != DOCA_SUCCESS)
		free(mc);
	else
		pipe->port->q[pipe_queue].ops[pipe->port->q[pipe_queue].n - 1].meter = mc;
	return rc;
}

#if SOFTDOCA_API >= 303
doca_error_t doca_flow_pipe_basic_update_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe, uint8_t action_idx,
					       const struct doca_flow_actions *actions,
					       const struct doca_flow_monitor *monitor, const struct doca_flow_fwd *fwd,
					       uint32_t flags, struct doca_flow_pipe_entry *entry)
{
	if (action_idx != 0)
		return DOCA_ERROR_INVALID_VALUE;
	return update_common(pipe_queue, pipe, actions, monitor, fwd, flags, entry);
}
#else
doca_error_t doca_flow_pipe_update_entry(uint16_t pipe_queue, struct doca_flow_pipe *pipe,
					 const struct doca_flow_actions *actions, const struct doca_flow_monitor *monitor,
					 const struct doca_flow_fwd *fwd, uint32_t flags,
					 struct doca_flow_pipe_entry *entry)
{
	return update_common(pipe_queue, pipe, actions, monitor, fwd, flags, entry);
}
#endif

static doca_error_t remove_common(uint16_t pipe_queue, uint32_t flags, struct doca_flow_pipe_entry *entry)
{
	doca_error_t rc = check_flags(flags);
	if (rc != DOCA_SUCCESS)
		return rc;
	if (!sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	if (entry == NULL || pipe_queue >= sd_g.queues || entry->pipe == NULL || entry->pipe->dead ||
	    entry->state == SD_E_GONE)
		return DOCA_ERROR_INVALID_VALUE;
	return queue_push(entry->pipe->port, pipe_queue, SD_OP_DEL, entry, 0);
}

static void query_common(struct doca_flow_pipe_entry *entry, uint64_t *pkts, uint64_t *bytes)
{
	*pkts = RLX_LOAD(&entry->pkts);
	*bytes = RLX_LOAD(&entry->bytes);
}

doca_error_t doca_flow_pipe_remove_entry(uint16_t pipe_queue, uint32_t flags, struct doca_flow_pipe_entry *entry)
{
	return remove_common(pipe_queue, flags, entry);
}

doca_error_t doca_flow_resource_query_entry(struct doca_flow_pipe_entry *entry,
					    struct doca_flow_resource_query *query_stats)
{
	if (entry == NULL || query_stats == NULL || entry->state == SD_E_GONE)
		return DOCA_ERROR_INVALID_VALUE;
	query_common(entry, &query_stats->counter.total_pkts, &query_stats->counter.total_bytes);
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_resource_query_pipe_miss(struct doca_flow_pipe *pipe,
						struct doca_flow_resource_query *query_stats)
{
	if (pipe == NULL || pipe->dead || query_stats == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	query_stats->counter.total_pkts = RLX_LOAD(&pipe->miss_pkts);
	query_stats->counter.total_bytes = RLX_LOAD(&pipe->miss_bytes);
	return DOCA_SUCCESS;
}

enum doca_flow_entry_status doca_flow_pipe_entry_get_status(struct doca_flow_pipe_entry *entry)
{
	return entry ? entry->status : DOCA_FLOW_ENTRY_STATUS_ERROR;
}

doca_error_t softdoca_entry_error(struct doca_flow_pipe_entry *entry)
{
	return entry ? entry->err : DOCA_ERROR_INVALID_VALUE;
}

doca_error_t softdoca_inject_add_failure(uint32_t nth, int at_process)
{
	sd_g.inject_nth = nth;
	sd_g.inject_at_process = at_process;
	return DOCA_SUCCESS;
}

/* --- entries_process: apply queued ops -------------------------------------------- */

static doca_error_t htab_rebuild(struct doca_flow_pipe *p)
{
	struct sd_htab *old = atomic_load(&p->htab);
	struct sd_htab *t = sd_htab_new(p->nr_entries);
	if (t == NULL)
		return DOCA_ERROR_NO_MEMORY;
	for (uint32_t i = 0; i <= old->mask; i++) {
		struct doca_flow_pipe_entry *e = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
		if (e == NULL || (uintptr_t)e == 1)
			continue;
		uint32_t j = sd_key_hash(&e->val, p->nw) & t->mask;
		while (atomic_load_explicit(&t->slot[j], memory_order_relaxed))
			j = (j + 1) & t->mask;
		atomic_store_explicit(&t->slot[j], e, memory_order_relaxed);
		t->used++;
	}
	STORE_REL(&p->htab, t); /* publishes the filled table */
	sd_defer_blob(old);
	return DOCA_SUCCESS;
}

/* Insert into the basic pipe's table; ALREADY_EXIST if the same masked value is there. */
static doca_error_t htab_insert(struct doca_flow_pipe *p, struct doca_flow_pipe_entry *e)
{
	struct sd_htab *t = atomic_load(&p->htab);
	if (t->used + t->tombs + 1 > (t->mask + 1) / 4 * 3) {
		doca_error_t rc = htab_rebuild(p); /* drop tombstones */
		if (rc != DOCA_SUCCESS)
			return rc;
		t = atomic_load(&p->htab);
	}
	uint32_t i = sd_key_hash(&e->val, p->nw) & t->mask;
	int64_t tomb = -1;
	for (;;) {
		struct doca_flow_pipe_entry *x = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (x == NULL)
			break;
		if ((uintptr_t)x == 1) {
			if (tomb < 0)
				tomb = i;
		} else if (sd_key_eq(&x->val, &e->val, p->nw)) {
			return DOCA_ERROR_ALREADY_EXIST;
		}
		i = (i + 1) & t->mask;
	}
	if (tomb >= 0) {
		i = (uint32_t)tomb;
		t->tombs--;
	}
	STORE_REL(&t->slot[i], e); /* the entry is fully written before it becomes visible */
	t->used++;
	return DOCA_SUCCESS;
}

static void htab_delete(struct doca_flow_pipe *p, struct doca_flow_pipe_entry *e)
{
	struct sd_htab *t = atomic_load(&p->htab);
	if (t == NULL)
		return;
	uint32_t i = sd_key_hash(&e->val, p->nw) & t->mask;
	for (uint32_t n = 0; n <= t->mask; n++, i = (i + 1) & t->mask) {
		struct doca_flow_pipe_entry *x = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (x == NULL)
			return;
		if (x == e) {
			STORE_REL(&t->slot[i], (struct doca_flow_pipe_entry *)1);
			t->used--;
			t->tombs++;
			return;
		}
	}
}

void sd_entry_unlink_tables(struct doca_flow_pipe_entry *e)
{
	if (e->state != SD_E_ACTIVE)
		return;
	if (e->pipe->type == DOCA_FLOW_PIPE_BASIC)
		htab_delete(e->pipe, e);
	else
		e->pipe->ctl_dirty = true;
}

static int ctl_cmp(const void *a, const void *b)
{
	const struct doca_flow_pipe_entry *x = *(const struct doca_flow_pipe_entry *const *)a;
	const struct doca_flow_pipe_entry *y = *(const struct doca_flow_pipe_entry *const *)b;
	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1; /* lower value = higher priority (0 first) */
	return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

static doca_error_t ctl_publish(struct doca_flow_pipe *p)
{
	uint32_t n = 0;
	for (struct doca_flow_pipe_entry *e = p->entries; e; e = e->next)
		n += e->state == SD_E_ACTIVE;
	struct sd_ctl_snap *s = malloc(sizeof(*s) + (n ? n : 1) * sizeof(s->e[0]));
	if (s == NULL)
		return DOCA_ERROR_NO_MEMORY;
	s->n = 0;
	for (struct doca_flow_pipe_entry *e = p->entries; e; e = e->next)
		if (e->state == SD_E_ACTIVE)
			s->e[s->n++] = e;
	qsort(s->e, s->n, sizeof(s->e[0]), ctl_cmp);
	sd_defer_blob(atomic_exchange_explicit(&p->snap, s, memory_order_acq_rel));
	p->ctl_dirty = false;
	return DOCA_SUCCESS;
}

static void entry_list_remove(struct doca_flow_pipe_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		e->pipe->entries = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->prev = e->next = NULL;
}

static void notify(struct doca_flow_pipe_entry *e, uint16_t queue, enum doca_flow_entry_status st,
		   enum doca_flow_entry_op op)
{
	if (sd_g.cb)
		sd_g.cb(e, queue, st, op, e->usr_ctx);
}

doca_error_t doca_flow_entries_process(struct doca_flow_port *port, uint16_t pipe_queue, uint64_t timeout,
				       uint32_t max_processed_entries)
{
	(void)timeout; /* everything queued completes synchronously here */
	if (!sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	if (port == NULL || sd_g.ports[port->id] != port || pipe_queue >= sd_g.queues)
		return DOCA_ERROR_INVALID_VALUE;
	struct sd_queue *q = &port->q[pipe_queue];
	uint32_t todo = q->n;
	if (max_processed_entries && max_processed_entries < todo)
		todo = max_processed_entries;
	struct doca_flow_pipe *dirty[64];
	uint32_t ndirty = 0;
	bool overflow = false;

	for (uint32_t i = 0; i < todo; i++) {
		struct sd_op *op = &q->ops[i];
		struct doca_flow_pipe_entry *e = op->e;
		struct doca_flow_pipe *p = e->pipe;
		enum doca_flow_entry_status st = DOCA_FLOW_ENTRY_STATUS_SUCCESS;
		switch (op->kind) {
		case SD_OP_ADD:
			if (e->inject_fail) {
				st = DOCA_FLOW_ENTRY_STATUS_ERROR;
				e->err = DOCA_ERROR_FULL; /* injected capacity error */
			} else if (p->type == DOCA_FLOW_PIPE_BASIC) {
				e->err = htab_insert(p, e); /* ALREADY_EXIST: duplicate match */
				if (e->err != DOCA_SUCCESS)
					st = DOCA_FLOW_ENTRY_STATUS_ERROR;
			} else {
				p->ctl_dirty = true;
			}
			e->state = st == DOCA_FLOW_ENTRY_STATUS_SUCCESS ? SD_E_ACTIVE : SD_E_FAILED;
			e->status = st;
			notify(e, pipe_queue, st, DOCA_FLOW_ENTRY_OP_ADD);
			break;
		case SD_OP_UPD:
			if (e->state == SD_E_ACTIVE) {
				/* the one store the forwarder can observe: old MAC or new MAC */
				if (op->mac)
					atomic_store_explicit(&e->act_mac, op->mac, memory_order_release);
				if (op->meter) /* one pointer store: old rate or new rate */
					sd_meter_publish(&e->own_meter, op->meter);
			} else {
				free(op->meter);
				st = DOCA_FLOW_ENTRY_STATUS_ERROR;
			}
			e->status = st;
			notify(e, pipe_queue, st, DOCA_FLOW_ENTRY_OP_UPD);
			break;
		case SD_OP_DEL:
			if (e->state == SD_E_GONE) {
				st = DOCA_FLOW_ENTRY_STATUS_ERROR;
				notify(e, pipe_queue, st, DOCA_FLOW_ENTRY_OP_DEL);
				break;
			}
			sd_entry_unlink_tables(e);
			entry_list_remove(e);
			p->nr_used--;
			if (e->has_action)
				p->port->actions_used -= DOCA_FLOW_MAX_ENTRY_ACTIONS_MEM_SIZE;
			sd_entry_release_meter(e);
			e->state = SD_E_GONE;
			notify(e, pipe_queue, st, DOCA_FLOW_ENTRY_OP_DEL);
			e->free_next = sd_g.free_entries;
			sd_g.free_entries = e;
			break;
		}
		if (p->type == DOCA_FLOW_PIPE_CONTROL && p->ctl_dirty) {
			bool seen = false;
			for (uint32_t d = 0; d < ndirty; d++)
				seen |= dirty[d] == p;
			if (!seen) {
				if (ndirty < 64)
					dirty[ndirty++] = p;
				else
					overflow = true;
			}
		}
	}
	memmove(q->ops, q->ops + todo, (q->n - todo) * sizeof(q->ops[0]));
	q->n -= todo;

	doca_error_t rc = DOCA_SUCCESS;
	for (uint32_t d = 0; d < ndirty; d++)
		if (ctl_publish(dirty[d]) != DOCA_SUCCESS)
			rc = DOCA_ERROR_NO_MEMORY;
	if (overflow)
		for (struct doca_flow_pipe *p = port->pipes; p; p = p->next_pipe_of_port)
			if (p->ctl_dirty && ctl_publish(p) != DOCA_SUCCESS)
				rc = DOCA_ERROR_NO_MEMORY;
	sd_reclaim(); /* one grace period for the whole batch */
	return rc;
}
