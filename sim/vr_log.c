/* The virtual reader's log lines (see vr_log.h). */
#include <stdarg.h>
#include <stdio.h>

#include "vr_log.h"

unsigned vr_log_mask = VR_LOG_ERROR;

void vr_log_write(enum vr_log_level level, const char *func, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vreader[%d] %s: ", (int)level, func);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void vr_log_hex(const char *what, const uint8_t *buf, size_t len)
{
	fprintf(stderr, "vreader[%d] %s (%zu):", (int)VR_LOG_COMM, what, len);
	for (size_t i = 0; i < len; i++)
		fprintf(stderr, " %02X", buf[i]);
	fputc('\n', stderr);
}
