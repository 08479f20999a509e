/* Smoothly paced UDP sender (sendmmsg), for the throughput and load suites.
 *
 *   pacer --dst IP --port P --rate PPS --duration S [--size BYTES]
 *         [--src A,B,...] [--batch N] [--dns]
 *
 * Packet k is due at t0 + k/rate; the loop sends what is due (at most --batch
 * per sendmmsg call, so bursts stay short), spins on CLOCK_MONOTONIC when the
 * next packet is less than 50 us away and sleeps (clock_nanosleep) otherwise:
 * a smooth schedule, no trafgen-like bursts (bursts overflow the socket
 * buffers of AF_PACKET ports long before their CPU limit).
 * Source addresses rotate per packet (IP_PKTINFO on each message), so one
 * socket covers every bucket of a src-ip-bits balancer. --rate 0 = as fast as
 * possible.
 * Payload: the benchmark marker 58 46 f1 0b, a 32-bit sequence number, zero
 * fill (counted and dropped by xdp_sink on the backends); --dns sends a valid
 * DNS query "www.example.lab A" instead (size is then fixed by the query).
 * Prints one JSON line: sent, errors, elapsed, offered and achieved rate.
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
#define MAXPAY 1472

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

int main(int argc, char **argv)
{
	const char *dst = NULL, *srcs = NULL;
	int port = 0, size = 22, batch = 16, dns = 0;
	double rate = 0, duration = 0;
	struct in_addr src[MAXSRC];
	int nsrc = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--dns")) { dns = 1; continue; }
		if (!v) usage();
		if (!strcmp(a, "--dst")) dst = v;
		else if (!strcmp(a, "--port")) port = atoi(v);
		else if (!strcmp(a, "--rate")) rate = atof(v);
		else if (!strcmp(a, "--duration")) duration = atof(v);
		else if (!strcmp(a, "--size")) size = atoi(v);
		else if (!strcmp(a, "--src")) srcs = v;
		else if (!strcmp(a, "--batch")) batch = atoi(v);
		else usage();
		i++;
	}
	if (!dst || port <= 0 || duration <= 0 || size < 8 || size > MAXPAY ||
	    batch < 1 || batch > MAXBATCH || rate < 0)
		usage();
	if (srcs) {
		char *s = strdup(srcs), *save = NULL;
		for (char *t = strtok_r(s, ",", &save); t && nsrc < MAXSRC; t = strtok_r(NULL, ",", &save))
			if (inet_pton(AF_INET, t, &src[nsrc++]) != 1) {
				fprintf(stderr, "bad source %s\n", t);
				return 2;
			}
		free(s);
	}

	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) { perror("socket"); return 1; }
	int sb = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (inet_pton(AF_INET, dst, &to.sin_addr) != 1) { fprintf(stderr, "bad dst\n"); return 2; }
	if (nsrc == 0) {   /* one source: let the kernel pick it; still bind a fixed port */
		struct sockaddr_in any = {.sin_family = AF_INET};
		bind(fd, (struct sockaddr *)&any, sizeof(any));
	}

	static uint8_t pay[MAXBATCH][MAXPAY];
	static struct mmsghdr msg[MAXBATCH];
	static struct iovec iov[MAXBATCH];
	static char cbuf[MAXBATCH][CMSG_SPACE(sizeof(struct in_pktinfo))];
	static struct in_pktinfo *pinfo[MAXBATCH];
	int len = size;
	for (int i = 0; i < batch; i++) {
		memset(pay[i], 0, MAXPAY);
		if (dns) {
			len = build_dns(pay[i], (uint16_t)i);
		} else {
			pay[i][0] = 0x58; pay[i][1] = 0x46; pay[i][2] = 0xf1; pay[i][3] = 0x0b;
		}
		iov[i].iov_base = pay[i];
		iov[i].iov_len = len;
		msg[i].msg_hdr.msg_name = &to;
		msg[i].msg_hdr.msg_namelen = sizeof(to);
		msg[i].msg_hdr.msg_iov = &iov[i];
		msg[i].msg_hdr.msg_iovlen = 1;
		if (nsrc) {
			msg[i].msg_hdr.msg_control = cbuf[i];
			msg[i].msg_hdr.msg_controllen = sizeof(cbuf[i]);
			struct cmsghdr *c = CMSG_FIRSTHDR(&msg[i].msg_hdr);
			c->cmsg_level = IPPROTO_IP;
			c->cmsg_type = IP_PKTINFO;
			c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
			pinfo[i] = (struct in_pktinfo *)CMSG_DATA(c);
			memset(pinfo[i], 0, sizeof(struct in_pktinfo));
		}
	}

	uint64_t sent = 0, errors = 0, calls = 0;
	int last_err = 0;
	double t0 = now_s(), tend = t0 + duration, t;
	while ((t = now_s()) < tend) {
		uint64_t due;
		if (rate > 0) {
			uint64_t target = (uint64_t)((t - t0) * rate) + 1;
			if (target <= sent + errors) {
				double next = t0 + (double)(sent + errors) / rate;
				double gap = next - t;
				if (gap > 50e-6) {
					struct timespec ts = {0, (long)((gap - 30e-6) * 1e9)};
					if (ts.tv_nsec >= 1000000000L) { ts.tv_sec = ts.tv_nsec / 1000000000L; ts.tv_nsec %= 1000000000L; }
					clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
				}
				continue;
			}
			due = target - sent - errors;
		} else {
			due = batch;
		}
		int n = due > (uint64_t)batch ? batch : (int)due;
		for (int i = 0; i < n; i++) {
			uint64_t k = sent + errors + i;
			if (dns) {
				pay[i][0] = (k >> 8) & 0xff; pay[i][1] = k & 0xff;
			} else {
				uint32_t seq = htonl((uint32_t)k);
				memcpy(pay[i] + 4, &seq, 4);
			}
			if (nsrc) {
				pinfo[i]->ipi_spec_dst = src[k % nsrc];
			}
		}
		int r = sendmmsg(fd, msg, n, 0);
		calls++;
		if (r < 0) {
			last_err = errno;
			errors += 1;     /* the first message failed; skip it, keep the schedule */
		} else {
			sent += r;   /* a short write: the rest is still due, sent next round */
		}
	}
	double el = now_s() - t0;
	printf("{\"sent\": %llu, \"errors\": %llu, \"last_errno\": %d, \"calls\": %llu, "
	       "\"elapsed_s\": %.6f, \"offered_pps\": %.1f, \"achieved_pps\": %.1f, "
	       "\"payload\": %d, \"sources\": %d}\n",
	       (unsigned long long)sent, (unsigned long long)errors, last_err,
	       (unsigned long long)calls, el, rate, sent / el, len, nsrc);
	return 0;
}
