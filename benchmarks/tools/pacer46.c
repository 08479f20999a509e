/* Smoothly paced UDP sender for either IP family (sendmmsg), for the IPv6 against IPv4
 * comparisons: one binary, one code path, only the socket's family differs.
 *
 *   pacer46 --dst IP --port P --rate PPS --duration S [--size BYTES] [--src IP] [--batch N]
 *
 * IP is an IPv4 or an IPv6 address (the family follows its spelling).  Packet k is due at
 * t0 + k/rate; the loop sends what is due (at most --batch per sendmmsg call), spins on
 * CLOCK_MONOTONIC when the next packet is less than 50 us away and sleeps otherwise: the
 * schedule of tools/pacer.c.  --src binds the socket to that address (one source).
 * Payload: the benchmark marker 58 46 f1 0b, a 32-bit sequence number, zero fill.
 * Prints one JSON line: sent, errors, elapsed, offered and achieved rate, family.
 * Build: gcc -O2 -Wall -o pacer46 pacer46.c
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

#define MAXBATCH 64
#define MAXPAY 1452 /* 1500 - 40 (IPv6) - 8 (UDP) */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(void)
{
	fprintf(stderr, "usage: pacer46 --dst IP --port P --rate PPS --duration S [--size B] "
			"[--src IP] [--batch N]\n");
	exit(2);
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
	const char *dst = NULL, *src = NULL;
	int port = 0, size = 18, batch = 16;
	double rate = 0, duration = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) usage();
		if (!strcmp(a, "--dst")) dst = v;
		else if (!strcmp(a, "--port")) port = atoi(v);
		else if (!strcmp(a, "--rate")) rate = atof(v);
		else if (!strcmp(a, "--duration")) duration = atof(v);
		else if (!strcmp(a, "--size")) size = atoi(v);
		else if (!strcmp(a, "--src")) src = v;
		else if (!strcmp(a, "--batch")) batch = atoi(v);
		else usage();
		i++;
	}
	if (!dst || port <= 0 || port > 65535 || duration <= 0 || size < 8 || size > MAXPAY ||
	    batch < 1 || batch > MAXBATCH || rate < 0)
		usage();
	struct sockaddr_storage to, from;
	socklen_t tolen = sockaddr_of(dst, port, &to);
	if (!tolen) { fprintf(stderr, "bad dst %s\n", dst); return 2; }
	socklen_t fromlen = sockaddr_of(src ? src : (to.ss_family == AF_INET ? "0.0.0.0" : "::"), 0, &from);
	if (!fromlen || from.ss_family != to.ss_family) { fprintf(stderr, "bad src %s\n", src); return 2; }

	int fd = socket(to.ss_family, SOCK_DGRAM, 0);
	if (fd < 0) { perror("socket"); return 1; }
	int sb = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
	if (bind(fd, (struct sockaddr *)&from, fromlen)) { perror("bind"); return 1; }

	static uint8_t pay[MAXBATCH][MAXPAY];
	static struct mmsghdr msg[MAXBATCH];
	static struct iovec iov[MAXBATCH];
	for (int i = 0; i < batch; i++) {
		pay[i][0] = 0x58; pay[i][1] = 0x46; pay[i][2] = 0xf1; pay[i][3] = 0x0b;
		iov[i].iov_base = pay[i];
		iov[i].iov_len = size;
		msg[i].msg_hdr.msg_name = &to;
		msg[i].msg_hdr.msg_namelen = tolen;
		msg[i].msg_hdr.msg_iov = &iov[i];
		msg[i].msg_hdr.msg_iovlen = 1;
	}

	uint64_t sent = 0, errors = 0, calls = 0;
	int last_err = 0;
	double t0 = now_s(), tend = t0 + duration, t;
	while ((t = now_s()) < tend) {
		uint64_t due = due_now(t, t0, rate, sent + errors, batch);
		if (!due)
			continue;
		int n = due > (uint64_t)batch ? batch : (int)due;
		for (int i = 0; i < n; i++) {
			uint32_t seq = htonl((uint32_t)(sent + errors + i));
			memcpy(pay[i] + 4, &seq, 4);
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
	       "\"payload\": %d, \"family\": %d}\n",
	       (unsigned long long)sent, (unsigned long long)errors, last_err,
	       (unsigned long long)calls, el, rate, sent / el, size, to.ss_family == AF_INET6 ? 6 : 4);
	return 0;
}
