/*
 * softdoca devices: the registry of PCI functions the model offers (softdoca_dev_register),
 * DOCA's doca_dev.h (list, compare by PCI address, open/close devices and representors) and
 * doca_dpdk.h (probe a device, with its representors from 3.1 on, into DPDK; map a DPDK port
 * back to its device).  Probing is where a function's packet I/O starts: its wire and
 * representor ifaces are opened as DPDK vdevs here and closed when the function is closed
 * (last doca_dev_close / doca_dev_rep_close) or unregistered.  Flow ports borrow them.
 *
 * DPDK port ids: a function with I/O is its wire vdev's ethdev id (a real DPDK port); a
 * function with driver none gets the highest ethdev id that is neither a real ethdev nor
 * another function's (RTE_MAX_ETHPORTS-1 downwards), so it never collides with the vdevs
 * DPDK allocates from 0 upwards.
 */
#include <ctype.h>
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
#define SD_NB_MBUFS 4095          /* per af_packet function (2 vdevs x 512 rx descriptors + in flight) */
#define SD_NB_MBUFS_XDP (2 * 4096 + 2047) /* af_xdp takes 4096 mbufs per rx queue for its UMEM */
#define SD_MBUF_CACHE 256

struct sd_fn sd_fns[SD_MAX_FNS];

static struct sd_fn *fn_by_addr(const char *addr)
{
	for (int i = 0; i < SD_MAX_FNS; i++)
		if (sd_fns[i].used && strcmp(sd_fns[i].addr, addr) == 0)
			return &sd_fns[i];
	return NULL;
}

static bool fn_valid(const struct sd_fn *f)
{
	return f != NULL && f >= sd_fns && f < sd_fns + SD_MAX_FNS && f->used;
}

/* ------------------------------------------------------------------------------------ */
/* registry (softdoca.h)                                                                 */

doca_error_t softdoca_dev_register(const char *addr, const char *parent, int esw, const char *iface,
				   const char *rep_iface, const char *driver)
{
	if (addr == NULL || addr[0] == '\0' || strlen(addr) >= sizeof(sd_fns[0].addr) || driver == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	bool none = strcmp(driver, "none") == 0;
	if (!none && strcmp(driver, "af_packet") != 0 && strcmp(driver, "af_xdp") != 0)
		return DOCA_ERROR_INVALID_VALUE;
	if (!none && (iface == NULL || rep_iface == NULL || iface[0] == '\0' || rep_iface[0] == '\0'))
		return DOCA_ERROR_INVALID_VALUE;
	if ((iface && strlen(iface) >= sizeof(sd_fns[0].iface)) ||
	    (rep_iface && strlen(rep_iface) >= sizeof(sd_fns[0].rep_iface)))
		return DOCA_ERROR_INVALID_VALUE;
	if (fn_by_addr(addr) != NULL)
		return DOCA_ERROR_ALREADY_EXIST;
	struct sd_fn *par = NULL;
	if (parent != NULL) {
		par = fn_by_addr(parent);
		if (par == NULL)
			return DOCA_ERROR_NOT_FOUND;
		if (par->parent >= 0)
			return DOCA_ERROR_INVALID_VALUE; /* a representor has no representors */
	}
	struct sd_fn *f = NULL;
	for (int i = 0; i < SD_MAX_FNS && f == NULL; i++)
		if (!sd_fns[i].used)
			f = &sd_fns[i];
	if (f == NULL)
		return DOCA_ERROR_FULL;
	memset(f, 0, sizeof(*f));
	f->used = true;
	f->idx = (uint8_t)(f - sd_fns);
	snprintf(f->addr, sizeof(f->addr), "%s", addr);
	f->parent = par ? par->idx : -1;
	/* e-switch ids: registered numbers as given; "its own" above any a caller would pick */
	f->esw = par ? par->esw : (esw >= 0 ? esw : 1000000 + f->idx);
	snprintf(f->iface, sizeof(f->iface), "%s", iface ? iface : "");
	snprintf(f->rep_iface, sizeof(f->rep_iface), "%s", rep_iface ? rep_iface : "");
	snprintf(f->driver, sizeof(f->driver), "%s", driver);
	f->info.fn = f->info_rep.fn = f->dev.fn = f->dev_rep.fn = f;
	return DOCA_SUCCESS;
}

doca_error_t softdoca_dev_unregister_all(void)
{
	for (int i = 0; i < SD_MAX_FNS; i++)
		if (sd_fns[i].used && sd_fns[i].port != NULL)
			return DOCA_ERROR_IN_USE; /* a flow port still runs on it: stop it first */
	for (int i = 0; i < SD_MAX_FNS; i++)
		if (sd_fns[i].used)
			sd_fn_unprobe(&sd_fns[i]); /* closes what the caller left open */
	memset(sd_fns, 0, sizeof(sd_fns));
	return DOCA_SUCCESS;
}

/* ------------------------------------------------------------------------------------ */
/* doca_dev.h                                                                            */

static doca_error_t make_list(bool reps, int parent, void ***list, uint32_t *n)
{
	if (list == NULL || n == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	uint32_t cnt = 0;
	void **l = calloc(SD_MAX_FNS + 1, sizeof(*l)); /* NULL-terminated */
	if (l == NULL)
		return DOCA_ERROR_NO_MEMORY;
	for (int i = 0; i < SD_MAX_FNS; i++) {
		struct sd_fn *f = &sd_fns[i];
		if (!f->used || (reps ? f->parent != parent : f->parent >= 0))
			continue;
		l[cnt++] = reps ? (void *)&f->info_rep : (void *)&f->info;
	}
	*list = l;
	*n = cnt;
	return DOCA_SUCCESS;
}

doca_error_t doca_devinfo_create_list(struct doca_devinfo ***dev_list, uint32_t *nb_devs)
{
	return make_list(false, -1, (void ***)dev_list, nb_devs);
}

doca_error_t doca_devinfo_destroy_list(struct doca_devinfo **dev_list)
{
	if (dev_list == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	free(dev_list);
	return DOCA_SUCCESS;
}

doca_error_t doca_devinfo_is_equal_pci_addr(const struct doca_devinfo *devinfo, const char *pci_addr,
					    uint8_t *is_equal)
{
	if (devinfo == NULL || pci_addr == NULL || is_equal == NULL || !fn_valid(devinfo->fn))
		return DOCA_ERROR_INVALID_VALUE;
	*is_equal = strcmp(devinfo->fn->addr, pci_addr) == 0;
	return DOCA_SUCCESS;
}

doca_error_t doca_devinfo_get_iface_name(const struct doca_devinfo *devinfo, char *iface_name, uint32_t size)
{
	if (devinfo == NULL || iface_name == NULL || !fn_valid(devinfo->fn))
		return DOCA_ERROR_INVALID_VALUE;
	const char *name = devinfo->fn->iface[0] ? devinfo->fn->iface : devinfo->fn->addr;
	if (strlen(name) >= size)
		return DOCA_ERROR_INVALID_VALUE;
	snprintf(iface_name, size, "%s", name);
	return DOCA_SUCCESS;
}

doca_error_t doca_dev_open(struct doca_devinfo *devinfo, struct doca_dev **dev)
{
	if (devinfo == NULL || dev == NULL || !fn_valid(devinfo->fn) || devinfo->fn->parent >= 0)
		return DOCA_ERROR_INVALID_VALUE;
	devinfo->fn->opens++; /* opening twice: the same device, one more reference */
	*dev = &devinfo->fn->dev;
	return DOCA_SUCCESS;
}

static doca_error_t fn_close(struct sd_fn *f)
{
	if (f->opens == 0)
		return DOCA_ERROR_BAD_STATE;
	if (f->opens == 1) {
		if (f->port != NULL)
			return DOCA_ERROR_IN_USE; /* its flow port must be stopped first */
		if (f->parent < 0)
			for (int i = 0; i < SD_MAX_FNS; i++)
				if (sd_fns[i].used && sd_fns[i].parent == f->idx && sd_fns[i].port != NULL)
					return DOCA_ERROR_IN_USE; /* a representor's port runs on it */
		sd_fn_unprobe(f);
		if (f->parent < 0) /* its representors were DPDK ports through it */
			for (int i = 0; i < SD_MAX_FNS; i++)
				if (sd_fns[i].used && sd_fns[i].parent == f->idx)
					sd_fn_unprobe(&sd_fns[i]);
	}
	f->opens--;
	return DOCA_SUCCESS;
}

doca_error_t doca_dev_close(struct doca_dev *dev)
{
	if (dev == NULL || !fn_valid(dev->fn) || dev->fn->parent >= 0)
		return DOCA_ERROR_INVALID_VALUE;
	return fn_close(dev->fn);
}

struct doca_devinfo *doca_dev_as_devinfo(const struct doca_dev *dev)
{
	return dev && fn_valid(dev->fn) ? &dev->fn->info : NULL;
}

doca_error_t doca_devinfo_rep_create_list(struct doca_dev *dev, int filter, struct doca_devinfo_rep ***dev_list_rep,
					  uint32_t *nb_devs_rep)
{
	if (dev == NULL || !fn_valid(dev->fn) || dev->fn->parent >= 0)
		return DOCA_ERROR_INVALID_VALUE;
	if (dev->fn->opens == 0)
		return DOCA_ERROR_BAD_STATE;
	if (filter != DOCA_DEVINFO_REP_FILTER_ALL && filter != DOCA_DEVINFO_REP_FILTER_NET)
		return DOCA_ERROR_NOT_SUPPORTED; /* every representor here is a net representor */
	return make_list(true, dev->fn->idx, (void ***)dev_list_rep, nb_devs_rep);
}

doca_error_t doca_devinfo_rep_destroy_list(struct doca_devinfo_rep **dev_list_rep)
{
	if (dev_list_rep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	free(dev_list_rep);
	return DOCA_SUCCESS;
}

doca_error_t doca_devinfo_rep_is_equal_pci_addr(const struct doca_devinfo_rep *devinfo_rep, const char *pci_addr_str,
						uint8_t *is_equal)
{
	if (devinfo_rep == NULL || pci_addr_str == NULL || is_equal == NULL || !fn_valid(devinfo_rep->fn))
		return DOCA_ERROR_INVALID_VALUE;
	*is_equal = strcmp(devinfo_rep->fn->addr, pci_addr_str) == 0;
	return DOCA_SUCCESS;
}

doca_error_t doca_dev_rep_open(struct doca_devinfo_rep *devinfo, struct doca_dev_rep **dev_rep)
{
	if (devinfo == NULL || dev_rep == NULL || !fn_valid(devinfo->fn) || devinfo->fn->parent < 0)
		return DOCA_ERROR_INVALID_VALUE;
	devinfo->fn->opens++;
	*dev_rep = &devinfo->fn->dev_rep;
	return DOCA_SUCCESS;
}

doca_error_t doca_dev_rep_close(struct doca_dev_rep *dev)
{
	if (dev == NULL || !fn_valid(dev->fn) || dev->fn->parent < 0)
		return DOCA_ERROR_INVALID_VALUE;
	return fn_close(dev->fn);
}

/* ------------------------------------------------------------------------------------ */
/* packet I/O of a probed function                                                      */

static doca_error_t open_vdev(const char *driver, const char *iface, uint8_t fidx, char role, char *name,
			      size_t name_len, uint16_t *eth, struct rte_mempool *pool)
{
	char args[160];
	if (strcmp(driver, "af_xdp") == 0) {
		snprintf(name, name_len, "net_af_xdp_sd%u%c", fidx, role);
		snprintf(args, sizeof(args), "iface=%s,start_queue=0,queue_count=1", iface);
	} else {
		snprintf(name, name_len, "net_af_packet_sd%u%c", fidx, role);
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

void sd_fn_unprobe(struct sd_fn *f)
{
	if (!f->probed)
		return;
	close_vdev(f->rep_vdev, f->rep_eth);
	close_vdev(f->wire_vdev, f->wire_eth);
	/* af_packet and af_xdp (copy mode) copy a frame on tx and free its mbuf at once, so no
	 * other function holds mbufs of this pool once this function's queues are closed */
	if (f->pool)
		rte_mempool_free(f->pool);
	f->pool = NULL;
	f->has_io = false;
	f->probed = false;
}

static bool dpdk_port_taken(const struct sd_fn *self, uint16_t id)
{
	for (int i = 0; i < SD_MAX_FNS; i++)
		if (&sd_fns[i] != self && sd_fns[i].used && sd_fns[i].probed && sd_fns[i].dpdk_port == id)
			return true;
	return false;
}

static doca_error_t fn_probe(struct sd_fn *f)
{
	if (strcmp(f->driver, "none") == 0) {
		for (int id = RTE_MAX_ETHPORTS - 1; id >= 0; id--)
			if (!rte_eth_dev_is_valid_port((uint16_t)id) && !dpdk_port_taken(f, (uint16_t)id)) {
				f->dpdk_port = (uint16_t)id;
				f->probed = true;
				return DOCA_SUCCESS;
			}
		return DOCA_ERROR_FULL;
	}
	char pname[32];
	snprintf(pname, sizeof(pname), "softdoca_mbufs_%u", f->idx);
	bool xdp = strcmp(f->driver, "af_xdp") == 0;
	f->pool = rte_pktmbuf_pool_create(pname, xdp ? SD_NB_MBUFS_XDP : SD_NB_MBUFS, SD_MBUF_CACHE, 0,
					  RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	if (f->pool == NULL)
		return DOCA_ERROR_NO_MEMORY;
	f->probed = true; /* so that sd_fn_unprobe cleans up a half-done probe */
	doca_error_t rc =
		open_vdev(f->driver, f->iface, f->idx, 'w', f->wire_vdev, sizeof(f->wire_vdev), &f->wire_eth, f->pool);
	if (rc == DOCA_SUCCESS)
		rc = open_vdev(f->driver, f->rep_iface, f->idx, 'r', f->rep_vdev, sizeof(f->rep_vdev), &f->rep_eth,
			       f->pool);
	if (rc == DOCA_SUCCESS && dpdk_port_taken(f, f->wire_eth))
		rc = DOCA_ERROR_IN_USE; /* cannot happen with the id scheme above; never alias two */
	if (rc != DOCA_SUCCESS) {
		sd_fn_unprobe(f);
		return rc;
	}
	f->dpdk_port = f->wire_eth;
	f->has_io = true;
	return DOCA_SUCCESS;
}

/* doca_dpdk.h: "devargs must not contain the device's PCI address" -- refuse anything that
 * looks like one (a bus:device.function, with or without the domain). */
static bool has_pci_address(const char *s)
{
	for (const char *p = s; *p; p++) {
		if (!(isxdigit((unsigned char)p[0]) && isxdigit((unsigned char)p[1]) && p[2] == ':' &&
		      isxdigit((unsigned char)p[3]) && isxdigit((unsigned char)p[4]) && p[5] == '.' &&
		      p[6] >= '0' && p[6] <= '7'))
			continue;
		return true;
	}
	return false;
}

static doca_error_t probe_check_dev(struct doca_dev *dev, const char *devargs)
{
	if (dev == NULL || !fn_valid(dev->fn) || dev->fn->parent >= 0 || devargs == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (dev->fn->opens == 0)
		return DOCA_ERROR_BAD_STATE;
	if (has_pci_address(devargs))
		return DOCA_ERROR_INVALID_VALUE;
	if (dev->fn->probed)
		return DOCA_ERROR_ALREADY_EXIST;
	return DOCA_SUCCESS;
}

doca_error_t doca_dpdk_port_probe(struct doca_dev *dev, const char *devargs)
{
	doca_error_t rc = probe_check_dev(dev, devargs);
	if (rc != DOCA_SUCCESS)
		return rc;
	return fn_probe(dev->fn);
}

#if SOFTDOCA_API >= 301
doca_error_t doca_dpdk_port_probe_with_representors(struct doca_dev *dev, const char *devargs,
						    struct doca_dev_rep **dev_reps, uint32_t nb_reps)
{
	doca_error_t rc = probe_check_dev(dev, devargs);
	if (rc != DOCA_SUCCESS)
		return rc;
	if (nb_reps > 0 && dev_reps == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	for (uint32_t i = 0; i < nb_reps; i++) {
		struct doca_dev_rep *r = dev_reps[i];
		if (r == NULL || !fn_valid(r->fn) || r->fn->parent != dev->fn->idx)
			return DOCA_ERROR_INVALID_VALUE; /* not a representor of this device */
		if (r->fn->opens == 0)
			return DOCA_ERROR_BAD_STATE;
		if (r->fn->probed)
			return DOCA_ERROR_ALREADY_EXIST;
		for (uint32_t j = 0; j < i; j++)
			if (dev_reps[j] == r)
				return DOCA_ERROR_INVALID_VALUE;
	}
	rc = fn_probe(dev->fn);
	for (uint32_t i = 0; i < nb_reps && rc == DOCA_SUCCESS; i++)
		rc = fn_probe(dev_reps[i]->fn);
	if (rc != DOCA_SUCCESS) { /* all or nothing */
		sd_fn_unprobe(dev->fn);
		for (uint32_t i = 0; i < nb_reps; i++)
			sd_fn_unprobe(dev_reps[i]->fn);
	}
	return rc;
}
#endif

doca_error_t doca_dpdk_port_as_dev(uint16_t port_id, struct doca_dev **dev)
{
	if (dev == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	for (int i = 0; i < SD_MAX_FNS; i++) {
		struct sd_fn *f = &sd_fns[i];
		if (f->used && f->probed && f->parent < 0 && f->dpdk_port == port_id) {
			*dev = &f->dev;
			return DOCA_SUCCESS;
		}
	}
	return DOCA_ERROR_NOT_FOUND;
}
