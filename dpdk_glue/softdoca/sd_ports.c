/*
 * softdoca ports: doca_flow_port_cfg, devargs, the wire and representor DPDK vdevs
 * (net_af_packet / net_af_xdp, or none), port start/stop, pipes flush, port statistics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_bus_vdev.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "sd_internal.h"

#define SD_RX_DESC 512
#define SD_TX_DESC 512
/* af_packet ring frames per direction (4 MiB each at 2 KiB frames). 512 (2.5 ms at 200 kpps)
 * lost 0.06-0.7 % at 100-200 kpps whenever the forwarder lost its vCPU for a moment on a
 * 2-vCPU VM; 2048 lost nothing at up to 200 kpps in 3 of 3 repetitions (same run, 22-B UDP) */
#define SD_AFP_FRAMES 2048
#define SD_NB_MBUFS 4095          /* per af_packet port (2 vdevs x 512 rx descriptors + in flight) */
#define SD_NB_MBUFS_XDP (2 * 4096 + 2047) /* af_xdp takes 4096 mbufs per rx queue for its UMEM */
#define SD_MBUF_CACHE 256

struct doca_flow_port_cfg {
	int port_id; /* -1: take it from devargs */
	char devargs[256];
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
#endif

/* devargs: "port_id=N,iface=<wire>,rep=<representor>,driver=af_packet|af_xdp|none"; a
 * bare number is the DOCA 2.x convention "port id in devargs". */
struct sd_devargs {
	int port_id;
	char iface[32], rep[32], driver[16];
};

static doca_error_t parse_devargs(const char *s, struct sd_devargs *d)
{
	memset(d, 0, sizeof(*d));
	d->port_id = -1;
	snprintf(d->driver, sizeof(d->driver), "none");
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", s);
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		if (eq == NULL) {
			char *end;
			long v = strtol(t, &end, 10);
			if (*end || v < 0 || v >= SD_MAX_PORTS)
				return DOCA_ERROR_INVALID_VALUE;
			d->port_id = (int)v;
			continue;
		}
		*eq = '\0';
		const char *v = eq + 1;
		if (strcmp(t, "port_id") == 0) {
			char *end;
			long n = strtol(v, &end, 10);
			if (*end || n < 0 || n >= SD_MAX_PORTS)
				return DOCA_ERROR_INVALID_VALUE;
			d->port_id = (int)n;
		} else if (strcmp(t, "iface") == 0 && strlen(v) < sizeof(d->iface)) {
			snprintf(d->iface, sizeof(d->iface), "%s", v);
		} else if (strcmp(t, "rep") == 0 && strlen(v) < sizeof(d->rep)) {
			snprintf(d->rep, sizeof(d->rep), "%s", v);
		} else if (strcmp(t, "driver") == 0 &&
			   (strcmp(v, "af_packet") == 0 || strcmp(v, "af_xdp") == 0 || strcmp(v, "none") == 0)) {
			snprintf(d->driver, sizeof(d->driver), "%s", v);
		} else {
			return DOCA_ERROR_INVALID_VALUE;
		}
	}
	if (strcmp(d->driver, "none") != 0 && (d->iface[0] == '\0' || d->rep[0] == '\0'))
		return DOCA_ERROR_INVALID_VALUE;
	return DOCA_SUCCESS;
}

static doca_error_t open_vdev(const char *driver, const char *iface, uint16_t id, char role, char *name,
			      size_t name_len, uint16_t *eth, struct rte_mempool *pool)
{
	char args[160];
	if (strcmp(driver, "af_xdp") == 0) {
		snprintf(name, name_len, "net_af_xdp_sd%u%c", id, role);
		snprintf(args, sizeof(args), "iface=%s,start_queue=0,queue_count=1", iface);
	} else {
		snprintf(name, name_len, "net_af_packet_sd%u%c", id, role);
		/* qdisc_bypass=0: let frames go through the veth's qdisc like any sender */
		snprintf(args, sizeof(args), "iface=%s,qpairs=1,blocksz=4096,framesz=2048,framecnt=%d,qdisc_bypass=0",
			 iface, SD_AFP_FRAMES);
	}
	if (rte_vdev_init(name, args) != 0) {
		name[0] = '\0';
		return DOCA_ERROR_DRIVER;
	}
	if (rte_eth_dev_get_port_by_name(name, eth) != 0)
		return DOCA_ERROR_DRIVER;
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	int sock = rte_eth_dev_socket_id(*eth);
	if (rte_eth_dev_configure(*eth, 1, 1, &conf) != 0 ||
	    rte_eth_rx_queue_setup(*eth, 0, SD_RX_DESC, sock < 0 ? 0 : (unsigned)sock, NULL, pool) != 0 ||
	    rte_eth_tx_queue_setup(*eth, 0, SD_TX_DESC, sock < 0 ? 0 : (unsigned)sock, NULL) != 0 ||
	    rte_eth_dev_start(*eth) != 0)
		return DOCA_ERROR_DRIVER;
	rte_eth_promiscuous_enable(*eth); /* frames to the VIP MAC and backend MACs alike */
	return DOCA_SUCCESS;
}

static void close_vdev(char *name, uint16_t eth)
{
	if (name[0] == '\0')
		return;
	rte_eth_dev_stop(eth);
	rte_eth_dev_close(eth);
	rte_vdev_uninit(name);
	name[0] = '\0';
}

doca_error_t doca_flow_port_start(const struct doca_flow_port_cfg *cfg, struct doca_flow_port **port)
{
	if (!sd_g.inited)
		return DOCA_ERROR_BAD_STATE;
	if (cfg == NULL || port == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	struct sd_devargs d;
	doca_error_t rc = parse_devargs(cfg->devargs, &d);
	if (rc != DOCA_SUCCESS)
		return rc;
	int id = cfg->port_id >= 0 ? cfg->port_id : d.port_id;
	if (id < 0 || id >= SD_MAX_PORTS)
		return DOCA_ERROR_INVALID_VALUE;
	if (sd_g.ports[id] != NULL)
		return DOCA_ERROR_ALREADY_EXIST;
	struct doca_flow_port *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return DOCA_ERROR_NO_MEMORY;
	p->id = (uint16_t)id;
	if (strcmp(d.driver, "none") != 0) {
		char pname[32];
		snprintf(pname, sizeof(pname), "softdoca_mbufs_%u", p->id);
		bool xdp = strcmp(d.driver, "af_xdp") == 0;
		p->pool = rte_pktmbuf_pool_create(pname, xdp ? SD_NB_MBUFS_XDP : SD_NB_MBUFS, SD_MBUF_CACHE, 0,
						  RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
		if (p->pool == NULL) {
			free(p);
			return DOCA_ERROR_NO_MEMORY;
		}
		rc = open_vdev(d.driver, d.iface, p->id, 'w', p->wire_vdev, sizeof(p->wire_vdev), &p->wire_eth, p->pool);
		if (rc == DOCA_SUCCESS)
			rc = open_vdev(d.driver, d.rep, p->id, 'r', p->rep_vdev, sizeof(p->rep_vdev), &p->rep_eth,
				       p->pool);
		if (rc != DOCA_SUCCESS) {
			close_vdev(p->rep_vdev, p->rep_eth);
			close_vdev(p->wire_vdev, p->wire_eth);
			rte_mempool_free(p->pool);
			free(p);
			return rc;
		}
		p->has_io = true;
	}
	if (sd_g.switch_mode && sd_g.switch_port == NULL) {
		p->is_switch_manager = true; /* the first port started is the switch manager */
		sd_g.switch_port = p;
	}
	sd_g.ports[id] = p;
	atomic_store(&p->active, 1);
	if (p->has_io) {
		rc = sd_fwd_start();
		if (rc != DOCA_SUCCESS) {
			doca_flow_port_stop(p);
			return rc;
		}
	}
	*port = p;
	return DOCA_SUCCESS;
}

struct doca_flow_port *doca_flow_port_switch_get(const struct doca_flow_port *port)
{
	(void)port;
	return sd_g.switch_mode ? sd_g.switch_port : NULL;
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
	if (port == NULL || sd_g.ports[port->id] != port)
		return DOCA_ERROR_INVALID_VALUE;
	if (port->is_switch_manager) {
		for (int i = 0; i < SD_MAX_PORTS; i++)
			if (sd_g.ports[i] && sd_g.ports[i] != port)
				return DOCA_ERROR_IN_USE; /* the switch manager stops last */
	}
	doca_flow_port_pipes_flush(port);
	atomic_store(&port->active, 0);
	sd_synchronize(); /* the forwarder no longer polls it or sends to it */
	bool any_io = false;
	for (int i = 0; i < SD_MAX_PORTS; i++)
		if (sd_g.ports[i] && sd_g.ports[i] != port && sd_g.ports[i]->has_io)
			any_io = true;
	if (!any_io)
		sd_fwd_stop();
	close_vdev(port->rep_vdev, port->rep_eth);
	close_vdev(port->wire_vdev, port->wire_eth);
	/* af_packet and af_xdp (copy mode) copy a frame on tx and free its mbuf at once, so no
	 * other port holds mbufs of this pool once this port's queues are closed */
	if (port->pool)
		rte_mempool_free(port->pool);
	for (int q = 0; q < SD_MAX_QUEUES; q++)
		free(port->q[q].ops);
	sd_g.ports[port->id] = NULL;
	if (sd_g.switch_port == port)
		sd_g.switch_port = NULL;
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
