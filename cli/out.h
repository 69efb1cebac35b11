/* cli/out.h: how every report reaches the user: its view tree (core/diag/
 * view.h) printed as text, brief or full, or as JSON, by core's one
 * printer, so that text and JSON cannot drift apart (the idea of
 * iproute2's print_*). */
#ifndef CLI_OUT_H
#define CLI_OUT_H

#include <stdio.h>

#include "core/diag/view.h"

enum cli_format { CLI_BRIEF, CLI_FULL, CLI_JSON };

/* Print root to f (JSON: on one line).  0, or -1 after saying why (out of
 * memory). */
int cli_print_view(FILE *f, const struct kc_view *root, enum cli_format format);
/* The same text, malloc'd (JSON with its final newline); NULL with *err. */
char *cli_render_view(const struct kc_view *root, enum cli_format format, struct kc_err *err);

#endif
