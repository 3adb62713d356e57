/*
 * audit_lines.h - the bounded line reader the audit verifier and the query
 * scanner share (internal to lib/audit*.c): whole lines of a chain file, in
 * a fixed AUDIT_MAX_LINE buffer however large the file.
 */
#ifndef AIRLOCK_AUDIT_LINES_H
#define AIRLOCK_AUDIT_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum { LINE_EOF = 0, LINE_OK = 1, LINE_LONG = 2 };

struct reader {
    int fd;
    char *buf; /* AUDIT_MAX_LINE + 1 bytes of data and a NUL */
    size_t start, end;
    off_t next;  /* file offset of the next read */
    off_t limit; /* read no further than this (-1: to EOF) */
    bool eof;
};

/* Reads fd from offset from up to limit (-1: EOF). 0, or -1 out of memory. */
int reader_init(struct reader *r, int fd, off_t from, off_t limit);
void reader_free(struct reader *r);

/* The next line: LINE_OK with *line (NUL-terminated in place, valid until
 * the next call), *len (without '\n') and *nl (false: the file ends without
 * one); LINE_LONG when the line is over AUDIT_MAX_LINE (skipped, *nl set);
 * LINE_EOF; -1 with errno. */
int reader_next(struct reader *r, char **line, size_t *len, bool *nl);

#endif
