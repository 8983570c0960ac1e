/* smartcrd-vreader: the FunctionFS front end of the virtual CCID reader.
 * Shared between its files (one job each):
 *   ffs.c         options, start-up in the right order, teardown, signals
 *   ffs_gadget.c  configfs gadget, functionfs mount, descriptor and string blobs
 *   ffs_io.c      one thread per data endpoint (bulk OUT, bulk IN, interrupt IN)
 *   ffs_ep0.c     the ep0 thread: events and class requests
 *   ffs_ctl.c     the control socket (insert, remove, unplug, replug, status, quit)
 * The reader itself (sim/vreader.h) is pure logic and not thread-safe: every
 * call into it holds ffs->lock. */
#ifndef SIM_FFS_H
#define SIM_FFS_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vreader.h"

#define FFS_PATH_MAX 256
/* Bulk OUT messages larger than this are refused whatever the profile says:
 * a 10-byte header, an extended APDU (4 + 3 + 65535 + 2) and some slack. */
#define FFS_MAX_OUT_MESSAGE (10 + 65544 + 1024)
/* --time-unit-ms: default, and the most a host should have to wait for one
 * (libccid and our driver wait seconds between bulk IN messages). */
#define FFS_TIME_UNIT_MS_DEFAULT 100u
#define FFS_TIME_UNIT_MS_MAX 2000u

enum ffs_ep { FFS_EP_OUT = 1, FFS_EP_IN = 2, FFS_EP_INT = 3 };

struct ffs {
	struct vr_profile profile;
	bool verbose;
	char gadget_name[64];
	char udc[64];
	char control_path[FFS_PATH_MAX];
	bool no_card[VR_MAX_SLOTS];
	/* Real time each bulk IN time extension stands for (--time-unit-ms): the
	 * bulk IN thread waits this long after sending one, so that the answer
	 * of "80 38 00 xx" comes xx units later. 0: no pacing. */
	unsigned time_unit_ms;

	/* What ffs_gadget.c made, so that teardown undoes exactly that. */
	char gadget_dir[FFS_PATH_MAX];   /* /sys/kernel/config/usb_gadget/NAME */
	char mount_dir[FFS_PATH_MAX];    /* /dev/ffs-NAME */
	unsigned made;                   /* FFS_MADE_* bits */
	int ep0, ep_out, ep_in, ep_int;  /* -1 when not open */

	/* Protected by lock. */
	pthread_mutex_t lock;
	pthread_cond_t wake;             /* a message may wait for an IN endpoint */
	struct vreader *vr;
	bool card[VR_MAX_SLOTS];         /* what the control socket asked for */
	bool bound;                      /* our UDC name is in the UDC file */
	bool enabled;                    /* the host configured us (ENABLE event) */
	bool reset_on_enable;            /* a new reader on the next ENABLE */
	unsigned long n_out, n_in, n_int, n_setup;
	volatile int stopping;           /* read without the lock by the threads */
};

enum {
	FFS_MADE_GADGET = 1 << 0,
	FFS_MADE_STRINGS = 1 << 1,
	FFS_MADE_CONFIG = 1 << 2,
	FFS_MADE_CONFIG_STRINGS = 1 << 3,
	FFS_MADE_FUNCTION = 1 << 4,
	FFS_MADE_LINK = 1 << 5,
	FFS_MADE_MOUNTDIR = 1 << 6,
	FFS_MADE_MOUNT = 1 << 7,
};

/* Logging to stderr, with a time stamp. */
void ffs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ffs_hex(const struct ffs *f, const char *what, const uint8_t *p, size_t n);

/* ffs_gadget.c */
int ffs_gadget_create(struct ffs *f);            /* configfs entries + mount */
int ffs_gadget_write_descriptors(struct ffs *f); /* opens ep0, writes both blobs */
int ffs_gadget_open_endpoints(struct ffs *f);
int ffs_gadget_bind(struct ffs *f, bool bind);   /* UDC name or "" */
void ffs_gadget_destroy(struct ffs *f);          /* undoes whatever was made */
int ffs_find_udc(char *out, size_t cap);

/* The threads stop when this is set (ffs_io_stop). */
static inline bool ffs_stopping(const struct ffs *f)
{
	return __atomic_load_n(&f->stopping, __ATOMIC_SEQ_CST) != 0;
}

/* EINTR from ffs_io_stop's SIGUSR1, or the function went away (disabled,
 * unplugged, stalled): not worth a log line. */
static inline bool ffs_quiet_error(int err)
{
	return err == EINTR || err == ESHUTDOWN || err == ECONNRESET || err == EL2HLT;
}

/* ffs_ep0.c */
void *ffs_ep0_thread(void *arg);

/* ffs_io.c */
int ffs_io_start(struct ffs *f);
void ffs_io_stop(struct ffs *f);
/* A new reader with the same profile and the cards the control socket set,
 * as after a power cycle. Called with the lock held. */
int ffs_reset_reader(struct ffs *f);

/* ffs_ctl.c: serves the control socket (if any) and waits for SIGTERM/SIGINT
 * or "quit"; returns when the program should stop. */
int ffs_ctl_run(struct ffs *f, int signal_fd);

#endif
