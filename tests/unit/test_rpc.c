/*
 * test_rpc.c - cmocka tests for lib/rpc.c's handler threads, against a real
 * rpc_server on a Unix socket with a client in the same process: sequential
 * calls reuse a thread instead of starting one per call, a call beyond
 * max_concurrent_calls is refused at once with RESOURCE_EXHAUSTED, finished
 * threads wait for the next calls but no more of them than the server keeps,
 * shutdown cancels the calls in flight and leaves no handler thread, and a
 * draining stop refuses new connections while the calls in flight finish,
 * telling the drain function when the grace is over.
 * Threads are told apart by their kernel thread ids (gettid), which the
 * handlers send back; /proc/self/task says which of them are still alive.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "airlock/v1/credentials.pb-c.h"
#include "rpc.h"

#define TID_PATH "/airlock.test.Rpc/Tid"
#define HOLD_PATH "/airlock.test.Rpc/Hold"
#define WAIT_PATH "/airlock.test.Rpc/WaitForCancel"
#define CALL_MS 10000
#define IDLE_KEPT 16 /* rpc.h: up to 16 finished handler threads wait */
#define MAX_TIDS 64

/* ------------------------------------------------------------ handlers */

/* What the handlers share with the test. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int holding;     /* Hold / WaitForCancel handlers now running */
    bool open;       /* Hold handlers may return */
    int cancelled;   /* WaitForCancel handlers that saw their call cancelled */
    unsigned phases; /* 1 << enum rpc_drain_phase, for each the drain function saw */
};

static struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, 0, 0};

/* rpc_drain_fn: notes the phase; when the grace is over, lets Hold return. */
static void drain_fn(void *ctx, enum rpc_drain_phase phase)
{
    (void)ctx;
    pthread_mutex_lock(&gate.lock);
    gate.phases |= 1u << phase;
    if (phase == RPC_DRAIN_GRACE_OVER)
        gate.open = true;
    pthread_cond_broadcast(&gate.changed);
    pthread_mutex_unlock(&gate.lock);
}

static int send_tid(struct rpc_call *call)
{
    char tid[32];
    snprintf(tid, sizeof tid, "%d", (int)gettid());
    Airlock__V1__RevokeResponse resp = AIRLOCK__V1__REVOKE_RESPONSE__INIT;
    resp.status = tid;
    return rpc_call_send(call, &resp.base);
}

static grpc_status_code tid_handler(struct rpc_call *call, const ProtobufCMessage *req, void *ctx)
{
    (void)req, (void)ctx;
    send_tid(call);
    return GRPC_STATUS_OK;
}

/* Waits, 10 ms at a time, until pred() holds (under gate.lock) or the call
 * is cancelled. */
static bool hold_until(struct rpc_call *call, bool (*pred)(void))
{
    pthread_mutex_lock(&gate.lock);
    gate.holding++;
    pthread_cond_broadcast(&gate.changed);
    bool ok;
    while (!(ok = pred()) && !rpc_call_cancelled(call)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 10 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&gate.changed, &gate.lock, &until);
    }
    gate.holding--;
    if (!ok)
        gate.cancelled++;
    pthread_cond_broadcast(&gate.changed);
    pthread_mutex_unlock(&gate.lock);
    return ok;
}

static bool gate_open(void)
{
    return gate.open;
}

static bool never(void)
{
    return false;
}

/* Holds its thread until the test opens the gate; then sends its tid. */
static grpc_status_code hold_handler(struct rpc_call *call, const ProtobufCMessage *req, void *ctx)
{
    (void)req, (void)ctx;
    if (!hold_until(call, gate_open))
        return rpc_call_fail(call, GRPC_STATUS_CANCELLED, "cancelled while held");
    send_tid(call);
    return GRPC_STATUS_OK;
}

/* Streams its tid, then runs until the call is cancelled (by shutdown). */
static grpc_status_code wait_handler(struct rpc_call *call, const ProtobufCMessage *req, void *ctx)
{
    (void)req, (void)ctx;
    send_tid(call);
    hold_until(call, never);
    return rpc_call_fail(call, GRPC_STATUS_CANCELLED, "cancelled");
}

static const struct rpc_method methods[] = {
    {TID_PATH, RPC_UNARY, &airlock__v1__revoke_request__descriptor, tid_handler, NULL},
    {HOLD_PATH, RPC_UNARY, &airlock__v1__revoke_request__descriptor, hold_handler, NULL},
    {WAIT_PATH, RPC_SERVER_STREAMING, &airlock__v1__revoke_request__descriptor, wait_handler, NULL},
};

/* -------------------------------------------------------------- fixture */

struct fixture {
    char dir[64];
    char sock[96];
    struct rpc_server *rpc;
    pthread_t thread;
    bool running;
    struct rpc_channel *ch;
};

static void *run_server(void *arg)
{
    rpc_server_run(arg);
    return NULL;
}

/* A server allowing max_calls concurrent calls, draining as given, and a
 * channel to it. */
static void server_up_draining(struct fixture *fx, int max_calls, int grace_ms, rpc_drain_fn fn)
{
    fx->rpc = rpc_server_new(methods, sizeof methods / sizeof methods[0], max_calls);
    assert_non_null(fx->rpc);
    if (grace_ms || fn)
        rpc_server_set_drain(fx->rpc, grace_ms, fn, NULL);
    assert_int_equal(rpc_server_listen_unix(fx->rpc, fx->sock), 0);
    assert_int_equal(rpc_server_start(fx->rpc), 0);
    assert_int_equal(pthread_create(&fx->thread, NULL, run_server, fx->rpc), 0);
    fx->running = true;
    char target[128];
    snprintf(target, sizeof target, "unix:%s", fx->sock);
    fx->ch = rpc_channel_new(target);
    assert_non_null(fx->ch);
    pthread_mutex_lock(&gate.lock);
    gate.holding = gate.cancelled = 0;
    gate.open = false;
    gate.phases = 0;
    pthread_mutex_unlock(&gate.lock);
}

static void server_up(struct fixture *fx, int max_calls)
{
    server_up_draining(fx, max_calls, 0, NULL);
}

/* Stops the server as the daemons do (rpc_server_stop, run returns, free). */
static void server_down(struct fixture *fx)
{
    if (fx->running) {
        rpc_server_stop(fx->rpc);
        pthread_join(fx->thread, NULL);
        fx->running = false;
    }
    rpc_server_free(fx->rpc);
    fx->rpc = NULL;
    rpc_channel_free(fx->ch);
    fx->ch = NULL;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/airlock-rpc-test.XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->sock, sizeof fx->sock, "%s/rpc.sock", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    if (fx->rpc)
        server_down(fx);
    unlink(fx->sock);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* ------------------------------------------------------------- helpers */

/* One unary call; on OK, the handler thread's tid, else -1 (status in st). */
static int call_tid(struct rpc_channel *ch, const char *path, struct rpc_status *st)
{
    Airlock__V1__RevokeRequest req = AIRLOCK__V1__REVOKE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_status local;
    if (!st)
        st = &local;
    if (rpc_unary(ch, path, &req.base, &airlock__v1__revoke_response__descriptor, &resp, CALL_MS,
                  st) != GRPC_STATUS_OK)
        return -1;
    int tid = atoi(((Airlock__V1__RevokeResponse *)resp)->status);
    protobuf_c_message_free_unpacked(resp, NULL);
    return tid;
}

struct held_call {
    struct rpc_channel *ch;
    pthread_t thread;
    int tid;
};

static void *held_call_main(void *arg)
{
    struct held_call *h = arg;
    h->tid = call_tid(h->ch, HOLD_PATH, NULL);
    return NULL;
}

/* Waits up to 10 s for pred() (under gate.lock) to hold. */
static bool gate_wait(bool (*pred)(int), int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&gate.lock);
    bool ok;
    while (!(ok = pred(n)) &&
           pthread_cond_timedwait(&gate.changed, &gate.lock, &until) != ETIMEDOUT)
        ;
    ok = pred(n);
    pthread_mutex_unlock(&gate.lock);
    return ok;
}

static bool holding_is(int n)
{
    return gate.holding == n;
}

static bool cancelled_is(int n)
{
    return gate.cancelled == n;
}

/* Runs n Hold calls at once; returns once all n handlers are running. */
static void hold_calls(struct fixture *fx, struct held_call *calls, int n)
{
    for (int i = 0; i < n; i++) {
        calls[i] = (struct held_call){.ch = fx->ch, .tid = -1};
        assert_int_equal(pthread_create(&calls[i].thread, NULL, held_call_main, &calls[i]), 0);
    }
    assert_true(gate_wait(holding_is, n));
}

/* Opens the gate and waits for the n Hold calls to end; closes it again. */
static void release_calls(struct held_call *calls, int n)
{
    pthread_mutex_lock(&gate.lock);
    gate.open = true;
    pthread_cond_broadcast(&gate.changed);
    pthread_mutex_unlock(&gate.lock);
    for (int i = 0; i < n; i++) {
        pthread_join(calls[i].thread, NULL);
        assert_true(calls[i].tid > 0);
    }
    pthread_mutex_lock(&gate.lock);
    gate.open = false;
    pthread_mutex_unlock(&gate.lock);
}

static bool tid_alive(int tid)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/proc/self/task/%d", tid);
    return stat(path, &st) == 0;
}

static int count_alive(const int *tids, int n)
{
    int alive = 0;
    for (int i = 0; i < n; i++)
        alive += tid_alive(tids[i]);
    return alive;
}

/* Polls up to 5 s for exactly want of tids[] to be alive; returns the count. */
static int settle_alive(const int *tids, int n, int want)
{
    int alive = count_alive(tids, n);
    for (int i = 0; i < 500 && alive != want; i++) {
        usleep(10 * 1000);
        alive = count_alive(tids, n);
    }
    return alive;
}

/* Adds tid to the distinct tids in set[0..*n). */
static void add_tid(int *set, int *n, int tid)
{
    for (int i = 0; i < *n; i++)
        if (set[i] == tid)
            return;
    if (*n < MAX_TIDS)
        set[(*n)++] = tid;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------- tests */

/* One call after another: a thread per call would give 200 tids. A second
 * thread is allowed for when a call arrives before the last one's thread
 * has finished tidying up; more would mean threads are not reused. */
static void test_sequential_calls_reuse_a_thread(void **state)
{
    struct fixture *fx = *state;
    server_up(fx, 8);
    int tids[MAX_TIDS], ntids = 0;
    for (int i = 0; i < 200; i++) {
        int tid = call_tid(fx->ch, TID_PATH, NULL);
        assert_true(tid > 0);
        add_tid(tids, &ntids, tid);
    }
    assert_in_range(ntids, 1, 3);
    assert_int_equal(count_alive(tids, ntids), ntids); /* waiting, not gone */
    server_down(fx);
    assert_int_equal(settle_alive(tids, ntids, 0), 0);
}

/* max_calls handlers running: one more call is refused at once, not queued;
 * once they return, their threads serve the next round. */
static void test_busy_beyond_max_calls(void **state)
{
    struct fixture *fx = *state;
    enum { MAX = 4 };
    server_up(fx, MAX);
    struct held_call calls[MAX];
    hold_calls(fx, calls, MAX);

    struct rpc_status st;
    double t0 = now_ms();
    assert_int_equal(call_tid(fx->ch, TID_PATH, &st), -1);
    assert_int_equal(st.code, GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_string_equal(st.message, "server busy: too many concurrent calls");
    assert_true(now_ms() - t0 < 2000);

    release_calls(calls, MAX);
    int first[MAX];
    for (int i = 0; i < MAX; i++)
        first[i] = calls[i].tid;
    assert_int_equal(settle_alive(first, MAX, MAX), MAX);

    /* Once the four have parked, a second round is served by the same four. */
    usleep(300 * 1000);
    hold_calls(fx, calls, MAX);
    release_calls(calls, MAX);
    for (int i = 0; i < MAX; i++) {
        bool reused = false;
        for (int j = 0; j < MAX; j++)
            reused |= calls[i].tid == first[j];
        assert_true(reused);
    }
    /* And a slot freed is a slot to be had. */
    assert_true(call_tid(fx->ch, TID_PATH, NULL) > 0);
    server_down(fx);
    assert_int_equal(settle_alive(first, MAX, 0), 0);
}

/* A burst beyond the threads kept: the surplus exits as its calls end. */
static void test_surplus_threads_exit(void **state)
{
    struct fixture *fx = *state;
    enum { BURST = IDLE_KEPT + 8 };
    server_up(fx, BURST);
    struct held_call calls[BURST];
    hold_calls(fx, calls, BURST);
    release_calls(calls, BURST);
    int tids[BURST];
    for (int i = 0; i < BURST; i++)
        tids[i] = calls[i].tid;
    assert_true(count_alive(tids, BURST) >= IDLE_KEPT);
    assert_int_equal(settle_alive(tids, BURST, IDLE_KEPT), IDLE_KEPT);
    /* The kept ones still serve. */
    int tid = call_tid(fx->ch, TID_PATH, NULL);
    bool kept = false;
    for (int i = 0; i < BURST; i++)
        kept |= tids[i] == tid && tid_alive(tid);
    assert_true(kept);
    server_down(fx);
    assert_int_equal(settle_alive(tids, BURST, 0), 0);
}

struct stream_call {
    struct rpc_channel *ch;
    pthread_t thread;
    int tid;
    grpc_status_code code;
};

static void *stream_call_main(void *arg)
{
    struct stream_call *c = arg;
    Airlock__V1__RevokeRequest req = AIRLOCK__V1__REVOKE_REQUEST__INIT;
    struct rpc_stream *st = rpc_stream_start(c->ch, WAIT_PATH, &req.base, CALL_MS * 3);
    ProtobufCMessage *msg = NULL;
    while (rpc_stream_next(st, &airlock__v1__revoke_response__descriptor, &msg) == 1) {
        c->tid = atoi(((Airlock__V1__RevokeResponse *)msg)->status);
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    struct rpc_status status;
    c->code = rpc_stream_finish(st, &status);
    return NULL;
}

/* Shutdown with streams in flight and threads waiting: the streams are
 * cancelled, their handlers return, and no handler thread is left. */
static void test_shutdown_cancels_and_joins(void **state)
{
    struct fixture *fx = *state;
    enum { HELD = 4, STREAMS = 2 };
    server_up(fx, 8);
    int tids[MAX_TIDS], ntids = 0;
    struct held_call held[HELD];
    hold_calls(fx, held, HELD);
    release_calls(held, HELD);
    for (int i = 0; i < HELD; i++)
        add_tid(tids, &ntids, held[i].tid);
    usleep(300 * 1000); /* the four park */

    /* Two of the four serve the streams; two wait for calls at shutdown. */
    struct stream_call calls[STREAMS];
    for (int i = 0; i < STREAMS; i++) {
        calls[i] = (struct stream_call){.ch = fx->ch, .tid = -1};
        assert_int_equal(pthread_create(&calls[i].thread, NULL, stream_call_main, &calls[i]), 0);
    }
    assert_true(gate_wait(holding_is, STREAMS));

    double t0 = now_ms();
    rpc_server_stop(fx->rpc);
    pthread_join(fx->thread, NULL); /* run returns after shutdown */
    fx->running = false;
    assert_true(now_ms() - t0 < 5000);
    assert_true(gate_wait(cancelled_is, STREAMS));
    assert_int_equal(gate.holding, 0);
    for (int i = 0; i < STREAMS; i++) {
        pthread_join(calls[i].thread, NULL);
        assert_true(calls[i].tid > 0);
        assert_int_not_equal(calls[i].code, GRPC_STATUS_OK);
        add_tid(tids, &ntids, calls[i].tid);
    }
    assert_int_equal(ntids, HELD); /* the streams ran on parked threads */
    server_down(fx);
    assert_int_equal(settle_alive(tids, ntids, 0), 0);
}

/* A draining stop: the socket goes at once (a new connection is refused),
 * the call in flight is not cancelled and finishes normally, and the drain
 * function hears of the start only. */
static void test_drain_lets_calls_finish(void **state)
{
    struct fixture *fx = *state;
    server_up_draining(fx, 8, 10000, drain_fn);
    struct held_call held;
    hold_calls(fx, &held, 1);
    rpc_server_stop(fx->rpc);
    struct stat st;
    for (int i = 0; i < 500 && stat(fx->sock, &st) == 0; i++)
        usleep(10 * 1000);
    assert_int_not_equal(stat(fx->sock, &st), 0);
    char target[128];
    snprintf(target, sizeof target, "unix:%s", fx->sock);
    struct rpc_channel *late = rpc_channel_new(target);
    assert_non_null(late);
    struct rpc_status status;
    assert_int_equal(call_tid(late, TID_PATH, &status), -1);
    assert_int_equal(status.code, GRPC_STATUS_UNAVAILABLE);
    rpc_channel_free(late);
    pthread_mutex_lock(&gate.lock);
    assert_int_equal(gate.holding, 1);
    assert_int_equal(gate.cancelled, 0);
    assert_int_equal(gate.phases, 1u << RPC_DRAIN_START);
    pthread_mutex_unlock(&gate.lock);
    release_calls(&held, 1); /* asserts the call succeeded */
    pthread_join(fx->thread, NULL);
    fx->running = false;
    assert_int_equal(gate.phases, 1u << RPC_DRAIN_START);
    server_down(fx);
}

/* A call still running when the grace ends: the drain function is told, and
 * the call it then lets return ends normally, not cancelled. */
static void test_drain_grace_over(void **state)
{
    struct fixture *fx = *state;
    server_up_draining(fx, 8, 300, drain_fn);
    struct held_call held;
    hold_calls(fx, &held, 1);
    rpc_server_stop(fx->rpc);
    pthread_join(held.thread, NULL);
    assert_true(held.tid > 0);
    pthread_join(fx->thread, NULL);
    fx->running = false;
    assert_int_equal(gate.phases, (1u << RPC_DRAIN_START) | (1u << RPC_DRAIN_GRACE_OVER));
    assert_int_equal(gate.cancelled, 0);
    server_down(fx);
}

/* A server that never started, or started and never ran, frees cleanly. */
static void test_free_without_run(void **state)
{
    struct fixture *fx = *state;
    struct rpc_server *s = rpc_server_new(methods, 1, 4);
    assert_non_null(s);
    rpc_server_free(s);
    s = rpc_server_new(methods, 1, 4);
    assert_non_null(s);
    assert_int_equal(rpc_server_listen_unix(s, fx->sock), 0);
    assert_int_equal(rpc_server_start(s), 0);
    rpc_server_free(s);
}

int main(void)
{
    grpc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sequential_calls_reuse_a_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_beyond_max_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_surplus_threads_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_cancels_and_joins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_without_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_lets_calls_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_grace_over, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    grpc_shutdown();
    return failed;
}
