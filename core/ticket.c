/* core/ticket.c: NewSessionTicket parsing and the list of tickets seen. */
#include "config.h"

#include <string.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "core/ticket.h"

#define HS_NEW_SESSION_TICKET 4
#define EXT_EARLY_DATA 42

/* A read cursor that never moves past its end. */
struct cur {
	const unsigned char *p;
	size_t left;
};

static uint32_t get_be(const unsigned char *p, size_t n)
{
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Take an n-byte big-endian integer; false when fewer than n bytes remain. */
static bool take_uint(struct cur *c, size_t n, uint32_t *v)
{
	if (c->left < n)
		return false;
	*v = get_be(c->p, n);
	c->p += n;
	c->left -= n;
	return true;
}

/* Every message starts the same way, so the cli can show it as is. */
#define NST "malformed NewSessionTicket from the peer: "

static int truncated(struct kc_err *err, const char *field, size_t need, size_t left)
{
	return kc_err_set(err, KC_E_PROTOCOL,
			  NST "%s: the message ends early (%zu bytes needed, %zu left)",
			  field, need, left);
}

static int past_end(struct kc_err *err, const char *field, uint32_t n, size_t left)
{
	return kc_err_set(err, KC_E_PROTOCOL,
			  NST "%s: length %u runs past the end of the message (%zu bytes left)",
			  field, (unsigned)n, left);
}

static int parse_extensions(struct cur *c, struct kc_ticket_info *t, struct kc_err *err)
{
	uint32_t list_len;
	if (!take_uint(c, 2, &list_len))
		return truncated(err, "extensions length", 2, c->left);
	if (list_len > 0xfffe)   /* extensions<0..2^16-2> */
		return kc_err_set(err, KC_E_PROTOCOL,
				  NST "extensions: length %u, at most 65534 allowed", (unsigned)list_len);
	if (list_len > c->left)
		return past_end(err, "extensions", list_len, c->left);
	if (list_len < c->left)
		return kc_err_set(err, KC_E_PROTOCOL,
				  NST "extensions: length %u leaves %zu bytes after the extensions",
				  (unsigned)list_len, c->left - list_len);

	/* One bit per extension type, to refuse duplicates (RFC 8446 §4.2)
	 * in linear time whatever the peer sends. */
	unsigned char seen[65536 / 8] = { 0 };
	struct cur l = { c->p, list_len };
	while (l.left > 0) {
		uint32_t type, len;
		if (l.left < 4)
			return kc_err_set(err, KC_E_PROTOCOL,
					  NST "extensions: a 4-byte extension header does not fit in the %zu bytes left",
					  l.left);
		take_uint(&l, 2, &type);
		take_uint(&l, 2, &len);
		if (len > l.left)
			return kc_err_set(err, KC_E_PROTOCOL,
					  NST "extension %u: data length %u runs past the end of the list (%zu bytes left)",
					  (unsigned)type, (unsigned)len, l.left);
		if (seen[type / 8] & (1u << (type % 8)))
			return kc_err_set(err, KC_E_PROTOCOL,
					  NST "extension %u appears twice", (unsigned)type);
		seen[type / 8] |= (unsigned char)(1u << (type % 8));
		if (type == EXT_EARLY_DATA) {
			if (len != 4)
				return kc_err_set(err, KC_E_PROTOCOL,
						  NST "early_data extension: max_early_data_size must be 4 bytes, not %u",
						  (unsigned)len);
			t->has_max_early_data = true;
			t->max_early_data = get_be(l.p, 4);
		}
		l.p += len;
		l.left -= len;
	}
	c->p += list_len;
	c->left = 0;
	return 0;
}

int kc_ticket_parse(const unsigned char *msg, size_t len,
		    struct kc_ticket_info *out, struct kc_err *err)
{
	struct kc_ticket_info t;
	memset(&t, 0, sizeof t);
	struct cur c = { msg, msg ? len : 0 };
	uint32_t v;

	if (!take_uint(&c, 1, &v))
		return truncated(err, "handshake header", 4, c.left);
	if (v != HS_NEW_SESSION_TICKET)
		return kc_err_set(err, KC_E_PROTOCOL,
				  NST "handshake type %u, not new_session_ticket (4)", (unsigned)v);
	if (!take_uint(&c, 3, &v))
		return truncated(err, "handshake header", 4, len);
	if (v > c.left)
		return kc_err_set(err, KC_E_PROTOCOL,
				  NST "message length: %u bytes announced, %zu present (truncated)",
				  (unsigned)v, c.left);
	if (v < c.left)
		return kc_err_set(err, KC_E_PROTOCOL,
				  NST "message length: %u bytes announced, %zu present (trailing bytes)",
				  (unsigned)v, c.left);

	if (!take_uint(&c, 4, &t.lifetime))
		return truncated(err, "ticket_lifetime", 4, c.left);
	if (t.lifetime > KC_TICKET_LIFETIME_MAX)
		return kc_err_set(err, KC_E_PROTOCOL,
				  NST "ticket_lifetime: %u seconds, more than the %u (7 days) RFC 8446 allows",
				  (unsigned)t.lifetime, KC_TICKET_LIFETIME_MAX);
	if (!take_uint(&c, 4, &t.age_add))
		return truncated(err, "ticket_age_add", 4, c.left);

	if (!take_uint(&c, 1, &v))
		return truncated(err, "ticket_nonce length", 1, c.left);
	if (v > c.left)
		return past_end(err, "ticket_nonce", v, c.left);
	t.nonce_len = v;
	memcpy(t.nonce, c.p, t.nonce_len);
	c.p += v;
	c.left -= v;

	if (!take_uint(&c, 2, &v))
		return truncated(err, "ticket length", 2, c.left);
	if (v == 0)
		return kc_err_set(err, KC_E_PROTOCOL, NST "ticket: empty (at least 1 byte required)");
	if (v > c.left)
		return past_end(err, "ticket", v, c.left);
	t.ticket_len = v;
	unsigned char digest[32];
	int ret = gnutls_hash_fast(GNUTLS_DIG_SHA256, c.p, t.ticket_len, digest);
	if (ret < 0)
		return kc_err_set(err, KC_E_INTERNAL, "cannot hash a session ticket: %s",
				  gnutls_strerror(ret));
	memcpy(t.ticket_hash, digest, sizeof t.ticket_hash);
	c.p += v;
	c.left -= v;

	if (parse_extensions(&c, &t, err) < 0)
		return -1;

	*out = t;
	return 0;
}

void kc_ticket_format_hash(const struct kc_ticket_info *t, char out[17])
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof t->ticket_hash; i++) {
		out[2 * i] = hex[t->ticket_hash[i] >> 4];
		out[2 * i + 1] = hex[t->ticket_hash[i] & 15];
	}
	out[16] = '\0';
}

const struct kc_ticket_entry *kc_ticket_store_add(struct kc_ticket_store *s,
						  const struct kc_ticket_info *info,
						  time_t arrived)
{
	if (s->n == KC_TICKET_STORE_MAX) {
		memmove(&s->e[0], &s->e[1], (KC_TICKET_STORE_MAX - 1) * sizeof s->e[0]);
		s->n--;
	}
	struct kc_ticket_entry *e = &s->e[s->n++];
	e->info = *info;
	e->arrived = arrived;
	s->total++;
	return e;
}

const struct kc_ticket_entry *kc_ticket_store_latest(const struct kc_ticket_store *s)
{
	return s->n ? &s->e[s->n - 1] : NULL;
}

void kc_ticket_store_clear(struct kc_ticket_store *s)
{
	/* The nonces feed the resumption PSK derivation: not secret alone,
	 * but nothing needs them once the list is gone. */
	gnutls_memset(s, 0, sizeof *s);
}
