/* core/diag/procfs.c: small readers of /proc and /lib/modules text (see
 * procfs.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/diag/procfs.h"

#define CAP_NET_ADMIN_BIT 12

int kc_proc_status_capeff(FILE *f, uint64_t *eff)
{
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	while (getline(&line, &cap, f) >= 0) {
		unsigned long long v;
		if (sscanf(line, "CapEff: %llx", &v) == 1) {
			*eff = v;
			found = 1;
			break;
		}
	}
	free(line);
	return found;
}

bool kc_has_net_admin(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	uint64_t eff = 0;
	int found = 0;

	if (f) {
		found = kc_proc_status_capeff(f, &eff);
		fclose(f);
	}
	return found ? (eff >> CAP_NET_ADMIN_BIT) & 1 : geteuid() == 0;
}

bool kc_ulp_list_has(const char *list, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = list; *p;) {
		p += strspn(p, " \t");
		size_t n = strcspn(p, " \t");
		if (n == wl && strncmp(p, word, wl) == 0)
			return true;
		p += n;
	}
	return false;
}

int kc_modules_list_has_tls(FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	while (getline(&line, &cap, f) >= 0)
		if (strncmp(line, "kernel/net/tls/tls.ko", 21) == 0) {
			found = 1;
			break;
		}
	free(line);
	return found;
}
