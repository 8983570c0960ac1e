/* Shared by the two halves of the pcsc-lite boundary: ifdhandler.c (the
 * IFDH* entry points) and ifd_events.c (pcscd's event threads). */
#ifndef SMARTCRD_IFD_INTERNAL_H
#define SMARTCRD_IFD_INTERNAL_H

#include <ifdhandler.h>

#include "ccid.h"
#include "smclib.h"

/* ifdhandler.c */
/* An smclib status as the IFD_* code pcscd understands. */
RESPONSECODE ifd_code(smc_status st);
/* The slot behind a Lun, or NULL with *rc saying why (IFD_NO_SUCH_DEVICE for
 * a reader that is gone or that pcscd declared removed). */
struct smc_ext *ifd_slot_of(DWORD Lun, RESPONSECODE *rc);
/* One smclib request on a slot; out_len may be NULL. */
smc_status ifd_request(struct smc_ext *ext, enum smc_request req, uint32_t minor, const uint8_t *in,
		       size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len);
/* A 1-byte capability into pcscd's buffer. */
RESPONSECODE ifd_put_byte(PDWORD Length, PUCHAR Value, uint8_t v);

/* ifd_events.c */
/* TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, TAG_IFD_STOP_POLLING_THREAD and
 * TAG_IFD_POLLING_THREAD_KILLABLE for IFDHGetCapabilities. */
RESPONSECODE ifd_event_capability(DWORD Lun, DWORD Tag, PDWORD Length, PUCHAR Value);
/* TAG_IFD_DEVICE_REMOVED: the reader answers NO_SUCH_DEVICE from now on and
 * its waits end (a poll then waits for the stop function). */
void ifd_events_reader_removed(DWORD Lun);
/* IFDHCloseChannel: Lun leaves the table and its wait ends; the reader when
 * it was its last slot (then closed with ifd_events_close_reader). */
struct ccid_reader *ifd_events_release_lun(DWORD Lun);
void ifd_events_close_reader(DWORD Lun, struct ccid_reader *reader);

#endif
