/* Faults on demand (issue 3 item 5): a reader that misbehaves for the next
 * few answers, so that the host's error paths can be tested. Each fault has a
 * counter; every use takes one. The names are documented in sim/README.md.
 * The T=1 faults strike where the card's blocks go out: vreader_xfr.c asks
 * vr_fault_take for each block at TPDU level and, through
 * struct vcard_t1_faults, at character level (vcard_char.c). "zlp" and
 * "stall" live on the USB pipe, below the messages: the core only counts them
 * and the front ends (ffs_io.c, inproc.c) carry them out (vr_front_fault). */
#include <string.h>

#include "vr_internal.h"
#include "vr_log.h"

/* Time extensions added before an XfrBlock answer by "time-storm". */
#define STORM_EXTENSIONS 50u
/* Bytes "long-length" announces beyond what is sent. */
#define LONG_LENGTH_EXTRA 16u

static const char *const fault_names[VR_FAULT_COUNT] = {
	[VR_FAULT_WRONG_SEQ] = "wrong-seq",
	[VR_FAULT_WRONG_SLOT] = "wrong-slot",
	[VR_FAULT_TRUNCATE] = "truncate",
	[VR_FAULT_LONG_LENGTH] = "long-length",
	[VR_FAULT_MUTE] = "mute",
	[VR_FAULT_TIME_STORM] = "time-storm",
	[VR_FAULT_T1_BAD_EDC] = "t1-bad-edc",
	[VR_FAULT_T1_LOST] = "t1-lost",
	[VR_FAULT_ZLP] = "zlp",
	[VR_FAULT_STALL] = "stall",
};

int vr_set_fault(struct vreader *vr, const char *name, unsigned count, const char **why)
{
	for (unsigned i = 0; i < VR_FAULT_COUNT; i++) {
		if (strcmp(name, fault_names[i]) == 0) {
			vr->faults[i] = count;
			vr_info("fault %s for the next %u uses", name, count);
			return 0;
		}
	}
	*why = "unknown fault (wrong-seq, wrong-slot, truncate, long-length, mute, time-storm, "
	       "t1-bad-edc, t1-lost, zlp, stall)";
	vr_err("fault %s: %s", name, *why);
	return -1;
}

void vr_faults_off(struct vreader *vr)
{
	memset(vr->faults, 0, sizeof(vr->faults));
	vr_info("every fault off");
}

bool vr_front_fault(struct vreader *vr, enum vr_fault f)
{
	if (f != VR_FAULT_ZLP && f != VR_FAULT_STALL) {
		vr_err("fault %d is not one a front end carries out (zlp, stall)", (int)f);
		return false;
	}
	return vr_fault_take(vr, f);
}

bool vr_fault_take(struct vreader *vr, enum vr_fault f)
{
	if (vr->faults[f] == 0)
		return false;
	vr->faults[f]--;
	vr_info("fault %s applied (%u more)", fault_names[f], vr->faults[f]);
	return true;
}

/* Header faults on an answer about to be queued; returns the header length
 * to send (9 when "truncate" meets an answer without data) and cuts *len. */
size_t vr_fault_answer(struct vreader *vr, uint8_t h[CCID_HEADER], size_t *len)
{
	if (vr_fault_take(vr, VR_FAULT_WRONG_SEQ))
		h[6]++;
	if (vr_fault_take(vr, VR_FAULT_WRONG_SLOT))
		h[5]++;
	if (vr_fault_take(vr, VR_FAULT_LONG_LENGTH)) {
		uint32_t dw = (uint32_t)*len + LONG_LENGTH_EXTRA;

		h[1] = (uint8_t)dw;
		h[2] = (uint8_t)(dw >> 8);
		h[3] = (uint8_t)(dw >> 16);
		h[4] = (uint8_t)(dw >> 24);
	}
	if (vr_fault_take(vr, VR_FAULT_TRUNCATE)) {
		if (*len == 0)
			return CCID_HEADER - 1;
		(*len)--;
	}
	return CCID_HEADER;
}

unsigned vr_fault_storm(struct vreader *vr)
{
	return vr_fault_take(vr, VR_FAULT_TIME_STORM) ? STORM_EXTENSIONS : 0;
}
