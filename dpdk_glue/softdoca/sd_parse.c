/*
 * softdoca packet parser: Ethernet II -> IPv4 or IPv6 (its extension headers) -> UDP/TCP
 * ports.  Every read is bounds-checked against len; the parser never reads past the frame.
 * No DPDK dependency, so it can be fuzzed and tested on its own.
 *
 * Both planes must classify a frame alike, or it is balanced by OVS alone and counted as
 * fallback: where a frame is odd, softdoca decides as Open vSwitch's flow extraction does
 * (lib/flow.c, miniflow_extract) or, where OVS extracts a partial flow, calls the frame
 * malformed -- a miss, which hands it to OVS, whose rules then decide.
 */
#include <string.h>

#include "sd_internal.h"

#define ETH_HLEN_ 14
#define IP6_HLEN_ 40
#define UDP_HLEN_ 8
#define TCP_HLEN_ 20

/* IPv6 next-header values the extension header walk knows */
#define NH_HOPOPTS 0
#define NH_ROUTING 43
#define NH_FRAGMENT 44
#define NH_AH 51
#define NH_DSTOPTS 60

static inline uint16_t rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v)); /* unaligned-safe; value stays in network order */
	return v;
}

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t be16(const uint8_t *p)
{
	return ((uint32_t)p[0] << 8) | p[1];
}

static bool parse_ipv4(const uint8_t *ip, uint32_t rem, struct sd_key *key)
{
	if (rem < 20)
		return false;
	uint8_t vihl = ip[0];
	uint32_t ihl = (uint32_t)(vihl & 0x0f) * 4u;
	/* The ethertype says IPv4; the version nibble is not checked, as OVS's parser does
	 * not check it either. */
	if (ihl < 20 || ihl > rem)
		return false;
	uint32_t tot = be16(ip + 2);
	/* total length may be shorter than the frame (Ethernet padding), never longer */
	if (tot < ihl || tot > rem)
		return false;
	key->ip_src = rd32(ip + 12);
	key->ip_dst = rd32(ip + 16);
	key->ip_proto = ip[9];
	key->l3 = 4;

	uint32_t frag = be16(ip + 6) & 0x1fffu; /* fragment offset */
	if (frag != 0)
		return true; /* non-first fragment: no L4 header, ports unknown */
	if (key->ip_proto != DOCA_FLOW_PROTO_UDP && key->ip_proto != DOCA_FLOW_PROTO_TCP)
		return true;
	if (tot - ihl < 4)
		return false; /* claims UDP/TCP but has no room for the ports */
	key->l4_src = rd16(ip + ihl);
	key->l4_dst = rd16(ip + ihl + 2);
	key->l4_ok = 1;
	return true;
}

static bool is_ext_hdr(uint8_t nh)
{
	return nh == NH_HOPOPTS || nh == NH_ROUTING || nh == NH_DSTOPTS || nh == NH_AH || nh == NH_FRAGMENT;
}

/*
 * Walk the extension headers from *p (size bytes of payload left) to the upper-layer
 * protocol, as OVS's parse_ipv6_ext_hdrs does: hop-by-hop, routing and destination options
 * are (len+1)*8 bytes, AH (len+2)*4, a fragment header 8; every one needs 8 bytes present.
 * Anything else (UDP, TCP, ESP, no-next-header, ...) ends the chain.  A non-first fragment
 * stops the walk and reads as protocol 44 (fragment), as in OVS.  *later: it was one.
 * Returns false when the chain is truncated.
 */
static bool ipv6_walk(const uint8_t **p, uint32_t *size, uint8_t *nh, bool *later)
{
	*later = false;
	while (is_ext_hdr(*nh)) {
		if (*size < 8)
			return false;
		const uint8_t *h = *p;
		uint32_t hlen = *nh == NH_AH ? ((uint32_t)h[1] + 2) * 4
			      : *nh == NH_FRAGMENT ? 8 : ((uint32_t)h[1] + 1) * 8;
		if (hlen > *size)
			return false;
		bool frag_later = *nh == NH_FRAGMENT && (be16(h + 2) & 0xfff8u) != 0; /* offset != 0 */
		*nh = frag_later ? NH_FRAGMENT : h[0];
		*p += hlen;
		*size -= hlen;
		if (frag_later) {
			*later = true;
			return true;
		}
	}
	return true;
}

/*
 * IPv6 as OVS sees it (ipv6_sanity_check, then the extension headers): fewer than 40
 * bytes, a payload length past the frame, or a truncated extension header chain make the
 * frame malformed.  Payload shorter than the frame is Ethernet padding.  The version
 * nibble is not checked (OVS does not).  UDP ports need the 8-byte header, TCP ports the
 * 20-byte header with a data offset that fits; with less, OVS extracts no ports, nor do we.
 */
static bool parse_ipv6(const uint8_t *ip, uint32_t rem, struct sd_key *key)
{
	if (rem < IP6_HLEN_)
		return false;
	uint32_t plen = be16(ip + 4);
	if (plen + IP6_HLEN_ > rem || rem - (plen + IP6_HLEN_) > 0xffffu)
		return false;
	memcpy(key->ip6_src, ip + 8, sizeof(key->ip6_src));
	memcpy(key->ip6_dst, ip + 24, sizeof(key->ip6_dst));
	const uint8_t *p = ip + IP6_HLEN_;
	uint32_t size = plen; /* never past the payload: the rest is padding */
	uint8_t nh = ip[6];
	bool later;
	if (!ipv6_walk(&p, &size, &nh, &later))
		return false;
	key->ip_proto = nh;
	key->l3 = 6;
	if (later)
		return true; /* non-first fragment: no ports */
	if (nh == DOCA_FLOW_PROTO_UDP && size >= UDP_HLEN_) {
		key->l4_src = rd16(p);
		key->l4_dst = rd16(p + 2);
		key->l4_ok = 1;
	} else if (nh == DOCA_FLOW_PROTO_TCP && size >= TCP_HLEN_) {
		uint32_t doff = (uint32_t)(p[12] >> 4) * 4;
		if (doff >= TCP_HLEN_ && doff <= size) {
			key->l4_src = rd16(p);
			key->l4_dst = rd16(p + 2);
			key->l4_ok = 1;
		}
	}
	return true;
}

bool sd_parse(const uint8_t *frame, uint32_t len, uint16_t port_id, struct sd_key *key)
{
	memset(key, 0, sizeof(*key));
	key->port_id = port_id;
	if (frame == NULL || len < ETH_HLEN_)
		return false;
	key->eth_type = rd16(frame + 12);
	/* ethertypes compared byte-wise so this holds on any endianness */
	if (frame[12] == 0x08 && frame[13] == 0x00)
		return parse_ipv4(frame + ETH_HLEN_, len - ETH_HLEN_, key);
	if (frame[12] == 0x86 && frame[13] == 0xdd)
		return parse_ipv6(frame + ETH_HLEN_, len - ETH_HLEN_, key);
	return true; /* neither: a valid frame that only eth_type can match */
}
