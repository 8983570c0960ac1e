/* What the tests' logger (log_stderr.c) saw: hex dumps counted per level, so a
 * test can show which level a message was logged at. */
#ifndef LOG_CAPTURE_H
#define LOG_CAPTURE_H

#include "smc_log.h"

/* Dumps written at that level since the program started (levels 1, 2, 4, 8). */
unsigned log_capture_dumps(enum smc_log_level level);

#endif
