/*
 * test_broker_config.c - cmocka tests for the broker's settings
 * (broker/config.c): the wait queue's length and the warm pool's sizes,
 * their defaults, the file's values and errors (file:line:path), and the
 * --pool flag over the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static void assert_has(const char *text, const char *want)
{
    if (!strstr(text, want))
        fail_msg("\"%s\" does not contain \"%s\"", text, want);
}

/* An input and what the error says of it. */
struct example {
    const char *input, *want;
};

/* A settings file on disk for one test. */
struct file {
    char path[64];
};

static void write_file(struct file *f, const char *text)
{
    snprintf(f->path, sizeof f->path, "/tmp/test_broker_config.XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* Loads text over the defaults: the return of broker_settings_load. */
static int load(struct broker_settings *s, struct file *f, const char *text, char *err,
                size_t errlen)
{
    broker_settings_init(s);
    write_file(f, text);
    err[0] = '\0';
    int rc = broker_settings_load(s, f->path, err, errlen);
    assert_int_equal(unlink(f->path), 0);
    return rc;
}

/* Loads text over the defaults, which must succeed. */
static void load_ok(struct broker_settings *s, const char *text)
{
    struct file f;
    char err[512];
    if (load(s, &f, text, err, sizeof err) != 0)
        fail_msg("load failed: %s", err);
}

/* The ready workers of both runtimes are these. */
static void assert_pool(const struct broker_settings *s, uint32_t sh, uint32_t python3)
{
    assert_int_equal(broker_settings_pool_ready(s, "sh"), sh);
    assert_int_equal(broker_settings_pool_ready(s, "python3"), python3);
    assert_int_equal(s->n_pool, 2);
}

static void test_defaults(void **state)
{
    (void)state;
    struct broker_settings s;
    broker_settings_init(&s);
    assert_int_equal(s.max_tasks, 32);
    assert_int_equal(s.queue_len, 64);
    assert_int_equal(s.n_pool, 2);
    assert_string_equal(s.pool[0].runtime, "sh");
    assert_int_equal(s.pool[0].ready, 2);
    assert_string_equal(s.pool[1].runtime, "python3");
    assert_int_equal(s.pool[1].ready, 2);
    assert_pool(&s, 2, 2);
    assert_int_equal(broker_settings_pool_ready(&s, "ruby"), 0);
    broker_settings_free(&s);
}

static void test_file_values(void **state)
{
    (void)state;
    struct broker_settings s;
    load_ok(&s, "queue: 0\npool: {python3: 0, sh: 256}\n");
    assert_int_equal(s.queue_len, 0);
    assert_pool(&s, 256, 0);
    broker_settings_free(&s);

    /* A runtime the file leaves out keeps its default. */
    load_ok(&s, "queue: 65536\npool:\n  sh: 5\n");
    assert_int_equal(s.queue_len, 65536);
    assert_pool(&s, 5, 2);
    broker_settings_free(&s);

    /* Neither key: the defaults. An empty mapping too. */
    load_ok(&s, "max_tasks: 4\npool: {}\n");
    assert_int_equal(s.max_tasks, 4);
    assert_int_equal(s.queue_len, 64);
    assert_pool(&s, 2, 2);
    broker_settings_free(&s);
}

static void test_file_errors(void **state)
{
    (void)state;
    static const struct example cases[] = {
        {"pool:\n  sh: 1\n  ruby: 2\n", ":3: pool.ruby: unknown runtime \"ruby\""},
        {"pool: {\"\": 1}\n", ":1: pool.: expected a string of 1..64 characters"},
        {"pool: {sh: 257}\n", ":1: pool.sh: expected an integer 0..256, got \"257\""},
        {"pool: {sh: -1}\n", ":1: pool.sh: expected an integer 0..256"},
        {"pool: {sh: many}\n", ":1: pool.sh: expected an integer 0..256"},
        {"pool: {sh: }\n", ":1: pool.sh: expected an integer 0..256, got no value"},
        {"pool: 3\n", ":1: pool: expected a mapping, got \"3\""},
        {"pool: [sh]\n", ":1: pool: expected a mapping, got a list"},
        {"queue: 65537\n", ":1: queue: expected an integer 0..65536, got \"65537\""},
        {"queue: -1\n", ":1: queue: expected an integer 0..65536"},
        {"\nqueue: {}\n", ":2: queue: expected an integer 0..65536, got a mapping"},
        {"queues: 1\n", ":1: unknown key 'queues'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct broker_settings s;
        struct file f;
        char err[512], want[600];
        assert_int_equal(load(&s, &f, cases[i].input, err, sizeof err), -1);
        snprintf(want, sizeof want, "%s%s", f.path, cases[i].want);
        assert_has(err, want);
        broker_settings_free(&s);
    }
}

static void test_pool_flag(void **state)
{
    (void)state;
    struct broker_settings s;
    char err[512];

    /* Over the file, per runtime; the later flag wins. */
    load_ok(&s, "pool: {sh: 1, python3: 7}\n");
    assert_int_equal(broker_settings_pool_flag(&s, "sh=5", err, sizeof err), 0);
    assert_pool(&s, 5, 7);
    assert_int_equal(broker_settings_pool_flag(&s, "python3=0", err, sizeof err), 0);
    assert_int_equal(broker_settings_pool_flag(&s, "sh=256", err, sizeof err), 0);
    assert_int_equal(broker_settings_pool_flag(&s, "sh=3", err, sizeof err), 0);
    assert_pool(&s, 3, 0);

    /* Bad flags change nothing. */
    static const struct example bad[] = {
        {"ruby=1", "--pool: unknown runtime \"ruby\""},
        {"a-runtime-name-far-too-long=1", "--pool: unknown runtime \"a-runtime-name-far-too-long\""},
        {"sh", "--pool: expected RUNTIME=N with N 0..256, got \"sh\""},
        {"=2", "--pool: expected RUNTIME=N"},
        {"sh=", "--pool: expected RUNTIME=N"},
        {"sh=257", "--pool: expected RUNTIME=N with N 0..256, got \"sh=257\""},
        {"sh=-1", "--pool: expected RUNTIME=N"},
        {"sh=2x", "--pool: expected RUNTIME=N"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(broker_settings_pool_flag(&s, bad[i].input, err, sizeof err), -1);
        assert_has(err, bad[i].want);
    }
    assert_pool(&s, 3, 0);
    broker_settings_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_pool_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
