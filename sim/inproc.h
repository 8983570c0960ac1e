/* The in-process front end of the virtual reader: the driver's transport vtable
 * (include/ccid_transport.h) over a struct vreader, for unit tests and fuzzing.
 * This is the one file of sim/ that includes a driver header, because it is the
 * bridge between the two.
 *
 * Bulk IN is modelled as a USB pipe: one receive() returns at most one transfer
 * (the rest of the message, up to cap), or with packet splitting on, at most one
 * packet (64 bytes at full speed, 512 at high speed); a message whose length is
 * a multiple of the packet size and that filled the transfer is followed by a
 * zero-length transfer. Waits are real (pthread condition variables), so the
 * driver's polling thread can block in wait_interrupt(). The faults "zlp" and
 * "stall" (sim/README.md) strike before a message's first byte: one receive()
 * returns 0 bytes, or TP_STALL (the halt counts as cleared at once, as the
 * libusb transport clears it itself), and the message follows. */
#ifndef SIM_INPROC_H
#define SIM_INPROC_H

#include "ccid_transport.h"
#include "vreader.h"

/* A virtual reader with profile p behind a new transport. *vr_out (may be NULL)
 * lets a test look at the reader directly; both belong to the transport and are
 * freed by its close(). */
tp_status inproc_transport_open(const struct vr_profile *p, struct ccid_transport **out,
				struct vreader **vr_out);

/* Each receive() returns at most one USB packet (off by default). */
void inproc_set_packet_split(struct ccid_transport *tp, int on);
/* Card events, taken under the transport's lock (wakes an interrupt wait). */
void inproc_insert_card(struct ccid_transport *tp, unsigned slot);
void inproc_remove_card(struct ccid_transport *tp, unsigned slot);
/* vr_set_fault and vr_hardware_error (code 1, overcurrent), under the
 * transport's lock, for a test whose driver runs threads on the transport. */
int inproc_set_fault(struct ccid_transport *tp, const char *name, unsigned count, const char **why);
void inproc_hardware_error(struct ccid_transport *tp, unsigned slot);
/* The reader is unplugged: every call answers TP_NO_DEVICE from now on. */
void inproc_unplug(struct ccid_transport *tp);

#endif
