/*
 * test_policy.c - cmocka tests for the broker's policy (broker/policy.c):
 * matching (exact beats prefix, longest prefix, segment boundaries, rule
 * order), deny by default, limits, scopes and audiences against the grant,
 * defaults, every load error with its file:line:path, Unix identities, the
 * built-in policy and the explanation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define TD "spiffe://prod.example"

static const struct policy_limits caps = {
    .timeout_ms = 300000,
    .memory_bytes = 512ull << 20,
    .cpu_ms = 60000,
    .max_pids = 64,
    .output_bytes = 8ull << 20,
    .disk_bytes = 32ull << 20,
    .open_files = 256,
};

#define UNIX_IDENTITIES                                                                            \
    "unix_identities:\n"                                                                           \
    "  - uid: 1000\n"                                                                              \
    "    spiffe_id: " TD "/agents/planner\n"                                                       \
    "  - gid: 2000\n"                                                                              \
    "    exe: /usr/bin/python3.11\n"                                                               \
    "    spiffe_id: " TD "/agents/coder\n"                                                         \
    "  - uid: 1000\n"                                                                              \
    "    spiffe_id: " TD "/never\n"
#define RULE_PLANNER                                                                               \
    "  - name: planner\n"                                                                          \
    "    spiffe_id: " TD "/agents/planner\n"                                                       \
    "    runtimes: [python3]\n"                                                                    \
    "    limits:\n"                                                                                \
    "      timeout_ms: 30000\n"                                                                    \
    "      memory_mb: 256\n"                                                                       \
    "      cpu_ms: 10000\n"                                                                        \
    "      max_pids: 32\n"                                                                         \
    "      output_bytes: 1048576\n"                                                                \
    "      disk_mb: 16\n"                                                                          \
    "      open_files: 128\n"                                                                      \
    "    defaults:\n"                                                                              \
    "      timeout_ms: 5000\n"                                                                     \
    "    scopes: [orders:read, orders:write]\n"                                                    \
    "    default_scopes: [orders:read]\n"                                                          \
    "    audiences: [orders.api]\n"                                                                \
    "    default_audiences: [orders.api]\n"                                                        \
    "    max_token_ttl_s: 120\n"                                                                   \
    "    max_concurrent: 4\n"
#define RULE_AGENTS                                                                                \
    "  - name: agents\n"                                                                           \
    "    spiffe_id: " TD "/agents/*\n"                                                             \
    "    runtimes: [python3, sh]\n"                                                                \
    "    scopes: [a, b]\n"
#define RULE_TEAM                                                                                  \
    "  - name: team\n"                                                                             \
    "    spiffe_id: " TD "/agents/team/*\n"                                                        \
    "    runtimes: [sh]\n"                                                                         \
    "    scopes: [\"*\"]\n"                                                                        \
    "    audiences: [x, y]\n"                                                                      \
    "    default_audiences: [y]\n"
#define RULE_EVERYONE                                                                              \
    "  - name: everyone\n"                                                                         \
    "    spiffe_id: " TD "/*\n"                                                                    \
    "    runtimes: [sh]\n"

/* The head of a one-rule file; a test appends lines from line 5 on. */
#define RULE_P                                                                                     \
    "policy:\n"                                                                                    \
    "  - name: p\n"                                                                                \
    "    spiffe_id: " TD "/p\n"                                                                    \
    "    runtimes: [python3]\n"

/* ---- helpers ---- */

static int runtime_known(const char *name)
{
    return strcmp(name, "python3") == 0 || strcmp(name, "sh") == 0;
}

/* Loads the policy of a broker.yaml text, freeing the document before
 * returning: the policy must not need it. */
static int load_policy(const char *text, struct policy **out, char *err, size_t errlen)
{
    static const char *const keys[] = {"unix_identities", "policy", NULL};
    size_t len = strlen(text);
    struct yconf *c;
    *out = NULL;
    if (yconf_load_string("broker.yaml", text, len, YCONF_ALLOW_EMPTY, &c, err, errlen) != 0)
        return -1;
    struct yconf_node root, rules, ids;
    yconf_root(c, &root);
    yconf_child(&root, "policy", &rules);
    yconf_child(&root, "unix_identities", &ids);
    int rc = yconf_mapping(&root, keys, err, errlen) < 0 ? -1 : 0;
    if (rc == 0)
        rc = policy_load(&rules, &ids, "prod.example", &caps, runtime_known, out, err, errlen);
    yconf_free(c);
    return rc;
}

static struct policy *must_load(const char *text)
{
    struct policy *p;
    char err[512] = "";
    if (load_policy(text, &p, err, sizeof err) != 0)
        fail_msg("load failed: %s", err);
    return p;
}

static void load_fails(const char *text, const char *want)
{
    struct policy *p = (struct policy *)1;
    char err[512] = "";
    assert_int_equal(load_policy(text, &p, err, sizeof err), -1);
    assert_null(p);
    assert_string_equal(err, want);
}

/* RULE_P followed by extra fails with want. */
static void rule_fails(const char *extra, const char *want)
{
    char text[2048];
    snprintf(text, sizeof text, "%s%s", RULE_P, extra);
    load_fails(text, want);
}

static void decide(const struct policy *p, const char *id, const struct policy_request *req,
                   struct policy_decision *d)
{
    assert_int_equal(policy_decide(p, id, req, d), 0);
}

/* Decides, checks the verdict and its reason, and frees the decision. */
static void expect(const struct policy *p, const char *id, const struct policy_request *req,
                   bool allowed, const char *reason)
{
    struct policy_decision d;
    decide(p, id, req, &d);
    if (d.allowed != allowed || strcmp(d.reason, reason) != 0)
        fail_msg("%s: %s '%s', not %s '%s'", id, d.allowed ? "allowed" : "denied", d.reason,
                 allowed ? "allowed" : "denied", reason);
    if (!allowed && (d.scopes || d.audience))
        fail_msg("%s: a denial grants nothing", id);
    policy_decision_free(&d);
}

#define PLANNER "rule \"planner\" (" TD "/agents/planner)"
#define AGENTS "rule \"agents\" (" TD "/agents/*)"
#define TEAM "rule \"team\" (" TD "/agents/team/*)"
#define OWNER "rule \"local-owner\" (spiffe://airlock.local/uid/1000)"

/* ---- matching ---- */

static void check_matching(const char *text)
{
    static const struct {
        const char *id;
        const char *rule; /* NULL: none */
    } cases[] = {
        {TD "/agents/planner", "planner"},
        {TD "/agents/a", "agents"},
        {TD "/agents/a/b", "agents"},
        {TD "/agents/planner/sub", "agents"}, /* an exact ID covers nothing below it */
        {TD "/agents/team", "agents"},
        {TD "/agents/team/x", "team"}, /* the longest prefix wins */
        {TD "/agents/team/x/y", "team"},
        {TD "/agents/teamx", "agents"},
        {TD "/agents", NULL}, /* the prefix's own path: no */
        {TD "/agents/", NULL},
        {TD "/agentsx", NULL}, /* a longer segment: no */
        {TD "/agentsx/a", NULL},
        {"spiffe://other.example/agents/a", NULL},
        {"", NULL},
    };
    struct policy *p = must_load(text);
    struct policy_request req = {.runtime = "sh"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct policy_decision d;
        decide(p, cases[i].id, &req, &d);
        if (cases[i].rule == NULL && d.rule_name != NULL)
            fail_msg("%s matched rule %s", cases[i].id, d.rule_name);
        if (cases[i].rule && (!d.rule_name || strcmp(d.rule_name, cases[i].rule) != 0))
            fail_msg("%s matched %s, not %s", cases[i].id, d.rule_name ? d.rule_name : "nothing",
                     cases[i].rule);
        policy_decision_free(&d);
    }
    policy_free(p);
}

static void test_matching_any_order(void **state)
{
    (void)state;
    check_matching("policy:\n" RULE_PLANNER RULE_AGENTS RULE_TEAM);
    check_matching("policy:\n" RULE_TEAM RULE_AGENTS RULE_PLANNER);
    check_matching("policy:\n" RULE_AGENTS RULE_PLANNER RULE_TEAM);
}

static void test_trust_domain_wide_rule(void **state)
{
    (void)state;
    struct policy *p = must_load("policy:\n" RULE_EVERYONE RULE_AGENTS);
    struct policy_request req = {.runtime = "sh"};
    expect(p, TD "/agentsx", &req, true, "rule \"everyone\" (" TD "/*)");
    expect(p, TD "/agents", &req, true, "rule \"everyone\" (" TD "/*)");
    expect(p, TD "/agents/a", &req, true, AGENTS);
    expect(p, "spiffe://other.example/a", &req, false,
           "no policy rule matches spiffe://other.example/a (deny by default)");
    policy_free(p);
}

static void test_deny_by_default(void **state)
{
    (void)state;
    static const char nobody[] = "no policy rule matches " TD "/agents/planner (deny by default)";
    struct policy *p = must_load("policy:\n" RULE_PLANNER);
    struct policy_request req = {.runtime = "python3"};
    struct policy_decision d;
    decide(p, TD "/agents/x", &req, &d);
    assert_false(d.allowed);
    assert_null(d.rule_name);
    assert_null(d.rule_pattern);
    assert_string_equal(d.reason, "no policy rule matches " TD "/agents/x (deny by default)");
    policy_decision_free(&d);
    expect(p, NULL, &req, false, "no policy rule matches (no identity) (deny by default)");
    policy_free(p);

    /* No policy at all: nobody. */
    p = must_load("unix_identities: []\n");
    expect(p, TD "/agents/planner", &req, false, nobody);
    policy_free(p);
    p = must_load("policy: []\n");
    expect(p, TD "/agents/planner", &req, false, nobody);
    policy_free(p);
    char err[64];
    assert_int_equal(policy_load(NULL, NULL, "prod.example", &caps, NULL, &p, err, sizeof err), 0);
    expect(p, TD "/agents/planner", &req, false, nobody);
    policy_free(p);
}

/* ---- decisions ---- */

static void test_asking_nothing_gets_defaults(void **state)
{
    (void)state;
    struct policy *p = must_load("policy:\n" RULE_PLANNER RULE_AGENTS);
    struct policy_request req = {.runtime = "python3"};
    struct policy_decision d;
    decide(p, TD "/agents/planner", &req, &d);
    assert_true(d.allowed);
    assert_string_equal(d.reason, PLANNER);
    assert_string_equal(d.rule_name, "planner");
    assert_int_equal(d.limits.timeout_ms, 5000);         /* defaults.timeout_ms */
    assert_int_equal(d.limits.memory_bytes, 256u << 20); /* no default: the max */
    assert_int_equal(d.limits.cpu_ms, 10000);
    assert_int_equal(d.limits.max_pids, 32);
    assert_int_equal(d.limits.output_bytes, 1048576);
    assert_int_equal(d.limits.disk_bytes, 16u << 20);
    assert_int_equal(d.limits.open_files, 128);
    assert_int_equal(d.n_scopes, 1);
    assert_string_equal(d.scopes[0], "orders:read");
    assert_int_equal(d.n_audience, 1);
    assert_string_equal(d.audience[0], "orders.api");
    assert_int_equal(d.max_token_ttl_s, 120);
    assert_int_equal(d.max_concurrent, 4);
    policy_decision_free(&d);
    assert_null(d.scopes);

    /* A rule without limits takes the broker's caps, as max and default;
     * without default_scopes, all of its scopes. */
    decide(p, TD "/agents/other", &req, &d);
    assert_true(d.allowed);
    assert_memory_equal(&d.limits, &caps, sizeof caps);
    assert_int_equal(d.n_scopes, 2);
    assert_string_equal(d.scopes[0], "a");
    assert_string_equal(d.scopes[1], "b");
    assert_int_equal(d.n_audience, 0);
    assert_null(d.audience);
    assert_int_equal(d.max_token_ttl_s, 0);
    assert_int_equal(d.max_concurrent, 0);
    policy_decision_free(&d);
    policy_free(p);
}

static void test_limits_against_grant(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        size_t offset;
        uint64_t max;
    } grant[] = {
        {"timeout_ms", offsetof(struct policy_limits, timeout_ms), 30000},
        {"memory_bytes", offsetof(struct policy_limits, memory_bytes), 256u << 20},
        {"cpu_ms", offsetof(struct policy_limits, cpu_ms), 10000},
        {"max_pids", offsetof(struct policy_limits, max_pids), 32},
        {"output_bytes", offsetof(struct policy_limits, output_bytes), 1048576},
        {"disk_bytes", offsetof(struct policy_limits, disk_bytes), 16u << 20},
        {"open_files", offsetof(struct policy_limits, open_files), 128},
    };
    struct policy *p = must_load("policy:\n" RULE_PLANNER);
    for (size_t i = 0; i < sizeof grant / sizeof grant[0]; i++) {
        struct policy_request req = {.runtime = "python3"};
        uint64_t *asked = (uint64_t *)((char *)&req.asked + grant[i].offset);
        struct policy_decision d;
        char want[512];

        *asked = grant[i].max + 1;
        decide(p, TD "/agents/planner", &req, &d);
        assert_false(d.allowed);
        snprintf(want, sizeof want, PLANNER ": limits.%s %llu exceeds the grant %llu",
                 grant[i].name, (unsigned long long)grant[i].max + 1,
                 (unsigned long long)grant[i].max);
        assert_string_equal(d.reason, want);
        assert_null(d.scopes);
        policy_decision_free(&d);

        /* Exactly the grant, or less: as asked. */
        *asked = grant[i].max;
        decide(p, TD "/agents/planner", &req, &d);
        assert_true(d.allowed);
        assert_int_equal(*(uint64_t *)((char *)&d.limits + grant[i].offset), grant[i].max);
        policy_decision_free(&d);
        *asked = 1;
        decide(p, TD "/agents/planner", &req, &d);
        assert_true(d.allowed);
        assert_int_equal(*(uint64_t *)((char *)&d.limits + grant[i].offset), 1);
        policy_decision_free(&d);
    }
    policy_free(p);
}

static void test_runtime_not_granted(void **state)
{
    (void)state;
    struct policy *p = must_load("policy:\n" RULE_PLANNER RULE_AGENTS);
    struct policy_request req = {.runtime = "sh"};
    expect(p, TD "/agents/planner", &req, false,
           PLANNER " does not grant runtime \"sh\" (granted: python3)");
    req.runtime = NULL;
    expect(p, TD "/agents/x", &req, false,
           AGENTS " does not grant runtime \"\" (granted: python3, sh)");
    policy_free(p);
}

static void test_scopes_and_audiences(void **state)
{
    (void)state;
    struct policy *p = must_load("policy:\n" RULE_PLANNER RULE_AGENTS RULE_TEAM);
    char *scopes[] = {"orders:write", "orders:read"};
    char *audience[] = {"orders.api"};
    struct policy_request req = {.runtime = "python3",
                                 .scopes = scopes,
                                 .n_scopes = 2,
                                 .audience = audience,
                                 .n_audience = 1};
    struct policy_decision d;

    /* Exactly those asked, the request's own strings. */
    decide(p, TD "/agents/planner", &req, &d);
    assert_true(d.allowed);
    assert_int_equal(d.n_scopes, 2);
    assert_ptr_equal(d.scopes[0], scopes[0]);
    assert_ptr_equal(d.scopes[1], scopes[1]);
    assert_int_equal(d.n_audience, 1);
    assert_ptr_equal(d.audience[0], audience[0]);
    policy_decision_free(&d);

    char *admin[] = {"orders:read", "orders:admin"};
    req.scopes = admin;
    expect(p, TD "/agents/planner", &req, false,
           PLANNER ": scope \"orders:admin\" not granted (granted: orders:read, orders:write)");
    char *other_aud[] = {"billing.api"};
    req.scopes = scopes;
    req.audience = other_aud;
    expect(p, TD "/agents/planner", &req, false,
           PLANNER ": audience \"billing.api\" not granted (granted: orders.api)");

    /* scopes ["*"]: any scope named; none by default; "*" itself never. */
    char *any[] = {"repo:read", "whatever:else"};
    struct policy_request team = {.runtime = "sh", .scopes = any, .n_scopes = 2};
    decide(p, TD "/agents/team/t1", &team, &d);
    assert_true(d.allowed);
    assert_int_equal(d.n_scopes, 2);
    assert_string_equal(d.scopes[1], "whatever:else");
    assert_int_equal(d.n_audience, 1); /* default_audiences */
    assert_string_equal(d.audience[0], "y");
    policy_decision_free(&d);
    team.n_scopes = 0;
    decide(p, TD "/agents/team/t1", &team, &d);
    assert_true(d.allowed);
    assert_int_equal(d.n_scopes, 0);
    assert_null(d.scopes);
    policy_decision_free(&d);
    char *star[] = {"*"};
    team.scopes = star;
    team.n_scopes = 1;
    expect(p, TD "/agents/team/t1", &team, false,
           TEAM ": scope \"*\" cannot be asked for; name each");
    char *z[] = {"z"};
    team.n_scopes = 0;
    team.audience = z;
    team.n_audience = 1;
    expect(p, TD "/agents/team/t1", &team, false,
           TEAM ": audience \"z\" not granted (granted: x, y)");
    char *nasty[] = {"a\x1b[2Jb"}; /* reasons reach logs: no control bytes */
    team.audience = nasty;
    expect(p, TD "/agents/team/t1", &team, false,
           TEAM ": audience \"a?[2Jb\" not granted (granted: x, y)");

    /* No audiences in the rule: none may be asked. */
    struct policy_request agents = {.runtime = "sh", .audience = audience, .n_audience = 1};
    expect(p, TD "/agents/a", &agents, false,
           AGENTS ": audience \"orders.api\" not granted (granted: none)");
    policy_free(p);
}

static void test_unset_broker_caps(void **state)
{
    (void)state;
    /* A cap of 0 is not set: a rule that sets no limit then has none. */
    struct policy_limits some = {.memory_bytes = 64u << 20};
    const char *runtimes[] = {"sh", NULL};
    struct policy *p;
    assert_int_equal(policy_default("prod.example", 7, runtimes, &some, 0, &p), 0);
    struct policy_request req = {.runtime = "sh", .asked = {.open_files = 999999}};
    struct policy_decision d;
    decide(p, TD "/uid/7", &req, &d);
    assert_true(d.allowed);
    assert_int_equal(d.limits.open_files, 999999);
    assert_int_equal(d.limits.timeout_ms, 0);
    assert_int_equal(d.limits.memory_bytes, 64u << 20);
    policy_decision_free(&d);
    policy_free(p);
}

/* ---- load errors ---- */

static void test_limits_over_broker_caps(void **state)
{
    (void)state;
    rule_fails("    limits: {memory_mb: 1024}\n",
               "broker.yaml:5: policy[0].limits.memory_mb: rule \"p\": memory_bytes 1073741824 "
               "exceeds the broker's cap 536870912");
    static const char *const over[] = {
        "timeout_ms: 300001",    "memory_mb: 513", "cpu_ms: 60001",   "max_pids: 65",
        "output_bytes: 8388609", "disk_mb: 33",    "open_files: 257",
    };
    static const char *const names[] = {"timeout_ms",   "memory_bytes", "cpu_ms",    "max_pids",
                                        "output_bytes", "disk_bytes",   "open_files"};
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        char text[1024], err[512], want[256];
        struct policy *p;
        snprintf(text, sizeof text, RULE_P "    limits:\n      %s\n", over[i]);
        assert_int_equal(load_policy(text, &p, err, sizeof err), -1);
        snprintf(want, sizeof want, "broker.yaml:6: policy[0].limits.%.*s: rule \"p\": %s ",
                 (int)strcspn(over[i], ":"), over[i], names[i]);
        if (!strstr(err, want) || !strstr(err, "exceeds the broker's cap"))
            fail_msg("\"%s\" lacks \"%s\"", err, want);
    }
    /* Exactly the caps is fine. */
    policy_free(must_load(RULE_P
                          "    limits: {timeout_ms: 300000, memory_mb: 512, cpu_ms: 60000, "
                          "max_pids: 64, output_bytes: 8388608, disk_mb: 32, open_files: 256}\n"));
}

static void test_defaults_over_max(void **state)
{
    (void)state;
    rule_fails("    limits: {timeout_ms: 30000}\n"
               "    defaults: {timeout_ms: 30001}\n",
               "broker.yaml:6: policy[0].defaults.timeout_ms: rule \"p\": timeout_ms 30001 "
               "exceeds the rule's maximum 30000");
    /* An unset maximum is the broker's cap. */
    rule_fails("    defaults:\n"
               "      memory_mb: 1024\n",
               "broker.yaml:6: policy[0].defaults.memory_mb: rule \"p\": memory_bytes 1073741824 "
               "exceeds the rule's maximum 536870912");
    rule_fails("    defaults:\n"
               "      memory_mb: lots\n",
               "broker.yaml:6: policy[0].defaults.memory_mb: expected an integer 16..1048576, got "
               "\"lots\"");
}

static void test_unknown_and_duplicate_keys(void **state)
{
    (void)state;
    rule_fails("    runtime: [sh]\n",
               "broker.yaml:5: policy[0]: unknown key 'runtime' (known: name, spiffe_id, runtimes, "
               "limits, defaults, scopes, default_scopes, audiences, default_audiences, "
               "max_token_ttl_s, max_concurrent, permissions)");
    rule_fails(
        "    limits:\n"
        "      memory: 5\n",
        "broker.yaml:6: policy[0].limits: unknown key 'memory' (known: timeout_ms, memory_mb, "
        "cpu_ms, max_pids, output_bytes, disk_mb, open_files)");
    rule_fails("    name: q\n", "broker.yaml:5: policy[0]: duplicate key 'name' (first at line 2)");
    load_fails("polcy: []\n",
               "broker.yaml:1: unknown key 'polcy' (known: unix_identities, policy)");
    load_fails("policy: {}\n", "broker.yaml:1: policy: expected a list, got a mapping");
    load_fails("policy:\n  - planner\n",
               "broker.yaml:2: policy[0]: expected a mapping, got \"planner\"");
}

static void test_rule_fields(void **state)
{
    (void)state;
    load_fails("policy:\n"
               "  - spiffe_id: " TD "/p\n"
               "    runtimes: [sh]\n",
               "broker.yaml:2: policy[0].name: required");
    load_fails("policy:\n"
               "  - name: p\n"
               "    runtimes: [sh]\n",
               "broker.yaml:2: policy[0].spiffe_id: required");
    load_fails("policy:\n"
               "  - name: p\n"
               "    spiffe_id: " TD "/p\n",
               "broker.yaml:2: policy[0].runtimes: required");
    load_fails("policy:\n"
               "  - name: p\n"
               "    spiffe_id: " TD "/p\n"
               "    runtimes: []\n",
               "broker.yaml:4: policy[0].runtimes: name at least one runtime");
    load_fails("policy:\n"
               "  - name: p\n"
               "    spiffe_id: " TD "/p\n"
               "    runtimes: [python3, ruby]\n",
               "broker.yaml:4: policy[0].runtimes[1]: unknown runtime \"ruby\"");
    load_fails(
        "policy:\n"
        "  - name: Planner\n"
        "    spiffe_id: " TD "/p\n"
        "    runtimes: [sh]\n",
        "broker.yaml:2: policy[0].name: a rule name is made of a-z 0-9 _ . -, got \"Planner\"");
    load_fails("policy:\n"
               "  - name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
               "    spiffe_id: " TD "/p\n"
               "    runtimes: [sh]\n",
               "broker.yaml:2: policy[0].name: expected a string of 1..64 characters, got "
               "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"");
    rule_fails("    max_token_ttl_s: 0\n",
               "broker.yaml:5: policy[0].max_token_ttl_s: expected an integer 1..86400, got \"0\"");
    rule_fails(
        "    max_token_ttl_s: 86401\n",
        "broker.yaml:5: policy[0].max_token_ttl_s: expected an integer 1..86400, got \"86401\"");
    rule_fails(
        "    max_concurrent: 4097\n",
        "broker.yaml:5: policy[0].max_concurrent: expected an integer 0..4096, got \"4097\"");

    /* Without a runtime callback any runtime name is taken. */
    struct yconf *c;
    char err[256];
    static const char text[] = RULE_P "    max_concurrent: 0\n";
    assert_int_equal(yconf_load_string("b.yaml", text, strlen(text), 0, &c, err, sizeof err), 0);
    struct yconf_node root, n;
    struct policy *p;
    yconf_root(c, &root);
    yconf_child(&root, "policy", &n);
    assert_int_equal(policy_load(&n, NULL, "prod.example", &caps, NULL, &p, err, sizeof err), 0);
    policy_free(p);
    assert_int_equal(policy_load(&n, NULL, "Bad Domain", &caps, NULL, &p, err, sizeof err), -1);
    assert_string_equal(err, "invalid trust domain 'Bad Domain', or out of memory");
    assert_null(p);
    yconf_free(c);
}

static void pattern_fails(const char *pattern, const char *want)
{
    char text[1024], full[512];
    snprintf(text, sizeof text, "policy:\n  - name: p\n    spiffe_id: %s\n    runtimes: [sh]\n",
             pattern);
    snprintf(full, sizeof full, "broker.yaml:3: policy[0].spiffe_id: %s", want);
    load_fails(text, full);
}

static void test_patterns(void **state)
{
    (void)state;
    static const char only_last[] = "'*' is allowed only as the whole last path segment";
    pattern_fails(TD "/agents*", only_last);
    pattern_fails(TD "/a*/b", only_last);
    pattern_fails(TD "/*/b", only_last);
    pattern_fails(TD "/a/**", only_last);
    pattern_fails("\"*\"", only_last);
    pattern_fails("http://prod.example/a", "\"http://prod.example/a\" is not a SPIFFE ID "
                                           "(spiffe://trust-domain/path)");
    pattern_fails(TD, "\"" TD "\" is not a SPIFFE ID (spiffe://trust-domain/path)");
    pattern_fails(TD "/", "\"" TD "/\" is not a SPIFFE ID (spiffe://trust-domain/path)");
    pattern_fails("spiffe://Prod.example/a", "\"spiffe://Prod.example/a\" is not a SPIFFE ID "
                                             "(spiffe://trust-domain/path)");
    pattern_fails("spiffe:///*", "\"spiffe:///*\" is not a SPIFFE ID (spiffe://trust-domain/path)");
    pattern_fails("spiffe://other.example/a", "trust domain 'other.example' is not the broker's "
                                              "(prod.example)");
    pattern_fails("spiffe://other.example/*", "trust domain 'other.example' is not the broker's "
                                              "(prod.example)");
    pattern_fails("spiffe://prod.example.evil/a", "trust domain 'prod.example.evil' is not the "
                                                  "broker's (prod.example)");
    policy_free(must_load("policy:\n" RULE_EVERYONE));
}

static void test_duplicate_rules(void **state)
{
    (void)state;
    load_fails("policy:\n"
               "  - name: p\n"
               "    spiffe_id: " TD "/a\n"
               "    runtimes: [sh]\n"
               "\n"
               "  - name: p\n"
               "    spiffe_id: " TD "/b\n"
               "    runtimes: [sh]\n",
               "broker.yaml:6: policy[1].name: rule name \"p\" is already used at line 2");
    load_fails("policy:\n" RULE_AGENTS "  - name: q\n"
               "    spiffe_id: " TD "/agents/*\n"
               "    runtimes: [sh]\n",
               "broker.yaml:7: policy[1].spiffe_id: " TD "/agents/* is already the pattern of rule "
               "\"agents\" at line 2");
    /* An exact ID and the prefix of the same path are different patterns. */
    policy_free(must_load("policy:\n" RULE_AGENTS "  - name: q\n"
                          "    spiffe_id: " TD "/agents\n"
                          "    runtimes: [sh]\n"));
}

static void test_scope_lists(void **state)
{
    (void)state;
    rule_fails("    scopes: [a]\n"
               "    default_scopes: [a, b]\n",
               "broker.yaml:6: policy[0].default_scopes[1]: \"b\" is not in scopes");
    rule_fails("    default_audiences: [a]\n",
               "broker.yaml:5: policy[0].default_audiences[0]: \"a\" is not in audiences");
    rule_fails("    scopes: [a, \"*\"]\n",
               "broker.yaml:5: policy[0].scopes[1]: \"*\" must be the only item");
    rule_fails("    scopes: [\"*\"]\n"
               "    default_scopes: [\"*\"]\n",
               "broker.yaml:6: policy[0].default_scopes: \"*\" cannot be a default");
    rule_fails("    scopes: [a, b, a]\n",
               "broker.yaml:5: policy[0].scopes[2]: \"a\" is listed twice");
    rule_fails("    audiences: [\"a b\"]\n",
               "broker.yaml:5: policy[0].audiences[0]: printable ASCII without spaces only");
    rule_fails("    scopes: a\n", "broker.yaml:5: policy[0].scopes: expected a list, got \"a\"");
    /* Any scope with named defaults is fine. */
    policy_free(must_load(RULE_P "    scopes: [\"*\"]\n    default_scopes: [x]\n"));
}

/* ---- unix identities ---- */

static void test_unix_identities(void **state)
{
    (void)state;
    struct policy *p = must_load(UNIX_IDENTITIES "policy:\n" RULE_PLANNER);
    char id[256];
    /* uid only */
    assert_int_equal(policy_unix_identity(p, 1000, 5, "/bin/sh", id, sizeof id), 0);
    assert_string_equal(id, TD "/agents/planner");
    assert_int_equal(policy_unix_identity(p, 1000, 2000, NULL, id, sizeof id), 0);
    assert_string_equal(id, TD "/agents/planner"); /* the first match wins */
    /* gid + exe: both must match */
    assert_int_equal(policy_unix_identity(p, 1001, 2000, "/usr/bin/python3.11", id, sizeof id), 0);
    assert_string_equal(id, TD "/agents/coder");
    assert_int_equal(policy_unix_identity(p, 1001, 2000, "/usr/bin/python3", id, sizeof id), 0);
    assert_string_equal(id, TD "/uid/1001");
    assert_int_equal(policy_unix_identity(p, 1001, 2001, "/usr/bin/python3.11", id, sizeof id), 0);
    assert_string_equal(id, TD "/uid/1001");
    assert_int_equal(policy_unix_identity(p, 1001, 2000, NULL, id, sizeof id), 0);
    assert_string_equal(id, TD "/uid/1001");
    /* fallback */
    assert_int_equal(policy_unix_identity(p, 0, 0, "/usr/bin/python3.11", id, sizeof id), 0);
    assert_string_equal(id, TD "/uid/0");
    /* too small a buffer */
    char small[16];
    assert_int_equal(policy_unix_identity(p, 1000, 0, NULL, small, sizeof small), -1);
    assert_int_equal(policy_unix_identity(p, 7, 0, NULL, small, sizeof small), -1);
    /* The mapped identity is then judged like any other. */
    struct policy_request req = {.runtime = "python3"};
    struct policy_decision d;
    assert_int_equal(policy_unix_identity(p, 1000, 0, NULL, id, sizeof id), 0);
    decide(p, id, &req, &d);
    assert_true(d.allowed);
    policy_decision_free(&d);
    policy_free(p);
}

static void test_unix_identity_errors(void **state)
{
    (void)state;
    load_fails("unix_identities:\n"
               "  - spiffe_id: " TD "/a\n",
               "broker.yaml:2: unix_identities[0]: give at least one of uid, gid, exe");
    load_fails("unix_identities:\n"
               "  - exe: python3\n"
               "    spiffe_id: " TD "/a\n",
               "broker.yaml:2: unix_identities[0].exe: must be an absolute path");
    load_fails("unix_identities:\n"
               "  - uid: 1\n"
               "    spiffe_id: spiffe://other.example/a\n",
               "broker.yaml:3: unix_identities[0].spiffe_id: trust domain 'other.example' is not "
               "the broker's (prod.example)");
    load_fails("unix_identities:\n"
               "  - uid: 1\n"
               "    spiffe_id: " TD "/*\n",
               "broker.yaml:3: unix_identities[0].spiffe_id: '*' is not allowed in a SPIFFE ID");
    load_fails("unix_identities:\n"
               "  - uid: 1\n",
               "broker.yaml:2: unix_identities[0].spiffe_id: required");
    load_fails(
        "unix_identities:\n"
        "  - uid: -1\n"
        "    spiffe_id: " TD "/a\n",
        "broker.yaml:2: unix_identities[0].uid: expected an integer 0..4294967294, got \"-1\"");
    load_fails(
        "unix_identities:\n"
        "  - user: root\n"
        "    spiffe_id: " TD "/a\n",
        "broker.yaml:2: unix_identities[0]: unknown key 'user' (known: uid, gid, exe, spiffe_id)");
}

/* ---- the built-in policy ---- */

/* permissions: audit:read for the auditor, for nobody else; a rule that
 * grants only permissions may name no runtime and then runs nothing. */
static void test_permissions(void **state)
{
    (void)state;
    struct policy *p = must_load("policy:\n"
                                 "  - name: auditors\n"
                                 "    spiffe_id: spiffe://prod.example/security/*\n"
                                 "    permissions: [audit:read]\n"
                                 "  - name: planner\n"
                                 "    spiffe_id: spiffe://prod.example/agents/planner\n"
                                 "    runtimes: [sh]\n");
    char why[256];
    assert_true(policy_permits(p, "spiffe://prod.example/security/alice", POLICY_AUDIT_READ, why,
                               sizeof why));
    assert_string_equal(why, "rule \"auditors\" (spiffe://prod.example/security/*) grants audit:read");
    assert_false(policy_permits(p, "spiffe://prod.example/agents/planner", POLICY_AUDIT_READ, why,
                                sizeof why));
    assert_string_equal(why, "rule \"planner\" (spiffe://prod.example/agents/planner) does not "
                             "grant audit:read");
    assert_false(policy_permits(p, "spiffe://prod.example/other", POLICY_AUDIT_READ, why, sizeof why));
    assert_string_equal(why, "no policy rule matches spiffe://prod.example/other (deny by default)");
    struct policy_request req = {.runtime = "sh"};
    struct policy_decision d;
    decide(p, "spiffe://prod.example/security/alice", &req, &d);
    assert_false(d.allowed);
    policy_decision_free(&d);
    policy_free(p);

    rule_fails("    permissions: [audit:write]\n",
               "broker.yaml:5: policy[0].permissions[0]: unknown permission \"audit:write\" "
               "(known: audit:read)");
    load_fails("policy:\n"
               "  - name: nobody\n"
               "    spiffe_id: spiffe://prod.example/x\n",
               "broker.yaml:2: policy[0].runtimes: required");
}

static void test_default_policy(void **state)
{
    (void)state;
    const char *runtimes[] = {"python3", "sh", NULL};
    struct policy *p;
    assert_int_equal(policy_default("airlock.local", 1000, runtimes, &caps, 0, &p), 0);
    char *scopes[] = {"s1"};
    char *audience[] = {"a1", "a2"};
    struct policy_request req = {
        .runtime = "sh", .scopes = scopes, .n_scopes = 1, .audience = audience, .n_audience = 2};
    struct policy_decision d;
    decide(p, "spiffe://airlock.local/uid/1000", &req, &d);
    assert_true(d.allowed);
    assert_string_equal(d.reason, OWNER);
    assert_memory_equal(&d.limits, &caps, sizeof caps);
    assert_int_equal(d.n_scopes, 1);
    assert_int_equal(d.n_audience, 2);
    assert_int_equal(d.max_token_ttl_s, 0);
    assert_int_equal(d.max_concurrent, 0);
    policy_decision_free(&d);

    char why[256];
    assert_true(policy_permits(p, "spiffe://airlock.local/uid/1000", POLICY_AUDIT_READ, why,
                               sizeof why));
    assert_false(policy_permits(p, "spiffe://airlock.local/uid/1001", POLICY_AUDIT_READ, why,
                                sizeof why));

    struct policy_request plain = {.runtime = "python3"};
    decide(p, "spiffe://airlock.local/uid/1000", &plain, &d);
    assert_true(d.allowed);
    assert_int_equal(d.n_scopes, 0);
    assert_int_equal(d.n_audience, 0);
    policy_decision_free(&d);

    plain.asked.memory_bytes = caps.memory_bytes + 1;
    expect(p, "spiffe://airlock.local/uid/1000", &plain, false,
           OWNER ": limits.memory_bytes 536870913 exceeds the grant 536870912");
    plain.asked.memory_bytes = 0;
    plain.runtime = "ruby";
    expect(p, "spiffe://airlock.local/uid/1000", &plain, false,
           OWNER " does not grant runtime \"ruby\" (granted: python3, sh)");

    /* Everyone else: denied, including longer uids. */
    plain.runtime = "sh";
    expect(p, "spiffe://airlock.local/uid/1001", &plain, false,
           "no policy rule matches spiffe://airlock.local/uid/1001 (deny by default)");
    expect(p, "spiffe://airlock.local/uid/10000", &plain, false,
           "no policy rule matches spiffe://airlock.local/uid/10000 (deny by default)");
    expect(p, "spiffe://airlock.local/uid/1000/x", &plain, false,
           "no policy rule matches spiffe://airlock.local/uid/1000/x (deny by default)");
    /* No unix_identities: every peer is its uid. */
    char id[128];
    assert_int_equal(policy_unix_identity(p, 1000, 1000, "/usr/bin/python3", id, sizeof id), 0);
    assert_string_equal(id, "spiffe://airlock.local/uid/1000");
    policy_free(p);

    /* The broker's default timeout, below the cap, is the rule's default. */
    assert_int_equal(policy_default("airlock.local", 1000, runtimes, &caps, 1234, &p), 0);
    struct policy_request sh_only = {.runtime = "sh"};
    decide(p, "spiffe://airlock.local/uid/1000", &sh_only, &d);
    assert_true(d.allowed);
    assert_int_equal(d.limits.timeout_ms, 1234);
    policy_decision_free(&d);
    sh_only.asked.timeout_ms = caps.timeout_ms;
    decide(p, "spiffe://airlock.local/uid/1000", &sh_only, &d);
    assert_true(d.allowed);
    policy_decision_free(&d);
    policy_free(p);

    p = (struct policy *)1;
    assert_int_equal(policy_default("Not A Domain", 0, runtimes, &caps, 0, &p), -1);
    assert_null(p);
    assert_int_equal(policy_default(NULL, 0, runtimes, &caps, 0, &p), -1);
    policy_free(NULL);
}

/* ---- explanation ---- */

static char *explain(const struct policy *p, const char *id)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    policy_explain(p, id, f);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void assert_has(const char *text, const char *want)
{
    if (!strstr(text, want))
        fail_msg("\"%s\" does not contain \"%s\"", text, want);
}

static void test_explain(void **state)
{
    (void)state;
    struct policy *p = must_load("policy:\n" RULE_PLANNER RULE_TEAM);
    char *text = explain(p, TD "/agents/planner");
    assert_has(text, TD "/agents/planner\n");
    assert_has(text, "  rule: planner (" TD "/agents/planner, line 2)\n");
    assert_has(text, "  runtimes: python3\n");
    assert_has(text, "    timeout_ms    30000 / 5000\n");
    assert_has(text, "    memory_bytes  268435456 / 268435456\n");
    assert_has(text, "    open_files    128 / 128\n");
    assert_has(text, "  scopes: orders:read, orders:write (default: orders:read)\n");
    assert_has(text, "  audiences: orders.api (default: orders.api)\n");
    assert_has(text, "  token TTL cap: 120 s\n");
    assert_has(text, "  concurrent tasks: at most 4\n");
    free(text);

    text = explain(p, TD "/agents/team/a");
    assert_has(text, "  rule: team (" TD "/agents/team/*, line 21)\n");
    assert_has(text, "    max_pids      64 / 64\n"); /* the broker's cap */
    assert_has(text, "  scopes: any (default: none)\n");
    assert_has(text, "  audiences: x, y (default: y)\n");
    assert_has(text, "  token TTL cap: none\n");
    assert_has(text, "  concurrent tasks: no cap\n");
    free(text);

    text = explain(p, TD "/agents/x");
    assert_string_equal(text, TD "/agents/x\n  denied: no policy rule matches (deny by default)\n");
    free(text);
    policy_free(p);

    const char *runtimes[] = {"sh", NULL};
    struct policy_limits partial = {.timeout_ms = 1000};
    assert_int_equal(policy_default("airlock.local", 5, runtimes, &partial, 0, &p), 0);
    text = explain(p, "spiffe://airlock.local/uid/5");
    assert_has(text, "  rule: local-owner (spiffe://airlock.local/uid/5)\n");
    assert_has(text, "    cpu_ms        not set / not set\n");
    assert_has(text, "  scopes: any (default: none)\n");
    free(text);
    policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matching_any_order),
        cmocka_unit_test(test_trust_domain_wide_rule),
        cmocka_unit_test(test_deny_by_default),
        cmocka_unit_test(test_asking_nothing_gets_defaults),
        cmocka_unit_test(test_limits_against_grant),
        cmocka_unit_test(test_runtime_not_granted),
        cmocka_unit_test(test_scopes_and_audiences),
        cmocka_unit_test(test_unset_broker_caps),
        cmocka_unit_test(test_limits_over_broker_caps),
        cmocka_unit_test(test_defaults_over_max),
        cmocka_unit_test(test_unknown_and_duplicate_keys),
        cmocka_unit_test(test_rule_fields),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_duplicate_rules),
        cmocka_unit_test(test_scope_lists),
        cmocka_unit_test(test_unix_identities),
        cmocka_unit_test(test_unix_identity_errors),
        cmocka_unit_test(test_permissions),
        cmocka_unit_test(test_default_policy),
        cmocka_unit_test(test_explain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
