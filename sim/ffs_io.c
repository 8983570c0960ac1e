/* One thread per endpoint, blocking I/O on the FunctionFS files:
 *   ep0   events and class requests (ffs_ep0.c)
 *   ep1   bulk OUT: USB packets reassembled into CCID messages (10-byte header)
 *   ep2   bulk IN: each queued answer, a zero-length packet after a full one;
 *         the faults "zlp" and "stall" strike here, before an answer
 *   ep3   interrupt IN: NotifySlotChange / HardwareError
 * Endpoint files block until the host enables the function, and fail
 * (ESHUTDOWN, ECONNRESET...) when it is disabled or unplugged: the threads then
 * simply go round again. ffs_io_stop wakes them with SIGUSR1. */
#define _GNU_SOURCE   /* pthread_timedjoin_np */
#include <endian.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/usb/ch9.h>
#include <linux/usb/functionfs.h>

#include "ffs.h"

#define CCID_HEADER 10
#define IN_POLL_MS 20   /* IN threads also look for answers this often */

static pthread_t threads[4];
static bool started[4];

int ffs_reset_reader(struct ffs *f)
{
	struct vreader *vr = vr_new(&f->profile);
	unsigned s;

	if (vr == NULL) {
		ffs_log("cannot create the virtual reader (vr_new failed)");
		return -1;
	}
	vr_free(f->vr);
	f->vr = vr;
	for (s = 0; s < f->profile.slots && s < VR_MAX_SLOTS; s++) {
		if (f->card[s] && !vr_card_present(vr, s))
			vr_insert_card(vr, s);
		else if (!f->card[s] && vr_card_present(vr, s))
			vr_remove_card(vr, s);
	}
	pthread_cond_broadcast(&f->wake);
	return 0;
}

/* --- bulk OUT --------------------------------------------------------------- */

/* The packet size of an endpoint at the speed the host runs us. */
static size_t packet_size(int fd)
{
	struct usb_endpoint_descriptor d;

	memset(&d, 0, sizeof(d));
	if (ioctl(fd, FUNCTIONFS_ENDPOINT_DESC, &d) != 0 || le16toh(d.wMaxPacketSize) == 0)
		return 64;
	return le16toh(d.wMaxPacketSize) & 0x7FF;
}

/* Reads one transfer's worth: n bytes at most, ending early at a short packet.
 * Returns the bytes read, or -1 (errno set). */
static ssize_t read_some(struct ffs *f, uint8_t *buf, size_t n)
{
	ssize_t r;

	do {
		r = read(f->ep_out, buf, n);
	} while (r < 0 && errno == EINTR && !ffs_stopping(f));
	return r;
}

/* Reads one CCID message (CCID 1.1 section 6.1: a 10-byte header whose dwLength
 * counts the bytes after it) into buf. The first packet holds the header; the
 * rest is read in whole packets, so that a message whose length is a multiple
 * of the packet size needs no zero-length packet. A short packet ends the
 * transfer, even before dwLength is reached. Bytes beyond cap are read and
 * dropped. Returns the bytes stored (the reader answers a cut or short message
 * with an error), or -1. */
static ssize_t read_message(struct ffs *f, uint8_t *buf, size_t cap)
{
	static uint8_t drain[1024];
	size_t mps = packet_size(f->ep_out), recv, stored, total, want;
	uint32_t dw;
	ssize_t r;

	if (mps > sizeof(drain) || mps > cap)
		mps = 64;
	r = read_some(f, buf, mps);
	if (r < (ssize_t)CCID_HEADER)
		return r;
	recv = stored = (size_t)r;
	memcpy(&dw, buf + 1, 4);
	total = CCID_HEADER + (size_t)le32toh(dw);
	if (total > cap)
		ffs_log("bulk OUT: message %02X claims %zu data bytes, at most %zu kept", buf[0],
			total - CCID_HEADER, cap - CCID_HEADER);
	want = mps;
	while (recv < total && (size_t)r == want) {
		want = (total - recv + mps - 1) / mps * mps;   /* whole packets */
		if (want > (cap - stored) / mps * mps)
			want = (cap - stored) / mps * mps;
		if (want > 0) {
			r = read_some(f, buf + stored, want);
			if (r > 0)
				stored += (size_t)r;
		} else {
			want = mps;
			r = read_some(f, drain, want);
		}
		if (r < 0)
			return r;
		recv += (size_t)r;
	}
	if (recv < total)
		ffs_log("bulk OUT: message %02X ended after %zu of %zu bytes", buf[0], recv, total);
	return (ssize_t)stored;
}

static void *bulk_out_thread(void *arg)
{
	struct ffs *f = arg;
	size_t cap = f->profile.max_message + 512;
	uint8_t *buf;
	ssize_t n;

	if (cap > FFS_MAX_OUT_MESSAGE)
		cap = FFS_MAX_OUT_MESSAGE;
	buf = malloc(cap);
	if (buf == NULL) {
		ffs_log("bulk OUT: no memory for %zu bytes", cap);
		return NULL;
	}
	while (!ffs_stopping(f)) {
		n = read_message(f, buf, cap);
		if (n < 0) {
			if (!ffs_quiet_error(errno))
				ffs_log("bulk OUT: read: %s", strerror(errno));
			if (errno != EINTR && !ffs_stopping(f))
				usleep(10000);
			continue;
		}
		if (n < CCID_HEADER) {
			if (n > 0)
				ffs_log("bulk OUT: %zd-byte message, shorter than a CCID header: dropped", n);
			continue;
		}
		ffs_hex(f, "bulk OUT", buf, (size_t)n);
		pthread_mutex_lock(&f->lock);
		f->n_out++;
		vr_bulk_out(f->vr, buf, (size_t)n);
		pthread_cond_broadcast(&f->wake);
		pthread_mutex_unlock(&f->lock);
	}
	free(buf);
	return NULL;
}

/* --- bulk IN and interrupt IN ------------------------------------------------- */

/* Waits until the reader has a message for this endpoint (next() under the
 * lock), polling every IN_POLL_MS in case the reader queues one by itself. */
static size_t wait_message(struct ffs *f, size_t (*next)(struct vreader *, uint8_t *, size_t),
			   uint8_t *buf, size_t cap, unsigned long *count)
{
	struct timespec ts;
	size_t n = 0;

	pthread_mutex_lock(&f->lock);
	while (!ffs_stopping(f)) {
		if (f->enabled) {
			n = next(f->vr, buf, cap);
			if (n > 0) {
				(*count)++;
				break;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += IN_POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&f->wake, &f->lock, &ts);
	}
	pthread_mutex_unlock(&f->lock);
	return n;
}

static int write_all(struct ffs *f, int fd, const uint8_t *buf, size_t n)
{
	ssize_t r;

	do {
		r = write(fd, buf, n);
	} while (r < 0 && errno == EINTR && !ffs_stopping(f));
	if (r < 0)
		return -1;
	if ((size_t)r != n) {
		ffs_log("IN: wrote %zd of %zu bytes", r, n);
		return -1;
	}
	return 0;
}

/* A RDR_to_PC_DataBlock with bmCommandStatus 2 (CCID 1.1 6.2.6: time
 * extension; bStatus is byte 7, the command status its bits 6-7). */
static bool is_time_extension(const uint8_t *m, size_t n)
{
	return n >= CCID_HEADER && m[0] == 0x80 && (m[7] >> 6) == 2;
}

/* The card's time after a time extension: the core queues them all at once,
 * so without this wait the answer would follow at wire speed and a host's
 * timeout would never be tested. bError (byte 8) is the multiplier the
 * reader asked for. ffs_io_stop's SIGUSR1 cuts the wait short. */
static void pace_time_extension(struct ffs *f, const uint8_t *m)
{
	uint64_t ms = (uint64_t)f->time_unit_ms * (m[8] ? m[8] : 1u);
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };

	if (ms > 0 && !ffs_stopping(f))
		nanosleep(&ts, NULL);
}

/* Fault "stall": bulk IN halted before an answer. FunctionFS halts an
 * endpoint when the function does I/O against its direction: a read() on an
 * IN endpoint file sets the halt (usb_ep_set_halt) and fails with EBADMSG
 * (f_fs.c, ffs_epfile_io). The host's bulk IN transfers then fail with a stall
 * (EPIPE) until it sends CLEAR_FEATURE(ENDPOINT_HALT) (USB 2.0 9.4.1), which
 * the UDC answers by itself without telling the function (dummy_hcd does).
 * The answer written next waits in the UDC's queue until then. The halt must
 * come first: dummy_hcd refuses to halt an IN endpoint with a request queued
 * (EAGAIN). A request can be queued even though every write() returned:
 * dummy_hcd completes an IN request of up to 64 bytes at once and keeps its
 * data in a one-request FIFO until the host reads it, so the previous answer
 * may still be there when a host lags one answer behind. Hence the retries,
 * bounded: the host empties the FIFO with its next read. */
#define HALT_RETRY_MS 10
#define HALT_RETRIES 200   /* 2 s */

static void halt_bulk_in(struct ffs *f)
{
	const struct timespec pause = { 0, HALT_RETRY_MS * 1000000L };
	unsigned tries = 0;
	uint8_t byte;
	ssize_t r;

	for (;;) {
		r = read(f->ep_in, &byte, 1);
		if (r < 0 && errno == EINTR && !ffs_stopping(f))
			continue;
		if (!(r < 0 && errno == EAGAIN) || ++tries > HALT_RETRIES || ffs_stopping(f))
			break;
		nanosleep(&pause, NULL);
	}
	if (r < 0 && errno == EBADMSG)
		ffs_log("bulk IN halted (fault stall%s): the answer goes out once the host clears the halt",
			tries > 0 ? ", after the host read the answer before" : "");
	else if (r < 0)
		ffs_log("bulk IN: fault stall: cannot halt the endpoint (%s%s); the answer goes out as usual",
			strerror(errno),
			errno == EAGAIN ? ": the host left an earlier answer unread for 2 s" : "");
	else
		ffs_log("bulk IN: fault stall: a read on the IN endpoint returned %zd bytes instead of "
			"halting it; the answer goes out as usual", r);
}

/* Fault "zlp": a zero-length packet before an answer. A write() of 0 bytes on
 * an endpoint file queues a zero-length request: the host's bulk IN transfer
 * ends with no data, and the answer comes in the next one. */
static void zlp_before_answer(struct ffs *f)
{
	uint8_t none = 0;

	if (write_all(f, f->ep_in, &none, 0) == 0)
		ffs_log("bulk IN: zero-length packet sent before the answer (fault zlp)");
	else if (!ffs_quiet_error(errno))
		ffs_log("bulk IN: fault zlp: zero-length packet: %s", strerror(errno));
}

/* The front-end faults for the answer just taken from the reader (under the
 * lock: the reader is not thread-safe), carried out before it is sent. */
static void front_faults(struct ffs *f)
{
	bool zlp, stall;

	pthread_mutex_lock(&f->lock);
	stall = vr_front_fault(f->vr, VR_FAULT_STALL);
	zlp = vr_front_fault(f->vr, VR_FAULT_ZLP);
	pthread_mutex_unlock(&f->lock);
	if (stall)
		halt_bulk_in(f);
	if (zlp)
		zlp_before_answer(f);
}

static void *bulk_in_thread(void *arg)
{
	struct ffs *f = arg;
	size_t cap = FFS_MAX_OUT_MESSAGE, n, mps;
	uint8_t *buf = malloc(cap);

	if (buf == NULL) {
		ffs_log("bulk IN: no memory for %zu bytes", cap);
		return NULL;
	}
	while (!ffs_stopping(f)) {
		n = wait_message(f, vr_bulk_in, buf, cap, &f->n_in);
		if (n == 0)
			continue;
		front_faults(f);
		ffs_hex(f, "bulk IN", buf, n);
		if (write_all(f, f->ep_in, buf, n) != 0) {
			if (!ffs_quiet_error(errno))
				ffs_log("bulk IN: write of %zu bytes: %s (answer lost)", n,
					strerror(errno));
			continue;
		}
		/* The host reads with a large buffer: a message filling its last
		 * packet needs a zero-length packet to end the transfer. */
		mps = packet_size(f->ep_in);
		if (n % mps == 0 && write_all(f, f->ep_in, buf, 0) != 0 && !ffs_quiet_error(errno))
			ffs_log("bulk IN: zero-length packet: %s", strerror(errno));
		if (is_time_extension(buf, n))
			pace_time_extension(f, buf);
	}
	free(buf);
	return NULL;
}

static void *interrupt_thread(void *arg)
{
	struct ffs *f = arg;
	uint8_t buf[64];
	size_t n;

	while (!ffs_stopping(f)) {
		n = wait_message(f, vr_interrupt_in, buf, sizeof(buf), &f->n_int);
		if (n == 0)
			continue;
		ffs_hex(f, "interrupt IN", buf, n);
		if (write_all(f, f->ep_int, buf, n) != 0 && !ffs_quiet_error(errno))
			ffs_log("interrupt IN: write of %zu bytes: %s (lost)", n, strerror(errno));
	}
	return NULL;
}

/* --- start and stop ----------------------------------------------------------- */

static void on_sigusr1(int sig)
{
	(void)sig;   /* only interrupts a blocking read or write */
}

int ffs_io_start(struct ffs *f)
{
	void *(*fn[4])(void *) = { ffs_ep0_thread, bulk_out_thread, bulk_in_thread, interrupt_thread };
	struct sigaction sa;
	unsigned i, n = f->profile.has_interrupt ? 4 : 3;
	int err;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;   /* no SA_RESTART: blocking I/O returns EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	for (i = 0; i < n; i++) {
		err = pthread_create(&threads[i], NULL, fn[i], f);
		if (err != 0) {
			ffs_log("cannot start thread %u: %s", i, strerror(err));
			return -1;
		}
		started[i] = true;
	}
	return 0;
}

/* Sets stopping and interrupts each thread until it has returned (a signal
 * sent just before it blocks would be missed, hence the repeats). */
void ffs_io_stop(struct ffs *f)
{
	struct timespec ts;
	unsigned i, tries;

	__atomic_store_n(&f->stopping, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&f->lock);
	pthread_cond_broadcast(&f->wake);
	pthread_mutex_unlock(&f->lock);
	for (i = 0; i < 4; i++) {
		if (!started[i])
			continue;
		for (tries = 0; tries < 50; tries++) {
			pthread_kill(threads[i], SIGUSR1);
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			if (pthread_timedjoin_np(threads[i], NULL, &ts) == 0)
				break;
		}
		if (tries == 50)
			ffs_log("thread %u did not stop within 5 s", i);
		started[i] = false;
	}
}
