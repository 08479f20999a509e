/*
 * dpdk_glue: port bring-up and teardown, per DOCA release, the way NVIDIA's DOCA Flow samples
 * do it (samples/doca_flow/flow_common.c, flow_switch_common.c and
 * applications/common/dpdk_utils.c of NVIDIA-DOCA/doca-samples 2.9 .. 3.3):
 *
 *   EAL told not to probe the devices ("-a pci:00:00.0", 3.1+ also "-a auxiliary:")
 *   -> each device (PF/SF) opened as a doca_dev by PCI address, each representor as a
 *      doca_dev_rep of its device (3.1+)
 *   -> devices probed into DPDK (doca_dpdk_port_probe, 3.1+ with their representors)
 *   -> real DOCA: the devices' ethdevs configured and started (3.0 and older, vnf mode: with
 *      hairpin queues to their pair)
 *   -> DOCA ports started: devices with set_dev, then representors with set_dev_rep; the
 *      port id by set_port_id (3.0+) or as the DPDK port id in devargs (2.9)
 *   -> vnf mode: doca_flow_port_pair for every forwarding direction
 *   -> misses to the kernel: "isolated" in the mode arguments (2.9 .. 3.2, xf_init) or
 *      doca_flow_port_update_default_miss(KERNEL) (3.3), so that a packet no entry takes
 *      reaches the representor netdev (OVS) instead of the application's queues, which the
 *      glue does not poll.
 *
 * Teardown in the samples' order: pipes flushed, ports stopped (representors and other
 * ports before their switch manager), doca_flow_destroy, ethdevs closed, EAL cleaned up,
 * then the doca_dev_rep / doca_dev closed.  Callers hold the glue mutex.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_ethdev.h>

#include <doca_dev.h>
#include <doca_dpdk.h>
#include <doca_error.h>
#include <doca_flow.h>
#include <doca_version.h>

#include "glue.h"
#include "glue_internal.h"

/* Entries with actions (a MAC rewrite) one port's pipes may hold when the caller does not say
 * (xf_port_cfg.action_entries 0): the actions memory the glue asks DOCA for (3.0+), at 128
 * bytes an entry.  At most XF_ACTION_ENTRIES_MAX: 2^31 bytes, the largest power of two the
 * uint32_t size takes. */
#define XF_ACTION_ENTRIES (1u << 17) /* 16 MiB, what every port had before ports were sized */
#define XF_ACTION_ENTRIES_MAX (1u << 24)

struct gport {
	struct doca_flow_port *port;
	struct doca_dev *dev;     /* XF_PORT_DEV: the opened function */
	struct doca_dev_rep *rep; /* XF_PORT_REP */
	uint16_t doca_id;         /* the id DOCA knows the port by (fwd.port_id, parser_meta) */
	uint16_t dpdk_id;         /* XF_PORT_DEV: its DPDK port once probed */
	uint16_t parent, pair;
	uint32_t action_entries; /* 3.0+: what its actions memory is sized for */
	uint8_t kind;
	bool used, probed, ethdev_up;
};

static struct {
	struct gport p[XF_MAX_PORTS];
	uint16_t order[XF_MAX_PORTS]; /* start order: devices first, then representors */
	uint16_t nstarted;
	bool brought_up;
} P;

static const struct xf_port_cfg *cfg_of(const struct xf_port_cfg *cfg, uint32_t n, uint16_t id)
{
	for (uint32_t i = 0; i < n; i++)
		if (cfg[i].id == id)
			return &cfg[i];
	return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* queries for glue.c                                                                    */

struct doca_flow_port *glue_port(uint16_t id)
{
	return id < XF_MAX_PORTS && P.p[id].used ? P.p[id].port : NULL;
}

uint16_t glue_doca_port_id(uint16_t id)
{
	return id < XF_MAX_PORTS ? P.p[id].doca_id : XF_NO_PORT;
}

uint16_t glue_dpdk_port_id(uint16_t id)
{
	return id < XF_MAX_PORTS && P.p[id].used ? P.p[id].dpdk_id : XF_NO_PORT;
}

int glue_cfg_port_id(int doca_id)
{
	for (uint16_t i = 0; i < XF_MAX_PORTS; i++)
		if (P.p[i].used && P.p[i].port && P.p[i].doca_id == doca_id)
			return i;
	return -1;
}

uint16_t glue_nports(void)
{
	return P.nstarted;
}

uint16_t glue_port_in_order(uint16_t i)
{
	return P.order[i];
}

/* ------------------------------------------------------------------------------------ */
/* EAL arguments and mode arguments                                                      */

#ifndef SOFTDOCA_VERSION
static bool has_probe_args(int argc, char **argv)
{
	static const char *const opts[] = {"-a", "--allow", "-b", "--block", "--no-pci", "--vdev"};
	for (int i = 1; i < argc; i++)
		for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
			if (strncmp(argv[i], opts[k], strlen(opts[k])) == 0)
				return true;
	return false;
}
#endif

int glue_eal_extra_args(int argc, char **argv, char **extra)
{
#ifdef SOFTDOCA_VERSION
	(void)argc;
	(void)argv;
	(void)extra;
	return 0; /* softdoca's functions are vdevs it opens itself */
#else
	if (has_probe_args(argc, argv))
		return 0; /* the operator chose what the EAL probes */
	int n = 0;
	extra[n++] = "-a";
	extra[n++] = "pci:00:00.0";
#if XF_DOCA_AT_LEAST(3, 1)
	extra[n++] = "-a";
	extra[n++] = "auxiliary:";
#endif
	return n;
#endif
}

void glue_mode_args(const char *mode, char *buf, size_t len)
{
#if XF_DOCA_AT_LEAST(3, 3)
	snprintf(buf, len, "%s,hws", mode); /* misses: doca_flow_port_update_default_miss */
#else
	snprintf(buf, len, "%s,hws,isolated", mode); /* isolated: misses go to the kernel */
#endif
}

/* ------------------------------------------------------------------------------------ */
/* functions: devices and representors                                                   */

static doca_error_t open_dev(const char *addr, struct doca_dev **dev)
{
	struct doca_devinfo **list = NULL;
	uint32_t n = 0;
	doca_error_t rc = doca_devinfo_create_list(&list, &n);
	if (rc != DOCA_SUCCESS)
		return glue_fail(rc, "doca_devinfo_create_list", "listing DOCA devices");
	rc = DOCA_ERROR_NOT_FOUND;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t eq = 0;
		if (doca_devinfo_is_equal_pci_addr(list[i], addr, &eq) == DOCA_SUCCESS && eq) {
			rc = doca_dev_open(list[i], dev);
			if (rc != DOCA_SUCCESS)
				glue_fail(rc, "doca_dev_open", "device %s", addr);
			break;
		}
	}
	doca_devinfo_destroy_list(list);
	if (rc == DOCA_ERROR_NOT_FOUND)
		glue_fail(rc, "doca_devinfo_is_equal_pci_addr", "no DOCA device with PCI address %s", addr);
	return rc;
}

#if XF_DOCA_AT_LEAST(3, 1)
static doca_error_t open_rep(struct doca_dev *dev, const char *addr, struct doca_dev_rep **rep)
{
	struct doca_devinfo_rep **list = NULL;
	uint32_t n = 0;
	doca_error_t rc = doca_devinfo_rep_create_list(dev, DOCA_DEVINFO_REP_FILTER_NET, &list, &n);
	if (rc != DOCA_SUCCESS)
		return glue_fail(rc, "doca_devinfo_rep_create_list", "representors of the device of %s", addr);
	rc = DOCA_ERROR_NOT_FOUND;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t eq = 0;
		if (doca_devinfo_rep_is_equal_pci_addr(list[i], addr, &eq) == DOCA_SUCCESS && eq) {
			rc = doca_dev_rep_open(list[i], rep);
			if (rc != DOCA_SUCCESS)
				glue_fail(rc, "doca_dev_rep_open", "representor %s", addr);
			break;
		}
	}
	doca_devinfo_rep_destroy_list(list);
	if (rc == DOCA_ERROR_NOT_FOUND)
		glue_fail(rc, "doca_devinfo_rep_is_equal_pci_addr", "no representor with PCI address %s", addr);
	return rc;
}
#endif

static doca_error_t probe_dev(uint16_t id, const struct xf_port_cfg *cfg, uint32_t n)
{
	struct gport *g = &P.p[id];
	doca_error_t rc;
#if XF_DOCA_AT_LEAST(3, 1)
	struct doca_dev_rep *reps[XF_MAX_PORTS];
	uint32_t nreps = 0;
	for (uint32_t i = 0; i < n; i++)
		if (cfg[i].kind == XF_PORT_REP && cfg[i].parent == id)
			reps[nreps++] = P.p[cfg[i].id].rep;
	if (nreps)
		rc = doca_dpdk_port_probe_with_representors(g->dev, cfg_of(cfg, n, id)->devargs, reps, nreps);
	else
		rc = doca_dpdk_port_probe(g->dev, cfg_of(cfg, n, id)->devargs);
	if (rc != DOCA_SUCCESS)
		return glue_fail(rc, nreps ? "doca_dpdk_port_probe_with_representors" : "doca_dpdk_port_probe",
				 "port %u (%s) devargs '%s'", id, cfg_of(cfg, n, id)->addr, cfg_of(cfg, n, id)->devargs);
#else
	rc = doca_dpdk_port_probe(g->dev, cfg_of(cfg, n, id)->devargs);
	if (rc != DOCA_SUCCESS)
		return glue_fail(rc, "doca_dpdk_port_probe", "port %u (%s) devargs '%s'", id,
				 cfg_of(cfg, n, id)->addr, cfg_of(cfg, n, id)->devargs);
#endif
	g->probed = true;
	for (uint32_t pid = 0; pid < RTE_MAX_ETHPORTS; pid++) {
		struct doca_dev *d = NULL;
		if (doca_dpdk_port_as_dev((uint16_t)pid, &d) == DOCA_SUCCESS && d == g->dev) {
			g->dpdk_id = (uint16_t)pid;
			return DOCA_SUCCESS;
		}
	}
	return glue_fail(DOCA_ERROR_NOT_FOUND, "doca_dpdk_port_as_dev", "no DPDK port for port %u (%s) after probing",
			 id, cfg_of(cfg, n, id)->addr);
}

/* ------------------------------------------------------------------------------------ */
/* real DOCA: the devices' ethdevs (softdoca's probe does its own I/O set-up)            */

#ifndef SOFTDOCA_VERSION
static struct rte_mempool *xf_pool;

/* 3.0 and older, vnf mode: a forward between paired ports runs over DPDK hairpin queues (one
 * per port, queue 1, peered with the pair's queue 1), as the samples' dpdk_utils set them up. */
static bool uses_hairpin(const struct gport *g)
{
#if XF_DOCA_AT_LEAST(3, 1)
	(void)g;
	return false;
#else
	return !glue_switch_mode() && g->pair != XF_NO_PORT;
#endif
}

static doca_error_t ethdev_up(uint16_t id)
{
	struct gport *g = &P.p[id];
	uint16_t pid = g->dpdk_id;
	if (xf_pool == NULL) {
		xf_pool = rte_pktmbuf_pool_create("xf_mbufs", 8191, 250, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
						  (int)rte_socket_id());
		if (xf_pool == NULL)
			return glue_fail(DOCA_ERROR_NO_MEMORY, "rte_pktmbuf_pool_create", "%s", rte_strerror(rte_errno));
	}
	bool hp = uses_hairpin(g);
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	int r;
	if ((r = rte_eth_dev_configure(pid, hp ? 2 : 1, hp ? 2 : 1, &conf)) != 0)
		return glue_fail(DOCA_ERROR_DRIVER, "rte_eth_dev_configure", "DPDK port %u: %d", pid, r);
	if ((r = rte_eth_rx_queue_setup(pid, 0, 1024, rte_eth_dev_socket_id(pid), NULL, xf_pool)) != 0)
		return glue_fail(DOCA_ERROR_DRIVER, "rte_eth_rx_queue_setup", "DPDK port %u: %d", pid, r);
	if ((r = rte_eth_tx_queue_setup(pid, 0, 1024, rte_eth_dev_socket_id(pid), NULL)) != 0)
		return glue_fail(DOCA_ERROR_DRIVER, "rte_eth_tx_queue_setup", "DPDK port %u: %d", pid, r);
	if (hp) {
		struct rte_eth_hairpin_conf hc;
		memset(&hc, 0, sizeof(hc));
		hc.peer_count = 1;
		hc.manual_bind = 1;
		hc.tx_explicit = 1;
		hc.peers[0].port = P.p[g->pair].dpdk_id;
		hc.peers[0].queue = 1;
		if ((r = rte_eth_tx_hairpin_queue_setup(pid, 1, 2048, &hc)) != 0)
			return glue_fail(DOCA_ERROR_DRIVER, "rte_eth_tx_hairpin_queue_setup", "DPDK port %u: %d", pid, r);
		if ((r = rte_eth_rx_hairpin_queue_setup(pid, 1, 2048, &hc)) != 0)
			return glue_fail(DOCA_ERROR_DRIVER, "rte_eth_rx_hairpin_queue_setup", "DPDK port %u: %d", pid, r);
	}
	if ((r = rte_eth_dev_start(pid)) != 0)
		return glue_fail(DOCA_ERROR_DRIVER, "rte_eth_dev_start", "DPDK port %u: %d", pid, r);
	g->ethdev_up = true;
	return DOCA_SUCCESS;
}

static doca_error_t hairpin_bind_all(void)
{
	for (uint16_t id = 0; id < XF_MAX_PORTS; id++) {
		struct gport *g = &P.p[id];
		if (!g->used || !g->ethdev_up || !uses_hairpin(g))
			continue;
		int r = rte_eth_hairpin_bind(g->dpdk_id, P.p[g->pair].dpdk_id);
		if (r != 0)
			return glue_fail(DOCA_ERROR_DRIVER, "rte_eth_hairpin_bind", "DPDK port %u -> %u: %d", g->dpdk_id,
					 P.p[g->pair].dpdk_id, r);
	}
	return DOCA_SUCCESS;
}

static void ethdevs_down(void)
{
	for (uint16_t id = 0; id < XF_MAX_PORTS; id++) {
		struct gport *g = &P.p[id];
		if (g->used && g->ethdev_up && uses_hairpin(g))
			rte_eth_hairpin_unbind(g->dpdk_id, P.p[g->pair].dpdk_id);
	}
	for (uint16_t id = 0; id < XF_MAX_PORTS; id++) {
		struct gport *g = &P.p[id];
		if (g->used && g->ethdev_up) {
			rte_eth_dev_stop(g->dpdk_id);
			rte_eth_dev_close(g->dpdk_id);
			g->ethdev_up = false;
		}
	}
}

void glue_target_prepare(const struct xf_port_cfg *ports, uint32_t n)
{
	(void)ports;
	(void)n; /* the hardware's functions exist already */
}

void glue_target_forget(void)
{
}
#else
static void ethdevs_down(void)
{
}
#endif

/* ------------------------------------------------------------------------------------ */
/* bring-up                                                                              */

static doca_error_t validate(const struct xf_port_cfg *cfg, uint32_t n)
{
	if (n == 0 || n > XF_MAX_PORTS)
		return glue_fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "1 to %d ports, not %u", XF_MAX_PORTS, n);
	for (uint32_t i = 0; i < n; i++) {
		const struct xf_port_cfg *c = &cfg[i];
		if (c->id >= XF_MAX_PORTS || cfg_of(cfg, n, c->id) != c)
			return glue_fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "port id %u out of range or given twice", c->id);
		if (memchr(c->addr, '\0', sizeof(c->addr)) == NULL || c->addr[0] == '\0' ||
		    memchr(c->devargs, '\0', sizeof(c->devargs)) == NULL ||
		    memchr(c->target_args, '\0', sizeof(c->target_args)) == NULL)
			return glue_fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "port %u: empty address or unterminated string",
					 c->id);
		if (c->kind == XF_PORT_REP) {
			const struct xf_port_cfg *par = cfg_of(cfg, n, c->parent);
			if (par == NULL || par->kind != XF_PORT_DEV)
				return glue_fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue",
						 "port %u: a representor's parent must be a device port", c->id);
#if !XF_DOCA_AT_LEAST(3, 1)
			return glue_fail(DOCA_ERROR_NOT_SUPPORTED, "doca_flow_port_cfg_set_dev_rep",
					 "port %u is a representor; representor ports need DOCA 3.1 or later, this SDK is %s",
					 c->id, DOCA_VERSION_STRING);
#endif
		} else if (c->kind != XF_PORT_DEV) {
			return glue_fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "port %u: unknown kind %u", c->id, c->kind);
		}
		if ((c->action_entries & (c->action_entries - 1)) != 0 || c->action_entries > XF_ACTION_ENTRIES_MAX)
			return glue_fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue",
					 "port %u: action_entries %u is not 0 or a power of two up to %u", c->id,
					 c->action_entries, XF_ACTION_ENTRIES_MAX);
		if (c->pair != XF_NO_PORT) {
			if (glue_switch_mode())
				return glue_fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue",
						 "port %u: ports are paired in vnf mode only", c->id);
			if (c->pair == c->id || cfg_of(cfg, n, c->pair) == NULL)
				return glue_fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue", "port %u: bad pair %u", c->id, c->pair);
#if !XF_DOCA_AT_LEAST(3, 1)
			/* hairpin queues are symmetric: A's pair must pair back with A */
			if (cfg_of(cfg, n, c->pair)->pair != c->id)
				return glue_fail(DOCA_ERROR_INVALID_VALUE, "dpdk_glue",
						 "ports %u and %u: DOCA %s pairs ports through symmetric hairpin queues, "
						 "so a pair must forward both ways", c->id, c->pair, DOCA_VERSION_STRING);
#endif
		}
	}
	return DOCA_SUCCESS;
}

#if XF_DOCA_AT_LEAST(3, 0)
/* DOCA takes a power of two of bytes.  The samples round entries x 128 + 1 KiB up to one,
 * which doubles a power-of-two entry count; the caller's count is a power of two that
 * already holds a make-before-break change's second copy (intent/capacity.py), so it is
 * taken as it is: entries x DOCA_FLOW_MAX_ENTRY_ACTIONS_MEM_SIZE. */
static uint32_t actions_mem_size(uint32_t entries)
{
	uint64_t need = (uint64_t)(entries ? entries : XF_ACTION_ENTRIES) * DOCA_FLOW_MAX_ENTRY_ACTIONS_MEM_SIZE;
	uint64_t size = 64;
	while (size < need)
		size <<= 1;
	return (uint32_t)size;
}
#endif

static doca_error_t start_port(uint16_t id)
{
	struct gport *g = &P.p[id];
	struct doca_flow_port_cfg *pc = NULL;
	const char *call = "doca_flow_port_cfg_create";
	doca_error_t rc = doca_flow_port_cfg_create(&pc);
#if XF_DOCA_AT_LEAST(3, 0)
	g->doca_id = id;
	STEP("doca_flow_port_cfg_set_port_id", doca_flow_port_cfg_set_port_id(pc, id));
	/* DOCA's default actions memory is zero: no entry could rewrite a MAC.  Sized for the
	 * entries with actions the caller says this port's pipes may hold. */
	STEP("doca_flow_port_cfg_set_actions_mem_size",
	     doca_flow_port_cfg_set_actions_mem_size(pc, actions_mem_size(g->action_entries)));
#else
	/* 2.9: the DOCA port is named by its DPDK port id, given as the devargs string */
	char buf[16];
	g->doca_id = g->kind == XF_PORT_DEV ? g->dpdk_id : XF_NO_PORT;
	snprintf(buf, sizeof(buf), "%u", g->doca_id);
	STEP("doca_flow_port_cfg_set_devargs", doca_flow_port_cfg_set_devargs(pc, buf));
#endif
	if (g->kind == XF_PORT_DEV) {
		STEP("doca_flow_port_cfg_set_dev", doca_flow_port_cfg_set_dev(pc, g->dev));
	} else {
#if XF_DOCA_AT_LEAST(3, 1)
		STEP("doca_flow_port_cfg_set_dev_rep", doca_flow_port_cfg_set_dev_rep(pc, g->rep));
#endif
	}
	STEP("doca_flow_port_start", doca_flow_port_start(pc, &g->port));
	if (pc)
		doca_flow_port_cfg_destroy(pc);
	if (rc != DOCA_SUCCESS) {
		g->port = NULL;
		return glue_fail(rc, call, "port %u", id);
	}
	P.order[P.nstarted++] = id;
	return DOCA_SUCCESS;
}

static doca_error_t route_misses_to_kernel(void)
{
#if XF_DOCA_AT_LEAST(3, 3)
	for (uint16_t i = 0; i < P.nstarted; i++) {
		struct doca_flow_port *p = P.p[P.order[i]].port;
		/* switch mode: the switch manager's default miss covers its e-switch */
		if (glue_switch_mode() && doca_flow_port_switch_get(p) != p)
			continue;
		doca_error_t rc = doca_flow_port_update_default_miss(p, DOCA_FLOW_PORT_DEFAULT_MISS_KERNEL, false);
		if (rc != DOCA_SUCCESS)
			return glue_fail(rc, "doca_flow_port_update_default_miss", "port %u", P.order[i]);
	}
#endif
	return DOCA_SUCCESS;
}

static doca_error_t bring_up(const struct xf_port_cfg *cfg, uint32_t n)
{
	doca_error_t rc;
	for (uint32_t i = 0; i < n; i++) {
		struct gport *g = &P.p[cfg[i].id];
		*g = (struct gport){.used = true, .kind = cfg[i].kind, .parent = cfg[i].parent, .pair = cfg[i].pair,
				    .action_entries = cfg[i].action_entries, .doca_id = XF_NO_PORT, .dpdk_id = XF_NO_PORT};
	}
	for (uint32_t i = 0; i < n; i++)
		if (cfg[i].kind == XF_PORT_DEV && (rc = open_dev(cfg[i].addr, &P.p[cfg[i].id].dev)) != DOCA_SUCCESS)
			return rc;
#if XF_DOCA_AT_LEAST(3, 1)
	for (uint32_t i = 0; i < n; i++)
		if (cfg[i].kind == XF_PORT_REP &&
		    (rc = open_rep(P.p[cfg[i].parent].dev, cfg[i].addr, &P.p[cfg[i].id].rep)) != DOCA_SUCCESS)
			return rc;
#endif
	for (uint32_t i = 0; i < n; i++)
		if (cfg[i].kind == XF_PORT_DEV && (rc = probe_dev(cfg[i].id, cfg, n)) != DOCA_SUCCESS)
			return rc;
#ifndef SOFTDOCA_VERSION
	for (uint32_t i = 0; i < n; i++)
		if (cfg[i].kind == XF_PORT_DEV && (rc = ethdev_up(cfg[i].id)) != DOCA_SUCCESS)
			return rc;
	if ((rc = hairpin_bind_all()) != DOCA_SUCCESS)
		return rc;
#endif
	/* devices first: in switch mode the first device of an e-switch is its manager */
	for (int kind = XF_PORT_DEV; kind <= XF_PORT_REP; kind++)
		for (uint32_t i = 0; i < n; i++)
			if (cfg[i].kind == kind && (rc = start_port(cfg[i].id)) != DOCA_SUCCESS)
				return rc;
	for (uint16_t i = 0; i < P.nstarted; i++) {
		struct gport *g = &P.p[P.order[i]];
		if (g->pair == XF_NO_PORT)
			continue;
		rc = doca_flow_port_pair(g->port, P.p[g->pair].port);
		if (rc != DOCA_SUCCESS)
			return glue_fail(rc, "doca_flow_port_pair", "port %u -> %u", P.order[i], g->pair);
	}
	return route_misses_to_kernel();
}

int xf_ports_start(const struct xf_port_cfg *ports, uint32_t n)
{
	glue_lock();
	doca_error_t rc;
	if (!glue_is_open()) {
		rc = glue_fail(DOCA_ERROR_BAD_STATE, "dpdk_glue", "the eSwitch is not open");
		goto out;
	}
	if (P.brought_up) {
		rc = glue_fail(DOCA_ERROR_BAD_STATE, "dpdk_glue", "ports are brought up once per eSwitch");
		goto out;
	}
	if ((rc = validate(ports, n)) != DOCA_SUCCESS)
		goto out;
	P.brought_up = true;
	glue_target_prepare(ports, n);
	rc = bring_up(ports, n);
	if (rc != DOCA_SUCCESS) {
		/* all or nothing: keep the error of the failed step, undo the rest */
		char call[96], detail[256];
		snprintf(call, sizeof(call), "%s", xf_last_call());
		snprintf(detail, sizeof(detail), "%s", xf_last_detail());
		glue_ports_stop();
		ethdevs_down();
		glue_functions_close();
		glue_fail(rc, call, "%s", detail);
	}
out:
	glue_unlock();
	return rc;
}

/* ------------------------------------------------------------------------------------ */
/* teardown                                                                              */

doca_error_t glue_ports_stop(void)
{
	doca_error_t first = DOCA_SUCCESS;
	for (int i = P.nstarted - 1; i >= 0; i--)
		doca_flow_port_pipes_flush(P.p[P.order[i]].port);
	for (int i = P.nstarted - 1; i >= 0; i--) {
		uint16_t id = P.order[i];
		doca_error_t r = doca_flow_port_stop(P.p[id].port);
		if (r != DOCA_SUCCESS && first == DOCA_SUCCESS)
			first = glue_fail(r, "doca_flow_port_stop", "port %u", id);
		P.p[id].port = NULL;
	}
	P.nstarted = 0;
	return first;
}

void glue_ethdevs_close(void)
{
	ethdevs_down();
}

void glue_functions_close(void)
{
	for (uint16_t id = 0; id < XF_MAX_PORTS; id++)
		if (P.p[id].used && P.p[id].rep) {
			doca_dev_rep_close(P.p[id].rep);
			P.p[id].rep = NULL;
		}
	for (uint16_t id = 0; id < XF_MAX_PORTS; id++)
		if (P.p[id].used && P.p[id].dev) {
			doca_dev_close(P.p[id].dev);
			P.p[id].dev = NULL;
		}
	glue_target_forget();
	memset(&P, 0, sizeof(P));
}
