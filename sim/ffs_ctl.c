/* The control socket: a Unix stream socket taking one command per line and
 * answering each with one line, "ok ..." or "error: why".
 *   insert N | remove N   a card in or out of slot N (a NotifySlotChange)
 *   unplug | replug       unbind / bind the UDC (a hot unplug for the host)
 *   hwerror N             a HardwareError (overcurrent) for slot N
 *   fault NAME [COUNT]    the reader misbehaves for its next COUNT (default 1)
 *                         uses of fault NAME (vr_set_fault; COUNT 0: off);
 *                         "zlp" and "stall" are carried out by ffs_io.c
 *   fault off             every fault off
 *   status                "ok bound=.. enabled=.. cards=.. out=.. in=.. ..."
 *   quit                  stop the program (as SIGTERM does)
 * The main thread runs this loop with poll(); it also watches a signalfd for
 * SIGTERM and SIGINT. */
#define _GNU_SOURCE   /* accept4, pthread_timedjoin_np */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ffs.h"

#define MAX_CLIENTS 8
#define LINE_MAX_LEN 256

struct client {
	int fd;
	char line[LINE_MAX_LEN];
	size_t len;
};

static int listen_on(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		ffs_log("control socket path too long (%zu bytes, at most %zu): %s", strlen(path),
			sizeof(sa.sun_path) - 1, path);
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ffs_log("socket: %s", strerror(errno));
		return -1;
	}
	unlink(path);   /* a socket file left by an earlier run */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4) != 0) {
		ffs_log("cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Slot number N of "insert N": 0..slots-1. */
static int parse_slot(const struct ffs *f, const char *arg, unsigned *slot, char *why,
		      size_t cap)
{
	char *end;
	unsigned long v;

	if (arg == NULL || *arg == '\0') {
		snprintf(why, cap, "error: a slot number is needed");
		return -1;
	}
	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno != 0 || *end != '\0' || v >= f->profile.slots) {
		snprintf(why, cap, "error: slot '%s' is not one of 0..%u", arg, f->profile.slots - 1);
		return -1;
	}
	*slot = (unsigned)v;
	return 0;
}

static void card(struct ffs *f, const char *arg, bool in, char *out, size_t cap)
{
	unsigned slot;

	if (parse_slot(f, arg, &slot, out, cap))
		return;
	pthread_mutex_lock(&f->lock);
	f->card[slot] = in;
	if (in)
		vr_insert_card(f->vr, slot);
	else
		vr_remove_card(f->vr, slot);
	pthread_cond_broadcast(&f->wake);
	pthread_mutex_unlock(&f->lock);
	ffs_log("control: card %s slot %u", in ? "inserted in" : "removed from", slot);
	snprintf(out, cap, "ok");
}

/* hwerror N: a HardwareError (overcurrent) on the interrupt endpoint. */
static void hw_error(struct ffs *f, const char *arg, char *out, size_t cap)
{
	unsigned slot;

	if (parse_slot(f, arg, &slot, out, cap))
		return;
	if (!f->profile.has_interrupt) {
		snprintf(out, cap, "error: the profile has no interrupt endpoint");
		return;
	}
	pthread_mutex_lock(&f->lock);
	vr_hardware_error(f->vr, slot, 1);
	pthread_cond_broadcast(&f->wake);
	pthread_mutex_unlock(&f->lock);
	ffs_log("control: HardwareError (overcurrent) for slot %u on the interrupt endpoint", slot);
	snprintf(out, cap, "ok");
}

#define FAULT_COUNT_MAX 1000u

/* fault NAME [COUNT] | fault off */
static void fault(struct ffs *f, const char *name, const char *count, char *out, size_t cap)
{
	const char *why = NULL;
	unsigned long n = 1;
	char *end;
	int rc = 0;

	if (name == NULL) {
		snprintf(out, cap, "error: fault NAME [COUNT] or fault off");
		return;
	}
	if (count != NULL) {
		errno = 0;
		n = strtoul(count, &end, 10);
		if (*count == '\0' || *end != '\0' || errno != 0 || n > FAULT_COUNT_MAX) {
			snprintf(out, cap, "error: count '%.32s' is not a number 0..%u", count,
				 FAULT_COUNT_MAX);
			return;
		}
	}
	pthread_mutex_lock(&f->lock);
	if (strcmp(name, "off") == 0)
		vr_faults_off(f->vr);
	else
		rc = vr_set_fault(f->vr, name, (unsigned)n, &why);
	pthread_mutex_unlock(&f->lock);
	if (rc != 0) {
		snprintf(out, cap, "error: fault '%.32s': %s", name, why ? why : "refused");
		return;
	}
	if (strcmp(name, "off") == 0)
		ffs_log("control: every fault off");
	else
		ffs_log("control: fault %s for the next %lu uses", name, n);
	snprintf(out, cap, "ok");
}

static void plug(struct ffs *f, bool in, char *out, size_t cap)
{
	bool bound;

	pthread_mutex_lock(&f->lock);
	bound = f->bound;
	pthread_mutex_unlock(&f->lock);
	if (bound == in) {
		snprintf(out, cap, "error: already %s", in ? "plugged in" : "unplugged");
		return;
	}
	if (ffs_gadget_bind(f, in)) {
		snprintf(out, cap, "error: cannot write the UDC file (see the log)");
		return;
	}
	pthread_mutex_lock(&f->lock);
	f->bound = in;
	/* Unplugged, a real reader loses power: whatever it had queued (an
	 * answer the host never read) is gone when it comes back. FunctionFS
	 * does not always report DISABLE when the UDC is unbound in the middle
	 * of a transfer, so the unplug itself asks for the fresh start. */
	if (!in)
		f->reset_on_enable = true;
	pthread_mutex_unlock(&f->lock);
	snprintf(out, cap, "ok");
}

static void status(struct ffs *f, char *out, size_t cap)
{
	char cards[2 * VR_MAX_SLOTS + 1];
	unsigned s;
	size_t at = 0;

	pthread_mutex_lock(&f->lock);
	for (s = 0; s < f->profile.slots && s < VR_MAX_SLOTS; s++)
		at += (size_t)snprintf(cards + at, sizeof(cards) - at, "%s%d", s ? "," : "",
				       f->card[s] ? 1 : 0);
	snprintf(out, cap, "ok bound=%d enabled=%d cards=%s out=%lu in=%lu interrupt=%lu setup=%lu",
		 f->bound, f->enabled, cards, f->n_out, f->n_in, f->n_int, f->n_setup);
	pthread_mutex_unlock(&f->lock);
}

/* Runs one command line; returns 1 for quit. */
static int command(struct ffs *f, char *line, char *out, size_t cap)
{
	char *save = NULL, *word = strtok_r(line, " \t\r", &save);
	char *arg = strtok_r(NULL, " \t\r", &save);
	char *arg2 = arg ? strtok_r(NULL, " \t\r", &save) : NULL;

	if (word == NULL) {
		snprintf(out, cap, "error: empty command");
	} else if (strcmp(word, "insert") == 0 || strcmp(word, "remove") == 0) {
		card(f, arg, word[0] == 'i', out, cap);
	} else if (strcmp(word, "unplug") == 0 || strcmp(word, "replug") == 0) {
		plug(f, word[0] == 'r', out, cap);
	} else if (strcmp(word, "hwerror") == 0) {
		hw_error(f, arg, out, cap);
	} else if (strcmp(word, "fault") == 0) {
		fault(f, arg, arg2, out, cap);
	} else if (strcmp(word, "status") == 0) {
		status(f, out, cap);
	} else if (strcmp(word, "quit") == 0) {
		snprintf(out, cap, "ok");
		return 1;
	} else {
		snprintf(out, cap, "error: unknown command '%.32s' (insert N, remove N, hwerror N, "
			 "fault NAME [COUNT], fault off, unplug, replug, status, quit)", word);
	}
	return 0;
}

static void answer(int fd, const char *out)
{
	char line[LINE_MAX_LEN + 2];
	int n = snprintf(line, sizeof(line), "%s\n", out);

	if (n > 0 && send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0)
		ffs_log("control: answer not sent: %s", strerror(errno));
}

/* Reads what a client sent; runs each whole line. Returns -1 when the client
 * is gone (or misbehaved), 1 for quit, else 0. */
static int serve(struct ffs *f, struct client *c)
{
	char out[LINE_MAX_LEN], *nl;
	ssize_t n = recv(c->fd, c->line + c->len, sizeof(c->line) - 1 - c->len, 0);
	size_t used;
	int rc = 0;

	if (n <= 0)
		return -1;
	c->len += (size_t)n;
	c->line[c->len] = '\0';
	while (rc == 0 && (nl = strchr(c->line, '\n')) != NULL) {
		*nl = '\0';
		rc = command(f, c->line, out, sizeof(out));
		answer(c->fd, out);
		used = (size_t)(nl + 1 - c->line);
		memmove(c->line, nl + 1, c->len - used + 1);
		c->len -= used;
	}
	if (c->len == sizeof(c->line) - 1) {
		answer(c->fd, "error: line too long");
		return -1;
	}
	return rc;
}

static void drop(struct client *c)
{
	close(c->fd);
	c->fd = -1;
	c->len = 0;
}

static void accept_client(int lfd, struct client *clients)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	unsigned i;

	if (fd < 0)
		return;
	for (i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].fd < 0) {
			clients[i].fd = fd;
			clients[i].len = 0;
			return;
		}
	}
	answer(fd, "error: too many control connections");
	close(fd);
}

int ffs_ctl_run(struct ffs *f, int signal_fd)
{
	struct client clients[MAX_CLIENTS];
	struct pollfd pfd[2 + MAX_CLIENTS];
	struct signalfd_siginfo si;
	int lfd = -1, quit = 0, rc;
	unsigned i, n;

	for (i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	if (f->control_path[0] != '\0') {
		lfd = listen_on(f->control_path);
		if (lfd < 0)
			return -1;
		ffs_log("control socket %s", f->control_path);
	}
	while (!quit) {
		pfd[0] = (struct pollfd){ .fd = signal_fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (i = 0; i < MAX_CLIENTS; i++)
			pfd[2 + i] = (struct pollfd){ .fd = clients[i].fd, .events = POLLIN };
		n = 2 + MAX_CLIENTS;
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			ffs_log("poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents & POLLIN) {
			if (read(signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				ffs_log("signal %u: stopping", si.ssi_signo);
			quit = 1;
		}
		if (pfd[1].revents & POLLIN)
			accept_client(lfd, clients);
		for (i = 0; i < MAX_CLIENTS && !quit; i++) {
			if (clients[i].fd < 0 || !(pfd[2 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			rc = serve(f, &clients[i]);
			if (rc < 0)
				drop(&clients[i]);
			else if (rc > 0)
				quit = 1;
		}
	}
	for (i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].fd >= 0)
			drop(&clients[i]);
	if (lfd >= 0) {
		close(lfd);
		unlink(f->control_path);
	}
	return 0;
}
