/* The table of open readers: see lun_table.h. */
#include "lun_table.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "smc_log.h"

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lun_entry **table; /* indexed by Lun >> 16, NULL where free */
static size_t table_len;

static int grow_to(size_t index)
{
	size_t new_len = table_len ? table_len : 4;
	struct lun_entry **grown;

	while (new_len <= index)
		new_len *= 2;
	if (new_len > 0x10000) /* Lun >> 16 of a 32-bit Lun */
		return -1;
	grown = realloc(table, new_len * sizeof(*table));
	if (grown == NULL)
		return -1;
	memset(grown + table_len, 0, (new_len - table_len) * sizeof(*table));
	table = grown;
	table_len = new_len;
	return 0;
}

static bool slot_valid(const struct lun_entry *e, uint32_t slot)
{
	return slot < 32 && slot < ccid_reader_slot_count(e->reader);
}

struct lun_entry *lun_lookup(uint32_t lun)
{
	struct lun_entry *e = NULL;
	uint32_t r = LUN_READER(lun);

	pthread_mutex_lock(&table_lock);
	if (r < table_len && table[r] != NULL && (table[r]->open_slots & (1u << (LUN_SLOT(lun) & 31))) &&
	    slot_valid(table[r], LUN_SLOT(lun)))
		e = table[r];
	pthread_mutex_unlock(&table_lock);
	return e;
}

int lun_store(uint32_t lun, struct ccid_reader *reader)
{
	uint32_t r = LUN_READER(lun);
	struct lun_entry *e;
	int rc = -1;

	pthread_mutex_lock(&table_lock);
	if (r >= table_len && grow_to(r) != 0) {
		log_critical("Lun 0x%X: cannot grow the reader table to index %u", (unsigned)lun,
			     (unsigned)r);
		goto out;
	}
	if (table[r] != NULL) {
		log_critical("Lun 0x%X: reader %u is already open", (unsigned)lun, (unsigned)r);
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		log_critical("Lun 0x%X: out of memory for the table entry", (unsigned)lun);
		goto out;
	}
	e->reader = reader;
	atomic_init(&e->removed, false);
	if (!slot_valid(e, LUN_SLOT(lun))) {
		log_critical("Lun 0x%X: the reader has %u slot(s)", (unsigned)lun, ccid_reader_slot_count(reader));
		free(e);
		goto out;
	}
	e->open_slots = 1u << LUN_SLOT(lun);
	table[r] = e;
	rc = 0;
out:
	pthread_mutex_unlock(&table_lock);
	return rc;
}

struct lun_entry *lun_attach_slot(uint32_t lun)
{
	uint32_t r = LUN_READER(lun);
	struct lun_entry *e = NULL;

	pthread_mutex_lock(&table_lock);
	if (r < table_len && table[r] != NULL && slot_valid(table[r], LUN_SLOT(lun))) {
		e = table[r];
		e->open_slots |= 1u << LUN_SLOT(lun);
	}
	pthread_mutex_unlock(&table_lock);
	return e;
}

struct ccid_reader *lun_release(uint32_t lun)
{
	uint32_t r = LUN_READER(lun);
	struct ccid_reader *to_close = NULL;

	pthread_mutex_lock(&table_lock);
	/* A slot that cannot have been opened must not clear another's bit. */
	if (r < table_len && table[r] != NULL && slot_valid(table[r], LUN_SLOT(lun))) {
		table[r]->open_slots &= ~(1u << LUN_SLOT(lun));
		if (table[r]->open_slots == 0) {
			to_close = table[r]->reader;
			free(table[r]);
			table[r] = NULL;
		}
	}
	pthread_mutex_unlock(&table_lock);
	return to_close;
}
