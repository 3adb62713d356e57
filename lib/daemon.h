/*
 * daemon.h - what both daemons do around their server: signal handling
 * (SIGTERM/SIGINT stop the server cleanly, SIGPIPE is ignored) and
 * resolving sibling executables.
 */
#ifndef AIRLOCK_DAEMON_H
#define AIRLOCK_DAEMON_H

#include <stddef.h>

#include "rpc.h"

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and ignores
 * SIGPIPE. Call first in main, before any thread (gRPC's too) exists, so
 * every thread inherits the mask. */
int daemon_block_signals(void);

/* Starts a thread that waits for SIGTERM or SIGINT and stops s. */
int daemon_stop_on_signal(struct rpc_server *s);

/* Listens on socket_path, starts s, stops it on SIGTERM/SIGINT and serves
 * until then. 0 after a clean stop, -1 (logged) if it could not start. */
int daemon_serve(struct rpc_server *s, const char *socket_path);

/* Absolute path of NAME in the directory of the running executable. */
int daemon_sibling_path(const char *name, char *out, size_t outlen);

#endif
