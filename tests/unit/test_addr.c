/* tests/unit/test_addr.c: HOST:PORT parsing. */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "core/addr.h"

static struct kc_hostport ok(const char *arg, bool listen)
{
	struct kc_hostport hp;
	struct kc_err err = { 0 };
	cr_assert_eq(kc_parse_hostport(arg, listen, &hp, &err), 0, "'%s': %s", arg, err.msg);
	return hp;
}

static void bad(const char *arg, bool listen, const char *phrase)
{
	struct kc_hostport hp;
	struct kc_err err = { 0 };
	cr_assert_eq(kc_parse_hostport(arg, listen, &hp, &err), -1, "'%s' accepted", arg);
	cr_assert_eq(err.status, KC_E_USAGE);
	cr_assert(strstr(err.msg, phrase), "'%s': message '%s' lacks '%s'", arg, err.msg, phrase);
}

Test(addr, names_and_ports)
{
	struct kc_hostport hp = ok("example.com:443", false);
	cr_assert_str_eq(hp.host, "example.com");
	cr_assert_str_eq(hp.port, "443");
	cr_assert_not(hp.host_is_ip);

	hp = ok("localhost:https", false);
	cr_assert_str_eq(hp.port, "https");

	hp = ok("127.0.0.1:4433", false);
	cr_assert(hp.host_is_ip);
	cr_assert_str_eq(hp.host, "127.0.0.1");
}

Test(addr, ipv6_in_brackets)
{
	struct kc_hostport hp = ok("[::1]:4433", false);
	cr_assert_str_eq(hp.host, "::1");
	cr_assert_str_eq(hp.port, "4433");
	cr_assert(hp.host_is_ip);

	hp = ok("[fe80::1%lo]:1", false);
	cr_assert_str_eq(hp.host, "fe80::1%lo");
}

Test(addr, listen_forms)
{
	struct kc_hostport hp = ok(":8443", true);
	cr_assert_str_eq(hp.host, "");
	cr_assert_str_eq(hp.port, "8443");
	hp = ok("0.0.0.0:0", true);
	cr_assert_str_eq(hp.port, "0");
	hp = ok("[::]:8443", true);
	cr_assert_str_eq(hp.host, "::");
}

Test(addr, malformed)
{
	bad("", false, "expected HOST:PORT");
	bad("host", false, "expected HOST:PORT");
	bad("host:", false, "port is missing");
	bad(":443", false, "host is missing");
	bad("[::1", false, "expected [IPV6]:PORT");
	bad("[::1]443", false, "expected [IPV6]:PORT");
	bad("[]:443", false, "empty");
	bad("[nothex]:443", false, "not an IPv6 address");
	bad("host:99999", false, "not a port number");
	bad("host:0", false, "not a port number");
	bad("host:-1", false, "not a port number");
	bad("a:b:c", false, "[ADDR]:PORT");
	bad("::1:443", false, "[ADDR]:PORT");
	bad("bad host:443", false, "not a valid host name");
	bad("host:ht/tps", false, "not a port number");
	bad("host", true, "expected [ADDR]:PORT");
}

Test(addr, overlong)
{
	char arg[600];
	memset(arg, 'a', 500);
	strcpy(arg + 500, ":443");
	bad(arg, false, "too long");
	memset(arg, '1', 100);
	arg[0] = 'h';
	arg[1] = ':';
	arg[100] = '\0';
	bad(arg, false, "not a port number");
}
