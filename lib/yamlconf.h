/*
 * yamlconf.h - a typed walker over one libyaml document, for configuration
 * files. libyaml parses; this checks shapes and values and says where a
 * file is wrong: every error starts with "FILE:LINE:" and the dotted path of
 * the key, e.g.
 *
 *   broker.yaml:12: policy[1].limits.memory_mb: expected an integer 16..1048576, got "lots"
 *   broker.yaml:4: unknown key 'listne' (known: listen, tls, policy)
 *
 * Refused at load: syntax errors (FILE:LINE:COL), anchors, aliases and
 * explicit tags, more than one document, duplicate keys, keys that are not
 * scalars, nesting deeper than YCONF_MAX_DEPTH, mappings of more than
 * YCONF_MAX_KEYS keys, files over YCONF_MAX_BYTES, and an empty file unless
 * YCONF_ALLOW_EMPTY.
 *
 * Every getter returns 0 (found, *out set), YCONF_ABSENT (no such key; *out
 * untouched) or -1 (err set). Strings point into the loaded document and
 * live until yconf_free.
 */
#ifndef AIRLOCK_YAMLCONF_H
#define AIRLOCK_YAMLCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define YCONF_ABSENT 1
#define YCONF_MAX_BYTES (1u << 20) /* 1 MiB */
#define YCONF_MAX_DEPTH 32         /* lists and mappings, one in another */
#define YCONF_MAX_KEYS 1024        /* in one mapping */
#define YCONF_PATH_LEN 256

/* yconf_load_* flags */
#define YCONF_ALLOW_EMPTY 1u /* an empty file loads, and its root is absent */

struct yconf; /* one loaded file */

/* A place in the document. Plain data: copy it freely while its yconf lives;
 * a getter's output may be its input (yconf_child(&n, "k", &n)). */
struct yconf_node {
    struct yconf *conf;
    int index;                 /* libyaml node id; 0: absent */
    int line;                  /* 1-based; for an absent node, its mapping's line */
    char path[YCONF_PATH_LEN]; /* "policy[1].limits.memory_mb"; "" at the root */
};

int yconf_load_file(const char *path, unsigned flags, struct yconf **out, char *err, size_t errlen);
/* name is what messages call the text (a file name). */
int yconf_load_string(const char *name, const char *text, size_t len, unsigned flags,
                      struct yconf **out, char *err, size_t errlen);
void yconf_free(struct yconf *conf);

/* The document's top node (absent for an empty file). */
void yconf_root(struct yconf *conf, struct yconf_node *out);
bool yconf_present(const struct yconf_node *n);

/* "FILE:LINE: PATH: message" into err; returns -1. */
int yconf_error(const struct yconf_node *n, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "FILE:LINE: PATH: required" when n is absent, else 0. */
int yconf_required(const struct yconf_node *n, char *err, size_t errlen);

/* n must be a mapping whose keys are all in known (NULL-terminated). */
int yconf_mapping(const struct yconf_node *n, const char *const *known, char *err, size_t errlen);
/* The value of key in a mapping; absent when the key (or the mapping) is. */
void yconf_child(const struct yconf_node *map, const char *key, struct yconf_node *out);
/* A mapping whose keys are data (runtime: count): n must be a mapping;
 * *count is its number of keys. Entries: yconf_entry, 0-based, in file
 * order. The key node is a scalar to check with yconf_string; both nodes are
 * named map.KEY. Past the end, both are absent. */
int yconf_entries(const struct yconf_node *n, size_t *count, char *err, size_t errlen);
void yconf_entry(const struct yconf_node *map, size_t i, struct yconf_node *key,
                 struct yconf_node *value);

/* n must be a sequence; *count is its length. Items: yconf_item, 0-based. */
int yconf_sequence(const struct yconf_node *n, size_t *count, char *err, size_t errlen);
void yconf_item(const struct yconf_node *seq, size_t i, struct yconf_node *out);

/* Scalars. A string is 1..maxlen bytes without control characters; an
 * integer is decimal digits only (no sign, no leading zero) in [min, max];
 * a bool is plain true or false. Empty, ~ and null are no value. */
int yconf_string(const struct yconf_node *n, size_t maxlen, const char **out, char *err,
                 size_t errlen);
int yconf_u64(const struct yconf_node *n, uint64_t min, uint64_t max, uint64_t *out, char *err,
              size_t errlen);
int yconf_bool(const struct yconf_node *n, bool *out, char *err, size_t errlen);
/* A sequence of at most max_items strings, as yconf_string checks them.
 * *out is a malloc'd array (NULL when empty) for the caller to free. */
/* Optional values at key of a mapping: *out is left alone when the key is
 * absent (or the mapping is), so it can hold a default. 0, or -1 with err. */
int yconf_opt_string(const struct yconf_node *map, const char *key, const char **out, char *err,
                     size_t errlen);
int yconf_opt_u64(const struct yconf_node *map, const char *key, uint64_t min, uint64_t max,
                  uint64_t *out, char *err, size_t errlen);
int yconf_strings(const struct yconf_node *n, size_t maxlen, size_t max_items, const char ***out,
                  size_t *count, char *err, size_t errlen);

#endif
