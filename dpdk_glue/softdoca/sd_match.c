/*
 * softdoca: DOCA match / forward structures -> the model's lookup keys (struct sd_key) and
 * forwards, with DOCA's validations (fields it does not model are refused, not ignored).
 */
#include <string.h>

#include "sd_internal.h"

bool sd_mem_is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static uint16_t match_port(const struct doca_flow_match *m)
{
#if SOFTDOCA_API >= 300
	return m->parser_meta.port_id;
#else
	return (uint16_t)m->parser_meta.port_meta;
#endif
}

static bool ip6_is_zero(const doca_be32_t *a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

/*
 * Fields softdoca models: the meter colour, outer eth type, IPv4 src/dst/proto, IPv6 src/dst/next header, UDP/TCP
 * ports, ingress port.  Anything else set in a match or mask is refused (NOT_SUPPORTED)
 * instead of ignored.  k->l3 receives the family the l3_type selector states (4, 6; 0 none);
 * sd_mask_finish turns it into the validity bits.
 */
doca_error_t sd_match_to_key(const struct doca_flow_match *m, struct sd_key *k)
{
	memset(k, 0, sizeof(*k));
	if (m == NULL)
		return DOCA_SUCCESS;
	const struct doca_flow_header_format *o = &m->outer;
	if (!sd_mem_is_zero(o->eth.src_mac, 6) || !sd_mem_is_zero(o->eth.dst_mac, 6) || o->l2_valid_headers ||
	    o->eth_vlan[0].tci || o->eth_vlan[1].tci || !sd_mem_is_zero(&m->meta, sizeof(m->meta)) ||
	    m->parser_meta.outer_l3_type || m->parser_meta.outer_l4_type)
		return DOCA_ERROR_NOT_SUPPORTED;
	if ((unsigned)m->parser_meta.meter_color > 0xff)
		return DOCA_ERROR_NOT_SUPPORTED;
	k->color = (uint8_t)m->parser_meta.meter_color; /* a value, or its mask (the samples: 3) */
	k->eth_type = o->eth.type;
	k->port_id = match_port(m);
	if (o->l3_type == DOCA_FLOW_L3_TYPE_IP6) {
		const struct doca_flow_header_ip6 *ip = &o->ip6;
		if (ip->traffic_class || ip->flow_label || ip->payload_len || ip->hop_limit)
			return DOCA_ERROR_NOT_SUPPORTED;
		memcpy(k->ip6_src, ip->src_ip, sizeof(k->ip6_src));
		memcpy(k->ip6_dst, ip->dst_ip, sizeof(k->ip6_dst));
		k->ip_proto = ip->next_proto;
		k->l3 = 6;
	} else if (o->l3_type == DOCA_FLOW_L3_TYPE_IP4) {
		const struct doca_flow_header_ip4 *ip = &o->ip4;
		if (ip->version_ihl || ip->dscp_ecn || ip->total_len || ip->identification ||
		    ip->flags_fragment_offset || ip->ttl)
			return DOCA_ERROR_NOT_SUPPORTED;
		k->ip_src = ip->src_ip;
		k->ip_dst = ip->dst_ip;
		k->ip_proto = ip->next_proto;
		k->l3 = 4;
	}
	switch (o->l4_type_ext) {
	case DOCA_FLOW_L4_TYPE_EXT_NONE:
		break;
	case DOCA_FLOW_L4_TYPE_EXT_UDP:
	case DOCA_FLOW_L4_TYPE_EXT_TCP:
	case DOCA_FLOW_L4_TYPE_EXT_TRANSPORT:
		/* udp/tcp/transport all start with the same two ports */
		k->l4_src = o->transport.src_port;
		k->l4_dst = o->transport.dst_port;
		break;
	default:
		return DOCA_ERROR_NOT_SUPPORTED;
	}
	return DOCA_SUCCESS;
}

/*
 * Add the validity bits a mask implies (see struct sd_key).  mask->l3 and val->l3 come in
 * as the families their l3_type selectors state.  The mask requires an L3 header when it
 * states a family or touches an address, ip_proto or a port; the family is the stated one,
 * IPv4 when none is (ports alone have always meant IPv4).  *fam: the family required (0:
 * none).  A value and a mask stating different families: INVALID_VALUE.
 */
doca_error_t sd_mask_finish(struct sd_key *mask, struct sd_key *val, uint8_t *fam)
{
	*fam = 0;
	if (mask->l3 && val->l3 && mask->l3 != val->l3)
		return DOCA_ERROR_INVALID_VALUE;
	bool ports = mask->l4_src || mask->l4_dst;
	bool need = mask->l3 || ports || mask->ip_src || mask->ip_dst || mask->ip_proto ||
		    !ip6_is_zero(mask->ip6_src) || !ip6_is_zero(mask->ip6_dst);
	if (need)
		*fam = mask->l3 ? mask->l3 : val->l3 ? val->l3 : 4;
	mask->l3 = need ? 0xff : 0;
	val->l3 = *fam;
	mask->l4_ok = ports ? 0xff : 0;
	val->l4_ok = ports ? 1 : 0;
	return DOCA_SUCCESS;
}

/* A field's value must lie within its mask (DOCA rejects such entries; we do too). */
bool sd_key_within(const struct sd_key *val, const struct sd_key *mask)
{
	for (int i = 0; i < SD_KEY_WORDS; i++)
		if (val->w[i] & ~mask->w[i])
			return false;
	return true;
}

/* Mask derived from a match when no explicit mask is given: every non-zero field, fully (an
 * IPv6 address as a whole); the stated family is kept for sd_mask_finish. */
void sd_key_full_mask(const struct sd_key *m, struct sd_key *mask)
{
	memset(mask, 0, sizeof(*mask));
	mask->ip_src = m->ip_src ? 0xffffffffu : 0;
	mask->ip_dst = m->ip_dst ? 0xffffffffu : 0;
	memset(mask->ip6_src, ip6_is_zero(m->ip6_src) ? 0 : 0xff, sizeof(mask->ip6_src));
	memset(mask->ip6_dst, ip6_is_zero(m->ip6_dst) ? 0 : 0xff, sizeof(mask->ip6_dst));
	mask->l4_src = m->l4_src ? 0xffff : 0;
	mask->l4_dst = m->l4_dst ? 0xffff : 0;
	mask->eth_type = m->eth_type ? 0xffff : 0;
	mask->port_id = m->port_id ? 0xffff : 0;
	mask->ip_proto = m->ip_proto ? 0xff : 0;
	mask->l3 = m->l3;
}

/* The key words a (finished) mask touches: the three IPv4 ones, and the IPv6 address words
 * up to the last one it matches. */
unsigned sd_key_words(const struct sd_key *mask)
{
	unsigned nw = SD_KEY_WORDS;
	while (nw > SD_KEY_V4_WORDS && mask->w[nw - 1] == 0)
		nw--;
	return nw;
}

uint64_t sd_mac_word(const uint8_t *mac)
{
	uint64_t w = 0;
	for (int i = 0; i < 6; i++)
		w |= (uint64_t)mac[i] << (8 * i);
	return w | SD_MAC_SET;
}

bool sd_mac_all_ones(const uint8_t *mac)
{
	for (int i = 0; i < 6; i++)
		if (mac[i] != 0xff)
			return false;
	return true;
}

doca_error_t sd_fwd_convert(const struct doca_flow_fwd *f, struct doca_flow_port *owner, struct sd_fwd *out,
				bool allow_none)
{
	memset(out, 0, sizeof(*out));
	if (f == NULL || f->type == DOCA_FLOW_FWD_NONE) {
		out->kind = SD_FWD_MISS;
		return allow_none ? DOCA_SUCCESS : DOCA_ERROR_INVALID_VALUE;
	}
	switch (f->type) {
	case DOCA_FLOW_FWD_PORT:
	{
		/* unknown port; vnf: not the owner or its pair; switch: another e-switch */
		doca_error_t rc = sd_port_fwd_allowed(owner, f->port_id);
		if (rc != DOCA_SUCCESS)
			return rc;
	}
		out->kind = SD_FWD_PORT;
		out->port_id = f->port_id;
		return DOCA_SUCCESS;
	case DOCA_FLOW_FWD_PIPE:
		if (f->next_pipe == NULL || f->next_pipe->dead || f->next_pipe->is_root || f->next_pipe->port != owner)
			return DOCA_ERROR_INVALID_VALUE;
		out->kind = SD_FWD_PIPE;
		out->pipe = f->next_pipe;
		return DOCA_SUCCESS;
	case DOCA_FLOW_FWD_DROP:
		out->kind = SD_FWD_DROP;
		return DOCA_SUCCESS;
	default:
		return DOCA_ERROR_NOT_SUPPORTED; /* RSS, targets, ordered lists: not modelled */
	}
}
