/* tests/fuzz/fuzz_ticket.c: libFuzzer target for core/ticket.c
 * (kc_ticket_parse: a TLS 1.3 NewSessionTicket message, header included,
 * as a peer sends it; then the ticket store).
 *
 * The whole input is the message, in an exactly sized buffer.  Checks on
 * success: every field is within the message and within what ticket.h
 * promises, and the lengths add up to the message's exactly (the parser
 * is strict); on failure: status KC_E_PROTOCOL and a message, *out
 * untouched. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ticket.h"

static void die(const char *what)
{
	fprintf(stderr, "fuzz_ticket: %s\n", what);
	abort();
}

static struct kc_ticket_store store;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *msg = malloc(size ? size : 1);
	if (!msg)
		return 0;
	if (size)
		memcpy(msg, data, size);

	struct kc_ticket_info t, untouched;
	struct kc_err err = { 0 };
	memset(&t, 0x5a, sizeof t);
	memcpy(&untouched, &t, sizeof t);
	int rc = kc_ticket_parse(size ? msg : NULL, size, &t, &err);
	if (rc == 0) {
		if (size < 4 || msg[0] != 4)
			die("accepted a message that is not a NewSessionTicket");
		size_t body = (size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3];
		if (body != size - 4)
			die("accepted a message whose length is not its header's");
		if (t.lifetime > KC_TICKET_LIFETIME_MAX)
			die("accepted a lifetime over 7 days");
		if (t.nonce_len > sizeof t.nonce || t.ticket_len == 0)
			die("nonce or ticket length out of range");
		/* lifetime, age_add, nonce<1>, ticket<2>, extensions<2> */
		size_t fixed = 4 + 4 + 4 + 1 + t.nonce_len + 2 + t.ticket_len + 2;
		if (fixed > size)
			die("fields add up to more than the message");
		size_t ext_len = (size_t)msg[fixed - 2] << 8 | msg[fixed - 1];
		if (fixed + ext_len != size)
			die("extensions do not end the message exactly");
		if (t.nonce_len && memcmp(t.nonce, msg + 13, t.nonce_len) != 0)
			die("nonce differs from the message's");
		if ((size_t)msg[12] != t.nonce_len)
			die("nonce length differs from the message's");
		char hex[17];
		kc_ticket_format_hash(&t, hex);
		if (strlen(hex) != 16)
			die("hash not 16 hex digits");
		const struct kc_ticket_entry *e = kc_ticket_store_add(&store, &t, 0);
		if (kc_ticket_store_latest(&store) != e || store.n > KC_TICKET_STORE_MAX)
			die("ticket store out of order");
		if (store.total % 97 == 0)
			kc_ticket_store_clear(&store);
	} else {
		if (rc != -1 || !err.msg[0] ||
		    (err.status != KC_E_PROTOCOL && err.status != KC_E_INTERNAL))
			die("a failure without -1, KC_E_PROTOCOL and a message");
		if (memcmp(&t, &untouched, sizeof t) != 0)
			die("*out written on failure");
	}
	free(msg);
	return 0;
}
