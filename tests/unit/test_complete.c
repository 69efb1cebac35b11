/* tests/unit/test_complete.c: `ktlsctl --complete`, the helper behind the
 * shell completions (cli/complete.h). */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/complete.h"

/* What the helper prints for the words (the last one being completed). */
static char *complete(int n, char **words)
{
	static char *buf;
	size_t len;
	free(buf);
	buf = NULL;
	FILE *f = open_memstream(&buf, &len);
	cli_complete(n, words, f);
	fclose(f);
	return buf;
}
#define COMPLETE(...) complete((int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)), \
			       (char *[]){ __VA_ARGS__ })

/* The candidates alone, one a line, without their descriptions. */
static char *words_of(const char *out)
{
	static char buf[4096];
	size_t n = 0;
	for (const char *p = out; *p && n < sizeof buf - 1; p++) {
		if (*p == '\t')
			while (p[1] && p[1] != '\n')
				p++;
		else
			buf[n++] = *p;
	}
	buf[n] = '\0';
	return buf;
}

Test(complete, subcommands_and_the_programs_options)
{
	cr_assert_str_eq(words_of(COMPLETE("")),
			 "connect\nlisten\nselftest\nstats\nkeyupdate\ntickets\nprobe\n");
	cr_assert_str_eq(words_of(COMPLETE("s")), "selftest\nstats\n");
	cr_assert(strstr(COMPLETE("st"), "stats\tthe running sessions and their counters\n"));
	cr_assert_str_eq(words_of(COMPLETE("-")), "-h\n--help\n-V\n--version\n");
	cr_assert_str_eq(COMPLETE(), "connect\tTLS client session through kernel TLS\n"
				     "listen\tTLS server session through kernel TLS\n"
				     "selftest\tcheck kTLS on this machine end to end\n"
				     "stats\tthe running sessions and their counters\n"
				     "keyupdate\tmake a running session update its keys\n"
				     "tickets\ta running session's tickets\n"
				     "probe\tcheck what a server does after the handshake\n");
	cr_assert_str_eq(COMPLETE("nosuch", ""), "");
	cr_assert_str_eq(COMPLETE("--help", ""), "");
}

Test(complete, options)
{
	cr_assert_str_eq(words_of(COMPLETE("keyupdate", "-")),
			 "--session\n--request\n-q\n--quiet\n-h\n--help\n");
	cr_assert_str_eq(words_of(COMPLETE("listen", "--ke")),
			 "--key-update-after\n--key\n--keep-open\n");
	cr_assert_str_eq(words_of(COMPLETE("listen", "-k")), "-k\n");
	/* Multi-line help becomes one line. */
	cr_assert(strstr(COMPLETE("connect", "--no-"),
			 "--no-zerocopy\ton the kernel channel, copy through read and write "
			 "instead of sendfile and splice\n"));
	cr_assert_str_eq(COMPLETE("connect", "--bogus"), "");
}

Test(complete, values)
{
	cr_assert_str_eq(words_of(COMPLETE("connect", "--ktls", "")), "auto\nrequire\noff\n");
	cr_assert_str_eq(COMPLETE("connect", "--ktls", "r"), "require\tthe kernel, or fail\n");
	/* Values are matched in any case, offered as the table spells them. */
	cr_assert_str_eq(words_of(COMPLETE("listen", "--cipher", "aes-1")),
			 "AES-128-GCM\nAES-128-CCM\n");
	/* A value with a parameter is offered up to its '='. */
	cr_assert_str_eq(words_of(COMPLETE("connect", "--eof", "")),
			 "linger\nlinger=\nwait\nclose\n");
	cr_assert_str_eq(COMPLETE("connect", "--eof", "linger=1"), "");
	cr_assert_str_eq(words_of(COMPLETE("connect", "--eof=li")),
			 "--eof=linger\n--eof=linger=\n");
	cr_assert_str_eq(COMPLETE("connect", "--cafile", ""), ":file\n");
	cr_assert_str_eq(COMPLETE("connect", "--session-out=/tm"), ":file\n");
	cr_assert_str_eq(COMPLETE("connect", "--sni", "ex"), ":host\n");
	/* Free values: nothing to offer. */
	cr_assert_str_eq(COMPLETE("connect", "--priority", ""), "");
	cr_assert_str_eq(COMPLETE("connect", "--alpn=h"), "");
	cr_assert_str_eq(COMPLETE("connect", "--insecure=x"), "");
	/* An option's argument is not the positional one, nor an option. */
	cr_assert_str_eq(COMPLETE("stats", "--watch", "-"), "");
	cr_assert_str_eq(COMPLETE("connect", "--ktls", "off", ""), ":host\n");
}

Test(complete, positional_arguments)
{
	cr_assert_str_eq(COMPLETE("connect", ""), ":host\n");
	cr_assert_str_eq(COMPLETE("connect", "-v", "--tls1.3", "ex"), ":host\n");
	cr_assert_str_eq(COMPLETE("connect", "a:1", ""), "");
	cr_assert_str_eq(COMPLETE("listen", ""), "");
	cr_assert_str_eq(COMPLETE("selftest", ""), "");
	/* After "--" every word is positional. */
	cr_assert_str_eq(COMPLETE("connect", "--", "-x"), ":host\n");
	cr_assert_str_eq(COMPLETE("connect", "--", "a:1", "-"), "");
}

/* The sessions are the control sockets in the directory, with the stale
 * ones (their process is gone) removed. */
Test(complete, session_pids)
{
	char dir[] = "/tmp/ktlsctl-test-complete-XXXXXX", sub[64], path[128];
	cr_assert_not_null(mkdtemp(dir));
	setenv("XDG_RUNTIME_DIR", dir, 1);
	cr_assert_str_eq(COMPLETE("stats", ""), "", "no directory: no sessions");

	snprintf(sub, sizeof sub, "%s/ktlsctl", dir);
	cr_assert_eq(mkdir(sub, 0700), 0);
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	int pids[] = { (int)getpid(), (int)dead };
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/%d.sock", sub, pids[i]);
		close(open(path, O_CREAT | O_WRONLY, 0600));
	}
	snprintf(path, sizeof path, "%s/notapid.sock", sub);
	close(open(path, O_CREAT | O_WRONLY, 0600));

	char want[64], pid[16];
	snprintf(want, sizeof want, "%d\tktlsctl session\n", pids[0]);
	snprintf(pid, sizeof pid, "%d", pids[0]);
	cr_assert_str_eq(COMPLETE("stats", ""), want);
	cr_assert_str_eq(COMPLETE("tickets", "--json", ""), want);
	cr_assert_str_eq(COMPLETE("keyupdate", "0"), "");
	cr_assert_str_eq(COMPLETE("keyupdate", pid, ""), "", "the PID is given");
	snprintf(path, sizeof path, "%s/%d.sock", sub, pids[1]);
	cr_assert_neq(access(path, F_OK), 0, "the stale socket is still there");

	snprintf(path, sizeof path, "%s/%d.sock", sub, pids[0]);
	unlink(path);
	snprintf(path, sizeof path, "%s/notapid.sock", sub);
	unlink(path);
	rmdir(sub);
	rmdir(dir);
}
