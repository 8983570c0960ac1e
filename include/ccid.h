/* The CCID reader driver, as seen from the pcsc-lite boundary.
 *
 * ccid_reader_open() takes a transport, parses the class descriptor, and builds
 * one smclib extension per slot with the CCID RDF callbacks installed. From then
 * on ifdhandler.c talks to the slots only through smc_device_control(). */
#ifndef CCID_H
#define CCID_H

#include "ccid_transport.h"
#include "smclib.h"

struct ccid_reader;

/* Takes ownership of tp (closed by ccid_reader_close, or here on failure).
 * SMC_ERR_COMM for a malformed or missing class descriptor. */
smc_status ccid_reader_open(struct ccid_transport *tp, struct ccid_reader **out);
unsigned ccid_reader_slot_count(const struct ccid_reader *reader);
struct smc_ext *ccid_reader_slot(struct ccid_reader *reader, unsigned slot);
/* How many slots may run a command at once (CCID 1.1 bMaxCCIDBusySlots, at most
 * the slot count); 1 when the slots take turns. */
unsigned ccid_reader_busy_slots(const struct ccid_reader *reader);
/* What the administrator allows for this reader: ifdDriverOptions bits from
 * Info.plist (the boundary may compute them per reader). 0 after open. */
#define CCID_OPTION_ESCAPE_ALLOWED 0x01u /* applications may send PC_to_RDR_Escape
					  * (FEATURE_CCID_ESC_COMMAND and
					  * IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE);
					  * libccid's DRIVER_OPTION_CCID_EXCHANGE_AUTHORIZED */
void ccid_reader_set_options(struct ccid_reader *reader, unsigned options);
/* The reader is gone (a transfer answered TP_NO_DEVICE). */
int ccid_reader_is_gone(const struct ccid_reader *reader);
void ccid_reader_close(struct ccid_reader *reader);

#endif
