/*
 * softdoca core: the model's global state, DOCA error names, doca_version_runtime,
 * doca_flow_cfg (mode arguments per release) / doca_flow_init / doca_flow_destroy, and the grace periods (QSBR) that let the control plane free memory the
 * forwarder may still read.  Threads and consistency: see sd_internal.h.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_pause.h>

#include "sd_internal.h"

struct doca_flow_cfg {
	uint16_t queues;
	uint32_t nr_meters, nr_shared_meters;
	bool mode_set, switch_mode, isolated;
	doca_flow_entry_process_cb cb;
};

/* back-off: see bench_glue_forward (spin, sleep) and bench_idle (the ceiling) */
struct sd_global sd_g = {.spin_us = 50, .sleep_us = 20, .idle_max_us = 1000, .fwd_sleep_us = 20, .fwd_lcore = -1};

/* ------------------------------------------------------------------------------------ */
/* errors                                                                               */

static const char *const err_names[] = {
	"DOCA_SUCCESS", "DOCA_ERROR_UNKNOWN", "DOCA_ERROR_NOT_PERMITTED", "DOCA_ERROR_IN_USE",
	"DOCA_ERROR_NOT_SUPPORTED", "DOCA_ERROR_AGAIN", "DOCA_ERROR_INVALID_VALUE", "DOCA_ERROR_NO_MEMORY",
	"DOCA_ERROR_INITIALIZATION", "DOCA_ERROR_TIME_OUT", "DOCA_ERROR_SHUTDOWN", "DOCA_ERROR_CONNECTION_RESET",
	"DOCA_ERROR_CONNECTION_ABORTED", "DOCA_ERROR_CONNECTION_INPROGRESS", "DOCA_ERROR_NOT_CONNECTED",
	"DOCA_ERROR_NO_LOCK", "DOCA_ERROR_NOT_FOUND", "DOCA_ERROR_IO_FAILED", "DOCA_ERROR_BAD_STATE",
	"DOCA_ERROR_UNSUPPORTED_VERSION", "DOCA_ERROR_OPERATING_SYSTEM", "DOCA_ERROR_DRIVER",
	"DOCA_ERROR_UNEXPECTED", "DOCA_ERROR_ALREADY_EXIST", "DOCA_ERROR_FULL", "DOCA_ERROR_EMPTY",
	"DOCA_ERROR_IN_PROGRESS", "DOCA_ERROR_TOO_BIG", "DOCA_ERROR_AUTHENTICATION", "DOCA_ERROR_BAD_CONFIG",
	"DOCA_ERROR_SKIPPED", "DOCA_ERROR_DEVICE_FATAL_ERROR",
};

static const char *const err_descr[] = {
	"Success", "Unknown error", "Operation not permitted", "Resource in use", "Operation not supported",
	"Resource temporarily unavailable, try again", "Invalid input", "Memory allocation failure",
	"Resource initialization failure", "Timer expired", "Shut down in process", "Connection reset",
	"Connection aborted", "Connection in progress", "Not connected", "No lock available",
	"Resource not found", "Input/Output operation failed", "Bad state", "Unsupported version",
	"Operating system call failure", "DOCA driver call failure", "Unexpected error",
	"Resource already exists", "No more space in resource", "No data available",
	"Operation in progress", "Value too big", "Authentication failure", "Bad configuration",
	"Operation skipped", "Device fatal error",
};

const char *doca_version_runtime(void)
{
	return DOCA_VERSION_STRING; /* the model is its own runtime */
}

const char *doca_error_get_name(doca_error_t error)
{
	if ((unsigned)error < sizeof(err_names) / sizeof(err_names[0]))
		return err_names[error];
	return "DOCA_ERROR_UNKNOWN";
}

const char *doca_error_get_descr(doca_error_t error)
{
	if ((unsigned)error < sizeof(err_descr) / sizeof(err_descr[0]))
		return err_descr[error];
	return "Unknown error";
}

/* ------------------------------------------------------------------------------------ */
/* grace periods (QSBR)                                                                 */

void sd_synchronize(void)
{
	if (!atomic_load(&sd_g.fwd_running))
		return;
	/* Order our unpublishing stores before reading the forwarder's state. */
	atomic_thread_fence(memory_order_seq_cst);
	uint64_t c = atomic_load(&sd_g.qs_count);
	unsigned spins = 0;
	while (atomic_load(&sd_g.fwd_running) && !atomic_load(&sd_g.fwd_offline) && atomic_load(&sd_g.qs_count) == c) {
		if (++spins < 256)
			rte_pause();
		else
			sched_yield();
	}
}

void sd_defer_blob(void *p)
{
	if (p == NULL)
		return;
	if (sd_g.n_free_blobs == sizeof(sd_g.free_blobs) / sizeof(sd_g.free_blobs[0])) {
		sd_synchronize();
		for (uint32_t i = 0; i < sd_g.n_free_blobs; i++)
			free(sd_g.free_blobs[i]);
		sd_g.n_free_blobs = 0;
	}
	sd_g.free_blobs[sd_g.n_free_blobs++] = p;
}


/* Wait for a grace period, then free everything deferred. */
void sd_reclaim(void)
{
	if (sd_g.free_entries == NULL && sd_g.free_pipes == NULL && sd_g.n_free_blobs == 0)
		return;
	sd_synchronize();
	for (uint32_t i = 0; i < sd_g.n_free_blobs; i++)
		free(sd_g.free_blobs[i]);
	sd_g.n_free_blobs = 0;
	while (sd_g.free_entries) {
		struct doca_flow_pipe_entry *e = sd_g.free_entries;
		sd_g.free_entries = e->free_next;
		if (e->fwd.kind == SD_FWD_PIPE && e->fwd.pipe)
			sd_pipe_unref(e->fwd.pipe); /* may queue the target pipe on free_pipes */
		free(atomic_load(&e->own_meter.cfg));
		free(e);
	}
	while (sd_g.free_pipes) {
		struct doca_flow_pipe *p = sd_g.free_pipes;
		sd_g.free_pipes = p->free_next;
		free(p);
	}
}

/* ------------------------------------------------------------------------------------ */
/* global init                                                                          */

doca_error_t doca_flow_cfg_create(struct doca_flow_cfg **cfg)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*cfg = calloc(1, sizeof(**cfg));
	if (*cfg == NULL)
		return DOCA_ERROR_NO_MEMORY;
	(*cfg)->queues = 1;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_cfg_destroy(struct doca_flow_cfg *cfg)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	free(cfg);
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_cfg_set_pipe_queues(struct doca_flow_cfg *cfg, uint16_t pipe_queues)
{
	if (cfg == NULL || pipe_queues == 0 || pipe_queues > SD_MAX_QUEUES)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->queues = pipe_queues;
	return DOCA_SUCCESS;
}

/* The mode-argument tokens NVIDIA's samples use, per release: vnf, switch, hws, expert,
 * cpds and hairpinq_num=N in every one (cpds: samples/doca_flow/flow_pipe_resize at 2.9 and
 * later); "isolated" up to 3.2 (3.3 has doca_flow_port_update_default_miss instead), and
 * "use_doca_eth" / "disable_switch_rss" in 2.9..3.2 applications. */
static const char *const mode_tokens[] = {
	"vnf", "switch", "hws", "expert", "cpds",
#if SOFTDOCA_API <= 302
	"isolated", "use_doca_eth", "disable_switch_rss",
#endif
};

static bool mode_token_known(const char *t)
{
	for (size_t i = 0; i < sizeof(mode_tokens) / sizeof(mode_tokens[0]); i++)
		if (strcmp(t, mode_tokens[i]) == 0)
			return true;
	const char *hq = "hairpinq_num=";
	if (strncmp(t, hq, strlen(hq)) == 0) {
		const char *v = t + strlen(hq);
		char *end;
		long n = strtol(v, &end, 10);
		return v[0] >= '0' && v[0] <= '9' && *end == '\0' && n > 0 && n <= 64;
	}
	return false;
}

doca_error_t doca_flow_cfg_set_mode_args(struct doca_flow_cfg *cfg, const char *mode_args)
{
	if (cfg == NULL || mode_args == NULL || strlen(mode_args) >= 128)
		return DOCA_ERROR_INVALID_VALUE;
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", mode_args);
	bool vnf = false, sw = false, isolated = false;
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!mode_token_known(t))
			return DOCA_ERROR_INVALID_VALUE; /* unknown in this release */
		vnf |= strcmp(t, "vnf") == 0;
		sw |= strcmp(t, "switch") == 0;
		isolated |= strcmp(t, "isolated") == 0;
		/* hws, expert, ...: accepted, nothing to model */
	}
	if (vnf == sw)
		return DOCA_ERROR_INVALID_VALUE; /* exactly one mode */
	cfg->mode_set = true;
	cfg->switch_mode = sw;
	cfg->isolated = isolated;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_cfg_set_nr_counters(struct doca_flow_cfg *cfg, uint32_t nr_counters)
{
	(void)nr_counters;
	return cfg ? DOCA_SUCCESS : DOCA_ERROR_INVALID_VALUE;
}

doca_error_t doca_flow_cfg_set_nr_meters(struct doca_flow_cfg *cfg, uint32_t nr_meters)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->nr_meters = nr_meters;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_cfg_set_nr_shared_resource(struct doca_flow_cfg *cfg, uint32_t nr_shared_resource,
						  enum doca_flow_shared_resource_type type)
{
	if (cfg == NULL || (unsigned)type > DOCA_FLOW_SHARED_RESOURCE_IPSEC_SA)
		return DOCA_ERROR_INVALID_VALUE;
	if (type == DOCA_FLOW_SHARED_RESOURCE_METER)
		cfg->nr_shared_meters = nr_shared_resource; /* other types: accepted, not modelled */
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_cfg_set_queue_depth(struct doca_flow_cfg *cfg, uint32_t queue_depth)
{
	(void)queue_depth;
	return cfg ? DOCA_SUCCESS : DOCA_ERROR_INVALID_VALUE;
}

doca_error_t doca_flow_cfg_set_cb_entry_process(struct doca_flow_cfg *cfg, doca_flow_entry_process_cb cb)
{
	if (cfg == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	cfg->cb = cb;
	return DOCA_SUCCESS;
}

doca_error_t doca_flow_init(struct doca_flow_cfg *cfg)
{
	if (cfg == NULL || !cfg->mode_set)
		return DOCA_ERROR_INVALID_VALUE;
	if (sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	doca_error_t rc = sd_meters_init(cfg->nr_meters, cfg->nr_shared_meters);
	if (rc != DOCA_SUCCESS)
		return rc;
	sd_g.inited = true;
	sd_g.switch_mode = cfg->switch_mode;
	sd_g.isolated = cfg->isolated;
	sd_g.queues = cfg->queues;
	sd_g.cb = cfg->cb;
	sd_g.inject_nth = 0;
	return DOCA_SUCCESS;
}

void doca_flow_destroy(void)
{
	if (!sd_g.inited)
		return;
	/* stop non-manager ports first, manager last */
	for (int pass = 0; pass < 2; pass++)
		for (int i = SD_MAX_PORTS - 1; i >= 0; i--)
			if (sd_g.ports[i] && (pass == 1 || !sd_g.ports[i]->is_switch_manager))
				doca_flow_port_stop(sd_g.ports[i]);
	sd_fwd_stop();
	sd_reclaim();
	sd_meters_fini();
	sd_g.inited = false;
}
