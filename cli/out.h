/* cli/out.h: structured output, as text or JSON from the same calls, so
 * the two can never drift apart (the idea of iproute2's print_*). */
#ifndef CLI_OUT_H
#define CLI_OUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct cli_out {
	FILE *f;
	bool json;
	int depth;
	bool need_comma[16];
	bool in_list[16];
};

void out_init(struct cli_out *o, FILE *f, bool json);
void out_finish(struct cli_out *o);   /* closes the top-level JSON object */

/* A named object: JSON "key": {...}; text: a heading line. */
void out_object(struct cli_out *o, const char *key, const char *title);
/* A named list of objects; items are out_item()...out_end(). */
void out_list(struct cli_out *o, const char *key, const char *title);
void out_item(struct cli_out *o, const char *title);
void out_end(struct cli_out *o);

/* Fields: JSON "key": value; text: "  label: value". */
void out_str(struct cli_out *o, const char *key, const char *label, const char *value);
void out_u64(struct cli_out *o, const char *key, const char *label, uint64_t value);
void out_bool(struct cli_out *o, const char *key, const char *label, bool value);
void out_null(struct cli_out *o, const char *key, const char *label);
void out_f64(struct cli_out *o, const char *key, const char *label, double value);
/* A number given as text (from a session's answer): emitted as a JSON
 * number when it is one, else as a string. */
void out_num_text(struct cli_out *o, const char *key, const char *label, const char *value);

#endif
