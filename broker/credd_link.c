/*
 * credd_link.c - the broker's announce to credd (see credd_link.h). Until
 * it succeeds the broker mints nothing (Execute fails UNAVAILABLE): a token
 * minted first would be revoked by the announce that follows.
 */
#include "credd_link.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "airlock/v1/credentials.pb-c.h"
#include "util.h"

#define ANNOUNCE_TIMEOUT_MS 5000
#define RETRY_FIRST_MS 200
#define RETRY_MAX_MS 5000

struct credd_link {
    struct rpc_channel *ch;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool announced;
    bool stop;
    bool threaded;
    pthread_t thread;
    char why[256]; /* the last failure */
    unsigned failures;
};

/* One attempt. true once credd has answered. */
static bool announce(struct credd_link *l)
{
    Airlock__V1__BrokerStartedRequest req = AIRLOCK__V1__BROKER_STARTED_REQUEST__INIT;
    req.pid = (uint32_t)getpid();
    ProtobufCMessage *resp = NULL;
    struct rpc_status st;
    grpc_status_code code = rpc_unary(l->ch, "/airlock.v1.Credentials/BrokerStarted", &req.base,
                                      &airlock__v1__broker_started_response__descriptor, &resp,
                                      ANNOUNCE_TIMEOUT_MS, &st);
    pthread_mutex_lock(&l->lock);
    if (code == GRPC_STATUS_OK) {
        l->announced = true;
        log_info("announced to credd%s: %u tokens of a previous run revoked",
                 l->failures ? " after retrying" : "",
                 ((Airlock__V1__BrokerStartedResponse *)resp)->revoked);
        protobuf_c_message_free_unpacked(resp, NULL);
    } else {
        snprintf(l->why, sizeof l->why, "%s: %.200s", rpc_status_name(code), st.message);
        if (l->failures++ == 0)
            log_warn("credd: cannot announce the broker's start (%s); minting nothing until it "
                     "succeeds, retrying", l->why);
    }
    bool ok = l->announced;
    pthread_mutex_unlock(&l->lock);
    return ok;
}

static void *retry_main(void *arg)
{
    struct credd_link *l = arg;
    int64_t delay = RETRY_FIRST_MS;
    for (;;) {
        struct timespec until = timespec_after_ms(CLOCK_MONOTONIC, delay);
        pthread_mutex_lock(&l->lock);
        while (!l->stop && pthread_cond_timedwait(&l->wake, &l->lock, &until) == 0)
            ;
        bool stop = l->stop;
        pthread_mutex_unlock(&l->lock);
        if (stop || announce(l))
            return NULL;
        delay = delay * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : delay * 2;
    }
}

struct credd_link *credd_link_start(struct rpc_channel *ch)
{
    struct credd_link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->ch = ch;
    pthread_condattr_t attr;
    if (pthread_mutex_init(&l->lock, NULL) != 0) {
        free(l);
        return NULL;
    }
    if (pthread_condattr_init(&attr) != 0 ||
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&l->wake, &attr) != 0) {
        pthread_mutex_destroy(&l->lock);
        free(l);
        return NULL;
    }
    pthread_condattr_destroy(&attr);
    snprintf(l->why, sizeof l->why, "not announced yet");
    if (announce(l))
        return l;
    if (pthread_create(&l->thread, NULL, retry_main, l) != 0) {
        credd_link_stop(l);
        return NULL;
    }
    l->threaded = true;
    return l;
}

bool credd_link_ready(struct credd_link *l, char *why, size_t whylen)
{
    pthread_mutex_lock(&l->lock);
    bool ok = l->announced;
    if (!ok)
        snprintf(why, whylen, "%s", l->why);
    pthread_mutex_unlock(&l->lock);
    return ok;
}

void credd_link_stop(struct credd_link *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    l->stop = true;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
    if (l->threaded)
        pthread_join(l->thread, NULL);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
