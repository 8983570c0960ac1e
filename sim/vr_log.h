/* Logging of the virtual reader, on its own (the core shares nothing with src/,
 * not even the driver's logger). Lines go to stderr, prefixed "vreader:".
 * vr_log_mask picks the levels, with the same bits as the driver: 1 errors in
 * what the host sent or in the configuration, 2 info (card events, power),
 * 4 communication (every message in hex). Front ends may change it. */
#ifndef SIM_VR_LOG_H
#define SIM_VR_LOG_H

#include <stddef.h>
#include <stdint.h>

enum vr_log_level {
	VR_LOG_ERROR = 1,
	VR_LOG_INFO = 2,
	VR_LOG_COMM = 4,
};

/* Default: errors only. */
extern unsigned vr_log_mask;

void vr_log_write(enum vr_log_level level, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void vr_log_hex(const char *what, const uint8_t *buf, size_t len);

#define vr_log(level, ...)                                        \
	do {                                                      \
		if (vr_log_mask & (level))                        \
			vr_log_write(level, __func__, __VA_ARGS__); \
	} while (0)
#define vr_err(...) vr_log(VR_LOG_ERROR, __VA_ARGS__)
#define vr_info(...) vr_log(VR_LOG_INFO, __VA_ARGS__)
#define vr_comm(what, buf, len)                     \
	do {                                        \
		if (vr_log_mask & VR_LOG_COMM)      \
			vr_log_hex(what, buf, len); \
	} while (0)

#endif
