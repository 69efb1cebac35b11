/* core/addr.c: parsing of HOST:PORT arguments. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"

static bool valid_port(const char *p, bool allow_zero)
{
	if (isdigit((unsigned char)p[0])) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(p, &end, 10);
		return *end == '\0' && errno == 0 && v <= 65535 && (v > 0 || allow_zero);
	}
	/* A service name: a letter, then letters, digits, '-', '_'. */
	if (!isalpha((unsigned char)p[0]))
		return false;
	for (const char *c = p; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
			return false;
	return *p != '\0';
}

static bool valid_hostname(const char *h)
{
	for (const char *c = h; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.' && *c != '_')
			return false;
	return true;
}

int kc_parse_hostport(const char *arg, bool allow_empty_host,
		      struct kc_hostport *out, struct kc_err *err)
{
	const char *form = allow_empty_host ? "[ADDR]:PORT" : "HOST:PORT";
	const char *host, *port;
	size_t host_len;

	memset(out, 0, sizeof *out);
	if (arg[0] == '[') {
		const char *close = strchr(arg, ']');
		if (!close || close[1] != ':')
			return kc_err_set(err, KC_E_USAGE,
					  "malformed address '%s': expected [IPV6]:PORT", arg);
		host = arg + 1;
		host_len = (size_t)(close - host);
		port = close + 2;
		if (host_len == 0 || host_len >= sizeof out->host)
			return kc_err_set(err, KC_E_USAGE,
					  "malformed address '%s': empty or too long IPv6 address", arg);
		memcpy(out->host, host, host_len);
		struct in6_addr a6;
		char bare[KC_HOST_MAX];   /* without a %scope suffix */
		snprintf(bare, sizeof bare, "%.*s", (int)strcspn(out->host, "%"), out->host);
		if (inet_pton(AF_INET6, bare, &a6) != 1)
			return kc_err_set(err, KC_E_USAGE,
					  "malformed address '%s': '%s' is not an IPv6 address",
					  arg, out->host);
		out->host_is_ip = true;
	} else {
		const char *colon = strrchr(arg, ':');
		if (!colon)
			return kc_err_set(err, KC_E_USAGE,
					  "malformed address '%s': expected %s", arg, form);
		if (memchr(arg, ':', (size_t)(colon - arg)))
			return kc_err_set(err, KC_E_USAGE,
					  "malformed address '%s': write IPv6 addresses as [ADDR]:PORT",
					  arg);
		host_len = (size_t)(colon - arg);
		port = colon + 1;
		if (host_len >= sizeof out->host)
			return kc_err_set(err, KC_E_USAGE, "host name too long in '%s'", arg);
		memcpy(out->host, arg, host_len);
		if (host_len == 0 && !allow_empty_host)
			return kc_err_set(err, KC_E_USAGE,
					  "malformed address '%s': the host is missing, expected %s",
					  arg, form);
		if (!valid_hostname(out->host))
			return kc_err_set(err, KC_E_USAGE,
					  "malformed address '%s': '%s' is not a valid host name",
					  arg, out->host);
		struct in_addr a4;
		out->host_is_ip = host_len > 0 && inet_pton(AF_INET, out->host, &a4) == 1;
	}
	if (*port == '\0')
		return kc_err_set(err, KC_E_USAGE,
				  "malformed address '%s': the port is missing, expected %s",
				  arg, form);
	if (strlen(port) >= sizeof out->port || !valid_port(port, allow_empty_host))
		return kc_err_set(err, KC_E_USAGE,
				  "malformed address '%s': '%s' is not a port number (1-65535) "
				  "or service name", arg, port);
	strcpy(out->port, port);
	return 0;
}
