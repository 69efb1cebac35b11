/* cli/console.c: the session's input side (see console.h).
 *
 * Pipe mode with --commands splits stdin into lines; a line starting with
 * '/' is a command, every other byte goes to the peer untouched.  On a
 * terminal, readline edits the line in callback mode so peer data can be
 * printed as it arrives without breaking what is being typed. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "cli/commands.h"
#include "cli/console.h"
#include "cli/msg.h"
#include "cli/report.h"
#include "core/sessfile.h"

#define LINE_MAX_CHECKED 4096   /* longer lines are data, never commands */
#define PROMPT "> "

struct cli_console {
	const struct cli_opts *o;
	const struct kc_session_info *info;
	bool tty;
	bool rl_active;
	/* pipe --commands: bytes read but not yet split into lines */
	unsigned char in[LINE_MAX_CHECKED + 1];
	size_t in_len;
	bool mid_line;              /* in[0] continues a line already sent as data */
	bool in_eof;
	/* bytes waiting to be handed to the pump (lines typed or passed) */
	unsigned char *q;
	size_t q_off, q_len, q_cap;
	struct kc_pump *pump;       /* valid during a hook call */
	char history_path[512];
	bool at_line_start;         /* the last peer byte shown was '\n' */
};

static struct cli_console *active;   /* readline's handler has no context */

static int enqueue(struct cli_console *c, const void *p, size_t n)
{
	if (c->q_off + c->q_len + n > c->q_cap) {
		if (c->q_off) {
			memmove(c->q, c->q + c->q_off, c->q_len);
			c->q_off = 0;
		}
		if (c->q_len + n > c->q_cap) {
			size_t cap = c->q_cap ? c->q_cap : 4096;
			while (cap < c->q_len + n)
				cap *= 2;
			unsigned char *q = realloc(c->q, cap);
			if (!q)
				return -1;
			c->q = q;
			c->q_cap = cap;
		}
	}
	memcpy(c->q + c->q_off + c->q_len, p, n);
	c->q_len += n;
	return 0;
}

static size_t dequeue(struct cli_console *c, unsigned char *buf, size_t space)
{
	size_t n = c->q_len < space ? c->q_len : space;
	memcpy(buf, c->q + c->q_off, n);
	c->q_off += n;
	c->q_len -= n;
	return n;
}

/* Take the readline line off the screen while something else prints. */
static char *saved_line;
static int saved_point;
static bool in_line_handler;   /* readline has moved past the line already */

static void suspend_line(void)
{
	if (!active || !active->rl_active || saved_line || in_line_handler)
		return;
	saved_point = rl_point;
	saved_line = rl_copy_text(0, rl_end);
	rl_save_prompt();
	rl_replace_line("", 0);
	rl_redisplay();
}

static void resume_line(void)
{
	if (!active || !active->rl_active || !saved_line)
		return;
	rl_restore_prompt();
	rl_replace_line(saved_line, 0);
	rl_point = saved_point;
	free(saved_line);
	saved_line = NULL;
	rl_forced_update_display();
}

static void run_keyupdate(struct cli_console *c, struct kc_conn *conn, bool request)
{
	struct kc_err err = { 0 };
	if (kc_conn_key_update(conn, request, &err) < 0)
		cli_error("%s", err.msg);
}

static void run_save(struct cli_console *c, const char *file)
{
	struct kc_err err = { 0 };
	if (cli_save_session(c->info->session, c->o, file, &err) < 0)
		cli_error("%s", err.msg);
	else
		cli_event("session saved to %s", file);
}

/* After /close or /quit nothing more is read or sent: drop what was read
 * after the command and stop the line editor. */
static void end_input(struct cli_console *c)
{
	c->in_eof = true;
	c->in_len = 0;
	if (c->rl_active) {
		rl_callback_handler_remove();
		c->rl_active = false;
	}
}

/* Execute a parsed command; returns true when it was a command. */
static bool run_command(struct cli_console *c, const struct cli_parsed *pc)
{
	struct kc_conn *conn = kc_pump_conn(c->pump);
	char file[1024];

	switch (pc->cmd) {
	case CLI_C_NONE:
		return false;
	case CLI_C_INVALID:
		cli_error("%s", pc->error);
		break;
	case CLI_C_HELP:
		suspend_line();
		cli_command_help(stderr);
		resume_line();
		break;
	case CLI_C_KEYUPDATE:
		run_keyupdate(c, conn, pc->arg_flag);
		break;
	case CLI_C_STATS:
		suspend_line();
		cli_print_stats(stderr, conn, c->info);
		resume_line();
		break;
	case CLI_C_TICKETS:
		suspend_line();
		cli_print_tickets(stderr, conn);
		resume_line();
		break;
	case CLI_C_SAVE:
		snprintf(file, sizeof file, "%.*s", (int)pc->arg_len, pc->arg);
		run_save(c, file);
		break;
	case CLI_C_CLOSE:
		end_input(c);
		kc_pump_end_input(c->pump);
		break;
	case CLI_C_QUIT:
		end_input(c);
		kc_pump_quit(c->pump);
		break;
	}
	return true;
}

/* ---------------------------------------------------------------- pipe */

/* Whether everything read before a command has reached the connection,
 * so the command acts at its place in the stream (a KeyUpdate after the
 * data above it, not before). */
static bool stream_caught_up(const struct cli_console *c)
{
	return c->q_len == 0 && (!c->pump || kc_pump_unsent(c->pump) == 0);
}

/* Split what was read into lines: commands run, data is queued as is. */
static int split_lines(struct cli_console *c, bool flush_all)
{
	size_t start = 0;
	for (;;) {
		unsigned char *nl = memchr(c->in + start, '\n', c->in_len - start);
		size_t end = nl ? (size_t)(nl - c->in) + 1 : c->in_len;
		if (!nl && !flush_all && c->in_len - start < LINE_MAX_CHECKED)
			break;   /* wait for the rest of the line */
		if (end == start)
			break;
		struct cli_parsed pc;
		size_t body = end - start - (nl ? 1 : 0);
		bool long_piece = !nl && end - start >= LINE_MAX_CHECKED;
		if (c->mid_line || long_piece) {
			/* a line too long to be a command, or the rest of one:
			 * data, whatever it starts with */
			cli_command_parse("", 0, &pc);
			pc.text_len = body;
			c->mid_line = long_piece;
		} else {
			cli_command_parse((const char *)c->in + start, body, &pc);
		}
		if (pc.cmd != CLI_C_NONE && !stream_caught_up(c))
			break;   /* run it once the data before it is sent */
		if (!run_command(c, &pc)) {
			/* data: the line as read, but "//" loses one slash */
			size_t skip = pc.text_len < body ? body - pc.text_len : 0;
			if (enqueue(c, c->in + start + skip, end - start - skip) < 0)
				return -1;
		} else if (c->in_len == 0) {
			return 0;   /* /close or /quit: the rest is not sent */
		}
		start = end;
		if (!nl && !flush_all)
			break;
	}
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
	return 0;
}

/* A command line waits at the head of the buffer for the stream. */
static bool command_waiting(const struct cli_console *c)
{
	return c->in_len > 0 && c->in[0] == '/' && (c->in_len < 2 || c->in[1] != '/') &&
	       (memchr(c->in, '\n', c->in_len) || c->in_eof);
}

static bool pipe_full(void *ctx)
{
	const struct cli_console *c = ctx;
	/* Bounded memory: no more input while a command waits or the queue
	 * for the pump holds more than one buffer's worth. */
	return c->in_len == LINE_MAX_CHECKED || command_waiting(c) || c->q_len > 65536;
}

static ssize_t pipe_input(void *ctx, struct kc_pump *p, bool readable, unsigned char *buf,
			  size_t space, struct kc_err *err)
{
	struct cli_console *c = ctx;
	c->pump = p;
	/* Read only when the buffer has room, i.e. no command is waiting
	 * for the data before it to go out. */
	if (readable && !c->in_eof && !pipe_full(c)) {
		ssize_t n = read(STDIN_FILENO, c->in + c->in_len, LINE_MAX_CHECKED - c->in_len);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return kc_err_errno(err, KC_E_IO, errno, "cannot read standard input");
		if (n == 0)
			c->in_eof = true;
		if (n > 0)
			c->in_len += (size_t)n;
	}
	if (split_lines(c, c->in_eof) < 0)
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	if (c->q_len)
		return (ssize_t)dequeue(c, buf, space);
	return c->in_eof && c->in_len == 0 ? 0 : KC_CONN_AGAIN;
}

static bool pending(void *ctx)
{
	struct cli_console *c = ctx;
	return c->q_len > 0 || (command_waiting(c) && stream_caught_up(c));
}

/* ------------------------------------------------------------ terminal */

static void on_line(char *line)
{
	struct cli_console *c = active;
	if (!line) {   /* Ctrl-D: like /close */
		rl_callback_handler_remove();
		c->rl_active = false;
		c->in_eof = true;
		fputc('\n', stdout);
		kc_pump_end_input(c->pump);
		return;
	}
	if (*line)
		add_history(line);
	struct cli_parsed pc;
	cli_command_parse(line, strlen(line), &pc);
	in_line_handler = true;
	if (!run_command(c, &pc)) {
		const char *eol = c->o->crlf ? "\r\n" : "\n";
		if (enqueue(c, pc.text, pc.text_len) < 0 || enqueue(c, eol, strlen(eol)) < 0)
			cli_error("out of memory: line not sent");
	}
	in_line_handler = false;
	free(line);
}

static ssize_t tty_input(void *ctx, struct kc_pump *p, bool readable, unsigned char *buf,
			 size_t space, struct kc_err *err)
{
	struct cli_console *c = ctx;
	c->pump = p;
	if (readable && c->rl_active)
		rl_callback_read_char();
	if (c->q_len)
		return (ssize_t)dequeue(c, buf, space);
	return c->in_eof ? 0 : KC_CONN_AGAIN;
}

static ssize_t tty_output(void *ctx, const unsigned char *buf, size_t len)
{
	struct cli_console *c = ctx;
	size_t done = 0;

	suspend_line();
	while (done < len) {
		ssize_t n = write(STDOUT_FILENO, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			resume_line();
			return done ? (ssize_t)done : -1;
		}
		done += (size_t)n;
	}
	c->at_line_start = buf[len - 1] == '\n';
	if (!c->at_line_start && c->rl_active)
		fputc('\n', stdout);   /* keep the prompt on a line of its own */
	fflush(stdout);
	resume_line();
	return (ssize_t)len;
}

/* The session commands whose "/name" starts with text (which starts with
 * '/'), one a call, each a string readline frees. */
static char *command_generator(const char *text, int state)
{
	static const struct cli_session_command *c;
	if (!state)
		c = cli_session_commands;
	while (c->name) {
		const struct cli_session_command *this = c++;
		char *name;
		if (strncmp(this->name, text + 1, strlen(text + 1)) == 0)
			return asprintf(&name, "/%s", this->name) < 0 ? NULL : name;
	}
	return NULL;
}

static char **complete(const char *text, int start, int end)
{
	rl_attempted_completion_over = 1;   /* no file names for data */
	if (start == 0 && text[0] == '/')
		return rl_completion_matches(text, command_generator);
	return NULL;
}

static void history_file(struct cli_console *c)
{
	const char *data = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");
	char dir[400];

	if (data && *data)
		snprintf(dir, sizeof dir, "%s/ktlsctl", data);
	else if (home && *home)
		snprintf(dir, sizeof dir, "%s/.local/share/ktlsctl", home);
	else
		return;
	/* mkdir -p: a fresh account may have no ~/.local yet */
	for (char *slash = strchr(dir + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(dir, 0700);
		*slash = '/';
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		cli_notice("no command history: cannot create %s: %s", dir, strerror(errno));
		return;
	}
	snprintf(c->history_path, sizeof c->history_path, "%s/history", dir);
}

static void start_readline(struct cli_console *c)
{
	active = c;
	rl_readline_name = "ktlsctl";
	rl_attempted_completion_function = complete;
	rl_catch_signals = 0;          /* our handlers stop the pump cleanly */
	history_file(c);
	if (c->history_path[0])
		read_history(c->history_path);
	stifle_history(1000);
	rl_callback_handler_install(PROMPT, on_line);
	c->rl_active = true;
	cli_msg_set_hooks(suspend_line, resume_line);
	cli_msg_set_interactive(true);
	cli_event("interactive session: type /help for commands, Ctrl-D to close");
}

struct cli_console *cli_console_new(const struct cli_opts *o, const struct kc_session_info *info,
				    struct kc_pump_opts *po)
{
	bool tty = !o->echo && isatty(STDIN_FILENO);
	if (!tty && !o->commands)
		return NULL;
	struct cli_console *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->o = o;
	c->info = info;
	c->tty = tty;
	c->at_line_start = true;
	po->ctx = c;
	po->input_pending = pending;
	if (tty) {
		po->input = tty_input;
		po->output = tty_output;
		start_readline(c);
	} else {
		po->input = pipe_input;
		po->input_full = pipe_full;
	}
	return c;
}

bool cli_console_interactive(const struct cli_console *c)
{
	return c && c->tty;
}

void cli_console_free(struct cli_console *c)
{
	if (!c)
		return;
	if (c->tty) {
		if (c->rl_active) {
			rl_callback_handler_remove();
			fputc('\n', stdout);
		}
		if (c->history_path[0])
			write_history(c->history_path);
		cli_msg_set_hooks(NULL, NULL);
		active = NULL;
	}
	free(c->q);
	free(c);
}
