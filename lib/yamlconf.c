/*
 * yamlconf.c - loads one YAML document with libyaml and walks it with types,
 * ranges and "FILE:LINE: path: message" errors (see yamlconf.h).
 *
 * Loading takes two passes over the text: the event pass refuses what the
 * document model would hide or resolve (anchors, aliases, tags, a second
 * document, nesting deeper than YCONF_MAX_DEPTH) and reports syntax errors
 * with their column; the load pass builds the document, whose tree is then
 * checked for duplicate keys, non-scalar keys and mapping sizes.
 */
#include "yamlconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "util.h"

struct yconf {
    char *name; /* what messages call the file */
    yaml_document_t doc;
    bool loaded; /* doc holds a document with a root */
};

/* ---- messages ---- */

/* "NAME:LINE:COL: PATH: message"; LINE and COL when non-zero, PATH when set. */
static int vfail(const char *name, int line, int col, const char *path, char *err, size_t errlen,
                 const char *fmt, va_list ap)
{
    if (!err || !errlen)
        return -1;
    char msg[512], where[32] = "";
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (line > 0 && col > 0)
        snprintf(where, sizeof where, "%d:%d:", line, col);
    else if (line > 0)
        snprintf(where, sizeof where, "%d:", line);
    snprintf(err, errlen, "%s:%s %s%s%s", name, where, path, *path ? ": " : "", msg);
    /* The file's own text reaches logs and terminals: no control bytes. */
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            *p = '?';
    return -1;
}

static int fail(const char *name, int line, int col, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int fail(const char *name, int line, int col, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(name, line, col, "", err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int yconf_error(const struct yconf_node *n, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(n->conf->name, n->line, 0, n->path, err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- nodes ---- */

static yaml_node_t *node_of(const struct yconf_node *n)
{
    return n->index ? yaml_document_get_node(&n->conf->doc, n->index) : NULL;
}

static yaml_node_t *key_node(const struct yconf_node *map, const yaml_node_pair_t *p)
{
    return yaml_document_get_node(&map->conf->doc, p->key);
}

static int node_line(const yaml_node_t *y)
{
    return (int)y->start_mark.line + 1;
}

/* The node at index below parent, named parent.key, or parent[item] when
 * key is NULL. An absent node (index 0) keeps its parent's line. out may be
 * parent: descending in place is fine. */
static void node_below(const struct yconf_node *parent, int index, const char *key, size_t item,
                       struct yconf_node *out)
{
    struct yconf_node n = {.conf = parent->conf, .index = index, .line = parent->line};
    yaml_node_t *y = node_of(&n);
    int len;
    if (y)
        n.line = node_line(y);
    if (!key)
        len = snprintf(n.path, sizeof n.path, "%s[%zu]", parent->path, item);
    else
        len = snprintf(n.path, sizeof n.path, "%s%s%s", parent->path, parent->path[0] ? "." : "",
                       key);
    if (len < 0 || (size_t)len >= sizeof n.path) /* too deep to name whole */
        memcpy(n.path + sizeof n.path - 4, "...", 4);
    *out = n;
}

static const char *scalar_text(const yaml_node_t *y)
{
    return (const char *)y->data.scalar.value;
}

static bool scalar_is(const yaml_node_t *y, const char *s)
{
    return y->type == YAML_SCALAR_NODE && y->data.scalar.length == strlen(s) &&
           memcmp(y->data.scalar.value, s, y->data.scalar.length) == 0;
}

static bool is_plain(const yaml_node_t *y)
{
    return y->type == YAML_SCALAR_NODE && y->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* Empty, ~ and null, unquoted: no value. */
static bool is_null(const yaml_node_t *y)
{
    return is_plain(y) && (scalar_is(y, "") || scalar_is(y, "~") || scalar_is(y, "null") ||
                           scalar_is(y, "Null") || scalar_is(y, "NULL"));
}

static int type_error(const struct yconf_node *n, const yaml_node_t *y, const char *expected,
                      char *err, size_t errlen)
{
    if (y->type == YAML_MAPPING_NODE)
        return yconf_error(n, err, errlen, "expected %s, got a mapping", expected);
    if (y->type == YAML_SEQUENCE_NODE)
        return yconf_error(n, err, errlen, "expected %s, got a list", expected);
    if (is_null(y))
        return yconf_error(n, err, errlen, "expected %s, got no value", expected);
    bool cut = y->data.scalar.length > 40;
    return yconf_error(n, err, errlen, "expected %s, got \"%.40s%s\"%s", expected, scalar_text(y),
                       cut ? "..." : "", is_plain(y) ? "" : " (quoted)");
}

/* ---- loading ---- */

/* Line and column of a byte offset, for reader errors that carry only that. */
static yaml_mark_t mark_at(const char *text, size_t len, size_t offset)
{
    yaml_mark_t m = {.index = offset};
    for (size_t i = 0; i < offset && i < len; i++) {
        m.column = text[i] == '\n' ? 0 : m.column + 1;
        m.line += text[i] == '\n';
    }
    return m;
}

static int parser_error(const char *name, const yaml_parser_t *p, const char *text, size_t len,
                        char *err, size_t errlen)
{
    if (p->error == YAML_MEMORY_ERROR)
        return err_set(err, errlen, "%s: out of memory", name);
    yaml_mark_t m =
        p->error == YAML_READER_ERROR ? mark_at(text, len, p->problem_offset) : p->problem_mark;
    const char *problem = p->problem ? p->problem : "syntax error";
    int line = (int)m.line + 1, col = (int)m.column + 1;
    if (p->context)
        return fail(name, line, col, err, errlen, "%s (%s at line %zu)", problem, p->context,
                    p->context_mark.line + 1);
    return fail(name, line, col, err, errlen, "%s", problem);
}

/* One event of the first pass: what a configuration has no use for. Depth
 * is checked here, as it grows: libyaml's time is quadratic in it. */
static int check_event(const char *name, const yaml_event_t *ev, int *docs, int *depth, char *err,
                       size_t errlen)
{
    int line = (int)ev->start_mark.line + 1;
    const yaml_char_t *anchor = NULL, *tag = NULL;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*docs > 1)
            return fail(name, line, 0, err, errlen, "a second document; a file holds one");
        return 0;
    case YAML_ALIAS_EVENT:
        return fail(name, line, 0, err, errlen, "aliases (*%s) are not supported",
                    (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        ++*depth;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        ++*depth;
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: --*depth; return 0;
    default: return 0;
    }
    if (*depth > YCONF_MAX_DEPTH)
        return fail(name, line, 0, err, errlen, "nested deeper than %d levels", YCONF_MAX_DEPTH);
    if (anchor)
        return fail(name, line, 0, err, errlen, "anchors (&%s) are not supported",
                    (const char *)anchor);
    if (tag)
        return fail(name, line, 0, err, errlen, "tags (%s) are not supported", (const char *)tag);
    return 0;
}

static int scan_events(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return err_set(err, errlen, "%s: out of memory", name);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int docs = 0, depth = 0, rc = 0;
    for (bool end = false; !end && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = parser_error(name, &p, text, len, err, errlen);
            break;
        }
        rc = check_event(name, &ev, &docs, &depth, err, errlen);
        end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return rc;
}

/* Mapping keys are scalars, each once. Errors point at the key's line. The
 * pairwise search is why mappings are kept small. */
static int check_keys(const struct yconf_node *n, const yaml_node_t *y, char *err, size_t errlen)
{
    struct yconf_node at = *n;
    if (y->data.mapping.pairs.top - y->data.mapping.pairs.start > YCONF_MAX_KEYS)
        return yconf_error(n, err, errlen, "more than %d keys", YCONF_MAX_KEYS);
    for (yaml_node_pair_t *a = y->data.mapping.pairs.start; a < y->data.mapping.pairs.top; a++) {
        yaml_node_t *k = key_node(n, a);
        at.line = node_line(k);
        if (k->type != YAML_SCALAR_NODE)
            return yconf_error(&at, err, errlen, "keys must be scalars");
        for (yaml_node_pair_t *b = y->data.mapping.pairs.start; b < a; b++) {
            yaml_node_t *first = key_node(n, b);
            if (first->type == YAML_SCALAR_NODE &&
                first->data.scalar.length == k->data.scalar.length &&
                memcmp(first->data.scalar.value, k->data.scalar.value, k->data.scalar.length) == 0)
                return yconf_error(&at, err, errlen, "duplicate key '%.64s' (first at line %d)",
                                   scalar_text(k), node_line(first));
        }
    }
    return 0;
}

/* Recursion is bounded: the event pass refused deeper trees. */
static int check_tree(const struct yconf_node *n, char *err, size_t errlen)
{
    yaml_node_t *y = node_of(n);
    struct yconf_node child;
    if (y->type == YAML_SEQUENCE_NODE) {
        yaml_node_item_t *items = y->data.sequence.items.start;
        for (size_t i = 0; items + i < y->data.sequence.items.top; i++) {
            node_below(n, items[i], NULL, i, &child);
            if (check_tree(&child, err, errlen) != 0)
                return -1;
        }
    } else if (y->type == YAML_MAPPING_NODE) {
        yaml_node_pair_t *p = y->data.mapping.pairs.start, *end = y->data.mapping.pairs.top;
        if (check_keys(n, y, err, errlen) != 0)
            return -1;
        for (; p < end; p++) {
            node_below(n, p->value, scalar_text(key_node(n, p)), 0, &child);
            if (check_tree(&child, err, errlen) != 0)
                return -1;
        }
    }
    return 0;
}

static int load_document(struct yconf *c, const char *text, size_t len, unsigned flags, char *err,
                         size_t errlen)
{
    if (scan_events(c->name, text, len, err, errlen) != 0)
        return -1;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return err_set(err, errlen, "%s: out of memory", c->name);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = 0;
    if (!yaml_parser_load(&p, &c->doc))
        rc = parser_error(c->name, &p, text, len, err, errlen);
    yaml_parser_delete(&p);
    if (rc != 0)
        return rc;
    yaml_node_t *root = yaml_document_get_root_node(&c->doc);
    if (!root || is_null(root)) {
        yaml_document_delete(&c->doc);
        if (!(flags & YCONF_ALLOW_EMPTY))
            return err_set(err, errlen, "%s: empty configuration", c->name);
        return 0;
    }
    c->loaded = true;
    struct yconf_node top;
    yconf_root(c, &top);
    return check_tree(&top, err, errlen);
}

int yconf_load_string(const char *name, const char *text, size_t len, unsigned flags,
                      struct yconf **out, char *err, size_t errlen)
{
    *out = NULL;
    if (len > YCONF_MAX_BYTES)
        return err_set(err, errlen, "%s: larger than 1 MiB", name);
    struct yconf *c = calloc(1, sizeof *c);
    if (!c || !(c->name = strdup(name))) {
        free(c);
        return err_set(err, errlen, "%s: out of memory", name);
    }
    if (load_document(c, text, len, flags, err, errlen) != 0) {
        yconf_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

/* The whole of a regular file of at most YCONF_MAX_BYTES. */
static int read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    const char *why = NULL;
    char *buf = NULL;
    size_t got = 0;
    if (fstat(fd, &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_size > YCONF_MAX_BYTES)
        why = "larger than 1 MiB";
    else if (!(buf = malloc((size_t)st.st_size + 1)))
        why = "out of memory";
    while (!why && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0)
            why = "the file shrank while being read";
        else if (errno != EINTR)
            why = strerror(errno);
    }
    close(fd);
    if (why) {
        free(buf);
        return err_set(err, errlen, "%s: cannot read: %s", path, why);
    }
    *text = buf;
    *len = got;
    return 0;
}

int yconf_load_file(const char *path, unsigned flags, struct yconf **out, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    if (read_file(path, &text, &len, err, errlen) != 0)
        return -1;
    int rc = yconf_load_string(path, text, len, flags, out, err, errlen);
    free(text);
    return rc;
}

void yconf_free(struct yconf *c)
{
    if (!c)
        return;
    if (c->loaded)
        yaml_document_delete(&c->doc);
    free(c->name);
    free(c);
}

/* ---- walking ---- */

void yconf_root(struct yconf *c, struct yconf_node *out)
{
    out->conf = c;
    out->index = c->loaded ? 1 : 0; /* libyaml's root is its first node */
    out->line = c->loaded ? node_line(node_of(out)) : 0;
    out->path[0] = '\0';
}

bool yconf_present(const struct yconf_node *n)
{
    return n->index != 0;
}

int yconf_required(const struct yconf_node *n, char *err, size_t errlen)
{
    return n->index ? 0 : yconf_error(n, err, errlen, "required");
}

/* "a, b, c" of a NULL-terminated list, cut to fit. */
static void join(const char *const *words, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; words[i] && used < outlen; i++) {
        int n = snprintf(out + used, outlen - used, "%s%s", i ? ", " : "", words[i]);
        used += n > 0 ? (size_t)n : 0;
    }
}

static bool known_key(const yaml_node_t *k, const char *const *known)
{
    for (size_t i = 0; known[i]; i++)
        if (scalar_is(k, known[i]))
            return true;
    return false;
}

int yconf_mapping(const struct yconf_node *n, const char *const *known, char *err, size_t errlen)
{
    yaml_node_t *y = node_of(n);
    if (!y)
        return YCONF_ABSENT;
    if (y->type != YAML_MAPPING_NODE)
        return type_error(n, y, "a mapping", err, errlen);
    for (yaml_node_pair_t *p = y->data.mapping.pairs.start; p < y->data.mapping.pairs.top; p++) {
        yaml_node_t *k = key_node(n, p);
        if (known_key(k, known))
            continue;
        char list[256];
        join(known, list, sizeof list);
        struct yconf_node at = *n;
        at.line = node_line(k);
        return yconf_error(&at, err, errlen, "unknown key '%.64s' (known: %s)", scalar_text(k),
                           list);
    }
    return 0;
}

void yconf_child(const struct yconf_node *map, const char *key, struct yconf_node *out)
{
    yaml_node_t *y = node_of(map);
    int index = 0;
    if (y && y->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *p = y->data.mapping.pairs.start; p < y->data.mapping.pairs.top; p++)
            if (scalar_is(key_node(map, p), key)) {
                index = p->value;
                break;
            }
    node_below(map, index, key, 0, out);
}

/* Items of a list, entries of a mapping; 0 for anything else. */
static size_t size_of(const yaml_node_t *y)
{
    if (y && y->type == YAML_SEQUENCE_NODE)
        return (size_t)(y->data.sequence.items.top - y->data.sequence.items.start);
    if (y && y->type == YAML_MAPPING_NODE)
        return (size_t)(y->data.mapping.pairs.top - y->data.mapping.pairs.start);
    return 0;
}

/* n must be a list or a mapping (type); *count is its size. */
static int collection(const struct yconf_node *n, yaml_node_type_t type, size_t *count, char *err,
                      size_t errlen)
{
    yaml_node_t *y = node_of(n);
    if (!y)
        return YCONF_ABSENT;
    if (y->type != type)
        return type_error(n, y, type == YAML_MAPPING_NODE ? "a mapping" : "a list", err, errlen);
    *count = size_of(y);
    return 0;
}

int yconf_entries(const struct yconf_node *n, size_t *count, char *err, size_t errlen)
{
    return collection(n, YAML_MAPPING_NODE, count, err, errlen);
}

void yconf_entry(const struct yconf_node *map, size_t i, struct yconf_node *key,
                 struct yconf_node *value)
{
    yaml_node_t *y = node_of(map);
    const yaml_node_pair_t *p = NULL;
    if (y && y->type == YAML_MAPPING_NODE && i < size_of(y))
        p = &y->data.mapping.pairs.start[i];
    /* Keys are scalars (checked at load); the path shows them as text. */
    const char *name = p ? scalar_text(key_node(map, p)) : "?";
    struct yconf_node parent = *map; /* key or value may be map */
    node_below(&parent, p ? p->key : 0, name, 0, key);
    node_below(&parent, p ? p->value : 0, name, 0, value);
}

int yconf_sequence(const struct yconf_node *n, size_t *count, char *err, size_t errlen)
{
    return collection(n, YAML_SEQUENCE_NODE, count, err, errlen);
}

void yconf_item(const struct yconf_node *seq, size_t i, struct yconf_node *out)
{
    yaml_node_t *y = node_of(seq);
    bool ok = y && y->type == YAML_SEQUENCE_NODE && i < size_of(y);
    node_below(seq, ok ? y->data.sequence.items.start[i] : 0, NULL, i, out);
}

/* The scalar with a value at n, or an error saying what was expected. */
static int scalar(const struct yconf_node *n, const char *expected, yaml_node_t **out, char *err,
                  size_t errlen)
{
    yaml_node_t *y = node_of(n);
    if (!y)
        return YCONF_ABSENT;
    if (y->type != YAML_SCALAR_NODE || is_null(y))
        return type_error(n, y, expected, err, errlen);
    *out = y;
    return 0;
}

int yconf_string(const struct yconf_node *n, size_t maxlen, const char **out, char *err,
                 size_t errlen)
{
    char expected[64];
    snprintf(expected, sizeof expected, "a string of 1..%zu characters", maxlen);
    yaml_node_t *y;
    int rc = scalar(n, expected, &y, err, errlen);
    if (rc != 0)
        return rc;
    size_t len = y->data.scalar.length;
    if (len == 0 || len > maxlen)
        return type_error(n, y, expected, err, errlen);
    for (size_t i = 0; i < len; i++)
        if (y->data.scalar.value[i] < ' ' || y->data.scalar.value[i] == 0x7f)
            return yconf_error(n, err, errlen, "control characters are not allowed");
    *out = scalar_text(y);
    return 0;
}

/* Decimal digits only, no leading zero, no overflow. */
static bool parse_decimal(const yaml_node_t *y, uint64_t *out)
{
    const unsigned char *s = y->data.scalar.value;
    size_t len = y->data.scalar.length;
    uint64_t v = 0;
    if (len == 0 || (s[0] == '0' && len > 1))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (s[i] - '0')) / 10)
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int yconf_u64(const struct yconf_node *n, uint64_t min, uint64_t max, uint64_t *out, char *err,
              size_t errlen)
{
    char expected[64];
    snprintf(expected, sizeof expected, "an integer %llu..%llu", (unsigned long long)min,
             (unsigned long long)max);
    yaml_node_t *y;
    uint64_t v;
    int rc = scalar(n, expected, &y, err, errlen);
    if (rc != 0)
        return rc;
    if (!is_plain(y) || !parse_decimal(y, &v) || v < min || v > max)
        return type_error(n, y, expected, err, errlen);
    *out = v;
    return 0;
}

int yconf_bool(const struct yconf_node *n, bool *out, char *err, size_t errlen)
{
    yaml_node_t *y;
    int rc = scalar(n, "true or false", &y, err, errlen);
    if (rc != 0)
        return rc;
    if (!is_plain(y) || !(scalar_is(y, "true") || scalar_is(y, "false")))
        return type_error(n, y, "true or false", err, errlen);
    *out = scalar_is(y, "true");
    return 0;
}

int yconf_strings(const struct yconf_node *n, size_t maxlen, size_t max_items, const char ***out,
                  size_t *count, char *err, size_t errlen)
{
    size_t len = 0;
    int rc = yconf_sequence(n, &len, err, errlen);
    if (rc != 0)
        return rc;
    if (len > max_items)
        return yconf_error(n, err, errlen, "at most %zu items, got %zu", max_items, len);
    const char **v = NULL;
    if (len && !(v = calloc(len, sizeof *v)))
        return yconf_error(n, err, errlen, "out of memory");
    for (size_t i = 0; i < len; i++) {
        struct yconf_node item;
        yconf_item(n, i, &item);
        if (yconf_string(&item, maxlen, &v[i], err, errlen) != 0) {
            free(v);
            return -1;
        }
    }
    *out = v;
    *count = len;
    return 0;
}

int yconf_opt_string(const struct yconf_node *map, const char *key, const char **out, char *err,
                     size_t errlen)
{
    struct yconf_node n;
    yconf_child(map, key, &n);
    return yconf_string(&n, 4095, out, err, errlen) < 0 ? -1 : 0;
}

int yconf_opt_u64(const struct yconf_node *map, const char *key, uint64_t min, uint64_t max,
                  uint64_t *out, char *err, size_t errlen)
{
    struct yconf_node n;
    yconf_child(map, key, &n);
    return yconf_u64(&n, min, max, out, err, errlen) < 0 ? -1 : 0;
}
