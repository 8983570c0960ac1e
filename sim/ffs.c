/* smartcrd-vreader: the virtual CCID reader as a USB gadget (FunctionFS on a
 * UDC such as dummy_hcd), so that the kernel, libusb and pcscd see a real USB
 * CCID reader. Usage and the profile keys: sim/README.md, or --help.
 *
 * Start-up order matters (Documentation/usb/functionfs.rst): configfs gadget
 * and functionfs mount, descriptors and strings on ep0, endpoint files open and
 * their threads running, and only then the UDC bound, so that the host never
 * sees a half-made device. Teardown (SIGTERM, SIGINT, "quit") undoes it in
 * reverse. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "ffs.h"
#include "vr_log.h"

#define PROFILE_LINE_MAX 512

void ffs_log(const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	va_list ap;
	char line[1024];

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "smartcrd-vreader %02d:%02d:%02d.%03ld %s\n", tm.tm_hour, tm.tm_min,
		tm.tm_sec, ts.tv_nsec / 1000000L, line);
}

/* A hex dump of a message with -v (the first 64 bytes). */
void ffs_hex(const struct ffs *f, const char *what, const uint8_t *p, size_t n)
{
	char s[3 * 64 + 16];
	size_t i, at = 0;

	if (!f->verbose)
		return;
	for (i = 0; i < n && i < 64; i++)
		at += (size_t)snprintf(s + at, sizeof(s) - at, "%02X ", p[i]);
	if (n > 64)
		snprintf(s + at, sizeof(s) - at, "...");
	ffs_log("%s %zu: %s", what, n, s);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: smartcrd-vreader [options]\n"
		"  --profile FILE      key=value lines (# comments), the keys of -o\n"
		"  -o KEY=VALUE        one profile setting (repeatable; see sim/README.md)\n"
		"  --gadget-name NAME  configfs gadget and functionfs instance (default vreader)\n"
		"  --udc NAME          the UDC to bind (default: the only one in /sys/class/udc)\n"
		"  --control PATH      Unix socket for insert N, remove N, hwerror N,\n"
		"                      fault NAME [COUNT], fault off, unplug, replug,\n"
		"                      status, quit\n"
		"  --no-card SLOT      start with slot SLOT empty (repeatable)\n"
		"  --time-unit-ms MS   real time each time extension stands for (default 100,\n"
		"                      0: none, at most 2000)\n"
		"  -v, --verbose       log every message in hex\n"
		"Needs root, configfs mounted, libcomposite and usb_f_fs loaded.\n");
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* One "key=value" setting; where says where it came from, for the log. */
static int set_one(struct ffs *f, char *kv, const char *where)
{
	char *eq = strchr(kv, '=');
	const char *why = "no reason given";

	if (eq == NULL) {
		ffs_log("%s: '%s' is not key=value", where, kv);
		return -1;
	}
	*eq = '\0';
	if (vr_profile_set(&f->profile, trim(kv), trim(eq + 1), &why) != 0) {
		ffs_log("%s: %s=%s: %s", where, trim(kv), trim(eq + 1), why);
		return -1;
	}
	return 0;
}

static int load_profile(struct ffs *f, const char *path)
{
	char line[PROFILE_LINE_MAX], where[FFS_PATH_MAX + 32], *s;
	unsigned lineno = 0;
	FILE *fp = fopen(path, "r");
	int rc = 0;

	if (fp == NULL) {
		ffs_log("cannot open profile %s: %s", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			ffs_log("%s:%u: line longer than %d bytes", path, lineno, PROFILE_LINE_MAX - 2);
			rc = -1;
			break;
		}
		s = strchr(line, '#');
		if (s != NULL)
			*s = '\0';
		s = trim(line);
		if (*s == '\0')
			continue;
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		rc = set_one(f, s, where);
	}
	fclose(fp);
	return rc;
}

static int copy_name(char *dst, size_t cap, const char *src, const char *what)
{
	if (strlen(src) == 0 || strlen(src) >= cap || strchr(src, '/') != NULL) {
		ffs_log("bad %s '%s' (1..%zu characters, no '/')", what, src, cap - 1);
		return -1;
	}
	strcpy(dst, src);
	return 0;
}

static int parse_options(struct ffs *f, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "profile", required_argument, NULL, 'p' },
		{ "gadget-name", required_argument, NULL, 'g' },
		{ "udc", required_argument, NULL, 'u' },
		{ "control", required_argument, NULL, 'c' },
		{ "no-card", required_argument, NULL, 'n' },
		{ "time-unit-ms", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long slot;
	char *end;
	int opt;

	while ((opt = getopt_long(argc, argv, "o:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (load_profile(f, optarg))
				return -1;
			break;
		case 'o':
			if (set_one(f, optarg, "-o"))
				return -1;
			break;
		case 'g':
			if (copy_name(f->gadget_name, sizeof(f->gadget_name), optarg, "gadget name"))
				return -1;
			break;
		case 'u':
			if (copy_name(f->udc, sizeof(f->udc), optarg, "UDC name"))
				return -1;
			break;
		case 'c':
			if (strlen(optarg) >= sizeof(f->control_path)) {
				ffs_log("control path too long: %s", optarg);
				return -1;
			}
			strcpy(f->control_path, optarg);
			break;
		case 'n':
			slot = strtoul(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || slot >= VR_MAX_SLOTS) {
				ffs_log("--no-card %s: not a slot number 0..%d", optarg, VR_MAX_SLOTS - 1);
				return -1;
			}
			f->no_card[slot] = true;
			break;
		case 't':
			errno = 0;
			slot = strtoul(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || errno != 0 || slot > FFS_TIME_UNIT_MS_MAX) {
				ffs_log("--time-unit-ms %s: not a number of milliseconds 0..%u", optarg,
					FFS_TIME_UNIT_MS_MAX);
				return -1;
			}
			f->time_unit_ms = (unsigned)slot;
			break;
		case 'v':
			/* Our packet-level dumps, and the reader's card events. */
			f->verbose = true;
			vr_log_mask |= VR_LOG_INFO;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		ffs_log("unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
}

/* The reader with its cards; --no-card slots empty. */
static int make_reader(struct ffs *f)
{
	unsigned s;
	int rc;

	for (s = 0; s < VR_MAX_SLOTS; s++) {
		if (f->no_card[s] && s >= f->profile.slots) {
			ffs_log("--no-card %u: the profile has %u slot(s)", s, f->profile.slots);
			return -1;
		}
		f->card[s] = f->profile.card.present && !f->no_card[s];
	}
	pthread_mutex_lock(&f->lock);
	rc = ffs_reset_reader(f);
	pthread_mutex_unlock(&f->lock);
	return rc;
}

/* SIGTERM and SIGINT are blocked in every thread and read from a signalfd by
 * the control loop; SIGPIPE is ignored (a control client may go away). */
static int block_signals(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC);
}

static int start(struct ffs *f)
{
	const char *why = NULL;

	if (vr_profile_check(&f->profile, &why) != 0) {
		ffs_log("profile refused: %s", why ? why : "no reason given");
		return -1;
	}
	if (f->udc[0] == '\0' && ffs_find_udc(f->udc, sizeof(f->udc)))
		return -1;
	if (make_reader(f) || ffs_gadget_create(f) || ffs_gadget_write_descriptors(f) ||
	    ffs_gadget_open_endpoints(f) || ffs_io_start(f) || ffs_gadget_bind(f, true))
		return -1;
	pthread_mutex_lock(&f->lock);
	f->bound = true;
	pthread_mutex_unlock(&f->lock);
	ffs_log("reader %04X:%04X '%s' ready (gadget %s, %s speed, %u slot(s))",
		f->profile.vendor_id, f->profile.product_id, f->profile.product, f->gadget_name,
		f->profile.high_speed ? "high" : "full", f->profile.slots);
	return 0;
}

static void stop(struct ffs *f)
{
	bool bound;

	pthread_mutex_lock(&f->lock);
	bound = f->bound;
	f->bound = false;
	pthread_mutex_unlock(&f->lock);
	if (bound)
		ffs_gadget_bind(f, false);
	ffs_io_stop(f);
	ffs_gadget_destroy(f);
	vr_free(f->vr);
	f->vr = NULL;
}

/* The IN threads time their waits on CLOCK_MONOTONIC. */
static int init_wake(pthread_cond_t *c)
{
	pthread_condattr_t ca;
	int rc;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
	return rc;
}

int main(int argc, char **argv)
{
	static struct ffs f;
	int sfd, rc = 1;

	f.ep0 = f.ep_out = f.ep_in = f.ep_int = -1;
	strcpy(f.gadget_name, "vreader");
	f.time_unit_ms = FFS_TIME_UNIT_MS_DEFAULT;
	pthread_mutex_init(&f.lock, NULL);
	if (init_wake(&f.wake) != 0) {
		ffs_log("cannot set up a condition variable");
		return 1;
	}
	vr_profile_defaults(&f.profile);
	if (parse_options(&f, argc, argv))
		return 2;
	sfd = block_signals();
	if (sfd < 0) {
		ffs_log("signalfd: %s", strerror(errno));
		return 1;
	}
	if (start(&f) == 0 && ffs_ctl_run(&f, sfd) == 0)
		rc = 0;
	stop(&f);
	close(sfd);
	ffs_log("stopped");
	return rc;
}
