/*
 * test_admission.c - cmocka tests for the broker's task slots and their
 * queue (broker/admission.c), with real threads: the cap on concurrency,
 * an immediate refusal past the queue's length, first come first served,
 * giving up (and the waiters behind still getting in), one waiter woken
 * per slot freed, and shutdown. Events are ordered by waiting for the
 * counts, never by sleeping; the only time bound is a generous 5 s.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "admission.h"

#define PATIENCE_MS 5000 /* how long anything that must happen may take */

static void nap(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

/* Waits until the counts are exactly these. */
static void wait_counts(struct admission *a, uint32_t running, uint32_t queued)
{
    uint32_t r = 0, q = 0;
    for (int i = 0; i < PATIENCE_MS; i++) {
        admission_counts(a, &r, &q);
        if (r == running && q == queued)
            return;
        nap();
    }
    fail_msg("counts stayed running %u queued %u, expected %u and %u", r, q, running, queued);
}

/* Waits until *v reaches at least want. */
static void wait_atleast(atomic_int *v, int want)
{
    for (int i = 0; i < PATIENCE_MS && atomic_load(v) < want; i++)
        nap();
    if (atomic_load(v) < want)
        fail_msg("stayed at %d, expected at least %d", atomic_load(v), want);
}

static void assert_counts(struct admission *a, uint32_t running, uint32_t queued)
{
    uint32_t r, q;
    admission_counts(a, &r, &q);
    assert_int_equal(r, running);
    assert_int_equal(q, queued);
}

/* A new admission whose slots are all held by the test itself. */
static struct admission *full(uint32_t max_running, uint32_t max_queued)
{
    struct admission *a = admission_new(max_running, max_queued);
    assert_non_null(a);
    for (uint32_t i = 0; i < max_running; i++)
        assert_int_equal(admission_enter(a, NULL, NULL, NULL), ADMISSION_OK);
    assert_counts(a, max_running, 0);
    return a;
}

/* Every slot given back and nobody waiting: frees a. */
static void drained(struct admission *a)
{
    assert_counts(a, 0, 0);
    admission_free(a);
}

/* One caller on its own thread: enters, records, holds its slot until
 * released (when hold is set), leaves. */
struct caller {
    pthread_t thread;
    struct admission *a;
    int id;
    bool hold;
    atomic_bool release;
    atomic_bool quit;     /* what its give_up answers */
    atomic_int give_ups;  /* calls to its give_up */
    atomic_int *admitted; /* shared: how many got in */
    int *order;           /* shared: ids in the order they got in */
    pthread_mutex_t *order_lock;
    size_t *n_order;
    bool (*give_up)(void *ctx);
    enum admission_result result;
    uint64_t waited_ms;
};

static bool caller_give_up(void *ctx)
{
    struct caller *c = ctx;
    atomic_fetch_add(&c->give_ups, 1);
    return atomic_load(&c->quit);
}

static void *caller_main(void *arg)
{
    struct caller *c = arg;
    c->result = admission_enter(c->a, c->give_up, c, &c->waited_ms);
    if (c->result != ADMISSION_OK)
        return NULL;
    if (c->admitted)
        atomic_fetch_add(c->admitted, 1);
    if (c->order) {
        pthread_mutex_lock(c->order_lock);
        c->order[(*c->n_order)++] = c->id;
        pthread_mutex_unlock(c->order_lock);
    }
    while (c->hold && !atomic_load(&c->release))
        nap();
    admission_leave(c->a);
    return NULL;
}

static void start(struct caller *c)
{
    assert_int_equal(pthread_create(&c->thread, NULL, caller_main, c), 0);
}

static void join(struct caller *c)
{
    assert_int_equal(pthread_join(c->thread, NULL), 0);
}

/* ---- the cap ---- */

struct crowd {
    struct admission *a;
    atomic_int inside, peak, refused;
};

static void *crowd_main(void *arg)
{
    struct crowd *cr = arg;
    for (int i = 0; i < 50; i++) {
        if (admission_enter(cr->a, NULL, NULL, NULL) != ADMISSION_OK) {
            atomic_fetch_add(&cr->refused, 1);
            continue;
        }
        int n = atomic_fetch_add(&cr->inside, 1) + 1;
        int peak = atomic_load(&cr->peak);
        while (n > peak && !atomic_compare_exchange_weak(&cr->peak, &peak, n))
            ;
        for (int j = 0; j < 10; j++)
            sched_yield();
        atomic_fetch_sub(&cr->inside, 1);
        admission_leave(cr->a);
    }
    return NULL;
}

static void test_slots_cap_concurrency(void **state)
{
    (void)state;
    enum { THREADS = 16, SLOTS = 3 };
    struct crowd cr = {.a = admission_new(SLOTS, THREADS)};
    assert_non_null(cr.a);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, crowd_main, &cr), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(atomic_load(&cr.refused), 0); /* the queue holds every thread */
    assert_true(atomic_load(&cr.peak) >= 1);
    assert_true(atomic_load(&cr.peak) <= SLOTS);
    drained(cr.a);
}

/* ---- the queue's length ---- */

static void test_queue_full_is_immediate(void **state)
{
    (void)state;
    struct admission *a = full(1, 2);
    struct caller c[2] = {{.a = a}, {.a = a}};
    start(&c[0]);
    wait_counts(a, 1, 1);
    start(&c[1]);
    wait_counts(a, 1, 2);
    /* Two wait: a third is refused without waiting (a wait would hang here). */
    uint64_t waited = 99;
    assert_int_equal(admission_enter(a, NULL, NULL, &waited), ADMISSION_QUEUE_FULL);
    assert_int_equal(waited, 0);
    assert_counts(a, 1, 2);
    admission_leave(a);
    join(&c[0]);
    join(&c[1]);
    assert_int_equal(c[0].result, ADMISSION_OK);
    assert_int_equal(c[1].result, ADMISSION_OK);
    drained(a);
}

static void test_no_queue(void **state)
{
    (void)state;
    struct admission *a = admission_new(2, 0);
    assert_non_null(a);
    uint64_t waited = 99;
    assert_int_equal(admission_enter(a, NULL, NULL, &waited), ADMISSION_OK);
    assert_int_equal(waited, 0);
    assert_int_equal(admission_enter(a, NULL, NULL, NULL), ADMISSION_OK);
    assert_int_equal(admission_enter(a, NULL, NULL, NULL), ADMISSION_QUEUE_FULL);
    assert_counts(a, 2, 0);
    admission_leave(a);
    assert_int_equal(admission_enter(a, NULL, NULL, NULL), ADMISSION_OK);
    admission_leave(a);
    admission_leave(a);
    drained(a);
}

/* ---- order ---- */

static void test_first_come_first_served(void **state)
{
    (void)state;
    enum { N = 6 };
    struct admission *a = full(1, N);
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    int order[N];
    size_t n_order = 0;
    struct caller c[N];
    for (int i = 0; i < N; i++) {
        c[i] = (struct caller){
            .a = a, .id = i, .order = order, .order_lock = &lock, .n_order = &n_order};
        start(&c[i]);
        wait_counts(a, 1, (uint32_t)i + 1); /* queued in this order */
    }
    admission_leave(a);
    for (int i = 0; i < N; i++) {
        join(&c[i]);
        assert_int_equal(c[i].result, ADMISSION_OK);
    }
    assert_int_equal(n_order, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(order[i], i);
    drained(a);
}

/* A newcomer does not overtake a waiter: a freed slot goes to the queue. */
static void test_newcomer_queues_behind_waiters(void **state)
{
    (void)state;
    struct admission *a = full(1, 4);
    atomic_int admitted = 0;
    struct caller c = {.a = a, .hold = true, .admitted = &admitted};
    start(&c);
    wait_counts(a, 1, 1);
    admission_leave(a); /* handed to c, not freed */
    assert_counts(a, 1, 0);
    /* So a newcomer finds no free slot (it would get OK): it must wait. */
    struct caller late = {.a = a};
    atomic_store(&late.quit, true);
    assert_int_equal(admission_enter(a, caller_give_up, &late, NULL), ADMISSION_GAVE_UP);
    wait_atleast(&admitted, 1);
    atomic_store(&c.release, true);
    join(&c);
    drained(a);
}

/* ---- giving up ---- */

static void test_give_up_leaves_the_queue(void **state)
{
    (void)state;
    struct admission *a = full(1, 4);
    struct caller front = {.a = a, .give_up = caller_give_up};
    struct caller behind = {.a = a};
    start(&front);
    wait_counts(a, 1, 1);
    start(&behind);
    wait_counts(a, 1, 2);
    /* give_up is asked again and again while waiting. */
    wait_atleast(&front.give_ups, 3);
    atomic_store(&front.quit, true);
    join(&front);
    assert_int_equal(front.result, ADMISSION_GAVE_UP);
    assert_true(front.waited_ms <= 2 * PATIENCE_MS);
    assert_counts(a, 1, 1);
    /* The one behind it still gets the next slot. */
    admission_leave(a);
    join(&behind);
    assert_int_equal(behind.result, ADMISSION_OK);
    drained(a);
}

static void test_give_up_before_sleeping(void **state)
{
    (void)state;
    struct admission *a = full(1, 4);
    struct caller c = {.a = a};
    atomic_store(&c.quit, true);
    assert_int_equal(admission_enter(a, caller_give_up, &c, NULL), ADMISSION_GAVE_UP);
    assert_int_equal(atomic_load(&c.give_ups), 1);
    assert_counts(a, 1, 0);
    /* Free slots are taken without asking. */
    admission_leave(a);
    assert_int_equal(admission_enter(a, caller_give_up, &c, NULL), ADMISSION_OK);
    assert_int_equal(atomic_load(&c.give_ups), 1);
    admission_leave(a);
    drained(a);
}

/* A slot handed to a waiter while it was deciding to give up goes on to
 * the next waiter. Its give_up frees the slot itself, so the order is sure. */
struct handover {
    struct caller c; /* first: caller_main's ctx is the handover too */
    atomic_bool go;
};

static bool leave_then_give_up(void *ctx)
{
    struct handover *h = ctx;
    if (!atomic_load(&h->go))
        return false;
    admission_leave(h->c.a); /* main's slot: handed to us, the head */
    return true;
}

static void test_give_up_passes_on_a_handed_slot(void **state)
{
    (void)state;
    struct admission *a = full(1, 4);
    struct handover h = {.c = {.a = a, .give_up = leave_then_give_up}};
    struct caller behind = {.a = a, .hold = true};
    assert_int_equal(pthread_create(&h.c.thread, NULL, caller_main, &h), 0);
    wait_counts(a, 1, 1);
    start(&behind);
    wait_counts(a, 1, 2);
    atomic_store(&h.go, true);
    join(&h.c);
    assert_int_equal(h.c.result, ADMISSION_GAVE_UP);
    assert_counts(a, 1, 0); /* the slot is behind's now */
    atomic_store(&behind.release, true);
    join(&behind);
    assert_int_equal(behind.result, ADMISSION_OK);
    drained(a);
}

/* ---- waking ---- */

static void test_leave_wakes_exactly_one(void **state)
{
    (void)state;
    enum { N = 3 };
    struct admission *a = full(1, N);
    atomic_int admitted = 0;
    struct caller c[N];
    for (int i = 0; i < N; i++) {
        c[i] = (struct caller){.a = a, .id = i, .hold = true, .admitted = &admitted};
        start(&c[i]);
        wait_counts(a, 1, (uint32_t)i + 1);
    }
    for (int i = 0; i < N; i++) {
        /* Main's slot, then each holder's in turn: one in, the rest wait. */
        if (i == 0)
            admission_leave(a);
        else
            atomic_store(&c[i - 1].release, true);
        wait_counts(a, 1, (uint32_t)(N - 1 - i));
        wait_atleast(&admitted, i + 1);
        assert_int_equal(atomic_load(&admitted), i + 1);
    }
    atomic_store(&c[N - 1].release, true);
    for (int i = 0; i < N; i++) {
        join(&c[i]);
        assert_int_equal(c[i].result, ADMISSION_OK);
    }
    drained(a);
}

static void test_shutdown_wakes_all(void **state)
{
    (void)state;
    enum { N = 4 };
    struct admission *a = full(2, 8);
    struct caller c[N];
    for (int i = 0; i < N; i++) {
        c[i] = (struct caller){.a = a, .id = i, .give_up = i % 2 ? caller_give_up : NULL};
        start(&c[i]);
    }
    wait_counts(a, 2, N);
    admission_shutdown(a);
    for (int i = 0; i < N; i++) {
        join(&c[i]);
        assert_int_equal(c[i].result, ADMISSION_SHUTDOWN);
    }
    assert_counts(a, 2, 0);
    assert_int_equal(admission_enter(a, NULL, NULL, NULL), ADMISSION_SHUTDOWN);
    /* Held slots stay held until given back. */
    admission_leave(a);
    admission_leave(a);
    assert_counts(a, 0, 0);
    assert_int_equal(admission_enter(a, NULL, NULL, NULL), ADMISSION_SHUTDOWN);
    admission_free(a);
    admission_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_cap_concurrency),
        cmocka_unit_test(test_queue_full_is_immediate),
        cmocka_unit_test(test_no_queue),
        cmocka_unit_test(test_first_come_first_served),
        cmocka_unit_test(test_newcomer_queues_behind_waiters),
        cmocka_unit_test(test_give_up_leaves_the_queue),
        cmocka_unit_test(test_give_up_before_sleeping),
        cmocka_unit_test(test_give_up_passes_on_a_handed_slot),
        cmocka_unit_test(test_leave_wakes_exactly_one),
        cmocka_unit_test(test_shutdown_wakes_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
