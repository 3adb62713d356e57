/*
 * daemon.h - what both daemons do around their server: listeners (a Unix
 * socket with peer credentials, a TCP port with mutual TLS), signal handling
 * (SIGTERM/SIGINT stop the server gracefully, see rpc_server_set_drain; a
 * second one ends the grace; SIGHUP reloads; SIGPIPE is ignored) and
 * resolving sibling executables.
 */
#ifndef AIRLOCK_DAEMON_H
#define AIRLOCK_DAEMON_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "rpc.h"

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and ignores
 * SIGPIPE. Call first in main, before any thread (gRPC's too) exists, so
 * every thread inherits the mask. */
int daemon_block_signals(void);

struct tls_server;

/* Where a daemon listens: either or both. */
struct daemon_listeners {
    const char *unix_path;   /* NULL: no Unix socket */
    const char *tls_address; /* "host:port" for mutual TLS; NULL: no TCP */
    struct tls_server *tls;  /* required with tls_address */
};

/* Called on SIGHUP, on the signal thread. */
typedef void (*daemon_reload_fn)(void *ctx);

/* A daemon_reload_fn re-reading the TLS files of ctx, a struct tls_server
 * (NULL: nothing to do); a failure is logged and the old files keep serving. */
void daemon_reload_tls(void *ctx);

/* First pass over a daemon's flags (opts, getopt_long style): finds the
 * config file (option value config_opt) and --check-config (check_opt),
 * answers --help, refuses unknown flags and stray arguments. Then resets
 * getopt for the second pass that applies the other flags over the file.
 * 0 to go on, or -1 to exit with *status. */
int daemon_scan_flags(int argc, char **argv, const struct option *opts, const char *usage,
                      int config_opt, int check_opt, const char **config, bool *check_only,
                      int *status);

/* Listens where l says, starts s, reloads on SIGHUP, stops on SIGTERM or
 * SIGINT (draining as rpc_server_set_drain set up; a second signal ends the
 * grace) and serves until then. With $NOTIFY_SOCKET set it tells the service
 * manager (libsystemd's sd_notify): READY=1 once its own health check over
 * l->unix_path is answered (at once without a Unix socket), WATCHDOG=1 every
 * half of sd_watchdog_enabled's interval while that check keeps answering,
 * STOPPING=1 at the first stop signal, and STATUS= lines. 0 after a clean
 * stop, -1 (logged) if it could not start. */
int daemon_serve(struct rpc_server *s, const struct daemon_listeners *l, daemon_reload_fn reload,
                 void *reload_ctx);

/* Absolute path of NAME in the directory of the running executable. */
int daemon_sibling_path(const char *name, char *out, size_t outlen);

#endif
