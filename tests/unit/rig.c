/* The driver against the in-process virtual reader (rig.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "rig.h"
#include "vcard.h"

struct rig *rig_open(const char *const kv[][2], size_t n_kv, int split)
{
	return rig_open_wrapped(kv, n_kv, split, NULL);
}

struct rig *rig_open_wrapped(const char *const kv[][2], size_t n_kv, int split,
			     void (*wrap)(struct ccid_transport *tp))
{
	struct rig *r = calloc(1, sizeof(*r));
	struct vr_profile p;
	const char *why;

	assert_non_null(r);
	vr_profile_defaults(&p);
	for (size_t i = 0; i < n_kv; i++) {
		if (vr_profile_set(&p, kv[i][0], kv[i][1], &why) != 0)
			fail_msg("profile %s=%s refused: %s", kv[i][0], kv[i][1], why);
	}
	assert_int_equal(inproc_transport_open(&p, &r->tp, &r->vr), TP_OK);
	inproc_set_packet_split(r->tp, split);
	if (wrap != NULL)
		wrap(r->tp);
	assert_int_equal(ccid_reader_open(r->tp, &r->reader), SMC_OK);
	r->ext = ccid_reader_slot(r->reader, 0);
	assert_non_null(r->ext);
	return r;
}

void rig_close(struct rig *r)
{
	ccid_reader_close(r->reader);
	free(r);
}

void rig_power(struct rig *r)
{
	uint8_t atr[VCARD_ATR_MAX];
	size_t atr_len = vcard_build_atr(&vr_profile(r->vr)->card, atr);

	assert_int_equal(smc_device_control(r->ext, SMC_REQ_POWER, SMC_POWER_COLD, NULL, 0, r->reply,
					    sizeof(r->reply), &r->reply_len),
			 SMC_OK);
	assert_int_equal(r->ext->card_caps.atr_len, atr_len);
	assert_memory_equal(r->ext->card_caps.atr, atr, atr_len);
}

void rig_protocol(struct rig *r, uint32_t proto)
{
	assert_int_equal(smc_device_control(r->ext, SMC_REQ_SET_PROTOCOL, proto, NULL, 0, r->reply,
					    sizeof(r->reply), &r->reply_len),
			 SMC_OK);
	assert_int_equal(r->ext->card_caps.selected_protocol, proto);
}

smc_status rig_transmit(struct rig *r, const uint8_t *apdu, size_t len)
{
	return smc_device_control(r->ext, SMC_REQ_TRANSMIT, r->ext->card_caps.selected_protocol, apdu,
				  len, r->reply, sizeof(r->reply), &r->reply_len);
}

void rig_apdu(struct rig *r, const uint8_t *apdu, size_t len, size_t data_len, uint16_t sw)
{
	assert_int_equal(rig_transmit(r, apdu, len), SMC_OK);
	assert_int_equal(r->reply_len, data_len + 2);
	assert_int_equal(r->reply[data_len] << 8 | r->reply[data_len + 1], sw);
}

void rig_select(struct rig *r)
{
	static const uint8_t select[] = { 0x00, 0xA4, 0x04, 0x00, 0x06, 0xA0, 0x00, 0x00, 0x00, 0x18, 0xFF };

	rig_apdu(r, select, sizeof(select), 0, 0x9000);
}

void rig_send_counting_all(struct rig *r)
{
	for (unsigned n = 1; n <= 256; n++) {
		uint8_t cmd[5] = { 0x80, 0x34, (uint8_t)(n >> 8), (uint8_t)n, (uint8_t)n };

		rig_apdu(r, cmd, 5, n, 0x9000);
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(r->reply[i], (uint8_t)i);
	}
}

void rig_check_data_all(struct rig *r)
{
	for (unsigned n = 1; n <= 255; n++) {
		r->apdu[0] = 0x80;
		r->apdu[1] = 0x32;
		r->apdu[2] = 0;
		r->apdu[3] = 0;
		r->apdu[4] = (uint8_t)n;
		for (unsigned i = 0; i < n; i++)
			r->apdu[5 + i] = (uint8_t)i;
		rig_apdu(r, r->apdu, 5 + n, 0, 0x9000);
	}
}

void rig_get_response_all(struct rig *r)
{
	for (unsigned n = 1; n <= 256; n++) {
		uint8_t cmd[6] = { 0x80, 0x36, (uint8_t)(n >> 8), (uint8_t)n, 0x01, 0x00 };
		uint8_t get[5] = { 0x80, 0xC0, 0x00, 0x00, (uint8_t)n };

		rig_apdu(r, cmd, 6, 0, (uint16_t)(0x6100 | (n & 0xFF)));
		rig_apdu(r, get, 5, n, 0x9000);
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(r->reply[i], (uint8_t)i);
	}
}

void rig_fill(struct rig *r, uint8_t v, size_t n)
{
	uint8_t cmd[7] = { 0x80, 0x00, 0x04, v, 0x00, (uint8_t)(n >> 8), (uint8_t)n };

	rig_apdu(r, cmd, 7, n, 0x9000);
	for (size_t i = 0; i < n; i++) {
		if (r->reply[i] != v)
			fail_msg("byte %zu of %zu is 0x%02X, expected 0x%02X", i, n, r->reply[i], v);
	}
}

void rig_accept(struct rig *r, size_t n)
{
	memcpy(r->apdu, "\x80\x12\x01\x80\x00", 5);
	r->apdu[5] = (uint8_t)(n >> 8);
	r->apdu[6] = (uint8_t)n;
	for (size_t i = 0; i < n; i++)
		r->apdu[7 + i] = (uint8_t)(i * 7);
	rig_apdu(r, r->apdu, 7 + n, 0, 0x9000);
}
