/* core/addr.h: parsing of HOST:PORT arguments. */
#ifndef KC_ADDR_H
#define KC_ADDR_H

#include <stdbool.h>

#include "core/err.h"

#define KC_HOST_MAX 256
#define KC_PORT_MAX 64

struct kc_hostport {
	char host[KC_HOST_MAX];   /* without brackets; "" when omitted (listen) */
	char port[KC_PORT_MAX];   /* number or service name, never empty */
	bool host_is_ip;          /* an IPv4 or IPv6 literal */
};

/* Parse "host:port", "[v6addr]:port" or (allow_empty_host) ":port".
 * Numeric ports must be 0-65535 (0 only with allow_empty_host, i.e. for
 * listen); service names are passed through for getaddrinfo.  Errors have
 * status KC_E_USAGE and say what form is expected. */
int kc_parse_hostport(const char *arg, bool allow_empty_host,
		      struct kc_hostport *out, struct kc_err *err);

#endif
