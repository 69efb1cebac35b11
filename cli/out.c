/* cli/out.c: printing a report's view tree (see out.h). */
#include "config.h"

#include <stdlib.h>

#include "cli/msg.h"
#include "cli/out.h"
#include "core/diag/view_json.h"
#include "core/diag/view_text.h"

char *cli_render_view(const struct kc_view *root, enum cli_format format, struct kc_err *err)
{
	if (kc_view_status(root, err) < 0)
		return NULL;
	if (format != CLI_JSON)
		return kc_view_text(root, format == CLI_FULL ? KC_VIEW_FULL : KC_VIEW_BRIEF, err);
	char *json = kc_view_json(root, err), *line = NULL;
	if (json && asprintf(&line, "%s\n", json) < 0) {
		line = NULL;
		kc_err_set(err, KC_E_INTERNAL, "out of memory");
	}
	free(json);
	return line;
}

int cli_print_view(FILE *f, const struct kc_view *root, enum cli_format format)
{
	struct kc_err err = { 0 };
	char *s = cli_render_view(root, format, &err);
	if (!s) {
		cli_error("%s", err.msg);
		return -1;
	}
	fputs(s, f);
	free(s);
	return 0;
}
