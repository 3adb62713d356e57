/*
 * test_yamlconf.c - cmocka tests for the YAML configuration walker
 * (lib/yamlconf.c): typed getters and their ranges, the exact
 * "FILE:LINE: path: message" of every error, what loading refuses (syntax,
 * anchors, aliases, tags, second documents, duplicate keys, depth, size),
 * empty files, files on disk, and mappings walked entry by entry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "yamlconf.h"

/* ---- helpers ---- */

static void assert_has(const char *text, const char *want)
{
    if (!strstr(text, want))
        fail_msg("\"%s\" does not contain \"%s\"", text, want);
}

static struct yconf *load(const char *text)
{
    struct yconf *c = NULL;
    char err[512] = "";
    if (yconf_load_string("b.yaml", text, strlen(text), 0, &c, err, sizeof err) != 0)
        fail_msg("load failed: %s", err);
    return c;
}

/* Loading text fails with exactly want. */
static void load_fails(const char *text, const char *want)
{
    struct yconf *c = (struct yconf *)1;
    char err[512] = "";
    assert_int_equal(yconf_load_string("b.yaml", text, strlen(text), 0, &c, err, sizeof err), -1);
    assert_null(c);
    assert_string_equal(err, want);
}

/* The value of top-level key in text, for one getter call. */
struct fixture {
    struct yconf *conf;
    struct yconf_node node;
    char err[512];
};

static void child_of_root(struct fixture *f, const char *text, const char *key)
{
    f->conf = load(text);
    f->err[0] = '\0';
    struct yconf_node root;
    yconf_root(f->conf, &root);
    yconf_child(&root, key, &f->node);
}

/* yconf_u64 on "v: <value>" in [min, max]: its return; *out set on 0. */
static int u64_of(const char *value, uint64_t min, uint64_t max, uint64_t *out, char *err,
                  size_t errlen)
{
    char text[256];
    struct fixture f;
    snprintf(text, sizeof text, "v: %s\n", value);
    child_of_root(&f, text, "v");
    int rc = yconf_u64(&f.node, min, max, out, f.err, sizeof f.err);
    snprintf(err, errlen, "%s", f.err);
    yconf_free(f.conf);
    return rc;
}

/* ---- getters ---- */

static void test_typed_getters(void **state)
{
    (void)state;
    struct yconf *c = load("# broker\n"
                           "listen: /run/airlock/broker.sock\n"
                           "workers: 8\n"
                           "verbose: true\n"
                           "quiet: false\n"
                           "tags: [a, \"b c\", 'd']\n"
                           "tls:\n"
                           "  cert: /etc/airlock/cert.pem\n"
                           "rules:\n"
                           "  - name: one\n"
                           "  - name: two\n");
    static const char *const keys[] = {"listen", "workers", "verbose", "quiet",
                                       "tags",   "tls",     "rules",   NULL};
    char err[256] = "";
    struct yconf_node root, n, item, leaf;
    yconf_root(c, &root);
    assert_true(yconf_present(&root));
    assert_int_equal(root.line, 2);
    assert_string_equal(root.path, "");
    assert_int_equal(yconf_mapping(&root, keys, err, sizeof err), 0);

    const char *s;
    yconf_child(&root, "listen", &n);
    assert_int_equal(yconf_string(&n, 64, &s, err, sizeof err), 0);
    assert_string_equal(s, "/run/airlock/broker.sock");
    assert_string_equal(n.path, "listen");
    assert_int_equal(n.line, 2);

    uint64_t v = 0;
    yconf_child(&root, "workers", &n);
    assert_int_equal(yconf_u64(&n, 1, 64, &v, err, sizeof err), 0);
    assert_int_equal(v, 8);

    bool b = false;
    yconf_child(&root, "verbose", &n);
    assert_int_equal(yconf_bool(&n, &b, err, sizeof err), 0);
    assert_true(b);
    yconf_child(&root, "quiet", &n);
    assert_int_equal(yconf_bool(&n, &b, err, sizeof err), 0);
    assert_false(b);

    const char **list = NULL;
    size_t count = 0;
    yconf_child(&root, "tags", &n);
    assert_int_equal(yconf_strings(&n, 16, 8, &list, &count, err, sizeof err), 0);
    assert_int_equal(count, 3);
    assert_string_equal(list[0], "a");
    assert_string_equal(list[1], "b c");
    assert_string_equal(list[2], "d");
    free(list);

    yconf_child(&root, "tls", &n);
    assert_int_equal(yconf_mapping(&n, (const char *const[]){"cert", "key", NULL}, err, sizeof err),
                     0);
    yconf_child(&n, "cert", &leaf);
    assert_string_equal(leaf.path, "tls.cert");
    assert_int_equal(leaf.line, 8);
    yconf_child(&n, "key", &leaf); /* absent: fine, and keeps the mapping's line */
    assert_false(yconf_present(&leaf));
    assert_int_equal(leaf.line, 8);
    assert_int_equal(yconf_string(&leaf, 64, &s, err, sizeof err), YCONF_ABSENT);
    assert_int_equal(yconf_required(&leaf, err, sizeof err), -1);
    assert_string_equal(err, "b.yaml:8: tls.key: required");

    yconf_child(&root, "rules", &n);
    assert_int_equal(yconf_sequence(&n, &count, err, sizeof err), 0);
    assert_int_equal(count, 2);
    yconf_item(&n, 1, &item);
    assert_string_equal(item.path, "rules[1]");
    assert_int_equal(item.line, 11);
    yconf_child(&item, "name", &leaf);
    assert_string_equal(leaf.path, "rules[1].name");
    assert_int_equal(yconf_string(&leaf, 8, &s, err, sizeof err), 0);
    assert_string_equal(s, "two");
    yconf_item(&n, 2, &item); /* past the end: absent */
    assert_false(yconf_present(&item));

    /* Absent keys: every getter says so and leaves its output alone. */
    yconf_child(&root, "nothing", &n);
    v = 77;
    assert_int_equal(yconf_u64(&n, 0, 9, &v, err, sizeof err), YCONF_ABSENT);
    assert_int_equal(v, 77);
    assert_int_equal(yconf_bool(&n, &b, err, sizeof err), YCONF_ABSENT);
    assert_int_equal(yconf_mapping(&n, keys, err, sizeof err), YCONF_ABSENT);
    assert_int_equal(yconf_sequence(&n, &count, err, sizeof err), YCONF_ABSENT);
    assert_int_equal(yconf_strings(&n, 8, 8, &list, &count, err, sizeof err), YCONF_ABSENT);
    /* A child of a scalar is absent too. */
    yconf_child(&root, "listen", &n);
    yconf_child(&n, "x", &leaf);
    assert_false(yconf_present(&leaf));
    yconf_free(c);
}

static void test_integers(void **state)
{
    (void)state;
    char err[512];
    uint64_t v;
    assert_int_equal(u64_of("0", 0, 10, &v, err, sizeof err), 0);
    assert_int_equal(v, 0);
    assert_int_equal(u64_of("16", 16, 1048576, &v, err, sizeof err), 0);
    assert_int_equal(v, 16);
    assert_int_equal(u64_of("1048576", 16, 1048576, &v, err, sizeof err), 0);
    assert_int_equal(u64_of("18446744073709551615", 0, UINT64_MAX, &v, err, sizeof err), 0);
    assert_true(v == UINT64_MAX);

    static const char *const bad[] = {
        "lots", "-1", "+1", "0x10", "1.5", "1e3", "010", "1_000", "12ms", "\"64\"", "'64'",
        "18446744073709551616", "99999999999999999999999", "15", "1048577"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 42;
        if (u64_of(bad[i], 16, 1048576, &v, err, sizeof err) != -1)
            fail_msg("%s was accepted", bad[i]);
        assert_int_equal(v, 42);
        assert_has(err, "b.yaml:1: v: expected an integer 16..1048576, got ");
    }
    assert_int_equal(u64_of("lots", 16, 1048576, &v, err, sizeof err), -1);
    assert_string_equal(err, "b.yaml:1: v: expected an integer 16..1048576, got \"lots\"");
    assert_int_equal(u64_of("\"64\"", 16, 1048576, &v, err, sizeof err), -1);
    assert_string_equal(err, "b.yaml:1: v: expected an integer 16..1048576, got \"64\" (quoted)");
    assert_int_equal(u64_of("[1]", 0, 9, &v, err, sizeof err), -1);
    assert_string_equal(err, "b.yaml:1: v: expected an integer 0..9, got a list");
    assert_int_equal(u64_of("~", 0, 9, &v, err, sizeof err), -1);
    assert_string_equal(err, "b.yaml:1: v: expected an integer 0..9, got no value");
}

static void test_bools_and_strings(void **state)
{
    (void)state;
    struct fixture f;
    bool b;
    const char *s;
    static const char *const not_bools[] = {"v: yes\n", "v: True\n", "v: 1\n", "v: \"true\"\n",
                                            "v: on\n"};
    for (size_t i = 0; i < sizeof not_bools / sizeof not_bools[0]; i++) {
        child_of_root(&f, not_bools[i], "v");
        assert_int_equal(yconf_bool(&f.node, &b, f.err, sizeof f.err), -1);
        assert_has(f.err, "b.yaml:1: v: expected true or false, got ");
        yconf_free(f.conf);
    }

    /* Strings: 1..maxlen bytes, no control characters; empty, ~ and null
     * are no value. */
    static const struct {
        const char *text, *err;
    } bad[] = {
        {"a: 1\nv: too-long-string\n",
         "b.yaml:2: v: expected a string of 1..8 characters, got \"too-long-string\""},
        {"v: \"\"\n", "b.yaml:1: v: expected a string of 1..8 characters, got \"\" (quoted)"},
        {"v:\n", "b.yaml:1: v: expected a string of 1..8 characters, got no value"},
        {"v: ~\n", "b.yaml:1: v: expected a string of 1..8 characters, got no value"},
        {"v: null\n", "b.yaml:1: v: expected a string of 1..8 characters, got no value"},
        {"v: NULL\n", "b.yaml:1: v: expected a string of 1..8 characters, got no value"},
        {"v: \"a\\tb\"\n", "b.yaml:1: v: control characters are not allowed"},
        {"v: \"a\\0b\"\n", "b.yaml:1: v: control characters are not allowed"}, /* NUL */
        {"v:\n  k: 1\n", "b.yaml:2: v: expected a string of 1..8 characters, got a mapping"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        child_of_root(&f, bad[i].text, "v");
        assert_int_equal(yconf_string(&f.node, 8, &s, f.err, sizeof f.err), -1);
        assert_string_equal(f.err, bad[i].err);
        yconf_free(f.conf);
    }
    child_of_root(&f, "v: \"null\"\n", "v"); /* quoted, a string */
    assert_int_equal(yconf_string(&f.node, 8, &s, f.err, sizeof f.err), 0);
    assert_string_equal(s, "null");
    yconf_free(f.conf);

    /* A long value is cut in the message. */
    child_of_root(&f, "v: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", "v");
    assert_int_equal(yconf_u64(&f.node, 0, 1, &(uint64_t){0}, f.err, sizeof f.err), -1);
    assert_has(f.err, "got \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"");
    yconf_free(f.conf);
}

static void test_lists(void **state)
{
    (void)state;
    struct fixture f;
    const char **list = (const char **)1;
    size_t count = 9;
    child_of_root(&f, "v: []\n", "v");
    assert_int_equal(yconf_strings(&f.node, 8, 4, &list, &count, f.err, sizeof f.err), 0);
    assert_int_equal(count, 0);
    assert_null(list);
    yconf_free(f.conf);

    child_of_root(&f, "v: [a, b, c]\n", "v");
    assert_int_equal(yconf_strings(&f.node, 8, 2, &list, &count, f.err, sizeof f.err), -1);
    assert_string_equal(f.err, "b.yaml:1: v: at most 2 items, got 3");
    yconf_free(f.conf);

    child_of_root(&f, "v:\n  - a\n  - [b]\n", "v");
    assert_int_equal(yconf_strings(&f.node, 8, 8, &list, &count, f.err, sizeof f.err), -1);
    assert_string_equal(f.err, "b.yaml:3: v[1]: expected a string of 1..8 characters, got a list");
    yconf_free(f.conf);

    child_of_root(&f, "v: a\n", "v");
    assert_int_equal(yconf_sequence(&f.node, &count, f.err, sizeof f.err), -1);
    assert_string_equal(f.err, "b.yaml:1: v: expected a list, got \"a\"");
    yconf_free(f.conf);

    child_of_root(&f, "v: [a]\n", "v");
    assert_int_equal(yconf_mapping(&f.node, (const char *const[]){NULL}, f.err, sizeof f.err), -1);
    assert_string_equal(f.err, "b.yaml:1: v: expected a mapping, got a list");
    yconf_free(f.conf);
}

/* ---- what loading and walking refuse ---- */

static void test_unknown_keys(void **state)
{
    (void)state;
    static const char *const keys[] = {"listen", "tls", "policy", NULL};
    char err[512];
    struct yconf *c = load("listen: /s\n"
                           "tls: {}\n"
                           "\n"
                           "listne: /t\n");
    struct yconf_node root, n, item;
    yconf_root(c, &root);
    assert_int_equal(yconf_mapping(&root, keys, err, sizeof err), -1);
    assert_string_equal(err, "b.yaml:4: unknown key 'listne' (known: listen, tls, policy)");
    yconf_free(c);

    c = load("policy:\n"
             "  - name: a\n"
             "    limits:\n"
             "      memory_mb: 5\n"
             "      memroy_mb: 6\n");
    yconf_root(c, &root);
    yconf_child(&root, "policy", &n);
    yconf_item(&n, 0, &item);
    yconf_child(&item, "limits", &n);
    assert_int_equal(yconf_mapping(&n, (const char *const[]){"memory_mb", NULL}, err, sizeof err),
                     -1);
    assert_string_equal(err,
                        "b.yaml:5: policy[0].limits: unknown key 'memroy_mb' (known: memory_mb)");
    yconf_free(c);

    /* The file's bytes reach the message without control characters. */
    c = load("\"x\\e[31my\": 1\n");
    yconf_root(c, &root);
    assert_int_equal(yconf_mapping(&root, keys, err, sizeof err), -1);
    assert_string_equal(err, "b.yaml:1: unknown key 'x?[31my' (known: listen, tls, policy)");
    yconf_free(c);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    load_fails("a: 1\nb: 2\na: 3\n", "b.yaml:3: duplicate key 'a' (first at line 1)");
    load_fails("policy:\n"
               "  - name: a\n"
               "    runtimes: [sh]\n"
               "    name: b\n",
               "b.yaml:4: policy[0]: duplicate key 'name' (first at line 2)");
    load_fails("x: {k: 1, k: 2}\n", "b.yaml:1: x: duplicate key 'k' (first at line 1)");
    /* Keys must be scalars. */
    load_fails("? [a]\n: 1\n", "b.yaml:1: keys must be scalars");
    load_fails("m:\n  {a: 1}: 2\n", "b.yaml:2: m: keys must be scalars");
}

static void test_refused_constructs(void **state)
{
    (void)state;
    load_fails("a: &x 1\nb: *x\n", "b.yaml:1: anchors (&x) are not supported");
    load_fails("a:\n  - *x\n", "b.yaml:2: aliases (*x) are not supported");
    load_fails("a: !!str 1\n", "b.yaml:1: tags (tag:yaml.org,2002:str) are not supported");
    load_fails("a: !custom {}\n", "b.yaml:1: tags (!custom) are not supported");
    load_fails("a: 1\n---\na: 2\n", "b.yaml:2: a second document; a file holds one");
    load_fails("---\na: 1\n...\n---\n", "b.yaml:4: a second document; a file holds one");

    /* Nesting. */
    char deep[256] = "";
    for (int i = 0; i < YCONF_MAX_DEPTH + 1; i++)
        strcat(deep, "[");
    for (int i = 0; i < YCONF_MAX_DEPTH + 1; i++)
        strcat(deep, "]");
    struct yconf *c = NULL;
    char err[512];
    assert_int_equal(yconf_load_string("b.yaml", deep, strlen(deep), 0, &c, err, sizeof err), -1);
    assert_has(err, "nested deeper than 32 levels");
    deep[YCONF_MAX_DEPTH] = '\0'; /* 32 opening brackets ... */
    strcat(deep, "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    assert_int_equal(yconf_load_string("b.yaml", deep, strlen(deep), 0, &c, err, sizeof err), 0);
    yconf_free(c);

    /* The limits stop libyaml early: its time grows with the square of the
     * depth, and the duplicate search with the square of a mapping's size. */
    size_t half = YCONF_MAX_BYTES / 2;
    char *big = malloc(2 * half);
    assert_non_null(big);
    memset(big, '[', half);
    memset(big + half, ']', half);
    assert_int_equal(yconf_load_string("b.yaml", big, 2 * half, 0, &c, err, sizeof err), -1);
    assert_string_equal(err, "b.yaml:1: nested deeper than 32 levels");
    size_t len = 0;
    for (int i = 0; i <= YCONF_MAX_KEYS; i++)
        len += (size_t)snprintf(big + len, 2 * half - len, "k%d: 1\n", i);
    assert_int_equal(yconf_load_string("b.yaml", big, len, 0, &c, err, sizeof err), -1);
    assert_string_equal(err, "b.yaml:1: more than 1024 keys");
    len = 0;
    for (int i = 0; i < YCONF_MAX_KEYS; i++)
        len += (size_t)snprintf(big + len, 2 * half - len, "k%d: 1\n", i);
    assert_int_equal(yconf_load_string("b.yaml", big, len, 0, &c, err, sizeof err), 0);
    yconf_free(c);
    free(big);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    load_fails("a: 1\nb: [1\n",
               "b.yaml:3:1: did not find expected ',' or ']' (while parsing a flow "
               "sequence at line 2)");
    load_fails("a: b: c\n", "b.yaml:1:5: mapping values are not allowed in this context");
    load_fails("a: x\n\tb: y\n", "b.yaml:2:1: found a tab character that violates indentation "
                                 "(while scanning a plain scalar at line 1)");
    load_fails("a: 1\nb: \"x\xff\"\n", "b.yaml:2:6: invalid leading UTF-8 octet");
}

static void test_empty(void **state)
{
    (void)state;
    static const char *const empties[] = {"", "# only a comment\n\n", "---\n", "~\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        const char *t = empties[i];
        struct yconf *c = NULL;
        char err[256] = "";
        assert_int_equal(yconf_load_string("b.yaml", t, strlen(t), 0, &c, err, sizeof err), -1);
        assert_string_equal(err, "b.yaml: empty configuration");
        assert_int_equal(
            yconf_load_string("b.yaml", t, strlen(t), YCONF_ALLOW_EMPTY, &c, err, sizeof err), 0);
        struct yconf_node root, n;
        yconf_root(c, &root);
        assert_false(yconf_present(&root));
        yconf_child(&root, "policy", &n);
        assert_false(yconf_present(&n));
        assert_int_equal(yconf_mapping(&root, (const char *const[]){NULL}, err, sizeof err),
                         YCONF_ABSENT);
        yconf_free(c);
    }
    yconf_free(NULL);
}

static void test_files(void **state)
{
    (void)state;
    char path[] = "/tmp/airlock-test-yamlconf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char text[] = "listen: /s\nworkers: many\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));

    struct yconf *c = NULL;
    char err[512], want[512];
    assert_int_equal(yconf_load_file(path, 0, &c, err, sizeof err), 0);
    struct yconf_node root, n;
    uint64_t v;
    yconf_root(c, &root);
    yconf_child(&root, "workers", &n);
    assert_int_equal(yconf_u64(&n, 1, 9, &v, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:2: workers: expected an integer 1..9, got \"many\"", path);
    assert_string_equal(err, want);
    yconf_free(c);

    /* A syntax error names the file, line and column. */
    assert_int_equal(write(fd, "x: [\n", 5), 5);
    assert_int_equal(yconf_load_file(path, 0, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:4:1:", path);
    assert_has(err, want);

    /* Larger than 1 MiB. */
    assert_int_equal(ftruncate(fd, YCONF_MAX_BYTES + 1), 0);
    assert_int_equal(yconf_load_file(path, 0, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: cannot read: larger than 1 MiB", path);
    assert_string_equal(err, want);
    assert_int_equal(close(fd), 0);
    assert_int_equal(unlink(path), 0);

    assert_int_equal(yconf_load_file(path, 0, &c, err, sizeof err), -1);
    assert_has(err, "cannot open: No such file or directory");
    assert_null(c);
    assert_int_equal(yconf_load_file("/tmp", 0, &c, err, sizeof err), -1);
    assert_string_equal(err, "/tmp: cannot read: not a regular file");
}

static void test_error_helper(void **state)
{
    (void)state;
    struct yconf *c = load("a:\n  b: [x, y]\n");
    struct yconf_node root, n, item;
    char err[64];
    yconf_root(c, &root);
    yconf_child(&root, "a", &n);
    yconf_child(&n, "b", &n);
    yconf_item(&n, 1, &item);
    assert_int_equal(yconf_error(&item, err, sizeof err, "no %s here", "y"), -1);
    assert_string_equal(err, "b.yaml:2: a.b[1]: no y here");
    /* Messages are cut to the buffer, and a NULL buffer is fine. */
    char small[8];
    yconf_error(&item, small, sizeof small, "long message");
    assert_string_equal(small, "b.yaml:");
    assert_int_equal(yconf_error(&item, NULL, 0, "x"), -1);
    yconf_free(c);

    /* A path too long to hold ends in "...". */
    char text[600], key[300];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    snprintf(text, sizeof text, "a:\n  %s: 1\n", key);
    c = load(text);
    yconf_root(c, &root);
    yconf_child(&root, "a", &n);
    yconf_child(&n, key, &item);
    assert_true(yconf_present(&item));
    assert_int_equal(strlen(item.path), YCONF_PATH_LEN - 1);
    assert_string_equal(item.path + YCONF_PATH_LEN - 4, "...");
    yconf_free(c);
}

/* Mappings whose keys are data: walked in file order, named map.KEY. */
static void test_entries(void **state)
{
    (void)state;
    const char *text = "pool:\n  sh: 2\n  \"py\": 3\nempty: {}\nlist: [1]\n";
    struct yconf *c = load(text);
    struct yconf_node root, n, key, value;
    char err[512] = "";
    const char *s;
    uint64_t v;
    size_t count = 99;
    yconf_root(c, &root);
    yconf_child(&root, "pool", &n);
    assert_int_equal(yconf_entries(&n, &count, err, sizeof err), 0);
    assert_int_equal(count, 2);
    yconf_entry(&n, 1, &key, &value);
    assert_string_equal(key.path, "pool.py");
    assert_string_equal(value.path, "pool.py");
    assert_int_equal(key.line, 3);
    assert_int_equal(yconf_string(&key, 8, &s, err, sizeof err), 0);
    assert_string_equal(s, "py");
    assert_int_equal(yconf_u64(&value, 0, 9, &v, err, sizeof err), 0);
    assert_int_equal(v, 3);
    yconf_entry(&n, 0, &key, &value);
    assert_int_equal(yconf_string(&key, 8, &s, err, sizeof err), 0);
    assert_string_equal(s, "sh");
    assert_int_equal(yconf_u64(&value, 0, 9, &v, err, sizeof err), 0);
    assert_int_equal(v, 2);
    yconf_entry(&n, 2, &key, &value); /* past the end: absent */
    assert_false(yconf_present(&key));
    assert_false(yconf_present(&value));
    /* The output may be the mapping itself. */
    yconf_entry(&n, 0, &key, &n);
    assert_string_equal(n.path, "pool.sh");
    assert_int_equal(yconf_u64(&n, 0, 9, &v, err, sizeof err), 0);

    yconf_child(&root, "empty", &n);
    assert_int_equal(yconf_entries(&n, &count, err, sizeof err), 0);
    assert_int_equal(count, 0);
    yconf_child(&root, "nothing", &n);
    assert_int_equal(yconf_entries(&n, &count, err, sizeof err), YCONF_ABSENT);
    yconf_child(&root, "list", &n);
    assert_int_equal(yconf_entries(&n, &count, err, sizeof err), -1);
    assert_string_equal(err, "b.yaml:5: list: expected a mapping, got a list");
    yconf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typed_getters),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_bools_and_strings),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_refused_constructs),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_error_helper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
