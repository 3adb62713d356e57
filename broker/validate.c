/*
 * validate.c - the Execute request's own checks (see validate.h). Text
 * fields are printable ASCII words, which rules out invalid UTF-8, control
 * characters and spaces before anything reaches a log line, the audit chain
 * or a token; a refusal quotes a field only once it passed that check.
 */
#include "validate.h"

#include <stdio.h>
#include <unistd.h>

#include "sandbox.h"
#include "util.h"

uint64_t validate_host_ram_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || size <= 0)
        return 0;
    return (uint64_t)pages * (uint64_t)size;
}

static int check_runtime(const char *runtime, char *msg, size_t msglen)
{
    if (!runtime[0])
        return err_set(msg, msglen, "runtime: empty (known: %s)", VALIDATE_RUNTIMES);
    if (!is_plain_word(runtime, VALIDATE_RUNTIME_MAX))
        return err_set(msg, msglen,
                       "runtime: must be 1-%d printable ASCII characters without spaces "
                       "(known: %s)",
                       VALIDATE_RUNTIME_MAX, VALIDATE_RUNTIMES);
    if (!sandbox_runtime_known(runtime))
        return err_set(msg, msglen, "runtime: unknown \"%s\" (known: %s)", runtime,
                       VALIDATE_RUNTIMES);
    return 0;
}

/* scopes or audience: at most VALIDATE_MAX_LIST_ITEMS words. */
static int check_words(const char *field, char *const *items, size_t n, char *msg, size_t msglen)
{
    if (n > VALIDATE_MAX_LIST_ITEMS)
        return err_set(msg, msglen, "%s: %zu items; at most %d", field, n,
                       VALIDATE_MAX_LIST_ITEMS);
    for (size_t i = 0; i < n; i++)
        if (!is_plain_word(items[i], VALIDATE_MAX_WORD_LEN))
            return err_set(msg, msglen,
                           "%s[%zu]: must be 1-%d printable ASCII characters without spaces",
                           field, i, VALIDATE_MAX_WORD_LEN);
    return 0;
}

/* Every limit is 0 (the policy default) or within a range a runtime can
 * start in and a machine can give. Above the caller's grant, within these
 * ranges, is policy's PERMISSION_DENIED. */
static int check_limits(const Airlock__V1__ExecuteRequest *req, const struct request_caps *caps,
                        char *msg, size_t msglen)
{
    static const Airlock__V1__Limits none = AIRLOCK__V1__LIMITS__INIT;
    const Airlock__V1__Limits *l = req->limits ? req->limits : &none;
    uint64_t ram = caps->host_ram_bytes && caps->host_ram_bytes < VALIDATE_MAX_BYTES
                       ? caps->host_ram_bytes
                       : VALIDATE_MAX_BYTES;
    const char *ram_note = ram < VALIDATE_MAX_BYTES ? "; more than this host's RAM" : "";
    const struct {
        const char *name;
        uint64_t value, min, max;
        const char *note;
    } range[] = {
        {"timeout_ms", req->timeout_ms, 1, VALIDATE_MAX_TIME_MS, ""},
        {"limits.timeout_ms", l->timeout_ms, 1, VALIDATE_MAX_TIME_MS, ""},
        {"limits.memory_bytes", l->memory_bytes, MIN_MEMORY_BYTES, ram, ram_note},
        {"limits.max_pids", l->max_pids, 1, VALIDATE_MAX_PIDS, ""},
        {"limits.output_bytes", l->output_bytes, 1, VALIDATE_MAX_BYTES, ""},
        {"limits.cpu_ms", l->cpu_ms, 1, VALIDATE_MAX_TIME_MS, ""},
        {"limits.disk_bytes", l->disk_bytes, MIN_DISK_BYTES, VALIDATE_MAX_BYTES, ""},
        {"limits.open_files", l->open_files, MIN_OPEN_FILES, VALIDATE_MAX_OPEN_FILES, ""},
    };
    for (size_t i = 0; i < sizeof range / sizeof range[0]; i++) {
        uint64_t v = range[i].value;
        if (v && (v < range[i].min || v > range[i].max))
            return err_set(msg, msglen,
                           "%s: %llu is outside %llu..%llu (0: the policy default%s)",
                           range[i].name, (unsigned long long)v, (unsigned long long)range[i].min,
                           (unsigned long long)range[i].max,
                           v > range[i].max ? range[i].note : "");
    }
    return 0;
}

int validate_execute_request(const Airlock__V1__ExecuteRequest *req,
                             const struct request_caps *caps, char *msg, size_t msglen)
{
    if (check_runtime(req->runtime, msg, msglen) != 0)
        return -1;
    if (req->code.len == 0)
        return err_set(msg, msglen, "code: empty");
    if (req->code.len > caps->max_code_bytes)
        return err_set(msg, msglen, "code: %zu bytes exceeds max_code_bytes %llu",
                       req->code.len, (unsigned long long)caps->max_code_bytes);
    if (req->stdin.len > caps->max_stdin_bytes)
        return err_set(msg, msglen, "stdin: %zu bytes exceeds max_stdin_bytes %llu",
                       req->stdin.len, (unsigned long long)caps->max_stdin_bytes);
    if (check_limits(req, caps, msg, msglen) != 0 ||
        check_words("scopes", req->scopes, req->n_scopes, msg, msglen) != 0 ||
        check_words("audience", req->audience, req->n_audience, msg, msglen) != 0)
        return -1;
    if (req->client_request_id[0] &&
        !is_plain_word(req->client_request_id, VALIDATE_MAX_REQUEST_ID_LEN))
        return err_set(msg, msglen,
                       "client_request_id: must be at most %d printable ASCII characters "
                       "without spaces",
                       VALIDATE_MAX_REQUEST_ID_LEN);
    return 0;
}
