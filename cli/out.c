/* cli/out.c: printing a report's view tree (see out.h). */
#include "config.h"

#include <stdlib.h>

#include "cli/msg.h"
#include "cli/out.h"
#include "core/diag/view_json.h"
#include "core/diag/view_text.h"

int cli_print_view(FILE *f, const struct kc_view *root, enum cli_format format)
{
	struct kc_err err = { 0 };
	char *s = NULL;

	if (kc_view_status(root, &err) == 0)
		s = format == CLI_JSON ? kc_view_json(root, &err)
		    : kc_view_text(root, format == CLI_FULL ? KC_VIEW_FULL : KC_VIEW_BRIEF, &err);
	if (!s) {
		cli_error("%s", err.msg);
		return -1;
	}
	fputs(s, f);
	if (format == CLI_JSON)
		fputc('\n', f);
	free(s);
	return 0;
}
