/* Logging shared by every layer.
 *
 * Levels are bits, as in libccid, so that an administrator can pick any mix:
 * 1 critical, 2 info, 4 communication (hex dumps of every exchange), 8 periodic
 * (presence polling). The mask comes from Info.plist's ifdLogLevel key or the
 * SMARTCRD_LOG_LEVEL environment variable (ifdhandler.c reads both).
 * In the bundle the messages go to pcscd's log_msg/log_xxd; the unit tests link
 * a stand-in that writes to stderr. */
#ifndef SMC_LOG_H
#define SMC_LOG_H

#include <stddef.h>
#include <stdint.h>

enum smc_log_level {
	SMC_LOG_CRITICAL = 1,
	SMC_LOG_INFO = 2,
	SMC_LOG_COMM = 4,
	SMC_LOG_PERIODIC = 8,
};

/* Default: critical and info. */
extern unsigned smc_log_mask;

void smc_log_write(enum smc_log_level level, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void smc_log_dump(enum smc_log_level level, const char *what, const uint8_t *buf, size_t len);

#define SMC_LOG_ENABLED(level) ((smc_log_mask & (level)) != 0)
#define smc_log(level, ...)                                        \
	do {                                                       \
		if (SMC_LOG_ENABLED(level))                         \
			smc_log_write(level, __func__, __VA_ARGS__); \
	} while (0)
#define log_critical(...) smc_log(SMC_LOG_CRITICAL, __VA_ARGS__)
#define log_info(...) smc_log(SMC_LOG_INFO, __VA_ARGS__)
#define log_comm(...) smc_log(SMC_LOG_COMM, __VA_ARGS__)
#define log_periodic(...) smc_log(SMC_LOG_PERIODIC, __VA_ARGS__)
#define log_hex_at(level, what, buf, len)                 \
	do {                                              \
		if (SMC_LOG_ENABLED(level))                \
			smc_log_dump(level, what, buf, len); \
	} while (0)
#define log_hex(what, buf, len) log_hex_at(SMC_LOG_COMM, what, buf, len)

#endif
