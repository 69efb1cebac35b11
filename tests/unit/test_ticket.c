/* tests/unit/test_ticket.c: NewSessionTicket parsing (RFC 8446 §4.6.1)
 * and the list of tickets seen.
 *
 * The messages are built by hand here, field by field, so every malformed
 * variant is one edit away from a valid one. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "core/ticket.h"

struct buf {
	unsigned char b[70000 + 1024];
	size_t n;
};

static void put(struct buf *m, uint32_t v, size_t bytes)
{
	for (size_t i = bytes; i-- > 0;)
		m->b[m->n++] = (unsigned char)(v >> (8 * i));
}

static void put_bytes(struct buf *m, const void *p, size_t n)
{
	if (n)
		memcpy(m->b + m->n, p, n);
	m->n += n;
}

/* The fields of a message; ext is the raw extensions block body. */
struct nst {
	uint32_t lifetime, age_add;
	const unsigned char *nonce;
	size_t nonce_len;
	const unsigned char *ticket;
	size_t ticket_len;
	const unsigned char *ext;
	size_t ext_len;
};

/* Header (type 4, uint24 length fixed up to the body), then the body. */
static void build(struct buf *m, const struct nst *f)
{
	m->n = 0;
	put(m, 4, 1);
	put(m, 0, 3);
	put(m, f->lifetime, 4);
	put(m, f->age_add, 4);
	put(m, (uint32_t)f->nonce_len, 1);
	put_bytes(m, f->nonce, f->nonce_len);
	put(m, (uint32_t)f->ticket_len, 2);
	put_bytes(m, f->ticket, f->ticket_len);
	put(m, (uint32_t)f->ext_len, 2);
	put_bytes(m, f->ext, f->ext_len);
	size_t body = m->n - 4;
	m->b[1] = (unsigned char)(body >> 16);
	m->b[2] = (unsigned char)(body >> 8);
	m->b[3] = (unsigned char)body;
}

static void fix_header(struct buf *m)
{
	size_t body = m->n - 4;
	m->b[1] = (unsigned char)(body >> 16);
	m->b[2] = (unsigned char)(body >> 8);
	m->b[3] = (unsigned char)body;
}

static const unsigned char nonce8[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
static const unsigned char abc[3] = { 'a', 'b', 'c' };
/* early_data (42) with max_early_data_size 16384, then an unknown
 * (GREASE 0x0a0a) extension with 2 bytes of data. */
static const unsigned char ext_early[] = { 0, 42, 0, 4, 0, 0, 0x40, 0,
					   0x0a, 0x0a, 0, 2, 0xde, 0xad };

static struct nst valid(void)
{
	return (struct nst){
		.lifetime = 7200, .age_add = 0xdeadbeef,
		.nonce = nonce8, .nonce_len = sizeof nonce8,
		.ticket = abc, .ticket_len = sizeof abc,
	};
}

static struct kc_ticket_info parse_ok(const struct buf *m)
{
	struct kc_ticket_info t;
	struct kc_err err = { 0 };
	cr_assert_eq(kc_ticket_parse(m->b, m->n, &t, &err), 0, "rejected: %s", err.msg);
	return t;
}

/* Rejected with KC_E_PROTOCOL, a message containing phrase, *out untouched. */
static void parse_bad(const struct buf *m, const char *phrase)
{
	struct kc_ticket_info t;
	memset(&t, 0x5a, sizeof t);
	struct kc_err err = { 0 };
	cr_assert_eq(kc_ticket_parse(m->b, m->n, &t, &err), -1, "accepted, expected '%s'", phrase);
	cr_assert_eq(err.status, KC_E_PROTOCOL, "status %d: %s", err.status, err.msg);
	cr_assert(strstr(err.msg, "NewSessionTicket"), "%s", err.msg);
	cr_assert(strstr(err.msg, phrase), "message '%s' lacks '%s'", err.msg, phrase);
	for (size_t i = 0; i < sizeof t; i++)
		cr_assert_eq(((unsigned char *)&t)[i], 0x5a, "output written on failure");
}

Test(ticket, real_ticket_without_early_data)
{
	/* A ticket shaped like GnuTLS 3.7.9's: 8-byte nonce, opaque blob. */
	unsigned char blob[200];
	for (size_t i = 0; i < sizeof blob; i++)
		blob[i] = (unsigned char)(i * 7 + 3);
	struct nst f = valid();
	f.ticket = blob;
	f.ticket_len = sizeof blob;
	struct buf m;
	build(&m, &f);
	cr_assert_eq(m.n, 4 + 4 + 4 + 1 + 8 + 2 + 200 + 2);
	struct kc_ticket_info t = parse_ok(&m);
	cr_assert_eq(t.lifetime, 7200);
	cr_assert_eq(t.age_add, 0xdeadbeef);
	cr_assert_eq(t.nonce_len, 8);
	cr_assert_arr_eq(t.nonce, nonce8, 8);
	cr_assert_eq(t.ticket_len, 200);
	cr_assert_not(t.has_max_early_data);
	cr_assert_eq(t.max_early_data, 0);

	unsigned char d[32];
	cr_assert_eq(gnutls_hash_fast(GNUTLS_DIG_SHA256, blob, sizeof blob, d), 0);
	cr_assert_arr_eq(t.ticket_hash, d, 8);
}

Test(ticket, hash_is_sha256_prefix_in_hex)
{
	struct nst f = valid();
	struct buf m;
	build(&m, &f);
	struct kc_ticket_info t = parse_ok(&m);
	char hex[17];
	kc_ticket_format_hash(&t, hex);
	/* SHA-256("abc") = ba7816bf8f01cfea 414140de5dae2223 ... (FIPS 180-2) */
	cr_assert_str_eq(hex, "ba7816bf8f01cfea");
}

Test(ticket, with_early_data_and_unknown_extension)
{
	struct nst f = valid();
	f.ext = ext_early;
	f.ext_len = sizeof ext_early;
	struct buf m;
	build(&m, &f);
	struct kc_ticket_info t = parse_ok(&m);
	cr_assert(t.has_max_early_data);
	cr_assert_eq(t.max_early_data, 16384);
	cr_assert_eq(t.ticket_len, 3);
}

Test(ticket, field_edges_accepted)
{
	unsigned char nonce255[255], big[65535];
	memset(nonce255, 0xab, sizeof nonce255);
	memset(big, 0xcd, sizeof big);
	struct nst f = valid();
	struct buf m;

	f.lifetime = 0;                    /* "discard immediately": allowed */
	f.nonce_len = 0;
	f.ticket_len = 1;
	build(&m, &f);
	struct kc_ticket_info t = parse_ok(&m);
	cr_assert_eq(t.lifetime, 0);
	cr_assert_eq(t.nonce_len, 0);
	cr_assert_eq(t.ticket_len, 1);

	f = valid();
	f.lifetime = 604800;               /* exactly 7 days */
	f.nonce = nonce255;
	f.nonce_len = 255;
	f.ticket = big;
	f.ticket_len = 65535;
	build(&m, &f);
	t = parse_ok(&m);
	cr_assert_eq(t.lifetime, 604800);
	cr_assert_eq(t.nonce_len, 255);
	cr_assert_arr_eq(t.nonce, nonce255, 255);
	cr_assert_eq(t.ticket_len, 65535);

	/* the largest extensions block, 65534 bytes of one unknown extension */
	static unsigned char ext[65534];
	ext[0] = 0xff; ext[1] = 0x01;
	ext[2] = (65530 >> 8); ext[3] = 65530 & 0xff;
	f = valid();
	f.ext = ext;
	f.ext_len = sizeof ext;
	build(&m, &f);
	parse_ok(&m);
}

Test(ticket, lifetime_over_7_days)
{
	struct nst f = valid();
	f.lifetime = 604801;
	struct buf m;
	build(&m, &f);
	parse_bad(&m, "ticket_lifetime: 604801 seconds");
	f.lifetime = UINT32_MAX;
	build(&m, &f);
	parse_bad(&m, "ticket_lifetime");
}

Test(ticket, zero_length_ticket)
{
	struct nst f = valid();
	f.ticket_len = 0;
	struct buf m;
	build(&m, &f);
	parse_bad(&m, "ticket: empty");
}

Test(ticket, wrong_message_type)
{
	struct nst f = valid();
	struct buf m;
	build(&m, &f);
	m.b[0] = 24;   /* key_update */
	parse_bad(&m, "handshake type 24");
	m.b[0] = 0;
	parse_bad(&m, "handshake type 0");
}

Test(ticket, header_length_mismatch)
{
	struct nst f = valid();
	struct buf m;
	build(&m, &f);
	m.b[3]++;                         /* announces one byte more than there is */
	parse_bad(&m, "(truncated)");
	build(&m, &f);
	m.b[m.n++] = 0;                   /* a byte after the message */
	parse_bad(&m, "(trailing bytes)");
	build(&m, &f);
	m.b[1] = 0xff;                    /* 16 MiB announced */
	parse_bad(&m, "message length");
}

Test(ticket, empty_and_null_input)
{
	struct buf m = { .n = 0 };
	parse_bad(&m, "handshake header");
	struct kc_err err = { 0 };
	struct kc_ticket_info t;
	cr_assert_eq(kc_ticket_parse(NULL, 0, &t, &err), -1);
	cr_assert_eq(err.status, KC_E_PROTOCOL);
	/* err may be NULL, as everywhere in core */
	cr_assert_eq(kc_ticket_parse(m.b, 0, &t, NULL), -1);
}

Test(ticket, nonce_length_past_end)
{
	/* Body ends inside the nonce: lifetime, age_add, nonce length 200, 8 bytes. */
	struct buf m = { .n = 0 };
	put(&m, 4, 1); put(&m, 0, 3);
	put(&m, 3600, 4); put(&m, 1, 4);
	put(&m, 200, 1); put_bytes(&m, nonce8, 8);
	fix_header(&m);
	parse_bad(&m, "ticket_nonce: length 200 runs past the end");
}

Test(ticket, ticket_length_past_end)
{
	struct nst f = valid();
	struct buf m;
	build(&m, &f);
	/* ticket length field sits after header(4)+8+1+nonce(8) */
	size_t at = 4 + 8 + 1 + 8;
	m.b[at] = 0x10; m.b[at + 1] = 0x00;   /* 4096 bytes, far past the end */
	parse_bad(&m, "ticket: length 4096 runs past the end");
}

Test(ticket, extensions_length_mismatch)
{
	struct nst f = valid();
	f.ext = ext_early;
	f.ext_len = sizeof ext_early;
	struct buf m;
	build(&m, &f);
	size_t at = m.n - sizeof ext_early - 2;   /* the extensions length */

	m.b[at + 1]++;                            /* one more than present */
	parse_bad(&m, "extensions: length 15 runs past the end");
	m.b[at + 1] -= 2;                         /* one less: a byte left over */
	parse_bad(&m, "leaves 1 bytes after the extensions");
	m.b[at] = 0xff; m.b[at + 1] = 0xff;       /* 65535 > 2^16-2 */
	parse_bad(&m, "at most 65534");
}

Test(ticket, extension_data_past_end_of_list)
{
	/* early_data claims 8 bytes of data, the list holds 4 */
	static const unsigned char ext[] = { 0, 42, 0, 8, 0, 0, 0x40, 0 };
	struct nst f = valid();
	f.ext = ext;
	f.ext_len = sizeof ext;
	struct buf m;
	build(&m, &f);
	parse_bad(&m, "extension 42: data length 8 runs past the end of the list");

	/* a list too short for an extension header */
	static const unsigned char ext3[] = { 0, 42, 0 };
	f.ext = ext3;
	f.ext_len = sizeof ext3;
	build(&m, &f);
	parse_bad(&m, "4-byte extension header");
}

Test(ticket, early_data_body_must_be_uint32)
{
	static const unsigned char ext3[] = { 0, 42, 0, 3, 0, 0, 1 };
	static const unsigned char ext5[] = { 0, 42, 0, 5, 0, 0, 0, 1, 0 };
	static const unsigned char ext0[] = { 0, 42, 0, 0 };
	struct nst f = valid();
	struct buf m;
	f.ext = ext3; f.ext_len = sizeof ext3;
	build(&m, &f);
	parse_bad(&m, "must be 4 bytes, not 3");
	f.ext = ext5; f.ext_len = sizeof ext5;
	build(&m, &f);
	parse_bad(&m, "must be 4 bytes, not 5");
	f.ext = ext0; f.ext_len = sizeof ext0;
	build(&m, &f);
	parse_bad(&m, "must be 4 bytes, not 0");
}

Test(ticket, duplicate_extensions)
{
	static const unsigned char dup_early[] = { 0, 42, 0, 4, 0, 0, 0, 1,
						   0, 42, 0, 4, 0, 0, 0, 2 };
	static const unsigned char dup_unknown[] = { 0xfa, 0xfa, 0, 0,
						     0, 42, 0, 4, 0, 0, 0, 1,
						     0xfa, 0xfa, 0, 1, 7 };
	struct nst f = valid();
	struct buf m;
	f.ext = dup_early; f.ext_len = sizeof dup_early;
	build(&m, &f);
	parse_bad(&m, "extension 42 appears twice");
	f.ext = dup_unknown; f.ext_len = sizeof dup_unknown;
	build(&m, &f);
	parse_bad(&m, "extension 64250 appears twice");
}

/* Cut the body at every byte, fixing the header each time, so each field's
 * own length check fires; the message names the field being read. */
Test(ticket, truncated_at_each_field)
{
	struct nst f = valid();
	f.ext = ext_early;
	f.ext_len = sizeof ext_early;
	struct buf full;
	build(&full, &f);

	/* where each field starts: ticket_lifetime at 4, after the header */
	const size_t age_add = 8, nonce_len = 12, nonce = 13,
		ticket_len = 21, ticket = 23, ext_len = 26, ext = 28;
	cr_assert_eq(full.n, ext + sizeof ext_early);

	for (size_t cut = 4; cut < full.n; cut++) {
		struct buf m;
		memcpy(m.b, full.b, cut);
		m.n = cut;
		fix_header(&m);
		const char *want =
			cut < age_add ? "ticket_lifetime" :
			cut < nonce_len ? "ticket_age_add" :
			cut < nonce ? "ticket_nonce length" :
			cut < ticket_len ? "ticket_nonce: length 8 runs past" :
			cut < ticket ? "ticket length" :
			cut < ext_len ? "ticket: length 3 runs past" :
			cut < ext ? "extensions length" :
			"extensions: length 14 runs past";
		parse_bad(&m, want);
	}
	/* and the header itself */
	for (size_t cut = 0; cut < 4; cut++) {
		struct buf m;
		memcpy(m.b, full.b, cut);
		m.n = cut;
		parse_bad(&m, "handshake header");
	}
}

/* Every prefix of valid messages, with the header left as it was, must be
 * rejected (never read past len: ASan watches), and so must every prefix
 * with the header fixed up. */
Test(ticket, every_truncation_rejected)
{
	unsigned char nonce255[255];
	memset(nonce255, 1, sizeof nonce255);
	struct nst variants[3] = { valid(), valid(), valid() };
	variants[1].ext = ext_early;
	variants[1].ext_len = sizeof ext_early;
	variants[2].nonce = nonce255;
	variants[2].nonce_len = 255;
	variants[2].ext = ext_early;
	variants[2].ext_len = sizeof ext_early;

	for (size_t v = 0; v < 3; v++) {
		struct buf full;
		build(&full, &variants[v]);
		parse_ok(&full);
		for (size_t cut = 0; cut < full.n; cut++) {
			/* an exact-size heap copy, so a read past the end is caught */
			unsigned char *p = malloc(cut ? cut : 1);
			memcpy(p, full.b, cut);
			struct kc_ticket_info t;
			struct kc_err err = { 0 };
			cr_assert_eq(kc_ticket_parse(p, cut, &t, &err), -1, "variant %zu cut %zu", v, cut);
			cr_assert_eq(err.status, KC_E_PROTOCOL);
			if (cut >= 4) {
				size_t body = cut - 4;
				p[1] = (unsigned char)(body >> 16);
				p[2] = (unsigned char)(body >> 8);
				p[3] = (unsigned char)body;
				cr_assert_eq(kc_ticket_parse(p, cut, &t, &err), -1,
					     "variant %zu fixed cut %zu", v, cut);
				cr_assert_eq(err.status, KC_E_PROTOCOL);
			}
			free(p);
		}
	}
}

/* Random single-byte and multi-byte mutations: accepted or rejected, never
 * a crash or an out-of-bounds read; whatever is accepted is consistent. */
Test(ticket, mutations_do_not_crash)
{
	struct nst f = valid();
	f.ext = ext_early;
	f.ext_len = sizeof ext_early;
	struct buf full;
	build(&full, &f);
	srand(4);
	for (int round = 0; round < 20000; round++) {
		size_t n = full.n;
		unsigned char *p = malloc(n);
		memcpy(p, full.b, n);
		int edits = 1 + rand() % 3;
		for (int e = 0; e < edits; e++)
			p[rand() % n] = (unsigned char)rand();
		struct kc_ticket_info t;
		struct kc_err err = { 0 };
		if (kc_ticket_parse(p, n, &t, &err) == 0) {
			cr_assert_leq(t.lifetime, KC_TICKET_LIFETIME_MAX);
			cr_assert_geq(t.ticket_len, 1);
			cr_assert_leq(t.nonce_len + t.ticket_len + 14, n);
		} else {
			cr_assert_eq(err.status, KC_E_PROTOCOL);
			cr_assert_neq(err.msg[0], '\0');
		}
		free(p);
	}
	/* and pure noise of every small length */
	for (size_t n = 0; n < 64; n++) {
		for (int round = 0; round < 200; round++) {
			unsigned char *p = malloc(n ? n : 1);
			for (size_t i = 0; i < n; i++)
				p[i] = (unsigned char)rand();
			struct kc_ticket_info t;
			kc_ticket_parse(p, n, &t, NULL);
			free(p);
		}
	}
}

static struct kc_ticket_info numbered(uint32_t i)
{
	struct kc_ticket_info t = { .lifetime = i, .ticket_len = 1 };
	return t;
}

Test(ticket, store_keeps_the_newest_16)
{
	struct kc_ticket_store s = { 0 };
	cr_assert_null(kc_ticket_store_latest(&s));

	const struct kc_ticket_entry *e;
	for (uint32_t i = 1; i <= 3; i++) {
		struct kc_ticket_info t = numbered(i);
		e = kc_ticket_store_add(&s, &t, (time_t)(1000 + i));
		cr_assert_eq(e->info.lifetime, i);
		cr_assert_eq(e->arrived, 1000 + i);
	}
	cr_assert_eq(s.n, 3);
	cr_assert_eq(s.total, 3);
	cr_assert_eq(kc_ticket_store_latest(&s)->info.lifetime, 3);
	cr_assert_eq(s.e[0].info.lifetime, 1);

	for (uint32_t i = 4; i <= 40; i++) {
		struct kc_ticket_info t = numbered(i);
		kc_ticket_store_add(&s, &t, (time_t)(1000 + i));
	}
	cr_assert_eq(s.n, KC_TICKET_STORE_MAX);
	cr_assert_eq(s.total, 40);
	/* oldest first; the oldest 24 were dropped */
	for (size_t i = 0; i < s.n; i++) {
		cr_assert_eq(s.e[i].info.lifetime, 40 - KC_TICKET_STORE_MAX + 1 + i);
		/* the documented numbering: total - n + i + 1 */
		cr_assert_eq(s.total - s.n + i + 1, s.e[i].info.lifetime);
	}
	cr_assert_eq(kc_ticket_store_latest(&s)->info.lifetime, 40);
	cr_assert_eq(kc_ticket_store_latest(&s)->arrived, 1040);

	kc_ticket_store_clear(&s);
	cr_assert_eq(s.n, 0);
	cr_assert_eq(s.total, 0);
	cr_assert_null(kc_ticket_store_latest(&s));
}
