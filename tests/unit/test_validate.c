/*
 * test_validate.c - cmocka tests for an Execute request's own checks
 * (broker/validate.c): each rule at its boundaries, that every refusal
 * names its field and quotes nothing but printable ASCII, and the
 * max_code_bytes / max_stdin_bytes settings (broker/config.c).
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
#include "sandbox.h"
#include "validate.h"

#define MiB (1ull << 20)

static const struct request_caps caps = {
    .max_code_bytes = 10, .max_stdin_bytes = 20, .host_ram_bytes = 2048 * MiB};

static void assert_has(const char *text, const char *want)
{
    if (!strstr(text, want))
        fail_msg("\"%s\" does not contain \"%s\"", text, want);
}

/* A request that passes; tests change one field of it. */
struct req {
    Airlock__V1__ExecuteRequest r;
    Airlock__V1__Limits limits;
    uint8_t code[64];
};

static void req_init(struct req *q)
{
    airlock__v1__execute_request__init(&q->r);
    airlock__v1__limits__init(&q->limits);
    memset(q->code, '#', sizeof q->code);
    q->r.runtime = "sh";
    q->r.code = (ProtobufCBinaryData){1, q->code};
    q->r.limits = &q->limits;
}

static void assert_valid(const struct req *q)
{
    char msg[512] = "";
    if (validate_execute_request(&q->r, &caps, msg, sizeof msg) != 0)
        fail_msg("refused: %s", msg);
}

/* Refused with a message starting with want; the message is printable ASCII
 * whatever the request held. */
static void assert_refused(const struct req *q, const char *want)
{
    char msg[512] = "";
    assert_int_equal(validate_execute_request(&q->r, &caps, msg, sizeof msg), -1);
    if (strncmp(msg, want, strlen(want)) != 0)
        fail_msg("\"%s\" does not start with \"%s\"", msg, want);
    for (const char *p = msg; *p; p++)
        if (*p < ' ' || *p > '~')
            fail_msg("byte 0x%02x in \"%s\"", (unsigned char)*p, msg);
}

static void test_valid_request(void **state)
{
    (void)state;
    struct req q;
    req_init(&q);
    assert_valid(&q);
    q.r.limits = NULL; /* no limits at all: the policy's defaults */
    assert_valid(&q);
}

static void test_runtime(void **state)
{
    (void)state;
    struct req q;
    req_init(&q);
    q.r.runtime = "python3";
    assert_valid(&q);
    q.r.runtime = "";
    assert_refused(&q, "runtime: empty (known: python3, sh)");
    q.r.runtime = "ruby";
    assert_refused(&q, "runtime: unknown \"ruby\" (known: python3, sh)");
    q.r.runtime = "\xff\xfe";
    assert_refused(&q, "runtime: must be 1-32 printable ASCII characters");
    q.r.runtime = "s h";
    assert_refused(&q, "runtime: must be");
    q.r.runtime = "sh\n";
    assert_refused(&q, "runtime: must be");
    q.r.runtime = "abcdefghijklmnopqrstuvwxyz0123456"; /* 33 */
    assert_refused(&q, "runtime: must be");

    /* Every runtime the refusals list exists. */
    char list[] = VALIDATE_RUNTIMES;
    char *save = NULL;
    for (char *name = strtok_r(list, ", ", &save); name; name = strtok_r(NULL, ", ", &save))
        assert_true(sandbox_runtime_known(name));
}

static void test_code_and_stdin(void **state)
{
    (void)state;
    struct req q;
    req_init(&q);
    q.r.code.len = 0;
    assert_refused(&q, "code: empty");
    q.r.code.len = 10;
    assert_valid(&q);
    q.r.code.len = 11;
    assert_refused(&q, "code: 11 bytes exceeds max_code_bytes 10");
    q.r.code.len = 1;

    q.r.stdin = (ProtobufCBinaryData){20, q.code};
    assert_valid(&q);
    q.r.stdin.len = 21;
    assert_refused(&q, "stdin: 21 bytes exceeds max_stdin_bytes 20");
}

/* One limit's range: 0, min and max pass; min - 1 (when not 0) and max + 1
 * are refused naming the field and the range. */
struct range_case {
    const char *name;
    void (*set)(struct req *, uint64_t);
    uint64_t min, max;
};

static void set_timeout(struct req *q, uint64_t v) { q->r.timeout_ms = (uint32_t)v; }
static void set_l_timeout(struct req *q, uint64_t v) { q->limits.timeout_ms = (uint32_t)v; }
static void set_memory(struct req *q, uint64_t v) { q->limits.memory_bytes = v; }
static void set_pids(struct req *q, uint64_t v) { q->limits.max_pids = (uint32_t)v; }
static void set_output(struct req *q, uint64_t v) { q->limits.output_bytes = v; }
static void set_cpu(struct req *q, uint64_t v) { q->limits.cpu_ms = (uint32_t)v; }
static void set_disk(struct req *q, uint64_t v) { q->limits.disk_bytes = v; }
static void set_files(struct req *q, uint64_t v) { q->limits.open_files = (uint32_t)v; }

static void test_limit_ranges(void **state)
{
    (void)state;
    static const struct range_case cases[] = {
        {"timeout_ms", set_timeout, 1, 86400000},
        {"limits.timeout_ms", set_l_timeout, 1, 86400000},
        {"limits.memory_bytes", set_memory, 16 * MiB, 2048 * MiB}, /* caps' host RAM */
        {"limits.max_pids", set_pids, 1, 4194304},
        {"limits.output_bytes", set_output, 1, 1ull << 40},
        {"limits.cpu_ms", set_cpu, 1, 86400000},
        {"limits.disk_bytes", set_disk, 64 << 10, 1ull << 40},
        {"limits.open_files", set_files, 16, 1048576},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct range_case *c = &cases[i];
        char want[256];
        snprintf(want, sizeof want, "%s: %llu is outside %llu..%llu (0: the policy default",
                 c->name, (unsigned long long)c->max + 1, (unsigned long long)c->min,
                 (unsigned long long)c->max);
        struct req q;
        req_init(&q);
        c->set(&q, 0);
        assert_valid(&q);
        c->set(&q, c->min);
        assert_valid(&q);
        c->set(&q, c->max);
        assert_valid(&q);
        c->set(&q, c->max + 1);
        assert_refused(&q, want);
        if (c->min > 1) {
            c->set(&q, c->min - 1);
            snprintf(want, sizeof want, "%s: %llu is outside", c->name,
                     (unsigned long long)c->min - 1);
            assert_refused(&q, want);
        }
    }
}

static void test_memory_ceiling(void **state)
{
    (void)state;
    struct req q;
    req_init(&q);
    char msg[512];
    /* Above this host's RAM: said so. */
    q.limits.memory_bytes = 2048 * MiB + 1;
    assert_int_equal(validate_execute_request(&q.r, &caps, msg, sizeof msg), -1);
    assert_has(msg, "(0: the policy default; more than this host's RAM)");
    /* RAM unknown: the fixed ceiling. */
    struct request_caps unknown = caps;
    unknown.host_ram_bytes = 0;
    assert_int_equal(validate_execute_request(&q.r, &unknown, msg, sizeof msg), 0);
    q.limits.memory_bytes = (1ull << 40) + 1;
    assert_int_equal(validate_execute_request(&q.r, &unknown, msg, sizeof msg), -1);
    assert_has(msg, "limits.memory_bytes: 1099511627777 is outside 16777216..1099511627776");
    /* This machine's RAM is known and workable. */
    assert_true(validate_host_ram_bytes() >= 16 * MiB);
}

static void test_scopes_and_audience(void **state)
{
    (void)state;
    char long_word[258];
    memset(long_word, 'a', sizeof long_word - 1);
    long_word[257] = '\0';
    char *words[17];
    for (size_t i = 0; i < 17; i++)
        words[i] = "orders:read";

    struct req q;
    req_init(&q);
    q.r.scopes = words;
    q.r.n_scopes = 16;
    assert_valid(&q);
    q.r.n_scopes = 17;
    assert_refused(&q, "scopes: 17 items; at most 16");
    q.r.n_scopes = 2;
    words[1] = long_word + 1; /* 256 */
    assert_valid(&q);
    const char *const bad[] = {"", "a b", "a\x01", "caf\xc3\xa9", "\xff", long_word};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        words[1] = (char *)bad[i];
        assert_refused(&q, "scopes[1]: must be 1-256 printable ASCII characters without spaces");
    }
    words[1] = "orders:write";
    q.r.n_scopes = 0;

    q.r.audience = words;
    q.r.n_audience = 17;
    assert_refused(&q, "audience: 17 items; at most 16");
    q.r.n_audience = 1;
    assert_valid(&q);
    words[0] = "a\tb";
    assert_refused(&q, "audience[0]: must be");
}

static void test_client_request_id(void **state)
{
    (void)state;
    char id[130];
    memset(id, 'x', sizeof id - 1);
    id[129] = '\0';
    struct req q;
    req_init(&q);
    q.r.client_request_id = id + 1; /* 128 */
    assert_valid(&q);
    q.r.client_request_id = id; /* 129 */
    assert_refused(&q, "client_request_id: must be at most 128 printable ASCII characters");
    static const char *const bad[] = {"a b", "\xc3\xa9", "\x7f", "x\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        q.r.client_request_id = (char *)bad[i];
        assert_refused(&q, "client_request_id: must be");
    }
}

/* ---- the caps as settings ---- */

static int load(struct broker_settings *s, const char *text, char *err, size_t errlen)
{
    char path[] = "/tmp/test_validate.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    broker_settings_init(s);
    err[0] = '\0';
    int rc = broker_settings_load(s, path, err, errlen);
    assert_int_equal(unlink(path), 0);
    return rc;
}

static int check(struct broker_settings *s, char *err, size_t errlen)
{
    s->socket_path = "/tmp/b.sock";
    s->cfg.credd_address = "unix:/tmp/c.sock";
    s->state_dir = "/tmp";
    return broker_settings_check(s, err, errlen);
}

static void test_settings(void **state)
{
    (void)state;
    struct broker_settings s;
    char err[512];
    broker_settings_init(&s);
    assert_int_equal(s.cfg.max_code_bytes, 1 << 20);
    assert_int_equal(s.cfg.max_stdin_bytes, 1 << 20);
    assert_int_equal(check(&s, err, sizeof err), 0);
    broker_settings_free(&s);

    assert_int_equal(load(&s, "max_code_bytes: 2048\nmax_stdin_bytes: 0\n", err, sizeof err), 0);
    assert_int_equal(s.cfg.max_code_bytes, 2048);
    assert_int_equal(s.cfg.max_stdin_bytes, 0);
    broker_settings_free(&s);

    assert_int_equal(load(&s, "max_code_bytes: 0\n", err, sizeof err), -1);
    assert_has(err, ":1: max_code_bytes: expected an integer 1..4128768");
    broker_settings_free(&s);
    assert_int_equal(load(&s, "max_stdin_bytes: 4128769\n", err, sizeof err), -1);
    assert_has(err, ":1: max_stdin_bytes: expected an integer 0..4128768");
    broker_settings_free(&s);

    /* Each fits, together they would not fit in a gRPC message. */
    assert_int_equal(load(&s, "max_code_bytes: 4128768\nmax_stdin_bytes: 1\n", err, sizeof err), 0);
    assert_int_equal(check(&s, err, sizeof err), -1);
    assert_has(err, "max_code_bytes 4128768 + max_stdin_bytes 1 exceed 4128768");
    broker_settings_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_request),
        cmocka_unit_test(test_runtime),
        cmocka_unit_test(test_code_and_stdin),
        cmocka_unit_test(test_limit_ranges),
        cmocka_unit_test(test_memory_ceiling),
        cmocka_unit_test(test_scopes_and_audience),
        cmocka_unit_test(test_client_request_id),
        cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
