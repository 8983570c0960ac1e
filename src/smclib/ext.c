/* The life of a struct smc_ext and the defaults of its card capabilities. */
#include <string.h>

#include "smc_log.h"
#include "smclib_internal.h"

/* ISO 7816-3 defaults, used until an ATR says otherwise. */
#define DEFAULT_TA1 0x11  /* Fd = 372, Dd = 1 */
#define DEFAULT_FI 372u
#define DEFAULT_DI 1u
#define DEFAULT_FMAX_KHZ 5000u /* fmax of Fi code 1 */
#define DEFAULT_WI 10u    /* 10.2: TC2 absent */
#define DEFAULT_IFS 32u   /* 11.4.2: IFSC and IFSD */
#define DEFAULT_CWI 13u   /* 11.4.3 */
#define DEFAULT_BWI 4u

void smc_card_caps_clear(struct smc_card_caps *caps)
{
	if (caps == NULL)
		return;
	memset(caps, 0, sizeof(*caps));
	caps->ta1 = DEFAULT_TA1;
	caps->fi = DEFAULT_FI;
	caps->di = DEFAULT_DI;
	caps->fmax_khz = DEFAULT_FMAX_KHZ;
	caps->t0.wi = DEFAULT_WI;
	caps->t1.ifsc = DEFAULT_IFS;
	caps->t1.ifsd = DEFAULT_IFS;
	caps->t1.cwi = DEFAULT_CWI;
	caps->t1.bwi = DEFAULT_BWI;
	caps->t1.crc = false; /* LRC */
	smc_card_caps_timing(caps, 0);
}

smc_status smc_ext_init(struct smc_ext *ext)
{
	int err;

	if (ext == NULL) {
		log_critical("no extension given");
		return SMC_ERR_INVALID_PARAM;
	}
	memset(ext, 0, sizeof(*ext));
	err = pthread_mutex_init(&ext->lock, NULL);
	if (err != 0) {
		log_critical("pthread_mutex_init failed: %s", strerror(err));
		return SMC_ERR_NO_MEMORY;
	}
	ext->reader_caps.current_state = SMC_STATE_UNKNOWN;
	smc_card_caps_clear(&ext->card_caps);
	ext->t1.ifsc = DEFAULT_IFS;
	ext->t1.ifsd = DEFAULT_IFS;
	return SMC_OK;
}

void smc_ext_destroy(struct smc_ext *ext)
{
	int err;

	if (ext == NULL)
		return;
	err = pthread_mutex_destroy(&ext->lock);
	if (err != 0)
		log_critical("pthread_mutex_destroy failed: %s (lock still held?)", strerror(err));
	smc_card_caps_clear(&ext->card_caps);
	ext->reader_caps.current_state = SMC_STATE_UNKNOWN;
}
