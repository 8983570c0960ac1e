/* The unit tests' stand-in for src/log_pcscd.c: the same two functions, writing
 * to stderr, so that the layers log exactly as they do inside pcscd. */
#include <stdarg.h>
#include <stdio.h>

#include "log_capture.h"
#include "smc_log.h"

unsigned smc_log_mask = SMC_LOG_CRITICAL | SMC_LOG_INFO | SMC_LOG_COMM;

void smc_log_write(enum smc_log_level level, const char *func, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[%d] %s: ", (int)level, func);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static unsigned dumps[16];

unsigned log_capture_dumps(enum smc_log_level level)
{
	return dumps[level & 15];
}

void smc_log_dump(enum smc_log_level level, const char *what, const uint8_t *buf, size_t len)
{
	dumps[level & 15]++;
	fprintf(stderr, "[%d] %s (%zu):", (int)level, what, len);
	for (size_t i = 0; i < len; i++)
		fprintf(stderr, " %02X", buf[i]);
	fputc('\n', stderr);
}
