/*
 * audit_query.c - the audit chain's filtered reader (see audit.h): streams
 * the file line by line in bounded memory and hands matching records to a
 * callback. It checks nothing about the chain; audit_verify.c does that.
 *
 * Most queries look for one task, token or subject among millions of lines,
 * so a line is first searched for the wanted value as raw bytes and only
 * parsed when it could match. The raw search is valid because the writer
 * escapes only '"', '\\', control and non-ASCII characters: a value without
 * those appears verbatim in the line of any record that holds it.
 */
#include "audit.h"
#include "audit_lines.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"


/* ---- matching ---- */

/* Can value be searched for verbatim in a stored line? */
static bool verbatim(const char *value)
{
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p < ' ' || *p >= 0x7f || *p == '"' || *p == '\\')
            return false;
    return true;
}

/* Could the raw line hold value as a string? (NULL value: any line.) */
static bool may_hold(const char *line, const char *value)
{
    return !value || !verbatim(value) || strstr(line, value);
}

static bool field_is(const json_t *rec, const char *key, const char *value)
{
    const char *s = json_string_value(json_object_get(rec, key));
    return s && strcmp(s, value) == 0;
}

static bool matches(const json_t *rec, const struct audit_filter *f)
{
    if (f->subject && !field_is(rec, "subject", f->subject) && !field_is(rec, "caller", f->subject))
        return false;
    if ((f->task_id && !field_is(rec, "task_id", f->task_id)) ||
        (f->token_id && !field_is(rec, "token_id", f->token_id)) ||
        (f->reason && !field_is(rec, "reason", f->reason)))
        return false;
    if (f->since_ms || f->until_ms) {
        json_t *ts = json_object_get(rec, "ts");
        if (!json_is_integer(ts) || (f->since_ms && json_integer_value(ts) < f->since_ms) ||
            (f->until_ms && json_integer_value(ts) >= f->until_ms))
            return false;
    }
    if (f->n_kinds > 0) {
        const char *kind = json_string_value(json_object_get(rec, "kind"));
        size_t i = 0;
        while (kind && i < f->n_kinds && (!f->kinds[i] || strcmp(kind, f->kinds[i]) != 0))
            i++;
        if (!kind || i == f->n_kinds)
            return false;
    }
    return true;
}

int audit_query(const char *path, const struct audit_filter *filter, audit_record_fn fn, void *ctx,
                char *err, size_t errlen)
{
    static const struct audit_filter any;
    const struct audit_filter *f = filter ? filter : &any;
    struct reader r;
    char *line;
    size_t len;
    bool nl;
    int rc, stop = 0;
    uint64_t matched = 0;

    if (!path || !fn)
        return err_set(err, errlen, "audit_query: no path or callback");
    if (f->n_kinds > 0 && !f->kinds)
        return err_set(err, errlen, "audit_query: n_kinds without kinds");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    if (reader_init(&r, fd, 0, -1) != 0) {
        close(fd);
        return err_set(err, errlen, "out of memory");
    }
    while ((rc = reader_next(&r, &line, &len, &nl)) > 0) {
        /* Over-long lines are malformed; a last line without '\n' is a
         * write in progress. */
        if (rc != LINE_OK || !nl)
            continue;
        if (!may_hold(line, f->task_id) || !may_hold(line, f->token_id) ||
            !may_hold(line, f->subject) || !may_hold(line, f->reason))
            continue;
        json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        if (json_is_object(rec) && matches(rec, f)) {
            matched++;
            stop = fn(ctx, line, len, rec);
        }
        json_decref(rec);
        if (stop != 0 || (f->limit && matched >= f->limit))
            break;
    }
    if (rc < 0)
        err_set(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    reader_free(&r);
    close(fd);
    return rc < 0 ? -1 : stop;
}
