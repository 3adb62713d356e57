/*
 * args.c - the `airlock` command line: cli_parse() turns argv and the two
 * environment defaults into a struct cli_args without any I/O, so every rule
 * (where flags may go, what wins over what, which numbers are valid) is
 * unit-tested. Also the bounded input readers used for code, stdin and
 * tokens.
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
    "70 internal error; 74 cannot write output; 76 no Finished event.\n";

/* Which verbs an option belongs to (a bit set; 0 = global). */
enum opt_scope { OPT_GLOBAL = 0, OPT_EXEC = 1, OPT_INTROSPECT = 2, OPT_POLICY = 4 };
#define OPT_REQUEST (OPT_EXEC | OPT_POLICY) /* describe a request: exec and policy check */

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
    {"--json", OPT_JSON, OPT_EXEC, false},
    {"-c", OPT_CODE, OPT_EXEC, true},
    {"--id", OPT_ID, OPT_INTROSPECT, true},
    {"--memory-mb", OPT_MEMORY_MB, OPT_REQUEST, true},
    {"--cpu-ms", OPT_CPU_MS, OPT_REQUEST, true},
    {"--max-pids", OPT_MAX_PIDS, OPT_REQUEST, true},
    {"--disk-mb", OPT_DISK_MB, OPT_REQUEST, true},
    {"--open-files", OPT_OPEN_FILES, OPT_REQUEST, true},
    {"--output-bytes", OPT_OUTPUT_BYTES, OPT_REQUEST, true},
    {"--config", OPT_CONFIG, OPT_POLICY, true},
    {"--spiffe-id", OPT_SPIFFE_ID, OPT_POLICY, true},
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

/* Resolves a verb word; "token" and "policy" take a sub-command next. */
static int parse_verb(const char *word, enum cli_verb *verb, bool *needs_sub, char *err,
                      size_t errlen)
{
    *needs_sub = false;
    if (strcmp(word, "policy") == 0) {
        *verb = CLI_VERB_POLICY_CHECK;
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

/* The verb an option of scope belongs to, for "applies to X only". */
static const char *scope_name(unsigned scope)
{
    return scope == OPT_INTROSPECT ? "'token introspect'"
           : scope == OPT_POLICY   ? "'policy check'"
           : scope == OPT_EXEC     ? "'exec'"
                                   : "'exec' and 'policy check'";
}

static unsigned verb_scope(enum cli_verb verb)
{
    return verb == CLI_VERB_EXEC           ? OPT_EXEC
           : verb == CLI_VERB_INTROSPECT   ? OPT_INTROSPECT
           : verb == CLI_VERB_POLICY_CHECK ? OPT_POLICY
                                           : 0;
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

    /* Per verb scope bit, the first option given that does not apply to it;
     * [0] is the first verb option of any kind (misplaced on keys, health). */
    const struct opt_def *first_not_for[OPT_POLICY + 1] = {NULL};
    const char *code = NULL, *id = NULL, *positional = NULL;
    bool needs_sub = false, options_done = false;

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
            for (unsigned bit = OPT_EXEC; o->scope != OPT_GLOBAL && bit <= OPT_POLICY; bit <<= 1)
                if (!(o->scope & bit) && !first_not_for[bit])
                    first_not_for[bit] = o;

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
            out->verb == CLI_VERB_POLICY_CHECK || positional)
            return err_set(err, errlen, "unexpected argument '%s'", arg);
        positional = arg;
    }

    if (out->verb == CLI_VERB_NONE)
        return err_set(err, errlen,
                       "missing command (exec, token introspect, keys, health, policy check)");
    if (needs_sub)
        return err_set(err, errlen, "missing sub-command: '%s'",
                       out->verb == CLI_VERB_POLICY_CHECK ? "policy check" : "token introspect");
    const struct opt_def *misplaced = first_not_for[verb_scope(out->verb)];
    if (misplaced)
        return err_set(err, errlen, "option '%s' applies to %s only", misplaced->name,
                       scope_name(misplaced->scope));
    if (check_tls_files(out, err, errlen) < 0)
        return -1;
    if (out->verb == CLI_VERB_POLICY_CHECK && (!out->config || !out->spiffe_id))
        return err_set(err, errlen, "policy check needs --config FILE and --spiffe-id ID");

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
