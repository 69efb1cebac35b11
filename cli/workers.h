/* cli/workers.h: serving many in several processes (--workers N), as
 * nginx does.
 *
 * The process that parsed the options, loaded the credentials and bound
 * the listener (the main process) forks N workers.  Each runs the one
 * serving loop (core/serve.h) on the shared listening socket, woken for
 * a client by EPOLLEXCLUSIVE; the main process then serves no client
 * itself:
 *
 *   ids      worker k (1..N) numbers its sessions k, k+N, k+2N, ...:
 *            unique across the workers, so that log lines, stats,
 *            keyupdate and tickets mean one session each.
 *   control  only the main process has a control socket under its pid;
 *            worker k serves its own on a private path (PID.wK in the
 *            same directory), and the main process answers for all of
 *            them (core/ctl.h, struct kc_ctl_workers).
 *   tickets  the session-ticket key is made once, in the main process,
 *            before the fork: a ticket from one worker resumes on every
 *            other.  On SIGHUP the main process loads the files again,
 *            logs the one reload line, and sends the new credentials'
 *            ticket key to every worker down a pipe of its own; each
 *            loads the files itself and takes that key.  A worker that
 *            cannot load them says so in a line of its own and keeps
 *            the old ones.
 *   limits   --max-conns is shared out: each worker gets max/N, the first
 *            max%N one more; running out of descriptors pauses only the
 *            worker that ran out.
 *   signals  SIGTERM and SIGINT to the main process go on to every worker,
 *            which drains as a single process does; the main process
 *            exits once all are gone, with the worst of their statuses
 *            (one that says something went wrong before the plain
 *            128+signal).  Workers get SIGTERM when the main process
 *            dies (PR_SET_PDEATHSIG), and drain too.
 *   death    a worker that ends while nothing stopped it is not
 *            restarted (its ids would repeat, and a crash tends to
 *            repeat too): one line says which and how, the others are
 *            stopped as by SIGTERM, and the exit status is 1.
 *
 * Each log line goes out in one write(), so lines from the workers
 * never mix. */
#ifndef CLI_WORKERS_H
#define CLI_WORKERS_H

#include "cli/opts.h"
#include "core/serve.h"

/* Serve so (its listen_fd taken over) in o->workers processes; returns
 * the exit status, in the main process and (its own) in each worker. */
int cli_serve_workers(const struct cli_opts *o, struct kc_serve_opts *so);

#endif
