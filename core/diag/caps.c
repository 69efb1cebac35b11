/* core/diag/caps.c: what kernel TLS can do here, found by experiment,
 * and why not (see caps.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/diag/caps.h"
#include "core/diag/procfs.h"
#include "core/probe.h"

#define ULP_LIST_PATH "/proc/sys/net/ipv4/tcp_available_ulp"

/* Read a small text file (first line(s)), newline-stripped; -1 + errno. */
static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n;
	do
		n = read(fd, buf, len - 1);
	while (n < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return -1;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* 1: the running kernel's modules.builtin or modules.dep lists
 * net/tls/tls.ko; 0: both were read and neither does; -1: can't tell. */
static int tls_module_installed(char *where, size_t len)
{
	static const char *const files[] = { "modules.builtin", "modules.dep" };
	struct utsname u;
	int read_any = 0;

	if (uname(&u) < 0)
		return -1;
	for (size_t i = 0; i < 2; i++) {
		char path[512];
		snprintf(path, sizeof path, "/lib/modules/%s/%s", u.release, files[i]);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		read_any++;
		int found = kc_modules_list_has_tls(f);
		fclose(f);
		if (found) {
			snprintf(where, len, "%s in /lib/modules/%s/%s",
				 i == 0 ? "built in" : "tls.ko", u.release, files[i]);
			return 1;
		}
	}
	return read_any == 2 ? 0 : -1;
}


const char *kc_cap_state_name(enum kc_cap_state s)
{
	switch (s) {
	case KC_CAP_YES: return "yes";
	case KC_CAP_NO: return "no";
	default: return "unknown";
	}
}

static void cap_set(struct kc_cap *c, enum kc_cap_state state, int sys_errno,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void cap_set(struct kc_cap *c, enum kc_cap_state state, int sys_errno,
		    const char *fmt, ...)
{
	va_list ap;
	c->state = state;
	c->sys_errno = sys_errno;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof c->reason, fmt, ap);
	va_end(ap);
}

static void probe_key(struct kc_cap *c, uint16_t version, const struct kc_ktls_cipher *kc,
		      enum kc_dir dir)
{
	struct kc_err perr;
	int e = 0;
	const char *v = version == KC_TLS13 ? "TLS 1.3" : "TLS 1.2";

	kc_err_clear(&perr);
	int r = kc_probe_kernel_key(version, kc->id, dir, &e, &perr);
	if (r < 0) {
		cap_set(c, KC_CAP_UNKNOWN, perr.sys_errno, "%s", perr.msg);
		return;
	}
	if (r == 1) {
		cap_set(c, KC_CAP_YES, 0, "%s", "");
		return;
	}
	switch (e) {
	case EINVAL:
		cap_set(c, KC_CAP_NO, e, "the kernel does not know %s in %s", kc->name, v);
		break;
	case ENOENT:
		cap_set(c, KC_CAP_NO, e, "the kernel lacks the %s crypto algorithm "
			"(not built, or its module not loadable)", kc->crypto);
		break;
	case ENOPROTOOPT:
		cap_set(c, KC_CAP_NO, e, "this kernel has no kTLS %s path",
			dir == KC_RX ? "receive" : "send");
		break;
	default:
		cap_set(c, KC_CAP_NO, e, "refused: %s", strerror(e));
		break;
	}
}

static void probe_option(struct kc_cap *c, int optname, const char *since)
{
	struct kc_err perr;
	int e = 0;

	kc_err_clear(&perr);
	int r = kc_probe_kernel_option(optname, &e, &perr);
	if (r < 0)
		cap_set(c, KC_CAP_UNKNOWN, perr.sys_errno, "%s", perr.msg);
	else if (r == 1)
		cap_set(c, KC_CAP_YES, 0, "%s", "");
	else
		cap_set(c, KC_CAP_NO, e, "not in this kernel (added in Linux %s)", since);
}

/* Explain a failed TCP_ULP "tls" (kTLS unavailable) and the module. */
static void explain_ulp_failure(struct kc_ktls_caps *caps, int e)
{
	char where[600];
	int inst;

	if (e == ENOPROTOOPT) {
		cap_set(&caps->available, KC_CAP_NO, e, "this kernel has no TCP_ULP support "
			"(no kernel TLS at all)");
		cap_set(&caps->module, KC_CAP_NO, e, "no TCP_ULP support in this kernel");
		return;
	}
	if (e != ENOENT) {
		cap_set(&caps->available, KC_CAP_NO, e, "TCP_ULP \"tls\" refused: %s",
			strerror(e));
		cap_set(&caps->module, KC_CAP_UNKNOWN, e, "cannot tell: TCP_ULP \"tls\" "
			"failed with %s", strerror(e));
		return;
	}
	inst = tls_module_installed(where, sizeof where);
	if (caps->net_admin) {
		/* The kernel tried request_module("tcp-ulp-tls") for us. */
		if (inst == 1) {
			cap_set(&caps->available, KC_CAP_NO, e, "the tls module is installed "
				"but did not load: try 'modprobe tls' (on the host, if this "
				"is a container)");
			snprintf(caps->fix, sizeof caps->fix, "modprobe tls");
			cap_set(&caps->module, KC_CAP_NO, e, "installed (%s) but it did not "
				"load on demand", where);
		} else {
			cap_set(&caps->available, KC_CAP_NO, e, "this kernel has no TLS ULP: "
				"CONFIG_TLS is off or the tls module is not installed");
			cap_set(&caps->module, KC_CAP_NO, e, "CONFIG_TLS is off or the tls "
				"module is not installed%s", inst == 0 ? " (not in modules.dep "
				"or modules.builtin)" : "");
		}
		return;
	}
	/* Unprivileged callers never trigger the autoload. */
	cap_set(&caps->available, KC_CAP_NO, e, "the tls module is not loaded and only "
		"root can load it: load it: modprobe tls (or list it in "
		"/etc/modules-load.d/)");
	if (inst != 0)
		snprintf(caps->fix, sizeof caps->fix, "sudo modprobe tls");
	if (inst == 1)
		cap_set(&caps->module, KC_CAP_YES, 0, "installed but not loaded (%s): "
			"modprobe tls", where);
	else if (inst == 0)
		cap_set(&caps->module, KC_CAP_NO, e, "no tls module for this kernel "
			"(CONFIG_TLS off?)");
	else
		cap_set(&caps->module, KC_CAP_UNKNOWN, e, "not loaded; only root can load "
			"it: modprobe tls");
}

static void not_probed(struct kc_ktls_caps *caps, const char *why)
{
	struct kc_cap *all[] = { &caps->rekey, &caps->rx_expect_no_pad,
				 &caps->tx_zerocopy_ro, &caps->tx_max_payload_len };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		cap_set(all[i], KC_CAP_UNKNOWN, 0, "not probed: %s", why);
	for (size_t i = 0; i < KC_CAPS_NCIPHERS; i++) {
		struct kc_cipher_caps *cc = &caps->ciphers[i];
		struct kc_cap *d[] = { &cc->tls12_tx, &cc->tls12_rx, &cc->tls13_tx, &cc->tls13_rx };
		for (size_t j = 0; j < 4; j++)
			cap_set(d[j], KC_CAP_UNKNOWN, 0, "not probed: %s", why);
	}
}

int kc_ktls_caps_probe(struct kc_ktls_caps *caps, struct kc_err *err)
{
	struct kc_err perr;
	int e = 0, r;

	if (!caps)
		return kc_err_set(err, KC_E_INTERNAL, "kc_ktls_caps_probe: no result struct");
	memset(caps, 0, sizeof *caps);
	for (size_t i = 0; i < KC_CAPS_NCIPHERS; i++) {
		struct kc_cipher_caps *cc = &caps->ciphers[i];
		const struct kc_cipher *row = &kc_ciphers[i];
		cc->cipher = row->gnutls;
		cc->name = row->name;
		cc->kernel_id = row->kernel.id;
		cc->kernel_name = row->kernel.name;
	}
	caps->net_admin = kc_has_net_admin();
	if (read_small(ULP_LIST_PATH, caps->available_ulps, sizeof caps->available_ulps) < 0)
		caps->available_ulps[0] = '\0';
	kc_view_printable(caps->available_ulps);
	caps->ulp_registered = kc_ulp_list_has(caps->available_ulps, "tls");

	kc_err_clear(&perr);
	r = kc_probe_kernel_ulp(&e, &perr);
	if (r < 0) {
		cap_set(&caps->available, KC_CAP_UNKNOWN, perr.sys_errno, "%s", perr.msg);
		cap_set(&caps->module, caps->ulp_registered ? KC_CAP_YES : KC_CAP_UNKNOWN, 0,
			"%s", caps->ulp_registered ? "loaded" : "cannot tell: no loopback socket");
		not_probed(caps, "no loopback socket pair");
		return 0;
	}
	if (r == 0) {
		explain_ulp_failure(caps, e);
		not_probed(caps, "kernel TLS is not available");
		return 0;
	}
	cap_set(&caps->available, KC_CAP_YES, 0, "%s", "");
	if (caps->ulp_registered)
		cap_set(&caps->module, KC_CAP_YES, 0, "%s", "loaded");
	else
		cap_set(&caps->module, KC_CAP_YES, 0, "%s", "loaded on demand by this probe");

	for (size_t i = 0; i < KC_CAPS_NCIPHERS; i++) {
		struct kc_cipher_caps *cc = &caps->ciphers[i];
		const struct kc_ktls_cipher *kc = kc_ktls_cipher_by_id(cc->kernel_id);
		if (!kc) {  /* keys.c and probe.c disagree: a bug */
			struct kc_cap *d[] = { &cc->tls12_tx, &cc->tls12_rx,
					       &cc->tls13_tx, &cc->tls13_rx };
			for (size_t j = 0; j < 4; j++)
				cap_set(d[j], KC_CAP_UNKNOWN, 0, "no kernel id for %s", cc->name);
			continue;
		}
		probe_key(&cc->tls12_tx, KC_TLS12, kc, KC_TX);
		probe_key(&cc->tls12_rx, KC_TLS12, kc, KC_RX);
		probe_key(&cc->tls13_tx, KC_TLS13, kc, KC_TX);
		probe_key(&cc->tls13_rx, KC_TLS13, kc, KC_RX);
	}

	kc_err_clear(&perr);
	r = kc_probe_kernel_rekey(&perr);
	if (r == 1)
		cap_set(&caps->rekey, KC_CAP_YES, 0, "%s", "");
	else if (r == 0)
		cap_set(&caps->rekey, KC_CAP_NO, EBUSY, "the kernel refuses a second TLS 1.3 "
			"key (added in Linux 6.14): kTLS cannot follow a peer's key update");
	else
		cap_set(&caps->rekey, KC_CAP_UNKNOWN, perr.sys_errno, "%s", perr.msg);

	probe_option(&caps->rx_expect_no_pad, TLS_RX_EXPECT_NO_PAD, "6.0");
	probe_option(&caps->tx_zerocopy_ro, TLS_TX_ZEROCOPY_RO, "5.19");
	probe_option(&caps->tx_max_payload_len, TLS_TX_MAX_PAYLOAD_LEN, "6.19");
	return 0;
}

/* {state, reason, errno} with a one-line text. */
static struct kc_view *cap_view(struct kc_view *parent, const char *key, const char *label,
				const struct kc_cap *c)
{
	char eb[32];
	const char *en = c->sys_errno ? kc_errno_name(c->sys_errno, eb, sizeof eb) : NULL;
	struct kc_view *o = kc_view_object(parent, key, label);

	kc_view_string(o, "state", "state", "%s", kc_cap_state_name(c->state));
	kc_view_string_or_null(o, "reason", "reason", c->reason);
	kc_view_string_or_null(o, "errno", "errno", en);
	if (!c->reason[0])
		kc_view_set_text(o, "%s", kc_cap_state_name(c->state));
	else if (c->state == KC_CAP_YES)
		kc_view_set_text(o, "yes (%s)", c->reason);
	else if (en)
		kc_view_set_text(o, "%s: %s (%s)", kc_cap_state_name(c->state), c->reason, en);
	else
		kc_view_set_text(o, "%s: %s", kc_cap_state_name(c->state), c->reason);
	return o;
}

int kc_ktls_caps_view(const struct kc_ktls_caps *caps, struct kc_view *parent,
		      struct kc_err *err)
{
	struct kc_view *k = kc_view_object(parent, "kernel", "Kernel");

	kc_view_mark_brief(cap_view(k, "available", "kTLS available", &caps->available));
	struct kc_view *fix = kc_view_string_or_null(k, "fix", "to fix it, run", caps->fix);
	if (caps->fix[0])
		kc_view_mark_brief(fix);
	kc_view_bool(k, "net_admin", "CAP_NET_ADMIN (root)", caps->net_admin);
	kc_view_bool(k, "ulp_registered", "TLS ULP registered", caps->ulp_registered);
	kc_view_string_or_null(k, "available_ulps", "tcp_available_ulp", caps->available_ulps);
	cap_view(k, "module", "tls module", &caps->module);

	struct kc_view *arr = kc_view_array(k, "ciphers", "Ciphers");
	for (size_t i = 0; i < KC_CAPS_NCIPHERS; i++) {
		const struct kc_cipher_caps *cc = &caps->ciphers[i];
		struct kc_view *o = kc_view_object(arr, NULL, cc->name);
		kc_view_string(o, "name", "name", "%s", cc->name);
		kc_view_string(o, "kernel_name", "kernel name", "%s", cc->kernel_name);
		kc_view_uint(o, "kernel_id", "kernel id", cc->kernel_id);
		struct kc_view *v12 = kc_view_object(o, "tls12", "TLS 1.2");
		cap_view(v12, "tx", "TX", &cc->tls12_tx);
		cap_view(v12, "rx", "RX", &cc->tls12_rx);
		struct kc_view *v13 = kc_view_object(o, "tls13", "TLS 1.3");
		cap_view(v13, "tx", "TX", &cc->tls13_tx);
		cap_view(v13, "rx", "RX", &cc->tls13_rx);
		kc_view_set_text(o, "%s: TLS 1.2 TX %s RX %s, TLS 1.3 TX %s RX %s", cc->name,
				 kc_cap_state_name(cc->tls12_tx.state),
				 kc_cap_state_name(cc->tls12_rx.state),
				 kc_cap_state_name(cc->tls13_tx.state),
				 kc_cap_state_name(cc->tls13_rx.state));
	}
	cap_view(k, "rekey", "TLS 1.3 key update", &caps->rekey);
	struct kc_view *f = kc_view_object(k, "features", "Optional features");
	cap_view(f, "rx_expect_no_pad", "TLS_RX_EXPECT_NO_PAD", &caps->rx_expect_no_pad);
	cap_view(f, "tx_zerocopy_ro", "TLS_TX_ZEROCOPY_RO", &caps->tx_zerocopy_ro);
	cap_view(f, "tx_max_payload_len", "TLS_TX_MAX_PAYLOAD_LEN", &caps->tx_max_payload_len);
	return kc_view_status(parent, err);
}
