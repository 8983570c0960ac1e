/* The layers' logging, sent to pcscd's own log (log_msg and log_xxd are
 * exported by pcscd), so that `pcscd -f -d` shows our lines beside its own. */
#include <stdarg.h>
#include <stdio.h>

#include <debuglog.h>

#include "smc_log.h"

unsigned smc_log_mask = SMC_LOG_CRITICAL | SMC_LOG_INFO;

static int pcsc_priority(enum smc_log_level level)
{
	switch (level) {
	case SMC_LOG_CRITICAL:
		return PCSC_LOG_CRITICAL;
	case SMC_LOG_INFO:
		return PCSC_LOG_INFO;
	default:
		return PCSC_LOG_DEBUG;
	}
}

void smc_log_write(enum smc_log_level level, const char *func, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_msg(pcsc_priority(level), "smartcrd %s() %s", func, text);
}

void smc_log_dump(enum smc_log_level level, const char *what, const uint8_t *buf, size_t len)
{
	char title[96];

	snprintf(title, sizeof(title), "smartcrd %s (%zu bytes): ", what, len);
	log_xxd(pcsc_priority(level), title, buf, (int)len);
}
