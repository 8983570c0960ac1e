/*
 * applet_sweep: a PC/SC client of the virtual test bed for the virtual reader
 * (sim/, smartcrd-vreader) and its built-in test applet (sim/README.md). Sends
 * the applet's commands for every short length, and for extended lengths where
 * the reader's level allows, and checks every byte of every answer.
 *
 *   SELECT 00 A4 04 00 06 A0 00 00 00 18 FF             -> 90 00
 *   80 34 P1 P2 Le   (P1P2 = 1..256, Le = P1P2 mod 256) -> 00 01 .. (P1P2 bytes) 90 00
 *   80 32 00 00 Lc 00 01 .. (Lc = 1..255)               -> 90 00
 *   80 36 P1 P2 Lc 00 01 ..                             -> P1P2 bytes 00 01 .. 90 00, or
 *        over T=0 at TPDU level (-g): 61 xx, then 00 C0 00 00 xx -> the bytes, 90 00
 *   -x: 80 00 04 V 00 Lh Ll                              -> Lh*256+Ll bytes of V, 90 00
 *       80 12 01 80 00 Lh Ll <that many bytes>           -> 90 00
 *   -E (instead of the sweep): 80 38 00 xx (xx = 1, 4, 12), the card takes
 *       time -> 90 00; the reader sends xx time extensions first (or the card
 *       asks S(WTX) / sends NULL bytes); -w MS: each must really take MS ms
 *       (smartcrd-vreader --time-unit-ms), so the answer may not come before
 *       xx * MS ms
 *   -c SOCKET: card removal and insertion through smartcrd-vreader's control
 *       socket, seen by SCardGetStatusChange, -n CYCLES times (default 5),
 *       then the applet selected again. Each event's latency (control command
 *       -> SCardGetStatusChange return) is printed, then "applet_sweep: event
 *       latency: removal R ms, insertion I ms (median of N/N), max R/I ms";
 *       timing never fails the check.
 *   -F FAULT[,FAULT...] (with -c; instead of the sweep): for each fault, "fault
 *       FAULT 1" on the control socket ("fault NAME N" for FAULT = NAME_N, the
 *       fault on for N uses), one APDU (80 34 00 10 10) that must
 *       end in an error or the correct answer within -T seconds (a hang is
 *       reported and ends the program), "fault off", then three APDUs that
 *       must work (the host is back in step; one reconnect is allowed when
 *       PC/SC reports the card reset or removed). One line per fault:
 *       "PASS fault FAULT: ..." or "FAIL fault FAULT: ...". FAULT "hwerror"
 *       is no fault of the reader's list but the control command "hwerror 0"
 *       (a RDR_to_PC_HardwareError on the interrupt endpoint), checked the
 *       same way.
 *
 * It runs in the test guest (tests/vm/scenarios/vreader.sh); it is built on
 * the host by tests/vm/setup.sh. Usage:
 *   applet_sweep [-r READER_SUBSTRING] [-x] [-g] [-w MS] [-c SOCKET [-n CYCLES]] [-t SECONDS] [-v]
 *   applet_sweep [-r READER_SUBSTRING] -E [-w MS] [-v]
 *   applet_sweep [-r READER_SUBSTRING] -c SOCKET -F FAULT[,FAULT...] [-T SECONDS] [-v]
 * Last line: "applet_sweep: N passed, M failed" (checks); exit 0 only when
 * nothing failed.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <winscard.h>

#define MAX_RESP (65536 + 2)
#define MAX_CMD (7 + 65535 + 2)
#define MAX_FAILURE_LINES 30
#define MAX_CONSECUTIVE_ERRORS 10

struct sweep {
	SCARDCONTEXT ctx;
	SCARDHANDLE card;
	char reader[4096];
	DWORD proto;
	bool verbose;
	double deadline;
	unsigned long passed, failed;
	unsigned consecutive_errors;
	bool gave_up;
	uint8_t *resp;
	DWORD resp_len;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void hex(const uint8_t *p, size_t n, size_t max)
{
	size_t i;

	for (i = 0; i < n && i < max; i++)
		printf("%02X", p[i]);
	if (n > max)
		printf("...(%zu bytes)", n);
}

static void fail(struct sweep *s, const char *what, const uint8_t *cmd, size_t cmd_len,
		 const char *why)
{
	s->failed++;
	if (s->failed > MAX_FAILURE_LINES)
		return;
	printf("FAIL %s: ", what);
	hex(cmd, cmd_len, 12);
	printf(": %s; got ", why);
	hex(s->resp, s->resp_len, 24);
	printf("\n");
	if (s->failed == MAX_FAILURE_LINES)
		printf("(further failures are only counted)\n");
}

static bool stop(const struct sweep *s)
{
	return s->gave_up || now_s() > s->deadline;
}

/*
 * Sends cmd and checks the answer: want_len data bytes, status word want_sw,
 * and data equal to want (NULL: not checked). Counts one check.
 */
static bool xfer(struct sweep *s, const char *what, const uint8_t *cmd, size_t cmd_len,
		 const uint8_t *want, size_t want_len, uint16_t want_sw)
{
	const SCARD_IO_REQUEST *pci = s->proto == SCARD_PROTOCOL_T1 ? SCARD_PCI_T1 : SCARD_PCI_T0;
	char why[160];
	size_t dlen, i;
	uint16_t sw;
	LONG rv;

	s->resp_len = MAX_RESP;
	rv = SCardTransmit(s->card, pci, cmd, (DWORD)cmd_len, NULL, s->resp, &s->resp_len);
	if (rv != SCARD_S_SUCCESS) {
		s->resp_len = 0;
		snprintf(why, sizeof(why), "SCardTransmit: %s (0x%08lX)", pcsc_stringify_error(rv),
			 (unsigned long)rv);
		fail(s, what, cmd, cmd_len, why);
		if (++s->consecutive_errors >= MAX_CONSECUTIVE_ERRORS) {
			printf("applet_sweep: %u transmit errors in a row, giving up\n",
			       s->consecutive_errors);
			s->gave_up = true;
		}
		return false;
	}
	s->consecutive_errors = 0;
	if (s->verbose) {
		printf("> ");
		hex(cmd, cmd_len, 12);
		printf("  < ");
		hex(s->resp, s->resp_len, 12);
		printf("\n");
	}
	if (s->resp_len < 2) {
		fail(s, what, cmd, cmd_len, "answer shorter than a status word");
		return false;
	}
	dlen = s->resp_len - 2;
	sw = (uint16_t)(s->resp[dlen] << 8 | s->resp[dlen + 1]);
	if (dlen != want_len || sw != want_sw) {
		snprintf(why, sizeof(why), "expected %zu data bytes + %04X, got %zu + %04X", want_len,
			 want_sw, dlen, sw);
		fail(s, what, cmd, cmd_len, why);
		return false;
	}
	for (i = 0; want != NULL && i < dlen; i++) {
		if (s->resp[i] != want[i]) {
			snprintf(why, sizeof(why), "data byte %zu is %02X, expected %02X", i,
				 s->resp[i], want[i]);
			fail(s, what, cmd, cmd_len, why);
			return false;
		}
	}
	s->passed++;
	return true;
}

static const uint8_t counting[256] = {
#define C4(n) (n), (n) + 1, (n) + 2, (n) + 3
#define C16(n) C4(n), C4((n) + 4), C4((n) + 8), C4((n) + 12)
#define C64(n) C16(n), C16((n) + 16), C16((n) + 32), C16((n) + 48)
	C64(0), C64(64), C64(128), C64(192)
};

static bool select_applet(struct sweep *s)
{
	static const uint8_t sel[] = { 0x00, 0xA4, 0x04, 0x00, 0x06,
				       0xA0, 0x00, 0x00, 0x00, 0x18, 0xFF };

	return xfer(s, "select", sel, sizeof(sel), NULL, 0, 0x9000);
}

/* 80 34: the card sends P1P2 bytes 00 01 .. (Le = P1P2 mod 256). */
static void sweep_out(struct sweep *s)
{
	uint8_t cmd[5] = { 0x80, 0x34 };
	unsigned n;

	for (n = 1; n <= 256 && !stop(s); n++) {
		cmd[2] = (uint8_t)(n >> 8);
		cmd[3] = (uint8_t)n;
		cmd[4] = (uint8_t)n;
		xfer(s, "80 34", cmd, sizeof(cmd), counting, n, 0x9000);
	}
}

/* 80 32: the card receives Lc bytes 00 01 .. and checks them. */
static void sweep_in(struct sweep *s)
{
	uint8_t cmd[5 + 255] = { 0x80, 0x32, 0x00, 0x00 };
	unsigned n;

	memcpy(cmd + 5, counting, 255);
	for (n = 1; n <= 255 && !stop(s); n++) {
		cmd[4] = (uint8_t)n;
		xfer(s, "80 32", cmd, 5 + n, NULL, 0, 0x9000);
	}
}

/* 80 36: P1P2 bytes back; over T=0 at TPDU level 61 xx then GET RESPONSE. */
static void get_response(struct sweep *s, bool t0_tpdu)
{
	static const unsigned lens[] = { 1, 2, 63, 64, 100, 200, 254, 255, 256 };
	uint8_t cmd[5 + 4] = { 0x80, 0x36, 0, 0, 4, 0x00, 0x01, 0x02, 0x03 };
	uint8_t gr[5] = { 0x00, 0xC0, 0x00, 0x00, 0 };
	size_t i;
	unsigned n;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]) && !stop(s); i++) {
		n = lens[i];
		cmd[2] = (uint8_t)(n >> 8);
		cmd[3] = (uint8_t)n;
		if (!t0_tpdu) {
			xfer(s, "80 36", cmd, sizeof(cmd), counting, n, 0x9000);
			continue;
		}
		if (!xfer(s, "80 36 (61xx)", cmd, sizeof(cmd), NULL, 0, (uint16_t)(0x6100 | (n & 0xFF))))
			continue;
		gr[4] = (uint8_t)n;
		xfer(s, "GET RESPONSE", gr, sizeof(gr), counting, n, 0x9000);
	}
}

/* 80 38 00 xx: the card takes xx units of time, the host must wait them out
 * (CCID time extensions, T=1 WTX or T=0 NULL bytes, as the level has it).
 * unit_ms > 0: the answer may not come earlier than xx units. */
static void time_taking(struct sweep *s, unsigned unit_ms)
{
	static const uint8_t units[] = { 1, 4, 12 };
	uint8_t cmd[4] = { 0x80, 0x38, 0x00, 0 };
	double t, took, least;
	size_t i;

	for (i = 0; i < sizeof(units) && !stop(s); i++) {
		cmd[3] = units[i];
		t = now_s();
		if (!xfer(s, "80 38 (time extension)", cmd, sizeof(cmd), NULL, 0, 0x9000))
			continue;
		took = now_s() - t;
		least = units[i] * unit_ms / 1000.0;
		printf("applet_sweep: 80 38 00 %02X answered 90 00 after %.2f s\n", units[i], took);
		if (took + 0.005 < least) {
			/* xfer counted a pass; the timing check turns it into a failure */
			s->passed--;
			fail(s, "80 38 (time extension)", cmd, sizeof(cmd),
			     "answered before the time the card takes: no real time extension");
		}
	}
}

static const unsigned ext_lens[] = { 1, 255, 256, 257, 258, 511, 512, 1000, 4095,
				     4096, 10000, 32768, 65534, 65535 };
#define N_EXT (sizeof(ext_lens) / sizeof(ext_lens[0]))

/* 80 00 04 V 00 Lh Ll: Lh*256+Ll bytes of value V. */
static void extended_out(struct sweep *s, uint8_t *want)
{
	uint8_t cmd[7] = { 0x80, 0x00, 0x04, 0, 0x00 };
	size_t i;
	unsigned n;

	for (i = 0; i < N_EXT && !stop(s); i++) {
		n = ext_lens[i];
		cmd[3] = (uint8_t)(0x11 * (i + 1));
		cmd[5] = (uint8_t)(n >> 8);
		cmd[6] = (uint8_t)n;
		memset(want, cmd[3], n);
		xfer(s, "80 00 (extended Le)", cmd, sizeof(cmd), want, n, 0x9000);
	}
}

/* 80 12 01 80 00 Lh Ll data: the card takes that many bytes. */
static void extended_in(struct sweep *s, uint8_t *cmd)
{
	size_t i, k;
	unsigned n;

	cmd[0] = 0x80;
	cmd[1] = 0x12;
	cmd[2] = 0x01;
	cmd[3] = 0x80;
	cmd[4] = 0x00;
	for (k = 0; k < 65535; k++)
		cmd[7 + k] = (uint8_t)k;
	for (i = 0; i < N_EXT && !stop(s); i++) {
		n = ext_lens[i];
		cmd[5] = (uint8_t)(n >> 8);
		cmd[6] = (uint8_t)n;
		xfer(s, "80 12 (extended Lc)", cmd, 7 + n, NULL, 0, 0x9000);
	}
}

/* --- card events through the control socket --------------------------------- */

static int control(const char *path, const char *cmd)
{
	struct sockaddr_un sa;
	char line[256];
	ssize_t n;
	int fd, rc = -1;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	snprintf(line, sizeof(line), "%s\n", cmd);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    write(fd, line, strlen(line)) == (ssize_t)strlen(line)) {
		n = read(fd, line, sizeof(line) - 1);
		if (n > 0) {
			line[n] = '\0';
			rc = strncmp(line, "ok", 2) == 0 ? 0 : -1;
			if (rc != 0)
				printf("applet_sweep: control '%s': %s", cmd, line);
		}
	} else {
		printf("applet_sweep: control socket %s: %s\n", path, strerror(errno));
	}
	close(fd);
	return rc;
}

/*
 * One card event and how long pcscd took to report it: the reader's state is
 * read first (SCardGetStatusChange with SCARD_STATE_UNAWARE answers at once),
 * then the control command goes out and SCardGetStatusChange waits for the
 * change. The latency runs from just before the command to the return that
 * shows flag set (want) or clear: the control socket, the reader's
 * NotifySlotChange, the driver, pcscd (on insertion also the card's power-up,
 * as applications see it). Returns it in ms, or -1 (with a line saying why).
 */
static double event_ms(struct sweep *s, const char *sock, const char *cmd, DWORD flag, bool want,
		       unsigned secs)
{
	SCARD_READERSTATE st;
	double t0, end;
	LONG rv;

	memset(&st, 0, sizeof(st));
	st.szReader = s->reader;
	st.dwCurrentState = SCARD_STATE_UNAWARE;
	rv = SCardGetStatusChange(s->ctx, 0, &st, 1);
	if (rv != SCARD_S_SUCCESS) {
		printf("applet_sweep: SCardGetStatusChange (current state): %s\n", pcsc_stringify_error(rv));
		return -1;
	}
	if (((st.dwEventState & flag) != 0) == want) {
		printf("applet_sweep: '%s': the reader is already in that state (0x%lX)\n", cmd,
		       (unsigned long)st.dwEventState);
		return -1;
	}
	st.dwCurrentState = st.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
	t0 = now_s();
	end = t0 + secs;
	if (control(sock, cmd) != 0)
		return -1;
	while (now_s() < end) {
		rv = SCardGetStatusChange(s->ctx, (DWORD)((end - now_s()) * 1000) + 1, &st, 1);
		if (rv == (LONG)SCARD_E_TIMEOUT)
			break;
		if (rv != SCARD_S_SUCCESS) {
			printf("applet_sweep: SCardGetStatusChange: %s\n", pcsc_stringify_error(rv));
			return -1;
		}
		if (((st.dwEventState & flag) != 0) == want)
			return (now_s() - t0) * 1000.0;
		st.dwCurrentState = st.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
	}
	printf("applet_sweep: '%s': no change seen within %u s (state 0x%lX)\n", cmd, secs,
	       (unsigned long)st.dwEventState);
	return -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median and maximum of n > 0 values (sorts them). */
static void median_max(double *v, unsigned n, double *median, double *max)
{
	qsort(v, n, sizeof(*v), cmp_double);
	*median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	*max = v[n - 1];
}

static void event_check(struct sweep *s, const char *name, double ms)
{
	if (ms >= 0) {
		s->passed++;
		printf("applet_sweep: %s ok in %.1f ms\n", name, ms);
	} else {
		s->failed++;
		printf("FAIL %s\n", name);
	}
}

static int connect_card(struct sweep *s);

#define EVENT_CYCLES_MAX 50
#define EVENT_SETTLE_US 250000   /* between events: pcscd done with the last one */

/*
 * cycles removals and insertions through the control socket, each seen by
 * SCardGetStatusChange, with their latencies; then the applet selected again.
 * Timing never fails a check (the guest runs under TCG, on a loaded machine):
 * the figures are printed, "applet_sweep: event latency ...".
 */
static void card_events(struct sweep *s, const char *sock, unsigned cycles)
{
	double rm[EVENT_CYCLES_MAX], ins[EVENT_CYCLES_MAX], ms, rm_med, rm_max, ins_med, ins_max;
	unsigned i, n_rm = 0, n_ins = 0;

	SCardDisconnect(s->card, SCARD_LEAVE_CARD);
	for (i = 0; i < cycles; i++) {
		ms = event_ms(s, sock, "remove 0", SCARD_STATE_EMPTY, true, 15);
		event_check(s, "removal seen", ms);
		if (ms < 0)
			break;   /* the next insertion would find the card in */
		rm[n_rm++] = ms;
		usleep(EVENT_SETTLE_US);
		ms = event_ms(s, sock, "insert 0", SCARD_STATE_PRESENT, true, 15);
		event_check(s, "insertion seen", ms);
		if (ms < 0)
			break;
		ins[n_ins++] = ms;
		usleep(EVENT_SETTLE_US);
	}
	if (n_rm > 0 && n_ins > 0) {
		median_max(rm, n_rm, &rm_med, &rm_max);
		median_max(ins, n_ins, &ins_med, &ins_max);
		printf("applet_sweep: event latency: removal %.0f ms, insertion %.0f ms (median of %u/%u), "
		       "max %.0f/%.0f ms\n", rm_med, ins_med, n_rm, n_ins, rm_max, ins_max);
	}
	if (connect_card(s) == 0)
		select_applet(s);
	else
		s->failed++;
}

static int connect_card(struct sweep *s)
{
	LONG rv;

	rv = SCardConnect(s->ctx, s->reader, SCARD_SHARE_EXCLUSIVE,
			  SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &s->card, &s->proto);
	if (rv != SCARD_S_SUCCESS) {
		printf("applet_sweep: SCardConnect(%s): %s\n", s->reader, pcsc_stringify_error(rv));
		return -1;
	}
	printf("applet_sweep: connected to '%s' with T=%d\n", s->reader,
	       s->proto == SCARD_PROTOCOL_T1 ? 1 : 0);
	return 0;
}

static int find_reader(struct sweep *s, const char *want)
{
	char readers[4096], *name;
	DWORD len = sizeof(readers);
	LONG rv;

	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &s->ctx);
	if (rv != SCARD_S_SUCCESS) {
		printf("applet_sweep: SCardEstablishContext: %s\n", pcsc_stringify_error(rv));
		return -1;
	}
	rv = SCardListReaders(s->ctx, NULL, readers, &len);
	if (rv != SCARD_S_SUCCESS) {
		printf("applet_sweep: SCardListReaders: %s\n", pcsc_stringify_error(rv));
		return -1;
	}
	for (name = readers; *name != '\0'; name += strlen(name) + 1) {
		if (want == NULL || strstr(name, want) != NULL)
			break;
	}
	if (*name == '\0') {
		printf("applet_sweep: no reader matching '%s'\n", want ? want : "");
		return -1;
	}
	snprintf(s->reader, sizeof(s->reader), "%s", name);
	return 0;
}

/* --- faults on demand (-F) -------------------------------------------------- */

static char hang_msg[256];

static void on_alarm(int sig)
{
	ssize_t w;

	(void)sig;
	w = write(STDOUT_FILENO, hang_msg, strlen(hang_msg));
	(void)w;
	_exit(1);
}

/* One APDU 80 34 00 10 10 (16 bytes 00..0F, 90 00). Returns the PC/SC result;
 * *good tells whether the answer was the right one. Never blocks longer than
 * secs: a hang writes hang_msg and ends the program. */
static LONG probe(struct sweep *s, unsigned secs, bool *good)
{
	static const uint8_t cmd[5] = { 0x80, 0x34, 0x00, 0x10, 0x10 };
	const SCARD_IO_REQUEST *pci = s->proto == SCARD_PROTOCOL_T1 ? SCARD_PCI_T1 : SCARD_PCI_T0;
	LONG rv;

	s->resp_len = MAX_RESP;
	alarm(secs);
	rv = SCardTransmit(s->card, pci, cmd, sizeof(cmd), NULL, s->resp, &s->resp_len);
	alarm(0);
	*good = rv == SCARD_S_SUCCESS && s->resp_len == 18 && s->resp[16] == 0x90 &&
		s->resp[17] == 0x00 && memcmp(s->resp, counting, 16) == 0;
	if (rv != SCARD_S_SUCCESS)
		s->resp_len = 0;
	return rv;
}

static bool card_reset_or_gone(LONG rv)
{
	return rv == (LONG)SCARD_W_RESET_CARD || rv == (LONG)SCARD_W_REMOVED_CARD ||
	       rv == (LONG)SCARD_W_UNPOWERED_CARD || rv == (LONG)SCARD_E_INVALID_HANDLE;
}

/* After the fault: three APDUs must work; one reconnect is allowed when PC/SC
 * says the card was reset or removed (the host may reset a card it lost step
 * with). Writes what happened into note. */
static bool back_in_step(struct sweep *s, const char *name, unsigned secs, char *note, size_t cap)
{
	DWORD proto;
	bool good = false, reconnected = false;
	LONG rv;
	int i;

	note[0] = '\0';
	for (i = 0; i < 3; i++) {
		snprintf(hang_msg, sizeof(hang_msg),
			 "FAIL fault %s: APDU %d after the fault: no answer within %u s (hang)\n"
			 "applet_sweep: %lu passed, %lu failed\n", name, i + 1, secs,
			 s->passed, s->failed + 1);
		rv = probe(s, secs, &good);
		if (card_reset_or_gone(rv) && !reconnected) {
			reconnected = true;
			alarm(secs);
			rv = SCardReconnect(s->card, SCARD_SHARE_EXCLUSIVE,
					    SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_LEAVE_CARD, &proto);
			alarm(0);
			if (rv != SCARD_S_SUCCESS) {
				snprintf(note, cap, "reconnect failed: %s", pcsc_stringify_error(rv));
				return false;
			}
			s->proto = proto;
			if (!select_applet(s)) {
				snprintf(note, cap, "SELECT after the reconnect failed");
				return false;
			}
			s->passed--;   /* select_applet counted itself */
			i = -1;
			continue;
		}
		if (rv != SCARD_S_SUCCESS) {
			snprintf(note, cap, "APDU %d after the fault: %s (0x%08lX)", i + 1,
				 pcsc_stringify_error(rv), (unsigned long)rv);
			return false;
		}
		if (!good) {
			snprintf(note, cap, "APDU %d after the fault: wrong answer (%lu bytes)", i + 1,
				 (unsigned long)s->resp_len);
			return false;
		}
	}
	snprintf(note, cap, "3 APDUs ok after it%s", reconnected ? " (after a reconnect: card reset)" : "");
	return true;
}

static void one_fault(struct sweep *s, const char *sock, const char *name, unsigned secs)
{
	char cmd[96], during[160], after[160];
	bool good = false, ok;
	double t;
	LONG rv;

	const char *count = strrchr(name, '_');

	/* NAME_N: the fault for the next N uses, NAME: for the next one;
	 * "hwerror": the control command of that name, for slot 0 */
	if (strcmp(name, "hwerror") == 0)
		snprintf(cmd, sizeof(cmd), "hwerror 0");
	else if (count != NULL)
		snprintf(cmd, sizeof(cmd), "fault %.*s %s", (int)(count - name), name, count + 1);
	else
		snprintf(cmd, sizeof(cmd), "fault %s 1", name);
	if (control(sock, cmd) != 0) {
		s->failed++;
		printf("FAIL fault %s: the control socket refused '%s'\n", name, cmd);
		return;
	}
	snprintf(hang_msg, sizeof(hang_msg),
		 "FAIL fault %s: no answer within %u s (hang)\napplet_sweep: %lu passed, %lu failed\n",
		 name, secs, s->passed, s->failed + 1);
	t = now_s();
	rv = probe(s, secs, &good);
	t = now_s() - t;
	if (rv != SCARD_S_SUCCESS)
		snprintf(during, sizeof(during), "error %s (0x%08lX) after %.1f s",
			 pcsc_stringify_error(rv), (unsigned long)rv, t);
	else
		snprintf(during, sizeof(during), "%s answer after %.1f s",
			 good ? "correct" : "WRONG", t);
	if (control(sock, "fault off") != 0) {
		s->failed++;
		printf("FAIL fault %s: the control socket refused 'fault off'\n", name);
		return;
	}
	ok = back_in_step(s, name, secs, after, sizeof(after));
	if (rv == SCARD_S_SUCCESS && !good)
		ok = false;   /* a corrupt answer was passed on as good */
	if (ok)
		s->passed++;
	else
		s->failed++;
	printf("%s fault %s: %s; %s\n", ok ? "PASS" : "FAIL", name, during, after);
}

static void faults(struct sweep *s, const char *sock, char *list, unsigned secs)
{
	struct sigaction sa;
	char *save = NULL, *name;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	for (name = strtok_r(list, ",", &save); name != NULL; name = strtok_r(NULL, ",", &save))
		one_fault(s, sock, name, secs);
}

static void usage(void)
{
	fprintf(stderr, "usage: applet_sweep [-r READER_SUBSTRING] [-x] [-g] [-w MS] [-c SOCKET [-n CYCLES]] "
			"[-t SECONDS] [-v]\n"
			"       applet_sweep [-r READER_SUBSTRING] -E [-w MS] [-v]\n"
			"       applet_sweep [-r READER_SUBSTRING] -c SOCKET -F FAULT[,FAULT...] "
			"[-T SECONDS] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sweep s;
	const char *want = NULL, *sock = NULL;
	char *fault_list = NULL;
	unsigned fault_secs = 30;
	bool extended = false, t0_tpdu = false, time_only = false;
	unsigned seconds = 240, unit_ms = 0, cycles = 5;
	uint8_t *buf;
	double t0;
	int opt;

	memset(&s, 0, sizeof(s));
	while ((opt = getopt(argc, argv, "r:xgEw:c:n:t:F:T:v")) != -1) {
		switch (opt) {
		case 'r': want = optarg; break;
		case 'x': extended = true; break;
		case 'g': t0_tpdu = true; break;
		case 'E': time_only = true; break;
		case 'w': unit_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'c': sock = optarg; break;
		case 'n': cycles = (unsigned)strtoul(optarg, NULL, 10); break;
		case 't': seconds = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'F': fault_list = optarg; break;
		case 'T': fault_secs = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'v': s.verbose = true; break;
		default: usage();
		}
	}
	if (optind != argc || seconds == 0 || fault_secs == 0 || (fault_list != NULL && sock == NULL) ||
	    cycles == 0 || cycles > EVENT_CYCLES_MAX)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	s.resp = malloc(MAX_RESP);
	buf = malloc(MAX_CMD);
	if (s.resp == NULL || buf == NULL)
		return 2;
	if (find_reader(&s, want) != 0 || connect_card(&s) != 0) {
		printf("applet_sweep: 0 passed, 1 failed\n");
		return 1;
	}
	t0 = now_s();
	s.deadline = t0 + seconds;
	if (fault_list != NULL || time_only) {
		if (select_applet(&s)) {
			if (time_only)
				time_taking(&s, unit_ms);
			else
				faults(&s, sock, fault_list, fault_secs);
		}
		SCardDisconnect(s.card, SCARD_LEAVE_CARD);
		SCardReleaseContext(s.ctx);
		printf("applet_sweep: %lu passed, %lu failed\n", s.passed, s.failed);
		free(buf);
		free(s.resp);
		return s.failed == 0 ? 0 : 1;
	}
	if (select_applet(&s)) {
		sweep_out(&s);
		sweep_in(&s);
		get_response(&s, t0_tpdu);
		if (extended && !stop(&s)) {
			extended_out(&s, buf);
			extended_in(&s, buf);
		}
		printf("applet_sweep: sweep of %lu checks in %.1f s\n", s.passed + s.failed,
		       now_s() - t0);
	}
	if (stop(&s))
		printf("applet_sweep: stopped early (%s)\n",
		       s.gave_up ? "reader stopped answering" : "time limit");
	if (sock != NULL)
		card_events(&s, sock, cycles);
	SCardDisconnect(s.card, SCARD_LEAVE_CARD);
	SCardReleaseContext(s.ctx);
	printf("applet_sweep: %lu passed, %lu failed\n", s.passed, s.failed);
	free(buf);
	free(s.resp);
	return s.failed == 0 && !stop(&s) ? 0 : 1;
}
