/* core/diag/procfs.h: the small parsers of /proc and /lib/modules text
 * behind the capability answers (callable on their own for tests and
 * fuzzing; only kc_has_net_admin opens a file):
 *   kc_proc_status_capeff    a /proc/PID/status stream: 1 and *eff, the
 *                            CapEff mask, from the first "CapEff:" line;
 *                            0 when no line has one.
 *   kc_ulp_list_has          is word one of the blank-separated words of
 *                            list (/proc/sys/net/ipv4/tcp_available_ulp)?
 *   kc_modules_list_has_tls  a modules.builtin or modules.dep stream: 1
 *                            when a line starts with kernel/net/tls/tls.ko
 *                            (".ko.xz" and the like included), else 0.
 * Nothing here prints or exits. */
#ifndef KC_DIAG_PROCFS_H
#define KC_DIAG_PROCFS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* True when this process has CAP_NET_ADMIN (what the kernel checks for
 * module autoload and, before Linux 6.15, for sock_diag ULP info). */
bool kc_has_net_admin(void);

int kc_proc_status_capeff(FILE *f, uint64_t *eff);
bool kc_ulp_list_has(const char *list, const char *word);
int kc_modules_list_has_tls(FILE *f);

#endif
