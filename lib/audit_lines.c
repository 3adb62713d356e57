/*
 * audit_lines.c - the bounded line reader of lib/audit_lines.h.
 */
#include "audit_lines.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"

int reader_init(struct reader *r, int fd, off_t from, off_t limit)
{
    *r = (struct reader){.fd = fd, .next = from, .limit = limit};
    r->buf = malloc(AUDIT_MAX_LINE + 2);
    return r->buf ? 0 : -1;
}

int reader_next(struct reader *r, char **line, size_t *len, bool *nl)
{
    bool skipping = false;
    for (;;) {
        size_t have = r->end - r->start;
        char *p = memchr(r->buf + r->start, '\n', have);
        if (p) {
            size_t n = (size_t)(p - (r->buf + r->start));
            *line = r->buf + r->start;
            *len = n;
            *nl = true;
            *p = '\0';
            r->start += n + 1;
            return skipping ? LINE_LONG : LINE_OK;
        }
        if (skipping || have > AUDIT_MAX_LINE) {
            skipping = true;
            r->start = r->end = have = 0;
        }
        if (r->eof) {
            if (!skipping && have == 0)
                return LINE_EOF;
            *line = r->buf + r->start;
            *len = have;
            *nl = false;
            r->buf[r->end] = '\0';
            r->start = r->end;
            return skipping ? LINE_LONG : LINE_OK;
        }
        memmove(r->buf, r->buf + r->start, have);
        r->start = 0;
        r->end = have;
        size_t want = AUDIT_MAX_LINE + 1 - have;
        if (r->limit >= 0 && (off_t)want > r->limit - r->next)
            want = (size_t)(r->limit - r->next);
        if (want == 0) {
            r->eof = true;
            continue;
        }
        ssize_t got = pread(r->fd, r->buf + r->end, want, r->next);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0)
            r->eof = true;
        r->end += (size_t)got;
        r->next += got;
    }
}

void reader_free(struct reader *r)
{
    free(r->buf);
    r->buf = NULL;
}
