/* The link to vicc: a listening TCP socket, the one connection vicc makes to
 * it, and vicc's framing (2-byte big-endian length, then the payload). Every
 * wait is bounded by a deadline; every length vicc announces is checked before
 * a byte of its payload is read. See vicc_relay.h. */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vicc_relay.h"
#include "vr_log.h"

struct vicc_relay {
	int listen_fd;
	int fd;             /* vicc's connection, -1 when none */
	char where[32];     /* HOST:PORT, for log lines */
	/* One message, length and payload, goes out in one piece: vicc reads
	 * the length, then the payload with a single recv(), so a payload sent
	 * apart from its length may reach it cut. */
	uint8_t out[2 + VICC_MSG_MAX];
};

/* ---- time ------------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before deadline, 0 once it has passed. */
static int left_ms(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	return left > 0 ? (int)left : 0;
}

/* Wait for events on fd until the deadline. 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int rc;

	do {
		rc = poll(&p, 1, left_ms(deadline));
	} while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -1;
	return rc;
}

/* ---- life of the link ------------------------------------------------------- */

struct vicc_relay *vicc_relay_new(const char *host, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct vicc_relay *r;
	int one = 1;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		vr_err("vicc relay: \"%s\" is not an IPv4 address", host);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		vr_err("vicc relay: out of memory");
		return NULL;
	}
	r->fd = -1;
	snprintf(r->where, sizeof(r->where), "%s:%u", host, port);
	r->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (r->listen_fd < 0) {
		vr_err("vicc relay: socket: %s", strerror(errno));
		free(r);
		return NULL;
	}
	/* A restarted reader must not wait for the old socket's TIME_WAIT. */
	setsockopt(r->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(r->listen_fd, 1) != 0) {
		vr_err("vicc relay: cannot listen on %s: %s", r->where, strerror(errno));
		close(r->listen_fd);
		free(r);
		return NULL;
	}
	vr_info("vicc relay: waiting for vicc on %s", r->where);
	return r;
}

static void drop_link(struct vicc_relay *r, const char *why)
{
	if (r->fd < 0)
		return;
	vr_err("vicc relay %s: link closed: %s", r->where, why);
	close(r->fd);
	r->fd = -1;
}

void vicc_relay_free(struct vicc_relay *r)
{
	if (r == NULL)
		return;
	if (r->fd >= 0)
		close(r->fd);
	close(r->listen_fd);
	free(r);
}

/* A connection from vicc, waiting for it until the deadline. */
static enum vicc_status take_link(struct vicc_relay *r, int64_t deadline)
{
	int fd;

	if (r->fd >= 0)
		return VICC_OK;
	if (wait_fd(r->listen_fd, POLLIN, deadline) <= 0) {
		vr_err("vicc relay: no vicc connected to %s", r->where);
		return VICC_GONE;
	}
	fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		vr_err("vicc relay: accept on %s: %s", r->where, strerror(errno));
		return VICC_GONE;
	}
	r->fd = fd;
	vr_info("vicc relay: vicc connected to %s", r->where);
	return VICC_OK;
}

/* ---- framing ---------------------------------------------------------------- */

static enum vicc_status send_all(struct vicc_relay *r, const uint8_t *b, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n;

		if (wait_fd(r->fd, POLLOUT, deadline) <= 0) {
			drop_link(r, "vicc takes no more bytes (timeout)");
			return VICC_GONE;
		}
		n = send(r->fd, b, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			drop_link(r, n < 0 ? strerror(errno) : "send wrote nothing");
			return VICC_GONE;
		}
		b += n;
		len -= (size_t)n;
	}
	return VICC_OK;
}

static enum vicc_status recv_all(struct vicc_relay *r, uint8_t *b, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n;

		if (wait_fd(r->fd, POLLIN, deadline) <= 0) {
			drop_link(r, "vicc did not answer in time");
			return VICC_GONE;
		}
		n = recv(r->fd, b, len, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			drop_link(r, n < 0 ? strerror(errno) : "vicc closed the connection");
			return VICC_GONE;
		}
		b += n;
		len -= (size_t)n;
	}
	return VICC_OK;
}

static enum vicc_status send_msg(struct vicc_relay *r, const uint8_t *payload, size_t len,
				 int64_t deadline)
{
	vr_comm("to vicc", payload, len);
	r->out[0] = (uint8_t)(len >> 8);
	r->out[1] = (uint8_t)len;
	memcpy(r->out + 2, payload, len);
	return send_all(r, r->out, 2 + len, deadline);
}

/* One answer of min to max bytes (and no more than cap). */
static enum vicc_status recv_msg(struct vicc_relay *r, uint8_t *buf, size_t min, size_t max, size_t cap,
				 size_t *len, int64_t deadline)
{
	uint8_t hdr[2];
	enum vicc_status st;
	size_t n;

	st = recv_all(r, hdr, sizeof(hdr), deadline);
	if (st != VICC_OK)
		return st;
	n = (size_t)hdr[0] << 8 | hdr[1];
	if (n < min || n > max || n > cap) {
		vr_err("vicc relay %s: answer of %zu bytes, expected %zu to %zu", r->where, n, min,
		       max < cap ? max : cap);
		drop_link(r, "malformed length");
		return VICC_BAD;
	}
	st = recv_all(r, buf, n, deadline);
	if (st != VICC_OK)
		return st;
	vr_comm("from vicc", buf, n);
	*len = n;
	return VICC_OK;
}

/* ---- the commands ----------------------------------------------------------- */

enum vicc_status vicc_relay_control(struct vicc_relay *r, enum vicc_ctrl code)
{
	uint8_t b = (uint8_t)code;
	enum vicc_status st;

	if (code == VICC_POWER_OFF && r->fd < 0)
		return VICC_OK;
	st = take_link(r, now_ms() + VICC_ACCEPT_MS);
	if (st != VICC_OK)
		return st;
	return send_msg(r, &b, 1, now_ms() + VICC_ANSWER_MS);
}

enum vicc_status vicc_relay_atr(struct vicc_relay *r, uint8_t *atr, size_t cap, size_t *len)
{
	int64_t deadline = now_ms() + VICC_ANSWER_MS;
	uint8_t b = VICC_GET_ATR;
	enum vicc_status st;

	if (r->fd < 0) {
		vr_err("vicc relay %s: ATR asked, no vicc connected", r->where);
		return VICC_GONE;
	}
	st = send_msg(r, &b, 1, deadline);
	if (st != VICC_OK)
		return st;
	/* ISO 7816-3 8.2: TS, T0 and at most 31 more bytes */
	return recv_msg(r, atr, 2, cap, cap, len, deadline);
}

enum vicc_status vicc_relay_apdu(struct vicc_relay *r, const uint8_t *apdu, size_t len, uint8_t *rsp,
				 size_t cap, size_t *rsp_len)
{
	int64_t deadline = now_ms() + VICC_ANSWER_MS;
	enum vicc_status st;

	if (r->fd < 0) {
		vr_err("vicc relay %s: APDU of %zu bytes, no vicc connected", r->where, len);
		return VICC_GONE;
	}
	/* A 1-byte payload would be read as a control code. */
	if (len < 4 || len > VICC_MSG_MAX) {
		vr_err("vicc relay %s: command APDU of %zu bytes cannot be sent (4 to %u)", r->where, len,
		       VICC_MSG_MAX);
		return VICC_BAD;
	}
	st = send_msg(r, apdu, len, deadline);
	if (st != VICC_OK)
		return st;
	return recv_msg(r, rsp, 2, VICC_RSP_MAX, cap, rsp_len, deadline);
}
