/*
 * raw_host: a misbehaving USB host for smartcrd-vreader, through libusb with no
 * pcscd. Sends malformed bulk OUT transfers (runts, dwLength larger than the
 * data, a dwLength near 4 GiB, a message larger than dwMaxCCIDMessageLength,
 * lone zero-length packets) and odd class requests, each followed by a
 * well-formed GetSlotStatus: the reader must stay in step (the answer with the
 * GetSlotStatus' bSeq arrives) and keep running. Also sends messages that end
 * exactly on a packet boundary without a zero-length packet, which the reader
 * must take as whole messages.
 *
 * It runs in the test guest (tests/vm/scenarios/vreader.sh, "raw-host" check),
 * built by tests/vm/setup.sh. Usage: raw_host VID:PID
 * Last line: "raw_host: N passed, M failed"; exit 0 only when nothing failed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libusb.h>

#define TIMEOUT_MS 2000

struct host {
	libusb_device_handle *h;
	uint8_t ep_out, ep_in;
	uint16_t mps;
	uint8_t seq;
	unsigned passed, failed;
};

static void check(struct host *t, bool ok, const char *what)
{
	if (ok) {
		t->passed++;
		printf("raw_host: %s ok\n", what);
	} else {
		t->failed++;
		printf("FAIL %s\n", what);
	}
}

static int send_raw(struct host *t, const uint8_t *b, int n)
{
	int done = 0, rc = libusb_bulk_transfer(t->h, t->ep_out, (uint8_t *)b, n, &done, TIMEOUT_MS);

	return rc == 0 && done == n ? 0 : -1;
}

/* A header: type, dwLength, slot 0, bSeq, three zero bytes. */
static void header(uint8_t *b, uint8_t type, uint32_t dw, uint8_t seq)
{
	memset(b, 0, 10);
	b[0] = type;
	b[1] = (uint8_t)dw;
	b[2] = (uint8_t)(dw >> 8);
	b[3] = (uint8_t)(dw >> 16);
	b[4] = (uint8_t)(dw >> 24);
	b[6] = seq;
}

/* Reads answers until the one with bSeq seq (answers to malformed messages, if
 * any, come first). Copies it to out; returns its length or -1. */
static int answer_for(struct host *t, uint8_t seq, uint8_t *out, int cap)
{
	static uint8_t buf[65536 + 64];
	int i, n, rc;

	for (i = 0; i < 8; i++) {
		rc = libusb_bulk_transfer(t->h, t->ep_in, buf, sizeof(buf), &n, TIMEOUT_MS);
		if (rc != 0)
			return -1;
		if (n >= 10 && buf[6] == seq) {
			if (n > cap)
				n = cap;
			memcpy(out, buf, (size_t)n);
			return n;
		}
	}
	return -1;
}

/* A GetSlotStatus; true when its SlotStatus comes back in step. */
static bool in_step(struct host *t)
{
	uint8_t m[10], a[64];
	uint8_t seq = t->seq++;
	int n;

	header(m, 0x65, 0, seq);
	if (send_raw(t, m, 10) != 0)
		return false;
	n = answer_for(t, seq, a, sizeof(a));
	return n >= 10 && a[0] == 0x81;
}

/* XfrBlock with an APDU; true when the DataBlock ends with sw. */
static bool xfr(struct host *t, const uint8_t *apdu, int len, uint16_t sw)
{
	static uint8_t m[10 + 300], a[300];
	uint8_t seq = t->seq++;
	int n;

	header(m, 0x6F, (uint32_t)len, seq);
	memcpy(m + 10, apdu, (size_t)len);
	if (send_raw(t, m, 10 + len) != 0)
		return false;
	n = answer_for(t, seq, a, sizeof(a));
	return n >= 12 && a[0] == 0x80 && a[n - 2] == (sw >> 8) && a[n - 1] == (sw & 0xFF);
}

static void malformed(struct host *t)
{
	uint8_t m[400];

	memset(m, 0, sizeof(m));
	send_raw(t, m, 5);   /* runt: less than a header */
	check(t, in_step(t), "runt of 5 bytes");

	header(m, 0x65, 100, t->seq++);   /* dwLength 100, no data */
	send_raw(t, m, 10);
	check(t, in_step(t), "dwLength larger than the data");

	header(m, 0x6F, 0xFFFFFFF0u, t->seq++);
	send_raw(t, m, 30);
	check(t, in_step(t), "dwLength near 4 GiB");

	header(m, 0x6F, 390, t->seq++);   /* more than dwMaxCCIDMessageLength 271 */
	send_raw(t, m, 400);
	check(t, in_step(t), "message larger than dwMaxCCIDMessageLength");

	send_raw(t, m, 0);   /* a lone zero-length packet */
	check(t, in_step(t), "zero-length packet");
}

static void control(struct host *t)
{
	uint8_t d[4096];
	int rc;

	rc = libusb_control_transfer(t->h, 0xA1, 0x02, 0, 0, d, sizeof(d), TIMEOUT_MS);
	check(t, rc >= 0 || rc == LIBUSB_ERROR_PIPE, "GET_CLOCK_FREQUENCIES with wLength 4096");
	rc = libusb_control_transfer(t->h, 0xA1, 0x7E, 0, 0, d, 8, TIMEOUT_MS);
	check(t, rc == LIBUSB_ERROR_PIPE, "unknown class request stalls");
	rc = libusb_control_transfer(t->h, 0x21, 0x7F, 0, 0, d, 16, TIMEOUT_MS);
	check(t, rc == LIBUSB_ERROR_PIPE, "unknown OUT class request with data stalls");
	check(t, in_step(t), "in step after control requests");
}

/* Messages that end on a packet boundary, sent without a zero-length packet. */
static void packet_boundaries(struct host *t)
{
	static const uint8_t select[] = { 0x00, 0xA4, 0x04, 0x00, 0x06,
					  0xA0, 0x00, 0x00, 0x00, 0x18, 0xFF };
	uint8_t m[10], a[64], apdu[5 + 246];
	uint8_t seq = t->seq++;
	int k, lc;

	header(m, 0x62, 0, seq);   /* IccPowerOn */
	check(t, send_raw(t, m, 10) == 0 && answer_for(t, seq, a, sizeof(a)) > 10, "power on");
	check(t, xfr(t, select, sizeof(select), 0x9000), "select the test applet");
	for (k = 1; k <= 4; k++) {
		char what[64];

		/* 10 + 5 + lc = k * mps */
		lc = k * t->mps - 15;
		if (lc < 1 || lc > 246)
			continue;
		apdu[0] = 0x80;
		apdu[1] = 0x32;
		apdu[2] = 0;
		apdu[3] = 0;
		apdu[4] = (uint8_t)lc;
		for (int i = 0; i < lc; i++)
			apdu[5 + i] = (uint8_t)i;
		snprintf(what, sizeof(what), "%d-byte message (%d packets, no ZLP)", 15 + lc, k);
		check(t, xfr(t, apdu, 5 + lc, 0x9000), what);
	}
}

static int open_device(struct host *t, uint16_t vid, uint16_t pid)
{
	struct libusb_config_descriptor *cfg;
	const struct libusb_interface_descriptor *id;
	int i;

	t->h = libusb_open_device_with_vid_pid(NULL, vid, pid);
	if (t->h == NULL) {
		printf("raw_host: cannot open %04x:%04x\n", vid, pid);
		return -1;
	}
	if (libusb_get_active_config_descriptor(libusb_get_device(t->h), &cfg) != 0)
		return -1;
	id = &cfg->interface[0].altsetting[0];
	for (i = 0; i < id->bNumEndpoints; i++) {
		const struct libusb_endpoint_descriptor *e = &id->endpoint[i];

		if ((e->bmAttributes & 3) != LIBUSB_TRANSFER_TYPE_BULK)
			continue;
		if (e->bEndpointAddress & 0x80) {
			t->ep_in = e->bEndpointAddress;
		} else {
			t->ep_out = e->bEndpointAddress;
			t->mps = e->wMaxPacketSize;
		}
	}
	libusb_free_config_descriptor(cfg);
	if (t->ep_in == 0 || t->ep_out == 0 || t->mps == 0) {
		printf("raw_host: no bulk endpoints\n");
		return -1;
	}
	return libusb_claim_interface(t->h, 0) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct host t;
	unsigned vid, pid;

	memset(&t, 0, sizeof(t));
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 2 || sscanf(argv[1], "%x:%x", &vid, &pid) != 2) {
		fprintf(stderr, "usage: raw_host VID:PID\n");
		return 2;
	}
	if (libusb_init(NULL) != 0 || open_device(&t, (uint16_t)vid, (uint16_t)pid) != 0) {
		printf("raw_host: 0 passed, 1 failed\n");
		return 1;
	}
	check(&t, in_step(&t), "GetSlotStatus");
	malformed(&t);
	control(&t);
	packet_boundaries(&t);
	libusb_release_interface(t.h, 0);
	libusb_close(t.h);
	libusb_exit(NULL);
	printf("raw_host: %u passed, %u failed\n", t.passed, t.failed);
	return t.failed == 0 ? 0 : 1;
}
