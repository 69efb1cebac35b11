/* tests/fuzz/fuzz_addr.c: libFuzzer target for core/addr.c
 * (kc_parse_hostport: HOST:PORT, [V6]:PORT, :PORT).
 *
 * Input: byte 0 bit 0 = allow_empty_host (listen), the rest is the
 * argument, cut at its first NUL and copied to an exactly sized buffer so
 * that ASan sees any read past its end.  Checks on success: the promises
 * addr.h makes about *out.  On failure: status KC_E_USAGE and a message. */
#include "config.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"

static void die(const char *arg, const char *what)
{
	fprintf(stderr, "fuzz_addr: '%s': %s\n", arg, what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool allow_empty = data[0] & 1;
	size_t n = strnlen((const char *)data + 1, size - 1);
	char *arg = malloc(n + 1);
	if (!arg)
		return 0;
	memcpy(arg, data + 1, n);
	arg[n] = '\0';

	struct kc_hostport hp;
	struct kc_err err = { 0 };
	memset(&hp, 0xa5, sizeof hp);
	int rc = kc_parse_hostport(arg, allow_empty, &hp, &err);
	if (rc == 0) {
		size_t hl = strnlen(hp.host, sizeof hp.host);
		size_t pl = strnlen(hp.port, sizeof hp.port);
		if (hl == sizeof hp.host || pl == sizeof hp.port)
			die(arg, "host or port not NUL-terminated");
		if (pl == 0)
			die(arg, "empty port accepted");
		if (hl == 0 && !allow_empty)
			die(arg, "empty host accepted for HOST:PORT");
		if (hl == 0 && hp.host_is_ip)
			die(arg, "empty host marked as an IP literal");
		/* The port is the text after the last ':' of the argument. */
		const char *colon = strrchr(arg, ':');
		if (!colon || strcmp(colon + 1, hp.port) != 0)
			die(arg, "port is not the text after the last ':'");
		if (arg[0] == '[') {
			if (!hp.host_is_ip || strchr(hp.host, ':') == NULL)
				die(arg, "a bracketed host that is not an IPv6 literal");
		} else {
			if (strchr(hp.host, ':'))
				die(arg, "a ':' in an unbracketed host");
			struct in_addr a4;
			if (hp.host_is_ip != (hl > 0 && inet_pton(AF_INET, hp.host, &a4) == 1))
				die(arg, "host_is_ip disagrees with inet_pton");
		}
		if (hp.port[0] >= '0' && hp.port[0] <= '9') {
			char *end;
			unsigned long v = strtoul(hp.port, &end, 10);
			if (*end || v > 65535 || (v == 0 && !allow_empty))
				die(arg, "a port number out of range accepted");
		}
	} else {
		if (rc != -1 || err.status != KC_E_USAGE || !err.msg[0])
			die(arg, "a failure without -1, KC_E_USAGE and a message");
	}
	free(arg);
	return 0;
}
