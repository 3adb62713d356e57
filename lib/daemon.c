/*
 * daemon.c - signal handling and sibling paths for the daemons.
 */
#include "daemon.h"

#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

static void *signal_thread(void *arg)
{
    struct rpc_server *s = arg;
    sigset_t set;
    stop_signals(&set);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) /* reserved for reloading; ignored for now */
            continue;
        log_info("signal %d: shutting down", sig);
        rpc_server_stop(s);
        return NULL;
    }
}

int daemon_stop_on_signal(struct rpc_server *s)
{
    pthread_t t;
    if (pthread_create(&t, NULL, signal_thread, s) != 0)
        return -1;
    return pthread_detach(t) == 0 ? 0 : -1;
}

int daemon_serve(struct rpc_server *s, const char *socket_path)
{
    if (rpc_server_listen_unix(s, socket_path) != 0) {
        log_error("cannot listen on %s: %s", socket_path, strerror(errno));
        return -1;
    }
    if (rpc_server_start(s) != 0 || daemon_stop_on_signal(s) != 0) {
        log_error("cannot start the server");
        return -1;
    }
    log_info("listening on %s", socket_path);
    rpc_server_run(s);
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
