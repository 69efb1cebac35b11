/* core/sessfile.h: the resumable-session file of --session-out and
 * --session-in.
 *
 * The file holds GnuTLS's session data (gnutls_session_get_data2), which
 * includes the resumption secret: whoever reads it can resume as us.  So it
 * is written mode 0600, and a file that group or others may access is
 * refused, as ssh does with private keys.
 *
 * Format: five text lines, each ending in "\n", nothing after the last:
 *
 *     ktlsctl-session 1
 *     peer example.com:443
 *     saved 2025-06-01T10:00:00Z
 *     sha256 <64 lowercase hex digits: SHA-256 of the session data>
 *     data <session data, base64 (RFC 4648), one line>
 *
 * "peer" is the HOST:PORT the user gave when saving, compared byte for
 * byte when loading.  "saved" is UTC, for people and messages; expiry is
 * GnuTLS's business (gnutls_session_set_data / the server's answer), not
 * this module's.  The whole file is at most KC_SESSFILE_MAX bytes.  Text,
 * so that `cat` shows whose session it is, and the checksum so that a
 * damaged file is reported as such rather than as a failed resumption. */
#ifndef KC_SESSFILE_H
#define KC_SESSFILE_H

#include <time.h>
#include <gnutls/gnutls.h>

#include "core/err.h"

#define KC_SESSFILE_MAGIC "ktlsctl-session 1"
#define KC_SESSFILE_MAX 65536          /* bytes, the whole file */

/* Write data for peer to path atomically: a temporary file next to path
 * (mkstemp, so in the same directory and filesystem), fchmod 0600 before
 * anything is written, every byte written, fsync, rename over path, then
 * fsync of the directory.  On any failure the temporary file is removed and
 * path is left as it was (absent, or its previous content).  A symlink at
 * path is replaced, not followed.  Errors: KC_E_IO (with sys_errno, or
 * session data too large for KC_SESSFILE_MAX); KC_E_USAGE for an empty
 * path or a peer that is empty or has control characters; KC_E_INTERNAL
 * for empty data (nothing to resume from). */
int kc_sessfile_save(const char *path, const char *peer,
		     const gnutls_datum_t *data, struct kc_err *err);

/* Read path and return its session data in *data, allocated with
 * gnutls_malloc (as gnutls_session_get_data2 does): release it with
 * kc_sessfile_free.  Refused, status KC_E_CREDENTIALS, when the file is
 * missing or unreadable, is not a regular file, can be read or written by
 * group or others, is over KC_SESSFILE_MAX bytes, is not a ktlsctl session
 * file (first line), is truncated or corrupt, or was saved for a peer other
 * than `peer`.  On failure *data is {NULL, 0}.  The messages say what to
 * do (chmod 600, save a new one with --session-out, ...); the caller goes
 * on with a full handshake. */
int kc_sessfile_load(const char *path, const char *peer,
		     gnutls_datum_t *data, struct kc_err *err);
/* The same, and *saved (if not NULL) gets the save time. */
int kc_sessfile_load_full(const char *path, const char *peer,
			  gnutls_datum_t *data, time_t *saved, struct kc_err *err);

/* Wipe (it holds a secret) and free data from kc_sessfile_load, or from
 * gnutls_session_get_data2; data becomes {NULL, 0}.  NULL is fine. */
void kc_sessfile_free(gnutls_datum_t *data);

#endif
