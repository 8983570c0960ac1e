/* The readers pcscd has opened, indexed by Lun >> 16 (the reader) and
 * Lun & 0xFFFF (the slot). The table grows as needed: no fixed reader limit.
 * One entry per reader holds the CCID reader and which of its slots pcscd has
 * opened; the reader is closed when its last slot is. */
#ifndef SMARTCRD_LUN_TABLE_H
#define SMARTCRD_LUN_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ccid.h"

struct lun_entry {
	struct ccid_reader *reader;
	uint32_t open_slots;  /* bit per slot pcscd has opened */
	/* pcscd said the device is gone (TAG_IFD_DEVICE_REMOVED). Atomic: pcscd's
	 * hotplug thread sets it without the reader lock that the threads reading
	 * it hold. */
	atomic_bool removed;
};

#define LUN_READER(lun) ((uint32_t)(lun) >> 16)
#define LUN_SLOT(lun) ((uint32_t)(lun) & 0xFFFFu)

/* All functions take the table's lock; lun_lookup's result stays valid until
 * lun_release on the same Lun (pcscd never closes a Lun while using it). */
struct lun_entry *lun_lookup(uint32_t lun);
/* Store a freshly opened reader for lun's slot. -1 if the table cannot grow. */
int lun_store(uint32_t lun, struct ccid_reader *reader);
/* Another slot of a reader already opened under the same Lun >> 16: mark it
 * open. Returns the entry, or NULL if there is no such reader or slot. */
struct lun_entry *lun_attach_slot(uint32_t lun);
/* Forget lun's slot; returns the reader to close when it was the last slot
 * (the caller closes it outside the lock), else NULL. */
struct ccid_reader *lun_release(uint32_t lun);

#endif
