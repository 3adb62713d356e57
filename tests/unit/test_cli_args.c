/*
 * test_cli_args.c - cmocka tests for the `airlock` command line (cli/args.c):
 * flag placement, environment vs flags, code sources, repeated options,
 * number validation, the audit verbs and their time bounds
 * (cli_parse_time), and the bounded input reader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"

#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
/* Parses a literal command line; env_broker/env_credd may be NULL. */
#define PARSE(out, err, eb, ec, ...)                                                     \
    cli_parse(ARGC("airlock", __VA_ARGS__), (char *[]){"airlock", __VA_ARGS__, NULL},    \
              &(struct cli_env){.broker = (eb), .credd = (ec)}, out, err, sizeof err)

static void test_exec_inline_defaults(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "-c", "print(1)"), 0);
    assert_int_equal(a.verb, CLI_VERB_EXEC);
    assert_int_equal(a.source, CLI_SRC_INLINE);
    assert_string_equal(a.input, "print(1)");
    assert_string_equal(a.runtime, "python3");
    assert_string_equal(a.broker, CLI_DEFAULT_BROKER);
    assert_string_equal(a.credd, CLI_DEFAULT_CREDD);
    assert_int_equal(a.timeout_ms, 0);
    assert_int_equal(a.nscopes, 0);
    assert_int_equal(a.naudience, 0);
    assert_null(a.stdin_file);
    assert_null(a.request_id);
    assert_false(a.json);
}

static void test_exec_all_options(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--runtime", "sh", "--timeout-ms=1500",
                           "--scope", "read:a", "--scope=write:b", "--scope", "x", "--audience",
                           "svc", "--stdin", "in.txt", "--request-id", "r-1", "--json", "prog.sh"),
                     0);
    assert_string_equal(a.runtime, "sh");
    assert_int_equal(a.timeout_ms, 1500);
    assert_int_equal(a.nscopes, 3);
    assert_string_equal(a.scopes[0], "read:a");
    assert_string_equal(a.scopes[1], "write:b");
    assert_string_equal(a.scopes[2], "x");
    assert_int_equal(a.naudience, 1);
    assert_string_equal(a.audience[0], "svc");
    assert_string_equal(a.stdin_file, "in.txt");
    assert_string_equal(a.request_id, "r-1");
    assert_true(a.json);
    assert_int_equal(a.source, CLI_SRC_FILE);
    assert_string_equal(a.input, "prog.sh");
}

static void test_global_flags_before_and_after_verb(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "--broker", "unix:/b1", "exec", "--credd=unix:/c1",
                           "-c", "x"),
                     0);
    assert_string_equal(a.broker, "unix:/b1");
    assert_string_equal(a.credd, "unix:/c1");

    assert_int_equal(PARSE(&a, err, NULL, NULL, "keys", "--credd", "unix:/c2"), 0);
    assert_int_equal(a.verb, CLI_VERB_KEYS);
    assert_string_equal(a.credd, "unix:/c2");

    /* exec options may also come before the verb */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "--json", "exec", "-c", "x"), 0);
    assert_true(a.json);
}

static void test_env_defaults_and_flag_override(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, "unix:/env-b", "unix:/env-c", "keys"), 0);
    assert_string_equal(a.broker, "unix:/env-b");
    assert_string_equal(a.credd, "unix:/env-c");

    assert_int_equal(PARSE(&a, err, "unix:/env-b", "unix:/env-c", "keys", "--broker", "unix:/f-b",
                           "--credd", "unix:/f-c"),
                     0);
    assert_string_equal(a.broker, "unix:/f-b");
    assert_string_equal(a.credd, "unix:/f-c");

    /* empty env means unset */
    assert_int_equal(PARSE(&a, err, "", "", "keys"), 0);
    assert_string_equal(a.broker, CLI_DEFAULT_BROKER);
    assert_string_equal(a.credd, CLI_DEFAULT_CREDD);
}

static void test_code_sources(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "-"), 0);
    assert_int_equal(a.source, CLI_SRC_STDIN);

    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "script.py"), 0);
    assert_int_equal(a.source, CLI_SRC_FILE);
    assert_string_equal(a.input, "script.py");

    /* after "--" a name starting with '-' is a file */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--", "-weird.py"), 0);
    assert_int_equal(a.source, CLI_SRC_FILE);
    assert_string_equal(a.input, "-weird.py");

    /* -c takes the next word even if it starts with '-' */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "-c", "-1"), 0);
    assert_int_equal(a.source, CLI_SRC_INLINE);
    assert_string_equal(a.input, "-1");

    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "-c", "x", "file.py"), -1);
    assert_non_null(strstr(err, "once"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "a.py", "b.py"), -1);
    assert_non_null(strstr(err, "unexpected argument 'b.py'"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "-c", "x", "-c", "y"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--stdin", "-", "-"), -1);
    assert_non_null(strstr(err, "standard input"));
    /* --stdin - with inline code is fine */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--stdin", "-", "-c", "x"), 0);
    assert_string_equal(a.stdin_file, "-");
}

static void test_missing_code(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--runtime", "sh"), -1);
    assert_non_null(strstr(err, "missing code"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "-c"), -1);
    assert_non_null(strstr(err, "needs a value"));
}

static void test_limits(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--memory-mb", "64", "--cpu-ms=1500",
                           "--max-pids", "8", "--disk-mb", "4", "--open-files", "32",
                           "--output-bytes", "1000", "-c", "x"),
                     0);
    assert_int_equal(a.memory_bytes, 64ull << 20);
    assert_int_equal(a.cpu_ms, 1500);
    assert_int_equal(a.max_pids, 8);
    assert_int_equal(a.disk_bytes, 4ull << 20);
    assert_int_equal(a.open_files, 32);
    assert_int_equal(a.output_bytes, 1000);

    /* Unset limits stay 0: the broker's defaults apply. */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "-c", "x"), 0);
    assert_int_equal(a.memory_bytes, 0);
    assert_int_equal(a.cpu_ms, 0);

    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--memory-mb", "1.5", "-c", "x"), -1);
    assert_non_null(strstr(err, "--memory-mb"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--memory-mb", "1048577", "-c", "x"), -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--cpu-ms", "4294967296", "-c", "x"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--max-pids", "-1", "-c", "x"), -1);
    /* Limits belong to exec. */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "keys", "--cpu-ms", "5"), -1);
}

static void test_bad_numbers(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--timeout-ms", "abc", "-c", "x"), -1);
    assert_non_null(strstr(err, "--timeout-ms"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--timeout-ms", "-5", "-c", "x"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--timeout-ms", "+5", "-c", "x"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--timeout-ms", "12ms", "-c", "x"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--timeout-ms", "", "-c", "x"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--timeout-ms", "4294967296", "-c", "x"), -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(
        PARSE(&a, err, NULL, NULL, "exec", "--timeout-ms", "99999999999999999999999", "-c", "x"), -1);
    assert_non_null(strstr(err, "out of range"));

    uint32_t v = 7;
    assert_int_equal(cli_parse_timeout("86400000", &v, err, sizeof err), 0);
    assert_int_equal(v, CLI_MAX_TIMEOUT_MS);
    assert_int_equal(cli_parse_timeout("86400001", &v, err, sizeof err), -1);
    assert_int_equal(cli_parse_timeout("0", &v, err, sizeof err), 0);
    assert_int_equal(v, 0);
}

static void test_unknown_things(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--frobnicate", "-c", "x"), -1);
    assert_non_null(strstr(err, "unknown option '--frobnicate'"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "launch"), -1);
    assert_non_null(strstr(err, "unknown command 'launch'"));
    assert_int_equal(cli_parse(1, (char *[]){"airlock", NULL}, NULL, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "missing command"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "token", "mint"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "token"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "keys", "extra"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "--json=yes", "exec", "-c", "x"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--broker", "", "-c", "x"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--runtime", "", "-c", "x"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--scope", "a b", "-c", "x"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--scope", "", "-c", "x"), -1);
}

static void test_options_of_another_verb(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "keys", "--runtime", "sh"), -1);
    assert_non_null(strstr(err, "'exec' and 'policy check' only"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--id", "j", "-c", "x"), -1);
    assert_non_null(strstr(err, "'token introspect' only"));
    /* A misplaced option after a fitting one is still caught. */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--runtime", "sh", "--config", "f", "-c", "x"), -1);
    assert_non_null(strstr(err, "'--config' applies to 'policy check' only"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "policy", "check", "--config", "f", "--spiffe-id",
                           "spiffe://td/a", "--stdin", "x"), -1);
    assert_non_null(strstr(err, "'--stdin' applies to 'exec' only"));
}

static void test_policy_check(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "policy", "check", "--config", "b.yaml", "--spiffe-id",
                           "spiffe://td/agents/x", "--runtime", "sh", "--scope", "s1",
                           "--memory-mb", "64"), 0);
    assert_int_equal(a.verb, CLI_VERB_POLICY_CHECK);
    assert_string_equal(a.config, "b.yaml");
    assert_string_equal(a.spiffe_id, "spiffe://td/agents/x");
    assert_string_equal(a.runtime, "sh");
    assert_int_equal(a.nscopes, 1);
    assert_int_equal(a.memory_bytes, 64u << 20);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "policy", "check", "--config", "b.yaml"), -1);
    assert_non_null(strstr(err, "--spiffe-id"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "policy"), -1);
    assert_non_null(strstr(err, "'policy check'"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "policy", "show"), -1);
    assert_non_null(strstr(err, "unknown command 'policy show'"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "policy", "check", "--config", "b", "--spiffe-id", "x",
                           "extra"), -1);
}

static void test_tls_files(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, "h:1", NULL, "--cert", "c.pem", "--key", "k.pem", "--ca", "ca.pem",
                           "--server-id", "spiffe://td/airlock/broker", "exec", "-c", "x"), 0);
    assert_string_equal(a.cert, "c.pem");
    assert_string_equal(a.key, "k.pem");
    assert_string_equal(a.ca, "ca.pem");
    assert_string_equal(a.server_id, "spiffe://td/airlock/broker");
    assert_false(cli_address_is_unix(a.broker));
    assert_true(cli_address_is_unix("unix:/run/x.sock"));
    /* Half a set is a mistake, named. */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "--cert", "c.pem", "--ca", "ca.pem", "health"), -1);
    assert_non_null(strstr(err, "--key is missing"));
    /* The environment supplies them; a flag wins. */
    struct cli_env env = {.cert = "env.pem", .key = "env.key", .ca = "env-ca.pem", .server_id = ""};
    char *argv[] = {"airlock", "--cert", "flag.pem", "keys", NULL};
    assert_int_equal(cli_parse(4, argv, &env, &a, err, sizeof err), 0);
    assert_string_equal(a.cert, "flag.pem");
    assert_string_equal(a.key, "env.key");
    assert_string_equal(a.ca, "env-ca.pem");
    assert_null(a.server_id);
}

static void test_too_many_scopes(void **state)
{
    (void)state;
    char *argv[2 + 2 * (CLI_MAX_SCOPES + 1) + 2 + 1];
    int n = 0;
    argv[n++] = "airlock";
    argv[n++] = "exec";
    for (int i = 0; i <= CLI_MAX_SCOPES; i++) {
        argv[n++] = "--scope";
        argv[n++] = "s";
    }
    argv[n++] = "-c";
    argv[n++] = "x";
    argv[n] = NULL;
    struct cli_args a;
    char err[256];
    assert_int_equal(cli_parse(n, argv, NULL, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "too many --scope"));
    /* exactly the maximum is fine */
    argv[2 * CLI_MAX_SCOPES + 2] = "-c";
    argv[2 * CLI_MAX_SCOPES + 3] = "x";
    assert_int_equal(cli_parse(2 * CLI_MAX_SCOPES + 4, argv, NULL, &a, err, sizeof err), 0);
    assert_int_equal(a.nscopes, CLI_MAX_SCOPES);
}

static void test_introspect(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "token", "introspect", "aaa.bbb.ccc"), 0);
    assert_int_equal(a.verb, CLI_VERB_INTROSPECT);
    assert_int_equal(a.source, CLI_SRC_INLINE);
    assert_string_equal(a.input, "aaa.bbb.ccc");

    assert_int_equal(PARSE(&a, err, NULL, NULL, "token", "introspect", "--id", "j123"), 0);
    assert_int_equal(a.source, CLI_SRC_ID);
    assert_string_equal(a.input, "j123");

    assert_int_equal(PARSE(&a, err, NULL, NULL, "--credd", "unix:/c", "token", "inspect", "-"), 0);
    assert_int_equal(a.source, CLI_SRC_STDIN);
    assert_string_equal(a.credd, "unix:/c");

    assert_int_equal(PARSE(&a, err, NULL, NULL, "token", "introspect"), -1);
    assert_non_null(strstr(err, "missing token"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "token", "introspect", "t", "--id", "j"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "token", "introspect", "t", "u"), -1);
}

static void test_help_version_health(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "--help"), 0);
    assert_int_equal(a.verb, CLI_VERB_HELP);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "-h"), 0);
    assert_int_equal(a.verb, CLI_VERB_HELP);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "help"), 0);
    assert_int_equal(a.verb, CLI_VERB_HELP);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "keys", "--version"), 0);
    assert_int_equal(a.verb, CLI_VERB_VERSION);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "health"), 0);
    assert_int_equal(a.verb, CLI_VERB_HEALTH);
    assert_non_null(strstr(cli_usage, "token introspect"));
}

static void test_audit_query(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query"), 0);
    assert_int_equal(a.verb, CLI_VERB_AUDIT_QUERY);
    assert_int_equal(a.of, CLI_DAEMON_BROKER);
    assert_null(a.spiffe_id);
    assert_null(a.since);
    assert_int_equal(a.since_ms, 0);
    assert_int_equal(a.nkinds, 0);
    assert_int_equal(a.limit, 0);
    assert_false(a.json);

    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--of", "credd", "--spiffe-id",
                           "spiffe://td/a", "--task", "t-1", "--token=j-1", "--since", "2h",
                           "--until", "2026-11-23T10:00:00Z", "--kind", "mint", "--kind=revoke",
                           "--reason", "TIMEOUT", "--limit", "50", "--json"),
                     0);
    assert_int_equal(a.of, CLI_DAEMON_CREDD);
    assert_string_equal(a.spiffe_id, "spiffe://td/a");
    assert_string_equal(a.task_id, "t-1");
    assert_string_equal(a.token_id, "j-1");
    assert_string_equal(a.since, "2h");
    assert_string_equal(a.until, "2026-11-23T10:00:00Z");
    assert_int_equal(a.since_ms, 0); /* main resolves them */
    assert_int_equal(a.nkinds, 2);
    assert_string_equal(a.kinds[0], "mint");
    assert_string_equal(a.kinds[1], "revoke");
    assert_string_equal(a.reason, "TIMEOUT");
    assert_int_equal(a.limit, 50);
    assert_true(a.json);

    /* options before the verb, globals anywhere */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "--of=broker", "--broker", "unix:/b", "audit",
                           "query", "--credd", "unix:/c"),
                     0);
    assert_int_equal(a.of, CLI_DAEMON_BROKER);
    assert_string_equal(a.broker, "unix:/b");

    /* --of: broker or credd only */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--of", "worker"), -1);
    assert_non_null(strstr(err, "--of: 'worker'"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--of", ""), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--of"), -1);
    assert_non_null(strstr(err, "needs a value"));

    /* --limit: digits, fits the proto's uint32 */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--limit", "4294967295"), 0);
    assert_int_equal(a.limit, UINT32_MAX);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--limit", "4294967296"), -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--limit", "-1"), -1);
    assert_non_null(strstr(err, "--limit"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--limit", "10k"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--limit", ""), -1);

    /* empty values and stray words */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--task", ""), -1);
    assert_non_null(strstr(err, "--task: empty value"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--kind", ""), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--kind", "a b"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--since", ""), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "mint"), -1);
    assert_non_null(strstr(err, "unexpected argument 'mint'"));
}

static void test_audit_too_many_kinds(void **state)
{
    (void)state;
    char *argv[3 + 2 * (CLI_MAX_KINDS + 1) + 1];
    int n = 0;
    argv[n++] = "airlock";
    argv[n++] = "audit";
    argv[n++] = "query";
    for (int i = 0; i <= CLI_MAX_KINDS; i++) {
        argv[n++] = "--kind";
        argv[n++] = "execute";
    }
    argv[n] = NULL;
    struct cli_args a;
    char err[256];
    assert_int_equal(cli_parse(n, argv, NULL, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "too many --kind"));
    assert_int_equal(cli_parse(n - 2, argv, NULL, &a, err, sizeof err), 0);
    assert_int_equal(a.nkinds, CLI_MAX_KINDS);
}

static void test_audit_verify(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify"), 0);
    assert_int_equal(a.verb, CLI_VERB_AUDIT_VERIFY);
    assert_int_equal(a.of, CLI_DAEMON_BROKER);
    assert_null(a.file);

    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--of", "credd", "--json"), 0);
    assert_int_equal(a.of, CLI_DAEMON_CREDD);
    assert_true(a.json);

    /* offline: no daemon is asked to verify */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--file", "broker.audit",
                           "--jwks", "jwks.json", "--expect-seq", "1200"),
                     0);
    assert_int_equal(a.of, CLI_DAEMON_NONE);
    assert_string_equal(a.file, "broker.audit");
    assert_string_equal(a.jwks, "jwks.json");
    assert_int_equal(a.expect_seq, 1200);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--file=c.audit"), 0);
    assert_null(a.jwks);
    assert_int_equal(a.expect_seq, 0);

    /* --file and --of conflict, whichever comes first */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--file", "x", "--of", "broker"), -1);
    assert_non_null(strstr(err, "--file and --of conflict"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--of", "credd", "--file", "x"), -1);
    assert_non_null(strstr(err, "conflict"));
    /* --jwks and --expect-seq only make sense with --file */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--jwks", "k.json"), -1);
    assert_non_null(strstr(err, "--jwks goes with --file"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--expect-seq", "5"), -1);
    assert_non_null(strstr(err, "--expect-seq goes with --file"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--file", "x", "--expect-seq",
                           "5x"),
                     -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--file", "x", "--expect-seq",
                           "99999999999999999999999"),
                     -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--file", ""), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--of", "wt"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "chain.audit"), -1);
    assert_non_null(strstr(err, "unexpected argument"));
}

static void test_audit_tokens(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "tokens"), 0);
    assert_int_equal(a.verb, CLI_VERB_AUDIT_TOKENS);
    assert_int_equal(a.of, CLI_DAEMON_CREDD);
    assert_int_equal(PARSE(&a, err, NULL, "unix:/c", "audit", "tokens", "--spiffe-id",
                           "spiffe://td/a", "--token", "j-9", "--since", "7d", "--until", "1h",
                           "--json"),
                     0);
    assert_string_equal(a.credd, "unix:/c");
    assert_string_equal(a.spiffe_id, "spiffe://td/a");
    assert_string_equal(a.token_id, "j-9");
    assert_string_equal(a.since, "7d");
    assert_string_equal(a.until, "1h");
    assert_true(a.json);
}

static void test_audit_misplaced_options(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    /* query-only options */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "tokens", "--kind", "mint"), -1);
    assert_non_null(strstr(err, "'--kind' applies to 'audit query' only"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "tokens", "--task", "t"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "tokens", "--limit", "3"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "tokens", "--reason", "x"), -1);
    /* tokens always reads credd */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "tokens", "--of", "credd"), -1);
    assert_non_null(strstr(err, "'--of' applies to 'audit query' and 'audit verify' only"));
    /* verify takes no filters; query takes no --file */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--since", "1h"), -1);
    assert_non_null(strstr(err, "'--since' applies to 'audit query' and 'audit tokens' only"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "verify", "--spiffe-id", "spiffe://td/a"), -1);
    assert_non_null(
        strstr(err, "'--spiffe-id' applies to 'policy check', 'audit query' and 'audit tokens' only"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--file", "x"), -1);
    assert_non_null(strstr(err, "'--file' applies to 'audit verify' only"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--jwks", "x"), -1);
    /* request options are not audit options, and audit options not exec's */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "--runtime", "sh"), -1);
    assert_non_null(strstr(err, "'exec' and 'policy check' only"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "exec", "--kind", "mint", "-c", "x"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "keys", "--of", "credd"), -1);
    assert_int_equal(PARSE(&a, err, NULL, NULL, "health", "--json"), -1);
    assert_non_null(strstr(
        err, "'--json' applies to 'exec', 'audit query', 'audit verify' and 'audit tokens' only"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "token", "introspect", "--json", "t"), -1);
    /* --spiffe-id is still policy check's too */
    assert_int_equal(PARSE(&a, err, NULL, NULL, "policy", "check", "--config", "f", "--spiffe-id",
                           "spiffe://td/a", "--token", "j"),
                     -1);
    assert_non_null(strstr(err, "'--token' applies to 'audit query' and 'audit tokens' only"));
}

static void test_audit_sub_commands(void **state)
{
    (void)state;
    struct cli_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit"), -1);
    assert_non_null(strstr(err, "missing sub-command"));
    assert_non_null(strstr(err, "'audit query'"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "--of", "credd"), -1);
    assert_non_null(strstr(err, "missing sub-command"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "show"), -1);
    assert_non_null(strstr(err, "unknown command 'audit show'"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "query", "verify"), -1);
    assert_non_null(strstr(err, "unexpected argument 'verify'"));
    assert_int_equal(PARSE(&a, err, NULL, NULL, "audit", "--help"), 0);
    assert_int_equal(a.verb, CLI_VERB_HELP);
    assert_non_null(strstr(cli_usage, "audit query"));
    assert_non_null(strstr(cli_usage, "audit verify --file"));
    assert_non_null(strstr(cli_usage, "audit tokens"));
}

#define NOW_MS INT64_C(1795428000000) /* 2026-11-23T10:00:00Z */

static void test_parse_time_rfc3339(void **state)
{
    (void)state;
    char err[256];
    int64_t t = -1;
    assert_int_equal(cli_parse_time("2026-11-23T10:00:00Z", 0, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS);
    assert_int_equal(cli_parse_time("1970-01-01T00:00:00Z", 0, &t, err, sizeof err), 0);
    assert_int_equal(t, 0);
    assert_int_equal(cli_parse_time("2026-11-23T10:00:00.5Z", 0, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS + 500);
    assert_int_equal(cli_parse_time("2026-11-23T10:00:00.123Z", 0, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS + 123);
    /* digits past the millisecond are dropped, not rounded */
    assert_int_equal(cli_parse_time("2026-11-23t10:00:00.987654321z", 0, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS + 987);
    /* an offset is the same instant */
    assert_int_equal(cli_parse_time("2026-11-23T11:30:00+01:30", 0, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS);
    assert_int_equal(cli_parse_time("2026-11-23T05:00:00-05:00", 0, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS);
    /* leap days */
    assert_int_equal(cli_parse_time("2024-02-29T00:00:00Z", 0, &t, err, sizeof err), 0);
    assert_int_equal(t, INT64_C(1709164800000));
    assert_int_equal(cli_parse_time("2000-02-29T00:00:00Z", 0, &t, err, sizeof err), 0);
    assert_int_equal(cli_parse_time("2100-02-29T00:00:00Z", 0, &t, err, sizeof err), -1);
    assert_int_equal(cli_parse_time("2026-02-29T00:00:00Z", 0, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a valid date"));

    const char *bad[] = {
        "2026-11-23T10:00:00",      /* no zone */
        "2026-11-23T10:00Z",        /* no seconds */
        "2026-11-23 10:00:00Z",     /* space */
        "2026-13-01T00:00:00Z",     /* month */
        "2026-11-31T00:00:00Z",     /* day */
        "2026-11-00T00:00:00Z",
        "2026-11-23T24:00:00Z",     /* hour */
        "2026-11-23T10:60:00Z",     /* minute */
        "2026-11-23T10:00:61Z",     /* second */
        "2026-11-23T10:00:00.Z",    /* empty fraction */
        "2026-11-23T10:00:00Zjunk", /* trailing */
        "2026-11-23T10:00:00+1:00", /* offset */
        "2026-11-23T10:00:00+24:00",
        "1969-12-31T23:59:59Z", /* before 1970 */
        "26-11-23T10:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = -1;
        if (cli_parse_time(bad[i], NOW_MS, &t, err, sizeof err) != -1)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(t, -1);
        assert_true(strlen(err) > 0);
    }
}

static void test_parse_time_numbers(void **state)
{
    (void)state;
    char err[256];
    int64_t t = -1;
    /* unix seconds */
    assert_int_equal(cli_parse_time("1795428000", 0, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS);
    assert_int_equal(cli_parse_time("0", 0, &t, err, sizeof err), 0);
    assert_int_equal(t, 0);
    assert_int_equal(cli_parse_time("9223372036854775", 0, &t, err, sizeof err), 0);
    assert_int_equal(t, INT64_C(9223372036854775000));
    assert_int_equal(cli_parse_time("9223372036854776", 0, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(cli_parse_time("99999999999999999999999", 0, &t, err, sizeof err), -1);

    /* ages before now, one per unit */
    assert_int_equal(cli_parse_time("90s", NOW_MS, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS - 90000);
    assert_int_equal(cli_parse_time("15m", NOW_MS, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS - 15 * 60000);
    assert_int_equal(cli_parse_time("2h", NOW_MS, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS - 2 * 3600000);
    assert_int_equal(cli_parse_time("7d", NOW_MS, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS - 7 * INT64_C(86400000));
    assert_int_equal(cli_parse_time("0s", NOW_MS, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS);
    /* an age reaching before 1970, or overflowing */
    assert_int_equal(cli_parse_time("20780d", NOW_MS, &t, err, sizeof err), 0);
    assert_int_equal(t, NOW_MS - 20780 * INT64_C(86400000));
    assert_int_equal(cli_parse_time("20781d", NOW_MS, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "before 1970"));
    assert_int_equal(cli_parse_time("9223372036854775d", NOW_MS, &t, err, sizeof err), -1);
    assert_int_equal(cli_parse_time("9223372036854775807s", NOW_MS, &t, err, sizeof err), -1);

    /* garbage and negatives */
    const char *bad[] = {"", "-5", "-5m", "+5m", "5 m", "5ms", "5w", "5M", "m", "1.5h",
                         "now", "yesterday", "0x10", "12:00", "5mm"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = -1;
        if (cli_parse_time(bad[i], NOW_MS, &t, err, sizeof err) != -1)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(t, -1);
    }
    assert_int_equal(cli_parse_time("-5m", NOW_MS, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a time"));
    assert_int_equal(cli_parse_time(NULL, NOW_MS, &t, err, sizeof err), -1);
}

/* Writes n bytes of 'x' to a temp file; returns its malloc'd path. */
static char *temp_file(size_t n)
{
    char *path = strdup("/tmp/airlock-test-cli-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char block[65536];
    memset(block, 'x', sizeof block);
    while (n > 0) {
        size_t k = n < sizeof block ? n : sizeof block;
        assert_int_equal(write(fd, block, k), (ssize_t)k);
        n -= k;
    }
    assert_int_equal(close(fd), 0);
    return path;
}

static void test_read_path_bounds(void **state)
{
    (void)state;
    char err[256];
    char *buf = NULL;
    size_t len = 0;

    char *ok = temp_file(CLI_MAX_CODE_BYTES);
    assert_int_equal(cli_read_path(ok, CLI_MAX_CODE_BYTES, &buf, &len, err, sizeof err), 0);
    assert_int_equal(len, CLI_MAX_CODE_BYTES);
    assert_int_equal(buf[len], '\0');
    free(buf);
    unlink(ok);
    free(ok);

    char *big = temp_file(CLI_MAX_CODE_BYTES + 1);
    assert_int_equal(cli_read_path(big, CLI_MAX_CODE_BYTES, &buf, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger than"));
    /* the same bound holds for a stream whose size is not known up front */
    int fd = open(big, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(cli_read_fd(fd, CLI_MAX_CODE_BYTES, "pipe", &buf, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger than"));
    close(fd);
    unlink(big);
    free(big);

    char *empty = temp_file(0);
    assert_int_equal(cli_read_path(empty, 10, &buf, &len, err, sizeof err), 0);
    assert_int_equal(len, 0);
    free(buf);
    unlink(empty);
    free(empty);

    assert_int_equal(cli_read_path("/nonexistent/airlock", 10, &buf, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(cli_read_path("/tmp", 10, &buf, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_inline_defaults),
        cmocka_unit_test(test_exec_all_options),
        cmocka_unit_test(test_global_flags_before_and_after_verb),
        cmocka_unit_test(test_env_defaults_and_flag_override),
        cmocka_unit_test(test_code_sources),
        cmocka_unit_test(test_missing_code),
        cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_unknown_things),
        cmocka_unit_test(test_options_of_another_verb),
        cmocka_unit_test(test_policy_check),
        cmocka_unit_test(test_tls_files),
        cmocka_unit_test(test_too_many_scopes),
        cmocka_unit_test(test_introspect),
        cmocka_unit_test(test_help_version_health),
        cmocka_unit_test(test_read_path_bounds),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_audit_query),
        cmocka_unit_test(test_audit_too_many_kinds),
        cmocka_unit_test(test_audit_verify),
        cmocka_unit_test(test_audit_tokens),
        cmocka_unit_test(test_audit_misplaced_options),
        cmocka_unit_test(test_audit_sub_commands),
        cmocka_unit_test(test_parse_time_rfc3339),
        cmocka_unit_test(test_parse_time_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
