/*
 * daemon.c - listeners, signal handling and sibling paths for the daemons.
 */
#include "daemon.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls.h"
#include "util.h"

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

int daemon_block_signals(void)
{
    sigset_t set;
    stop_signals(&set);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    struct sigaction ign = {.sa_handler = SIG_IGN};
    return sigaction(SIGPIPE, &ign, NULL);
}

void daemon_reload_tls(void *ctx)
{
    struct tls_server *tls = ctx;
    char err[512];
    if (!tls)
        return;
    if (tls_server_reload(tls, err, sizeof err) == 0)
        log_info("TLS files reloaded");
    else
        log_error("TLS reload failed, still serving the previous certificate: %s", err);
}

int daemon_scan_flags(int argc, char **argv, const struct option *opts, const char *usage,
                      int config_opt, int check_opt, const char **config, bool *check_only,
                      int *status)
{
    int opt;
    *status = 64; /* EX_USAGE */
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == '?') {
            fputs(usage, stderr);
            return -1;
        }
        if (opt == 'h') {
            fputs(usage, stdout);
            *status = 0;
            return -1;
        }
        if (opt == config_opt)
            *config = optarg;
        if (opt == check_opt)
            *check_only = true;
    }
    if (optind != argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n%s", program_invocation_short_name,
                argv[optind], usage);
        return -1;
    }
    optind = 0;
    return 0;
}

struct signal_watch {
    struct rpc_server *server;
    daemon_reload_fn reload;
    void *reload_ctx;
};

/* Waits for signals, cancellable only while waiting (daemon_serve cancels
 * it once the server has stopped, so it never touches a freed server). The
 * first SIGTERM/SIGINT starts the server's graceful stop, a second one ends
 * its grace at once. */
static void *signal_thread(void *arg)
{
    struct signal_watch *w = arg;
    sigset_t set;
    stop_signals(&set);
    int stops = 0;
    (void)pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    for (;;) {
        int sig = 0;
        (void)pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
        int rc = sigwait(&set, &sig);
        (void)pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
        if (rc != 0)
            continue;
        if (sig == SIGHUP) {
            log_info("SIGHUP: reloading");
            if (w->reload)
                w->reload(w->reload_ctx);
            continue;
        }
        if (stops++ == 0) {
            log_info("signal %d: shutting down", sig);
        } else {
            log_info("signal %d again: ending the shutdown grace now", sig);
        }
        rpc_server_stop(w->server);
        if (stops == 2)
            return NULL;
    }
}

static int listen_all(struct rpc_server *s, const struct daemon_listeners *l)
{
    if (l->unix_path) {
        if (rpc_server_listen_unix(s, l->unix_path) != 0) {
            log_error("cannot listen on %s: %s", l->unix_path, strerror(errno));
            return -1;
        }
        log_info("listening on %s (peer credentials)", l->unix_path);
    }
    if (l->tls_address) {
        int port = l->tls ? rpc_server_listen_tls(s, l->tls_address, l->tls) : -1;
        if (port <= 0) {
            log_error("cannot listen on %s with mutual TLS", l->tls_address);
            return -1;
        }
        log_info("listening on %s, port %d (mutual TLS)", l->tls_address, port);
    }
    return 0;
}

int daemon_serve(struct rpc_server *s, const struct daemon_listeners *l, daemon_reload_fn reload,
                 void *reload_ctx)
{
    struct signal_watch w = {s, reload, reload_ctx};
    if (listen_all(s, l) != 0)
        return -1;
    pthread_t t;
    if (rpc_server_start(s) != 0 || pthread_create(&t, NULL, signal_thread, &w) != 0) {
        log_error("cannot start the server");
        return -1;
    }
    rpc_server_run(s);
    /* Stopped: signals from here on stay pending (blocked) until exit. */
    int rc = pthread_cancel(t);
    if (rc != 0 && rc != ESRCH)
        log_error("cannot stop the signal thread: %s", strerror(rc));
    pthread_join(t, NULL);
    return 0;
}

int daemon_sibling_path(const char *name, char *out, size_t outlen)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    int w = snprintf(out, outlen, "%s/%s", dirname(self), name);
    if (w < 0 || (size_t)w >= outlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}
