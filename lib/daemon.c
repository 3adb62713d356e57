/*
 * daemon.c - listeners, signal handling, systemd notifications and sibling
 * paths for the daemons.
 */
#include "daemon.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "grpc/health/v1/health.pb-c.h"
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

/* ------------------------------------------------------ systemd notify */

/* The sd_notify side of daemon_serve: READY=1 once the daemon answers its
 * own health check, WATCHDOG=1 while it keeps answering, STOPPING=1 at the
 * first stop signal. Runs only when $NOTIFY_SOCKET is set. */
struct notifier {
    const char *unix_path;   /* self health check target; NULL: TLS only */
    uint64_t watchdog_usec;  /* sd_watchdog_enabled's interval; 0: off */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;               /* stopping or stopped: no more READY/WATCHDOG */
    bool running;            /* the thread exists */
    bool finished;           /* the thread is about to return */
    pthread_t thread;
};

static void notify(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0)
        log_error("sd_notify(\"%s\") failed: %s", state, strerror(-rc));
}

/* Asks the server over its own Unix socket, as a client would. Alive: it
 * answered SERVING, or RESOURCE_EXHAUSTED (the serve loop is turning, every
 * handler slot is busy). */
static bool self_check(struct rpc_channel *ch, int timeout_ms, char *why, size_t whylen)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_status st;
    grpc_status_code code = rpc_unary(ch, "/grpc.health.v1.Health/Check", &req.base,
                                      &grpc__health__v1__health_check_response__descriptor, &resp,
                                      timeout_ms, &st);
    bool alive = code == GRPC_STATUS_RESOURCE_EXHAUSTED;
    if (code == GRPC_STATUS_OK) {
        const Grpc__Health__V1__HealthCheckResponse *r = (const void *)resp;
        alive = r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
        if (!alive)
            snprintf(why, whylen, "health status %d", (int)r->status);
        protobuf_c_message_free_unpacked(resp, NULL);
    } else if (!alive) {
        snprintf(why, whylen, "%s: %s", rpc_status_name(code), st.message);
    }
    return alive;
}

/* Waits up to ms on n->wake; true once n->stop is set. */
static bool notifier_wait(struct notifier *n, long ms)
{
    struct timespec until = timespec_after_ms(CLOCK_REALTIME, ms);
    pthread_mutex_lock(&n->lock);
    while (!n->stop) {
        if (pthread_cond_timedwait(&n->wake, &n->lock, &until) != 0)
            break; /* ETIMEDOUT */
    }
    bool stop = n->stop;
    pthread_mutex_unlock(&n->lock);
    return stop;
}

static void notifier_stop(struct notifier *n)
{
    pthread_mutex_lock(&n->lock);
    n->stop = true;
    pthread_cond_broadcast(&n->wake);
    pthread_mutex_unlock(&n->lock);
}

/* Every notification comes from this thread, in order: READY=1, then
 * WATCHDOG=1s, then STOPPING=1 once n->stop is set (and nothing after it).
 * The signal thread only sets n->stop, so a service manager that does not
 * read its socket (sd_notify then blocks) never holds up a stop. */
static void *notifier_thread(void *arg)
{
    struct notifier *n = arg;
    struct rpc_channel *ch = NULL;
    char why[RPC_STATUS_MESSAGE_MAX + 64] = "";
    if (n->unix_path) {
        char target[4200];
        snprintf(target, sizeof target, "unix:%s", n->unix_path);
        ch = rpc_channel_new(target);
        if (!ch) {
            /* never ready: systemd's start timeout fails the unit */
            log_error("sd_notify: cannot make a channel to %s; not reporting ready", target);
            goto done;
        }
        /* Ready means a client's health check is answered: ask it ourselves. */
        while (!self_check(ch, 1000, why, sizeof why)) {
            if (notifier_wait(n, 100))
                goto stopping;
        }
    }
    if (notifier_wait(n, 0))
        goto stopping;
    notify("READY=1\nSTATUS=serving");
    /* Without a watchdog: just wait for the stop. */
    long period_ms = n->watchdog_usec ? (long)(n->watchdog_usec / 2000) : 3600L * 1000;
    if (period_ms < 1)
        period_ms = 1;
    int timeout_ms = period_ms / 2 > 100 ? (int)(period_ms / 2) : 100;
    if (timeout_ms > 10000)
        timeout_ms = 10000;
    bool failing = false;
    while (!notifier_wait(n, period_ms)) {
        if (n->watchdog_usec == 0)
            continue;
        /* Ping only while the serve loop answers; silence lets systemd's
         * WatchdogSec= act. Without a Unix socket there is nothing to ask. */
        if (ch && !self_check(ch, timeout_ms, why, sizeof why)) {
            if (!failing)
                log_error("watchdog: own health check failed (%s); not pinging systemd", why);
            failing = true;
            int rc = sd_notifyf(0, "STATUS=health check failing: %s", why);
            if (rc < 0)
                log_error("sd_notify(STATUS) failed: %s", strerror(-rc));
            continue;
        }
        if (notifier_wait(n, 0))
            break; /* stopping while we asked: no WATCHDOG after it */
        if (failing) {
            log_info("watchdog: health check answers again");
            notify("WATCHDOG=1\nSTATUS=serving");
        } else {
            notify("WATCHDOG=1");
        }
        failing = false;
    }
stopping:
    notify("STOPPING=1\nSTATUS=stopping: draining calls in flight");
done:
    rpc_channel_free(ch);
    pthread_mutex_lock(&n->lock);
    n->finished = true;
    pthread_cond_broadcast(&n->wake);
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

/* Starts the notifier when systemd (or anyone) gave us $NOTIFY_SOCKET. */
static int notifier_start(struct notifier *n, const struct daemon_listeners *l)
{
    if (!getenv("NOTIFY_SOCKET"))
        return 0;
    n->unix_path = l->unix_path;
    uint64_t usec = 0;
    int rc = sd_watchdog_enabled(0, &usec);
    if (rc < 0)
        log_error("ignoring the systemd watchdog settings: %s", strerror(-rc));
    n->watchdog_usec = rc > 0 ? usec : 0;
    if (pthread_create(&n->thread, NULL, notifier_thread, n) != 0) {
        log_error("cannot start the sd_notify thread");
        return -1;
    }
    n->running = true;
    if (n->watchdog_usec)
        log_info("systemd watchdog: pinging every %llu ms while the health check answers",
                 (unsigned long long)(n->watchdog_usec / 2000));
    return 0;
}

/* Stops the notifier. It gets NOTIFIER_JOIN_MS to finish; one still
 * blocked in sd_notify (a manager not reading its socket) is left detached,
 * with n, for the process's exit. true if n may be freed. */
#define NOTIFIER_JOIN_MS 5000
static bool notifier_join(struct notifier *n)
{
    if (!n->running)
        return true;
    notifier_stop(n);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += NOTIFIER_JOIN_MS / 1000;
    pthread_mutex_lock(&n->lock);
    while (!n->finished) {
        if (pthread_cond_timedwait(&n->wake, &n->lock, &until) != 0)
            break;
    }
    bool finished = n->finished;
    pthread_mutex_unlock(&n->lock);
    if (!finished) {
        log_error("sd_notify has blocked for %d ms: the service manager does not read "
                  "$NOTIFY_SOCKET; exiting without it", NOTIFIER_JOIN_MS);
        int rc = pthread_detach(n->thread);
        if (rc != 0)
            log_error("cannot detach the sd_notify thread: %s", strerror(rc));
        return false;
    }
    pthread_join(n->thread, NULL);
    n->running = false;
    return true;
}

/* --------------------------------------------------------------- serve */

struct signal_watch {
    struct rpc_server *server;
    struct notifier *notifier;
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
            if (w->notifier->running)
                notifier_stop(w->notifier); /* it sends STOPPING=1 */
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
    /* On the heap: a notifier stuck in sd_notify outlives this call. */
    struct notifier *n = calloc(1, sizeof *n);
    if (!n) {
        log_error("out of memory");
        return -1;
    }
    if (pthread_mutex_init(&n->lock, NULL) != 0 || pthread_cond_init(&n->wake, NULL) != 0) {
        log_error("cannot initialise the sd_notify state");
        free(n); /* neither needs destroying: nothing waits on them yet */
        return -1;
    }
    struct signal_watch w = {s, n, reload, reload_ctx};
    int status = -1;
    pthread_t t;
    if (listen_all(s, l) != 0)
        goto out;
    if (rpc_server_start(s) != 0) {
        log_error("cannot start the server");
        goto out;
    }
    /* The notifier before the signal thread, which reads n->running. Either
     * failing: the caller's rpc_server_free shuts the started server down. */
    if (notifier_start(n, l) != 0)
        goto out;
    if (pthread_create(&t, NULL, signal_thread, &w) != 0) {
        log_error("cannot start the signal thread");
        goto out;
    }
    rpc_server_run(s);
    status = 0;
    /* Stopped: signals from here on stay pending (blocked) until exit. */
    int rc = pthread_cancel(t);
    if (rc != 0 && rc != ESRCH)
        log_error("cannot stop the signal thread: %s", strerror(rc));
    pthread_join(t, NULL);
out:
    if (notifier_join(n)) {
        pthread_cond_destroy(&n->wake);
        pthread_mutex_destroy(&n->lock);
        free(n);
    }
    return status;
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
