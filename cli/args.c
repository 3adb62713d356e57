/*
 * args.c - the `airlock` command line: cli_parse() turns argv and the two
 * environment defaults into a struct cli_args without any I/O, so every rule
 * (where flags may go, what wins over what, which numbers are valid) is
 * unit-tested; cli_parse_time() turns the audit verbs' --since/--until into
 * unix ms. Also the bounded input readers used for code, stdin, tokens and
 * JWKS files.
 */
#include "args.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char cli_usage[] =
    "usage: airlock [--broker ADDR] [--credd ADDR] [TLS] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  exec [--runtime R] [--timeout-ms N] [--scope S]... [--audience A]...\n"
    "       [--stdin FILE] [--request-id ID] [--json] [LIMITS] (-c CODE | FILE | -)\n"
    "      Run code in a single-use sandbox with a per-task token; stream its\n"
    "      output; exit with its exit status. Runtime defaults to python3.\n"
    "      LIMITS (default: what policy grants the caller by default; asking\n"
    "      more than it grants is refused):\n"
    "      --memory-mb N --cpu-ms N --max-pids N --disk-mb N --open-files N\n"
    "      --output-bytes N\n"
    "  token introspect (TOKEN | --id JTI | -)\n"
    "      Ask credd about a token; print it as JSON; exit 0 if active, 1 if not.\n"
    "  keys\n"
    "      Print credd's public keys (JWKS).\n"
    "  health\n"
    "      Check that the broker and credd answer; exit 0 if both serve.\n"
    "  policy check --config FILE --spiffe-id ID [--runtime R] [--timeout-ms N]\n"
    "       [--scope S]... [--audience A]... [LIMITS]\n"
    "      Explain what the broker configured by FILE grants ID, and whether\n"
    "      this request would be allowed; exit 0 if allowed, 1 if denied.\n"
    "  audit query [--of broker|credd] [--spiffe-id ID] [--task ID] [--token JTI]\n"
    "       [--since T] [--until T] [--kind K]... [--reason R] [--limit N] [--json]\n"
    "      Print a daemon's audit records (default: the broker's) that match\n"
    "      every filter given, oldest first, as a table or (--json) as the\n"
    "      stored JSON Lines. T: RFC 3339 (2026-11-23T10:00:00Z), unix seconds,\n"
    "      or an age before now: 90s, 15m, 2h, 7d. --since is inclusive,\n"
    "      --until exclusive. --spiffe-id matches a record's subject or caller.\n"
    "  audit verify [--of broker|credd] [--json]\n"
    "      Ask the daemon to verify its whole chain and checkpoint signatures.\n"
    "  audit verify --file PATH [--jwks FILE] [--expect-seq N] [--json]\n"
    "      Verify a copied chain file here; checkpoint keys come from the JWKS\n"
    "      FILE, or else from credd's Keys. --expect-seq: the file must reach\n"
    "      record N. Exit 0 if the chain verifies, 1 if it does not.\n"
    "  audit tokens [--spiffe-id ID] [--token JTI] [--since T] [--until T] [--json]\n"
    "      The tokens credd issued (to ID), from its mint and revoke records:\n"
    "      who, for which task, scopes, audience, lifetime, and how each\n"
    "      ended (revoked as its task ended, by the broker's backstop when the\n"
    "      worker did not report, by another caller, expired, or still active).\n"
    "\n"
    "Global options (before or after the command):\n"
    "  --broker ADDR   broker address (env AIRLOCK_BROKER, default " CLI_DEFAULT_BROKER ")\n"
    "  --credd ADDR    credd address (env AIRLOCK_CREDD, default " CLI_DEFAULT_CREDD ")\n"
    "                  unix:PATH uses the socket's peer credentials; HOST:PORT uses\n"
    "                  mutual TLS and needs TLS:\n"
    "  --cert FILE     our X.509 SVID, PEM (env AIRLOCK_CERT)\n"
    "  --key FILE      its private key (env AIRLOCK_KEY)\n"
    "  --ca FILE       trust bundle for the server's certificate (env AIRLOCK_CA)\n"
    "  --server-id ID  SPIFFE ID the server must present (env AIRLOCK_SERVER_ID;\n"
    "                  default: any ID in the trust domain of our own SVID)\n"
    "  -h, --help      this text\n"
    "  -V, --version   print the version\n"
    "\n"
    "Exit codes of exec: the task's own status; 128+N killed by signal N;\n"
    "124 timeout; 119 CPU limit; 118 disk limit; 120 output limit; 121 memory\n"
    "limit; 122 forbidden system call;\n"
    "123 sandbox error; 64 usage; 66 unreadable input; 69 RPC failed;\n"
    "70 internal error; 74 cannot write output; 76 no Finished event.\n"
    "audit verify exits 1 when the chain does not verify.\n";

/* Which verbs an option belongs to (a bit set; 0 = global). */
enum opt_scope {
    OPT_GLOBAL = 0,
    OPT_EXEC = 1,
    OPT_INTROSPECT = 2,
    OPT_POLICY = 4,
    OPT_AQUERY = 8,
    OPT_AVERIFY = 16,
    OPT_ATOKENS = 32,
};
#define OPT_NSCOPES 6                       /* bits above */
#define OPT_REQUEST (OPT_EXEC | OPT_POLICY) /* describe a request: exec and policy check */
#define OPT_ARANGE (OPT_AQUERY | OPT_ATOKENS) /* select audit records by time and token */

/* The verb each scope bit stands for, in bit order. */
static const char *const scope_verbs[OPT_NSCOPES] = {
    "exec", "token introspect", "policy check", "audit query", "audit verify", "audit tokens",
};

enum opt_id {
    OPT_BROKER,
    OPT_CREDD,
    OPT_HELP,
    OPT_VERSION,
    OPT_RUNTIME,
    OPT_TIMEOUT,
    OPT_SCOPE,
    OPT_AUDIENCE,
    OPT_STDIN,
    OPT_REQUEST_ID,
    OPT_JSON,
    OPT_CODE,
    OPT_ID,
    OPT_MEMORY_MB,
    OPT_CPU_MS,
    OPT_MAX_PIDS,
    OPT_DISK_MB,
    OPT_OPEN_FILES,
    OPT_OUTPUT_BYTES,
    OPT_CERT,
    OPT_KEY,
    OPT_CA,
    OPT_SERVER_ID,
    OPT_CONFIG,
    OPT_SPIFFE_ID,
    OPT_OF,
    OPT_TASK,
    OPT_TOKEN,
    OPT_SINCE,
    OPT_UNTIL,
    OPT_KIND,
    OPT_REASON,
    OPT_LIMIT,
    OPT_FILE,
    OPT_JWKS,
    OPT_EXPECT_SEQ,
};

struct opt_def {
    const char *name;
    enum opt_id id;
    unsigned scope; /* enum opt_scope bits */
    bool has_value;
};

static const struct opt_def opts[] = {
    {"--broker", OPT_BROKER, OPT_GLOBAL, true},
    {"--credd", OPT_CREDD, OPT_GLOBAL, true},
    {"--cert", OPT_CERT, OPT_GLOBAL, true},
    {"--key", OPT_KEY, OPT_GLOBAL, true},
    {"--ca", OPT_CA, OPT_GLOBAL, true},
    {"--server-id", OPT_SERVER_ID, OPT_GLOBAL, true},
    {"--help", OPT_HELP, OPT_GLOBAL, false},
    {"-h", OPT_HELP, OPT_GLOBAL, false},
    {"--version", OPT_VERSION, OPT_GLOBAL, false},
    {"-V", OPT_VERSION, OPT_GLOBAL, false},
    {"--runtime", OPT_RUNTIME, OPT_REQUEST, true},
    {"--timeout-ms", OPT_TIMEOUT, OPT_REQUEST, true},
    {"--scope", OPT_SCOPE, OPT_REQUEST, true},
    {"--audience", OPT_AUDIENCE, OPT_REQUEST, true},
    {"--stdin", OPT_STDIN, OPT_EXEC, true},
    {"--request-id", OPT_REQUEST_ID, OPT_EXEC, true},
    {"--json", OPT_JSON, OPT_EXEC | OPT_AQUERY | OPT_AVERIFY | OPT_ATOKENS, false},
    {"-c", OPT_CODE, OPT_EXEC, true},
    {"--id", OPT_ID, OPT_INTROSPECT, true},
    {"--memory-mb", OPT_MEMORY_MB, OPT_REQUEST, true},
    {"--cpu-ms", OPT_CPU_MS, OPT_REQUEST, true},
    {"--max-pids", OPT_MAX_PIDS, OPT_REQUEST, true},
    {"--disk-mb", OPT_DISK_MB, OPT_REQUEST, true},
    {"--open-files", OPT_OPEN_FILES, OPT_REQUEST, true},
    {"--output-bytes", OPT_OUTPUT_BYTES, OPT_REQUEST, true},
    {"--config", OPT_CONFIG, OPT_POLICY, true},
    {"--spiffe-id", OPT_SPIFFE_ID, OPT_POLICY | OPT_ARANGE, true},
    {"--of", OPT_OF, OPT_AQUERY | OPT_AVERIFY, true},
    {"--task", OPT_TASK, OPT_AQUERY, true},
    {"--token", OPT_TOKEN, OPT_ARANGE, true},
    {"--since", OPT_SINCE, OPT_ARANGE, true},
    {"--until", OPT_UNTIL, OPT_ARANGE, true},
    {"--kind", OPT_KIND, OPT_AQUERY, true},
    {"--reason", OPT_REASON, OPT_AQUERY, true},
    {"--limit", OPT_LIMIT, OPT_AQUERY, true},
    {"--file", OPT_FILE, OPT_AVERIFY, true},
    {"--jwks", OPT_JWKS, OPT_AVERIFY, true},
    {"--expect-seq", OPT_EXPECT_SEQ, OPT_AVERIFY, true},
};

/* Finds the option for arg ("--x", "--x=v", "-c"); *inline_value is set for
 * the "=" form. NULL if arg is not a known option. */
static const struct opt_def *find_opt(const char *arg, const char **inline_value)
{
    *inline_value = NULL;
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (strlen(opts[i].name) == n && strncmp(opts[i].name, arg, n) == 0) {
            if (eq)
                *inline_value = eq + 1;
            return &opts[i];
        }
    }
    return NULL;
}

/* A decimal whole number in [0, max] for option opt. */
static int parse_number(const char *opt, const char *s, uint64_t max, uint64_t *out, char *err,
                        size_t errlen)
{
    if (!s || !*s)
        return err_set(err, errlen, "%s: empty value", opt);
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return err_set(err, errlen, "%s: '%s' is not a non-negative whole number", opt, s);
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > max)
            return err_set(err, errlen, "%s: '%s' is out of range (at most %llu)", opt, s,
                           (unsigned long long)max);
    }
    *out = v;
    return 0;
}

int cli_parse_timeout(const char *s, uint32_t *out, char *err, size_t errlen)
{
    uint64_t v;
    if (parse_number("--timeout-ms", s, CLI_MAX_TIMEOUT_MS, &v, err, errlen) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* The limit options: each sets one field of out. */
static int parse_limit(enum opt_id id, const char *opt, const char *s, struct cli_args *out,
                       char *err, size_t errlen)
{
    uint64_t v;
    uint64_t max = id == OPT_MEMORY_MB || id == OPT_DISK_MB ? (1u << 20)  /* 1 TiB */
                   : id == OPT_OUTPUT_BYTES                 ? (1ull << 40)
                                                            : UINT32_MAX;
    if (parse_number(opt, s, max, &v, err, errlen) < 0)
        return -1;
    switch (id) {
    case OPT_MEMORY_MB: out->memory_bytes = v << 20; break;
    case OPT_DISK_MB: out->disk_bytes = v << 20; break;
    case OPT_OUTPUT_BYTES: out->output_bytes = v; break;
    case OPT_CPU_MS: out->cpu_ms = (uint32_t)v; break;
    case OPT_MAX_PIDS: out->max_pids = (uint32_t)v; break;
    case OPT_OPEN_FILES: out->open_files = (uint32_t)v; break;
    default: return err_set(err, errlen, "%s: not a limit", opt);
    }
    return 0;
}

/* A scope or audience entry: non-empty, no whitespace (scopes travel
 * space-separated in the token). */
static int check_word(const char *opt, const char *v, char *err, size_t errlen)
{
    if (!*v)
        return err_set(err, errlen, "%s: empty value", opt);
    if (strpbrk(v, " \t\r\n"))
        return err_set(err, errlen, "%s: '%s' must not contain whitespace", opt, v);
    return 0;
}

/* Resolves a verb word; "token", "policy" and "audit" take a sub-command
 * next (until then *verb is the group's first verb). */
static int parse_verb(const char *word, enum cli_verb *verb, bool *needs_sub, char *err,
                      size_t errlen)
{
    *needs_sub = false;
    if (strcmp(word, "policy") == 0) {
        *verb = CLI_VERB_POLICY_CHECK;
        *needs_sub = true;
        return 0;
    }
    if (strcmp(word, "audit") == 0) {
        *verb = CLI_VERB_AUDIT_QUERY;
        *needs_sub = true;
        return 0;
    }
    if (strcmp(word, "exec") == 0)
        *verb = CLI_VERB_EXEC;
    else if (strcmp(word, "keys") == 0)
        *verb = CLI_VERB_KEYS;
    else if (strcmp(word, "health") == 0)
        *verb = CLI_VERB_HEALTH;
    else if (strcmp(word, "help") == 0)
        *verb = CLI_VERB_HELP;
    else if (strcmp(word, "token") == 0) {
        *verb = CLI_VERB_INTROSPECT;
        *needs_sub = true;
    } else
        return err_set(err, errlen, "unknown command '%s'", word);
    return 0;
}

bool cli_address_is_unix(const char *address)
{
    return strncmp(address, "unix:", 5) == 0;
}

/* value if set and non-empty, else dflt. */
static const char *env_or(const char *value, const char *dflt)
{
    return value && *value ? value : dflt;
}

/* The verbs an option of scope belongs to, for "applies to X only":
 * "'a'", "'a' and 'b'", "'a', 'b' and 'c'". */
static const char *scope_name(unsigned scope, char *buf, size_t len)
{
    size_t used = 0, total = 0;
    for (unsigned b = 0; b < OPT_NSCOPES; b++)
        total += (scope >> b) & 1u;
    buf[0] = '\0';
    for (unsigned b = 0, k = 0; b < OPT_NSCOPES; b++) {
        if (!((scope >> b) & 1u))
            continue;
        const char *sep = k == 0 ? "" : k + 1 == total ? " and " : ", ";
        int n = snprintf(buf + used, len - used, "%s'%s'", sep, scope_verbs[b]);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
        k++;
    }
    return buf;
}

/* The scope bit index + 1 of verb (for first_not_for), or 0 for verbs that
 * take no verb options at all. */
static unsigned verb_slot(enum cli_verb verb)
{
    switch (verb) {
    case CLI_VERB_EXEC: return 1;
    case CLI_VERB_INTROSPECT: return 2;
    case CLI_VERB_POLICY_CHECK: return 3;
    case CLI_VERB_AUDIT_QUERY: return 4;
    case CLI_VERB_AUDIT_VERIFY: return 5;
    case CLI_VERB_AUDIT_TOKENS: return 6;
    default: return 0;
    }
}

static bool verb_is_audit(enum cli_verb verb)
{
    return verb == CLI_VERB_AUDIT_QUERY || verb == CLI_VERB_AUDIT_VERIFY ||
           verb == CLI_VERB_AUDIT_TOKENS;
}

/* The name of the sub-command group verb belongs to, for messages. */
static const char *group_hint(enum cli_verb verb)
{
    return verb == CLI_VERB_POLICY_CHECK ? "'policy check'"
           : verb == CLI_VERB_INTROSPECT ? "'token introspect'"
                                         : "'audit query', 'audit verify' or 'audit tokens'";
}

/* A non-empty option value. */
static int nonempty(const char *opt, const char *v, char *err, size_t errlen)
{
    return *v ? 0 : err_set(err, errlen, "%s: empty value", opt);
}

/* The TLS files come as a set: a key without a certificate is a mistake. */
static int check_tls_files(const struct cli_args *a, char *err, size_t errlen)
{
    int given = !!a->cert + !!a->key + !!a->ca;
    if (given != 0 && given != 3)
        return err_set(err, errlen, "--cert, --key and --ca go together (mutual TLS); %s is missing",
                       !a->cert ? "--cert" : !a->key ? "--key" : "--ca");
    return 0;
}

int cli_parse(int argc, char *argv[], const struct cli_env *env, struct cli_args *out, char *err,
              size_t errlen)
{
    static const struct cli_env no_env;
    if (!env)
        env = &no_env;
    memset(out, 0, sizeof *out);
    out->broker = env_or(env->broker, CLI_DEFAULT_BROKER);
    out->credd = env_or(env->credd, CLI_DEFAULT_CREDD);
    out->cert = env_or(env->cert, NULL);
    out->key = env_or(env->key, NULL);
    out->ca = env_or(env->ca, NULL);
    out->server_id = env_or(env->server_id, NULL);
    out->runtime = CLI_DEFAULT_RUNTIME;
    if (err && errlen)
        err[0] = '\0';

    /* Per verb scope bit b, [b + 1] is the first option given that does not
     * apply to that verb; [0] is the first verb option of any kind
     * (misplaced on keys, health). */
    const struct opt_def *first_not_for[OPT_NSCOPES + 1] = {NULL};
    const char *code = NULL, *id = NULL, *positional = NULL;
    bool needs_sub = false, options_done = false;
    enum cli_daemon of = CLI_DAEMON_NONE;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (!options_done && arg[0] == '-' && arg[1] != '\0') {
            const char *value = NULL;
            const struct opt_def *o = find_opt(arg, &value);
            if (!o)
                return err_set(err, errlen, "unknown option '%s'", arg);
            if (!o->has_value && value)
                return err_set(err, errlen, "option '%s' takes no value", o->name);
            if (o->has_value && !value) {
                if (i + 1 >= argc)
                    return err_set(err, errlen, "option '%s' needs a value", o->name);
                value = argv[++i];
            }
            if (o->scope != OPT_GLOBAL && !first_not_for[0])
                first_not_for[0] = o;
            for (unsigned b = 0; o->scope != OPT_GLOBAL && b < OPT_NSCOPES; b++)
                if (!((o->scope >> b) & 1u) && !first_not_for[b + 1])
                    first_not_for[b + 1] = o;

            switch (o->id) {
            case OPT_HELP:
                out->verb = CLI_VERB_HELP;
                return 0;
            case OPT_VERSION:
                out->verb = CLI_VERB_VERSION;
                return 0;
            case OPT_BROKER:
            case OPT_CREDD:
                if (!*value)
                    return err_set(err, errlen, "option '%s' needs a non-empty address", o->name);
                *(o->id == OPT_BROKER ? &out->broker : &out->credd) = value;
                break;
            case OPT_CERT:
            case OPT_KEY:
            case OPT_CA:
            case OPT_SERVER_ID:
            case OPT_CONFIG:
            case OPT_SPIFFE_ID: {
                const char **field = o->id == OPT_CERT        ? &out->cert
                                     : o->id == OPT_KEY       ? &out->key
                                     : o->id == OPT_CA        ? &out->ca
                                     : o->id == OPT_SERVER_ID ? &out->server_id
                                     : o->id == OPT_CONFIG    ? &out->config
                                                              : &out->spiffe_id;
                if (!*value)
                    return err_set(err, errlen, "%s: empty value", o->name);
                *field = value;
                break;
            }
            case OPT_RUNTIME:
                if (!*value)
                    return err_set(err, errlen, "--runtime: empty value");
                out->runtime = value;
                break;
            case OPT_TIMEOUT:
                if (cli_parse_timeout(value, &out->timeout_ms, err, errlen) < 0)
                    return -1;
                break;
            case OPT_SCOPE:
                if (check_word(o->name, value, err, errlen) < 0)
                    return -1;
                if (out->nscopes == CLI_MAX_SCOPES)
                    return err_set(err, errlen, "too many --scope options (at most %d)",
                                   CLI_MAX_SCOPES);
                out->scopes[out->nscopes++] = value;
                break;
            case OPT_AUDIENCE:
                if (check_word(o->name, value, err, errlen) < 0)
                    return -1;
                if (out->naudience == CLI_MAX_AUDIENCE)
                    return err_set(err, errlen, "too many --audience options (at most %d)",
                                   CLI_MAX_AUDIENCE);
                out->audience[out->naudience++] = value;
                break;
            case OPT_STDIN:
                if (!*value)
                    return err_set(err, errlen, "--stdin: empty file name");
                out->stdin_file = value;
                break;
            case OPT_REQUEST_ID:
                out->request_id = value;
                break;
            case OPT_JSON:
                out->json = true;
                break;
            case OPT_CODE:
                if (code)
                    return err_set(err, errlen, "-c given twice");
                code = value;
                break;
            case OPT_MEMORY_MB:
            case OPT_CPU_MS:
            case OPT_MAX_PIDS:
            case OPT_DISK_MB:
            case OPT_OPEN_FILES:
            case OPT_OUTPUT_BYTES:
                if (parse_limit(o->id, o->name, value, out, err, errlen) < 0)
                    return -1;
                break;
            case OPT_ID:
                if (!*value)
                    return err_set(err, errlen, "--id: empty value");
                if (id)
                    return err_set(err, errlen, "--id given twice");
                id = value;
                break;
            case OPT_OF:
                if (strcmp(value, "broker") == 0)
                    of = CLI_DAEMON_BROKER;
                else if (strcmp(value, "credd") == 0)
                    of = CLI_DAEMON_CREDD;
                else
                    return err_set(err, errlen, "--of: '%s' is neither 'broker' nor 'credd'", value);
                break;
            case OPT_TASK:
            case OPT_TOKEN:
            case OPT_SINCE:
            case OPT_UNTIL:
            case OPT_REASON:
            case OPT_FILE:
            case OPT_JWKS: {
                const char **field = o->id == OPT_TASK     ? &out->task_id
                                     : o->id == OPT_TOKEN  ? &out->token_id
                                     : o->id == OPT_SINCE  ? &out->since
                                     : o->id == OPT_UNTIL  ? &out->until
                                     : o->id == OPT_REASON ? &out->reason
                                     : o->id == OPT_FILE   ? &out->file
                                                           : &out->jwks;
                if (nonempty(o->name, value, err, errlen) < 0)
                    return -1;
                *field = value;
                break;
            }
            case OPT_KIND:
                if (check_word(o->name, value, err, errlen) < 0)
                    return -1;
                if (out->nkinds == CLI_MAX_KINDS)
                    return err_set(err, errlen, "too many --kind options (at most %d)",
                                   CLI_MAX_KINDS);
                out->kinds[out->nkinds++] = value;
                break;
            case OPT_LIMIT: {
                uint64_t v;
                if (parse_number(o->name, value, UINT32_MAX, &v, err, errlen) < 0)
                    return -1;
                out->limit = (uint32_t)v;
                break;
            }
            case OPT_EXPECT_SEQ:
                if (parse_number(o->name, value, CLI_MAX_SEQ, &out->expect_seq, err, errlen) < 0)
                    return -1;
                break;
            }
            continue;
        }

        /* A positional word: the verb, the token sub-command, or its input. */
        if (out->verb == CLI_VERB_NONE) {
            if (parse_verb(arg, &out->verb, &needs_sub, err, errlen) < 0)
                return -1;
            if (out->verb == CLI_VERB_HELP)
                return 0;
            continue;
        }
        if (needs_sub && verb_is_audit(out->verb)) {
            if (strcmp(arg, "query") == 0)
                out->verb = CLI_VERB_AUDIT_QUERY;
            else if (strcmp(arg, "verify") == 0)
                out->verb = CLI_VERB_AUDIT_VERIFY;
            else if (strcmp(arg, "tokens") == 0)
                out->verb = CLI_VERB_AUDIT_TOKENS;
            else
                return err_set(err, errlen, "unknown command 'audit %s' (try %s)", arg,
                               group_hint(out->verb));
            needs_sub = false;
            continue;
        }
        if (needs_sub) {
            if (out->verb == CLI_VERB_POLICY_CHECK && strcmp(arg, "check") != 0)
                return err_set(err, errlen, "unknown command 'policy %s' (try 'policy check')", arg);
            if (out->verb == CLI_VERB_INTROSPECT && strcmp(arg, "introspect") != 0 &&
                strcmp(arg, "inspect") != 0)
                return err_set(err, errlen, "unknown command 'token %s' (try 'token introspect')",
                               arg);
            needs_sub = false;
            continue;
        }
        if (out->verb == CLI_VERB_KEYS || out->verb == CLI_VERB_HEALTH ||
            out->verb == CLI_VERB_POLICY_CHECK || verb_is_audit(out->verb) || positional)
            return err_set(err, errlen, "unexpected argument '%s'", arg);
        positional = arg;
    }

    if (out->verb == CLI_VERB_NONE)
        return err_set(err, errlen, "missing command (exec, token introspect, keys, health, "
                                    "policy check, audit query|verify|tokens)");
    if (needs_sub)
        return err_set(err, errlen, "missing sub-command: %s", group_hint(out->verb));
    const struct opt_def *misplaced = first_not_for[verb_slot(out->verb)];
    if (misplaced) {
        char names[160];
        return err_set(err, errlen, "option '%s' applies to %s only", misplaced->name,
                       scope_name(misplaced->scope, names, sizeof names));
    }
    if (check_tls_files(out, err, errlen) < 0)
        return -1;
    if (out->verb == CLI_VERB_POLICY_CHECK && (!out->config || !out->spiffe_id))
        return err_set(err, errlen, "policy check needs --config FILE and --spiffe-id ID");

    if (out->verb == CLI_VERB_AUDIT_QUERY) {
        out->of = of != CLI_DAEMON_NONE ? of : CLI_DAEMON_BROKER;
    } else if (out->verb == CLI_VERB_AUDIT_TOKENS) {
        out->of = CLI_DAEMON_CREDD; /* tokens are credd's business */
    } else if (out->verb == CLI_VERB_AUDIT_VERIFY) {
        if (out->file && of != CLI_DAEMON_NONE)
            return err_set(err, errlen, "--file and --of conflict: verify a copied file here, "
                                        "or ask a daemon to verify its own chain");
        if (!out->file && (out->jwks || out->expect_seq))
            return err_set(err, errlen, "%s goes with --file PATH",
                           out->jwks ? "--jwks" : "--expect-seq");
        out->of = out->file ? CLI_DAEMON_NONE : of != CLI_DAEMON_NONE ? of : CLI_DAEMON_BROKER;
    }

    if (out->verb == CLI_VERB_EXEC) {
        if (code && positional)
            return err_set(err, errlen, "give the code once: -c CODE, a FILE or - (not both)");
        if (code) {
            out->source = CLI_SRC_INLINE;
            out->input = code;
        } else if (positional) {
            out->source = strcmp(positional, "-") == 0 ? CLI_SRC_STDIN : CLI_SRC_FILE;
            out->input = positional;
        } else {
            return err_set(err, errlen, "missing code: give -c CODE, a FILE, or - for stdin");
        }
        if (out->source == CLI_SRC_STDIN && out->stdin_file && strcmp(out->stdin_file, "-") == 0)
            return err_set(err, errlen, "code and --stdin cannot both come from standard input");
    } else if (out->verb == CLI_VERB_INTROSPECT) {
        if (id && positional)
            return err_set(err, errlen, "give a TOKEN, --id JTI or -, not both");
        if (id) {
            out->source = CLI_SRC_ID;
            out->input = id;
        } else if (positional) {
            if (strcmp(positional, "-") == 0) {
                out->source = CLI_SRC_STDIN;
            } else {
                if (strlen(positional) > CLI_MAX_TOKEN_BYTES)
                    return err_set(err, errlen, "token is longer than %u bytes", CLI_MAX_TOKEN_BYTES);
                out->source = CLI_SRC_INLINE;
            }
            out->input = positional;
        } else {
            return err_set(err, errlen, "missing token: give TOKEN, --id JTI, or - for stdin");
        }
    }
    return 0;
}

/* ------------------------------------------------------------ times */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Exactly n decimal digits at *p (advanced past them) into *v. */
static bool fixed_digits(const char **p, int n, unsigned *v)
{
    unsigned x = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        x = x * 10 + (unsigned)(c - '0');
    }
    *p += n;
    *v = x;
    return true;
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.F+](Z|+HH:MM|-HH:MM). 1 parsed, 0 not that
 * shape at all, -1 that shape but invalid (err set). */
static int parse_rfc3339(const char *s, int64_t *out_ms, char *err, size_t errlen)
{
    const char *p = s;
    unsigned y, mo, d, h, mi, sec, oh = 0, om = 0;
    if (!fixed_digits(&p, 4, &y) || *p != '-')
        return 0;
    p++;
    if (!fixed_digits(&p, 2, &mo) || *p++ != '-' || !fixed_digits(&p, 2, &d) ||
        (*p != 'T' && *p != 't'))
        return 0;
    p++;
    if (!fixed_digits(&p, 2, &h) || *p++ != ':' || !fixed_digits(&p, 2, &mi) || *p++ != ':' ||
        !fixed_digits(&p, 2, &sec))
        return err_set(err, errlen, "'%s' is not an RFC 3339 time (2026-11-23T10:00:00Z)", s);
    int64_t frac_ms = 0;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return err_set(err, errlen, "'%s': no digits after the '.'", s);
        for (int i = 0; *p >= '0' && *p <= '9'; i++, p++)
            if (i < 3)
                frac_ms += (*p - '0') * (i == 0 ? 100 : i == 1 ? 10 : 1);
    }
    int sign = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '+' ? 1 : -1;
        if (!fixed_digits(&p, 2, &oh) || *p++ != ':' || !fixed_digits(&p, 2, &om) || oh > 23 ||
            om > 59)
            return err_set(err, errlen, "'%s': bad UTC offset (want Z or +HH:MM)", s);
    } else {
        return err_set(err, errlen, "'%s': the time needs a zone: Z for UTC, or +HH:MM", s);
    }
    if (*p)
        return err_set(err, errlen, "'%s': unexpected '%s' after the time", s, p);
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return err_set(err, errlen, "'%s' is not a valid date and time", s);
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
                   sign * (int64_t)(oh * 3600 + om * 60);
    if (secs < 0)
        return err_set(err, errlen, "'%s' is before 1970", s);
    *out_ms = secs * 1000 + frac_ms;
    return 1;
}

int cli_parse_time(const char *s, int64_t now_ms, int64_t *out_ms, char *err, size_t errlen)
{
    if (!s || !*s)
        return err_set(err, errlen, "empty time");
    int r = parse_rfc3339(s, out_ms, err, errlen);
    if (r != 0)
        return r < 0 ? -1 : 0;

    /* digits, then nothing (unix seconds) or one unit letter (an age) */
    const char *p = s;
    uint64_t n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (uint64_t)(*p - '0');
        if (n > (uint64_t)INT64_MAX / 1000)
            return err_set(err, errlen, "'%s' is out of range", s);
    }
    int64_t unit_ms = !*p || p == s ? 0
                      : strcmp(p, "s") == 0 ? 1000
                      : strcmp(p, "m") == 0 ? 60000
                      : strcmp(p, "h") == 0 ? 3600000
                      : strcmp(p, "d") == 0 ? 86400000
                                            : 0;
    if (p == s || (*p && !unit_ms))
        return err_set(err, errlen,
                       "'%s' is not a time: give RFC 3339 (2026-11-23T10:00:00Z), unix seconds, "
                       "or an age like 90s, 15m, 2h, 7d",
                       s);
    if (!*p) {
        *out_ms = (int64_t)n * 1000;
        return 0;
    }
    if (now_ms < 0 || n > (uint64_t)(INT64_MAX / unit_ms) || (int64_t)n * unit_ms > now_ms)
        return err_set(err, errlen, "'%s' ago is before 1970", s);
    *out_ms = now_ms - (int64_t)n * unit_ms;
    return 0;
}

/* ------------------------------------------------------------ input */

int cli_read_fd(int fd, size_t max, const char *what, char **buf, size_t *len, char *err,
                size_t errlen)
{
    size_t cap = max < 65536 ? max + 1 : 65536, n = 0;
    char *b = malloc(cap + 1);
    if (!b)
        return err_set(err, errlen, "%s: out of memory", what);
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                free(b);
                return err_set(err, errlen, "%s is larger than %zu bytes", what, max);
            }
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(b, ncap + 1);
            if (!nb) {
                free(b);
                return err_set(err, errlen, "%s: out of memory", what);
            }
            b = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(b);
            return err_set(err, errlen, "%s: %s", what, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        free(b);
        return err_set(err, errlen, "%s is larger than %zu bytes", what, max);
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

int cli_read_path(const char *path, size_t max, char **buf, size_t *len, char *err, size_t errlen)
{
    if (strcmp(path, "-") == 0)
        return cli_read_fd(STDIN_FILENO, max, "standard input", buf, len, err, errlen);

    char what[300];
    snprintf(what, sizeof what, "'%s'", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errlen, "%s: %s", what, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return err_set(err, errlen, "%s: %s", what, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return err_set(err, errlen, "%s is a directory", what);
    }
    if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > max) {
        close(fd);
        return err_set(err, errlen, "%s is larger than %zu bytes", what, max);
    }
    int rc = cli_read_fd(fd, max, what, buf, len, err, errlen);
    close(fd);
    return rc;
}
