/* tp_status in words, for log lines (the transport's libusb_strerror). */
#include "ccid_transport.h"

const char *tp_status_str(tp_status st)
{
	switch (st) {
	case TP_OK:
		return "ok";
	case TP_TIMEOUT:
		return "timeout";
	case TP_NO_DEVICE:
		return "no device (unplugged)";
	case TP_STALL:
		return "stall";
	case TP_CANCELLED:
		return "cancelled";
	case TP_IO_ERROR:
		return "I/O error";
	case TP_NO_MEMORY:
		return "out of memory";
	case TP_INVALID:
		return "invalid (bad device name or not a CCID interface)";
	}
	/* A value outside the enum: say so rather than return NULL into a printf. */
	return "unknown transport status";
}
