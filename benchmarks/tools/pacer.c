/* Smoothly paced UDP sender (sendmmsg) for either IP family, for the throughput, load and
 * IPv6-against-IPv4 suites: one binary, one code path, only the socket's family differs.
 *
 *   pacer --dst IP --port P --rate PPS --duration S [--size BYTES]
 *         [--src A,B,...] [--batch N] [--dns]
 *
 * IP and the sources are IPv4 or IPv6 addresses, all of one family (it follows their
 * spelling).  Packet k is due at t0 + k/rate; the loop sends what is due (at most --batch
 * per sendmmsg call, so bursts stay short), spins on CLOCK_MONOTONIC when the next packet is
 * less than 50 us away and sleeps (clock_nanosleep) otherwise: a smooth schedule, no
 * trafgen-like bursts (bursts overflow the socket buffers of AF_PACKET ports long before
 * their CPU limit).
 * Source addresses rotate per packet (IP_PKTINFO or IPV6_PKTINFO on each message), so one
 * socket covers every bucket of a src-ip-bits balancer. --rate 0 = as fast as possible.
 * Payload: the benchmark marker 58 46 f1 0b, a 32-bit sequence number, zero fill (counted
 * and dropped by xdp_sink on the backends); --dns sends a valid DNS query
 * "www.example.lab A" instead (size is then fixed by the query).
 * Prints one JSON line: sent, errors, elapsed, offered and achieved rate, payload, sources,
 * family (4 or 6).
 * Build: gcc -O2 -Wall -o pacer pacer.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXSRC 256
#define MAXBATCH 64
#define MAXPAY4 1472 /* 1500 - 20 (IPv4) - 8 (UDP) */
#define MAXPAY6 1452 /* 1500 - 40 (IPv6) - 8 (UDP) */

/* one source of either family; the socket's family says which member */
union src_addr {
	struct in_addr v4;
	struct in6_addr v6;
};

/* room for one packet-info message of either family, aligned for cmsghdr */
union pktinfo_buf {
	char v4[CMSG_SPACE(sizeof(struct in_pktinfo))];
	char v6[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	struct cmsghdr align;
};

struct opts {
	const char *dst, *srcs;
	int port, size, batch, dns;
	double rate, duration;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(void)
{
	fprintf(stderr, "usage: pacer --dst IP --port P --rate PPS --duration S [--size B] "
			"[--src A,B,..] [--batch N] [--dns]\n");
	exit(2);
}

static struct opts parse_opts(int argc, char **argv)
{
	struct opts o = {.size = 22, .batch = 16};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--dns")) { o.dns = 1; continue; }
		if (!v) usage();
		if (!strcmp(a, "--dst")) o.dst = v;
		else if (!strcmp(a, "--port")) o.port = atoi(v);
		else if (!strcmp(a, "--rate")) o.rate = atof(v);
		else if (!strcmp(a, "--duration")) o.duration = atof(v);
		else if (!strcmp(a, "--size")) o.size = atoi(v);
		else if (!strcmp(a, "--src")) o.srcs = v;
		else if (!strcmp(a, "--batch")) o.batch = atoi(v);
		else usage();
		i++;
	}
	if (!o.dst || o.port <= 0 || o.port > 65535 || o.duration <= 0 || o.size < 8 ||
	    o.batch < 1 || o.batch > MAXBATCH || o.rate < 0)
		usage();
	return o;
}

/* addr (either family) and port into ss; its length, 0 when addr is neither */
static socklen_t sockaddr_of(const char *addr, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		return sizeof(*v4);
	}
	if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		return sizeof(*v6);
	}
	return 0;
}

/* the comma-separated sources of family fam into src; their count, -1 on a bad one */
static int parse_sources(const char *list, int fam, union src_addr *src)
{
	int n = 0;
	char *s = strdup(list), *save = NULL;
	for (char *t = strtok_r(s, ",", &save); t && n < MAXSRC; t = strtok_r(NULL, ",", &save))
		if (inet_pton(fam, t, &src[n++]) != 1) {
			fprintf(stderr, "bad source %s (not of the destination's family)\n", t);
			n = -1;
			break;
		}
	free(s);
	return n;
}

static int build_dns(uint8_t *p, uint16_t id)
{
	static const uint8_t q[] = {3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e',
				    3, 'l', 'a', 'b', 0, 0, 1, 0, 1};
	p[0] = id >> 8; p[1] = id & 0xff;
	p[2] = 0x01; p[3] = 0x00;        /* RD */
	p[4] = 0; p[5] = 1;              /* QDCOUNT */
	memset(p + 6, 0, 6);
	memcpy(p + 12, q, sizeof(q));
	return 12 + (int)sizeof(q);
}

/* attach an empty packet-info message of family fam to h; where its source address goes */
static void *attach_pktinfo(struct msghdr *h, union pktinfo_buf *buf, int fam)
{
	memset(buf, 0, sizeof(*buf));
	h->msg_control = buf;
	struct cmsghdr *c;
	if (fam == AF_INET6) {
		h->msg_controllen = CMSG_SPACE(sizeof(struct in6_pktinfo));
		c = CMSG_FIRSTHDR(h);
		c->cmsg_level = IPPROTO_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
		return &((struct in6_pktinfo *)CMSG_DATA(c))->ipi6_addr;
	}
	h->msg_controllen = CMSG_SPACE(sizeof(struct in_pktinfo));
	c = CMSG_FIRSTHDR(h);
	c->cmsg_level = IPPROTO_IP;
	c->cmsg_type = IP_PKTINFO;
	c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
	return &((struct in_pktinfo *)CMSG_DATA(c))->ipi_spec_dst;
}

/* packets due at time t of a schedule started at t0; sleeps when none is due soon */
static uint64_t due_now(double t, double t0, double rate, uint64_t done, int batch)
{
	if (rate <= 0)
		return batch;
	uint64_t target = (uint64_t)((t - t0) * rate) + 1;
	if (target > done)
		return target - done;
	double gap = t0 + (double)done / rate - t;
	if (gap > 50e-6) {
		struct timespec ts = {0, (long)((gap - 30e-6) * 1e9)};
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec = ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
		}
		clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = parse_opts(argc, argv);
	struct sockaddr_storage to, any;
	socklen_t tolen = sockaddr_of(o.dst, o.port, &to);
	if (!tolen) { fprintf(stderr, "bad dst %s\n", o.dst); return 2; }
	int fam = to.ss_family;
	if (o.size > (fam == AF_INET6 ? MAXPAY6 : MAXPAY4))
		usage();
	static union src_addr src[MAXSRC];
	int nsrc = o.srcs ? parse_sources(o.srcs, fam, src) : 0;
	if (nsrc < 0)
		return 2;
	size_t alen = fam == AF_INET6 ? sizeof(struct in6_addr) : sizeof(struct in_addr);

	int fd = socket(fam, SOCK_DGRAM, 0);
	if (fd < 0) { perror("socket"); return 1; }
	int sb = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
	/* a fixed source port for the whole run; the address comes per packet (or the kernel's) */
	socklen_t anylen = sockaddr_of(fam == AF_INET6 ? "::" : "0.0.0.0", 0, &any);
	if (bind(fd, (struct sockaddr *)&any, anylen)) { perror("bind"); return 1; }

	static uint8_t pay[MAXBATCH][MAXPAY4];
	static struct mmsghdr msg[MAXBATCH];
	static struct iovec iov[MAXBATCH];
	static union pktinfo_buf cbuf[MAXBATCH];
	static void *srcslot[MAXBATCH];
	int len = o.size;
	for (int i = 0; i < o.batch; i++) {
		if (o.dns) {
			len = build_dns(pay[i], (uint16_t)i);
		} else {
			pay[i][0] = 0x58; pay[i][1] = 0x46; pay[i][2] = 0xf1; pay[i][3] = 0x0b;
		}
		iov[i].iov_base = pay[i];
		iov[i].iov_len = len;
		msg[i].msg_hdr.msg_name = &to;
		msg[i].msg_hdr.msg_namelen = tolen;
		msg[i].msg_hdr.msg_iov = &iov[i];
		msg[i].msg_hdr.msg_iovlen = 1;
		if (nsrc)
			srcslot[i] = attach_pktinfo(&msg[i].msg_hdr, &cbuf[i], fam);
	}

	uint64_t sent = 0, errors = 0, calls = 0;
	int last_err = 0;
	double t0 = now_s(), tend = t0 + o.duration, t;
	while ((t = now_s()) < tend) {
		uint64_t due = due_now(t, t0, o.rate, sent + errors, o.batch);
		if (!due)
			continue;
		int n = due > (uint64_t)o.batch ? o.batch : (int)due;
		for (int i = 0; i < n; i++) {
			uint64_t k = sent + errors + i;
			if (o.dns) {
				pay[i][0] = (k >> 8) & 0xff; pay[i][1] = k & 0xff;
			} else {
				uint32_t seq = htonl((uint32_t)k);
				memcpy(pay[i] + 4, &seq, 4);
			}
			if (nsrc)
				memcpy(srcslot[i], &src[k % nsrc], alen);
		}
		int r = sendmmsg(fd, msg, n, 0);
		calls++;
		if (r < 0) {
			last_err = errno;
			errors += 1;     /* the first message failed; skip it, keep the schedule */
		} else {
			sent += r;       /* a short write: the rest is still due, sent next round */
		}
	}
	double el = now_s() - t0;
	printf("{\"sent\": %llu, \"errors\": %llu, \"last_errno\": %d, \"calls\": %llu, "
	       "\"elapsed_s\": %.6f, \"offered_pps\": %.1f, \"achieved_pps\": %.1f, "
	       "\"payload\": %d, \"sources\": %d, \"family\": %d}\n",
	       (unsigned long long)sent, (unsigned long long)errors, last_err,
	       (unsigned long long)calls, el, o.rate, sent / el, len, nsrc, fam == AF_INET6 ? 6 : 4);
	return 0;
}
