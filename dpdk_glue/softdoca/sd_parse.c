/*
 * softdoca packet parser: Ethernet II -> IPv4 -> UDP/TCP ports.  Every read is bounds-checked
 * against len; the parser never reads past the frame.  No DPDK dependency, so it can be
 * fuzzed and tested on its own.
 */
#include <string.h>

#include "sd_internal.h"

#define ETH_HLEN_ 14
#define ETHERTYPE_IPV4_BE 0x0008 /* 0x0800 as it reads from the wire on little endian */

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

bool sd_parse(const uint8_t *frame, uint32_t len, uint16_t port_id, struct sd_key *key)
{
	memset(key, 0, sizeof(*key));
	key->port_id = port_id;
	if (frame == NULL || len < ETH_HLEN_)
		return false;
	key->eth_type = rd16(frame + 12);
	/* 0x0800 in network order, compared byte-wise so this holds on any endianness */
	if (!(frame[12] == 0x08 && frame[13] == 0x00))
		return true; /* not IPv4: a valid frame that only eth_type can match */

	const uint8_t *ip = frame + ETH_HLEN_;
	uint32_t rem = len - ETH_HLEN_;
	if (rem < 20)
		return false;
	uint8_t vihl = ip[0];
	uint32_t ihl = (uint32_t)(vihl & 0x0f) * 4u;
	/* The ethertype says IPv4; the version nibble is not checked, as OVS's parser does
	 * not check it either: both planes must classify the same frame the same way, or
	 * such a frame would be balanced by OVS alone and counted as fallback. */
	if (ihl < 20 || ihl > rem)
		return false;
	uint32_t tot = ((uint32_t)ip[2] << 8) | ip[3];
	/* total length may be shorter than the frame (Ethernet padding), never longer */
	if (tot < ihl || tot > rem)
		return false;
	key->ip_src = rd32(ip + 12);
	key->ip_dst = rd32(ip + 16);
	key->ip_proto = ip[9];
	key->l3_ok = 1;

	uint32_t frag = (((uint32_t)ip[6] << 8) | ip[7]) & 0x1fffu; /* fragment offset */
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
