/* cli/complete.h: `ktlsctl --complete WORD...`, the hidden helper that
 * the shell completions (completions/) ask what fits where the cursor
 * is, so that they keep no list of subcommands, options, values or
 * sessions of their own (as git's --git-completion-helper feeds
 * git-completion.bash).  Not in --help: it is for completion scripts only.
 *
 * WORD... are the words of the command line after "ktlsctl", up to the
 * cursor; the last one is the word being completed ("" for a new one).
 * Output, one line each:
 *   CANDIDATE<TAB>DESCRIPTION  a word that fits; DESCRIPTION may be absent
 *   :file                      a file name fits: the shell completes it
 *   :host                      a host name fits: the shell completes it
 * Candidates start with the word being completed (values case-insensitively),
 * never with ':'; one that ends in '=' ("linger=") wants its parameter
 * typed right after it, with no space.  A word "--opt=PART" is completed
 * as "--opt=VALUE".  Where nothing fits nothing is printed; the exit
 * status is 0 either way.
 *
 * What fits: the subcommands, or with a leading '-' the program's options;
 * after a subcommand, its options (for a word starting with '-'), the
 * values of the option before the word (its fixed list, or a file or
 * host name), and its positional argument until it is given (the PIDs of
 * the running sessions, or a host name). */
#ifndef CLI_COMPLETE_H
#define CLI_COMPLETE_H

#include <stdio.h>

void cli_complete(int nwords, char **words, FILE *out);

#endif
