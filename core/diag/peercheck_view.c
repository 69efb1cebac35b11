/* core/diag/peercheck_view.c: a probe report as a view tree (see
 * peercheck_view.h). */
#include "config.h"

#include "core/diag/peercheck_view.h"

struct kc_view *kc_peercheck_view(const struct kc_pc_report *r)
{
	struct kc_view *root = kc_view_new();

	kc_view_string(root, "server", "server", "%s", r->peer);
	kc_view_string(root, "session", "session", "%s", r->session);
	kc_view_string(root, "channel", "channel", "%s", r->channel);
	struct kc_view *checks = kc_view_array(root, "checks", "checks");
	for (size_t i = 0; i < r->n; i++) {
		const struct kc_pc_outcome *out = &r->out[i];
		const char *result = kc_pc_result_name(out->result);
		struct kc_view *c = kc_view_object(checks, NULL, out->name);
		kc_view_string(c, "name", "name", "%s", out->name);
		kc_view_string(c, "result", "result", "%s", result);
		kc_view_string(c, "reason", "reason", "%s", out->reason);
		kc_view_decimal(c, "elapsed_ms", "elapsed (ms)", out->elapsed_ms, 1);
		kc_view_set_summary(c, "%-22s %-7s %s", out->name, result, out->reason);
	}
	kc_view_uint(root, "failed", "failed", r->failed);
	return root;
}
