/*
 * softdoca internals shared by its source files (not part of the DOCA-shaped API).
 */
#ifndef SOFTDOCA_INTERNAL_H_
#define SOFTDOCA_INTERNAL_H_

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>

#include "doca_flow.h"
#include "softdoca.h"

#define SD_MAX_PORTS 16
#define SD_MAX_QUEUES 8
#define SD_MAX_CHAIN 8 /* pipe hops per packet: bounds a (misconfigured) forwarding loop */
#define SD_DEFAULT_NR_ENTRIES 8192 /* DOCA's documented default when nr_entries is not set */

/*
 * The lookup key: the header fields softdoca can match, as they sit in the packet (network
 * byte order), plus validity bits.  A pipe/entry mask that touches an IPv4 field also
 * requires l3_ok=1, one that touches an L4 port requires l4_ok=1; so an ARP frame never
 * matches "ipv4_src & 1 == 0" just because its (absent) source address reads as zero.
 * 24 bytes = three 64-bit words: a masked compare is three AND/XOR/OR.
 */
struct sd_key {
	union {
		struct {
			uint32_t ip_src;
			uint32_t ip_dst;
			uint16_t l4_src;
			uint16_t l4_dst;
			uint16_t eth_type;
			uint16_t port_id; /* ingress DOCA port id (host order) */
			uint8_t ip_proto;
			uint8_t l3_ok;
			uint8_t l4_ok;
			uint8_t pad[5];
		};
		uint64_t w[3];
	};
};

_Static_assert(sizeof(struct sd_key) == 24, "sd_key must be three words");

static inline bool sd_key_match(const struct sd_key *pkt, const struct sd_key *mask, const struct sd_key *val)
{
	return (((pkt->w[0] & mask->w[0]) ^ val->w[0]) | ((pkt->w[1] & mask->w[1]) ^ val->w[1]) |
		((pkt->w[2] & mask->w[2]) ^ val->w[2])) == 0;
}

static inline bool sd_key_eq(const struct sd_key *a, const struct sd_key *b)
{
	return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2])) == 0;
}

static inline uint32_t sd_key_hash(const struct sd_key *k)
{
	uint64_t h = k->w[0] * 0x9E3779B97F4A7C15ULL;
	h ^= (k->w[1] + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL;
	h ^= (k->w[2] + 0x165667B19E3779F9ULL) * 0x27D4EB2F165667C5ULL;
	h ^= h >> 29;
	h *= 0xBF58476D1CE4E5B9ULL;
	h ^= h >> 32;
	return (uint32_t)h;
}

/* Parse a frame into a key.  Returns false for a truncated/malformed frame (key then holds
 * whatever could be parsed safely; the caller treats the frame as a miss). */
bool sd_parse(const uint8_t *frame, uint32_t len, uint16_t port_id, struct sd_key *key);

enum sd_fwd_kind { SD_FWD_MISS = 0, SD_FWD_PORT, SD_FWD_PIPE, SD_FWD_DROP };

struct sd_fwd {
	uint8_t kind;
	uint16_t port_id;
	struct doca_flow_pipe *pipe;
};

/* MAC action word: bit 63 = "set dst MAC", low 48 bits = the 6 MAC bytes (byte 0 lowest).
 * One 64-bit word so that an in-place update is a single atomic store (see softdoca.c). */
#define SD_MAC_SET (1ULL << 63)

struct doca_flow_pipe_entry;

struct sd_htab {
	uint32_t mask;   /* slots - 1 (power of two) */
	uint32_t used;   /* live entries */
	uint32_t tombs;  /* deleted slots */
	_Atomic(struct doca_flow_pipe_entry *) slot[];
};

struct sd_ctl_snap {
	uint32_t n;
	struct doca_flow_pipe_entry *e[];
};

#endif
