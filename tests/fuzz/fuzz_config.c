/*
 * fuzz_config.c - the daemons' settings files. The input is the YAML: the
 * broker's, loaded with broker_settings_load from a memfd (as
 * /proc/self/fd/N), then checked, and the policy it describes built and
 * freed; then the same text as credd reads its file (credd/main.c's
 * load_file is static: its walk is every yconf getter, plus the shared
 * audit section, on every node the document has).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "audit_rpc.h"
#include "config.h"
#include "policy.h"
#include "yamlconf.h"

/* Every getter on n, then on its entries or items (YCONF_MAX_DEPTH bounds
 * the recursion: the loader refuses deeper documents). */
static void walk(const struct yconf_node *n)
{
    static const char *const none[] = {NULL};
    char err[512];
    const char *str = NULL, **strs = NULL;
    uint64_t u;
    bool b;
    size_t count = 0;
    (void)yconf_string(n, 253, &str, err, sizeof err);
    (void)yconf_u64(n, 1, 86400, &u, err, sizeof err);
    (void)yconf_bool(n, &b, err, sizeof err);
    if (yconf_strings(n, 255, 16, &strs, &count, err, sizeof err) == 0)
        free(strs);
    (void)yconf_required(n, err, sizeof err);
    (void)yconf_mapping(n, none, err, sizeof err);
    if (yconf_entries(n, &count, err, sizeof err) == 0) {
        for (size_t i = 0; i < count; i++) {
            struct yconf_node key, value;
            yconf_entry(n, i, &key, &value);
            const char *name = NULL;
            if (yconf_string(&key, 64, &name, err, sizeof err) == 0) {
                struct yconf_node child;
                yconf_child(n, name, &child);
                (void)yconf_opt_string(n, name, &str, err, sizeof err);
                (void)yconf_opt_u64(n, name, 0, UINT64_MAX, &u, err, sizeof err);
            }
            walk(&value);
        }
    } else if (yconf_sequence(n, &count, err, sizeof err) == 0) {
        for (size_t i = 0; i < count; i++) {
            struct yconf_node item;
            yconf_item(n, i, &item);
            walk(&item);
        }
    }
}

static void credd_walk(const uint8_t *data, size_t size)
{
    struct yconf *conf = NULL;
    char err[512];
    if (yconf_load_string("credd.yaml", (const char *)data, size, 0, &conf, err, sizeof err) < 0)
        return;
    struct yconf_node root, audit;
    yconf_root(conf, &root);
    walk(&root);
    yconf_child(&root, "audit", &audit);
    struct audit_settings as = {NULL, NULL, false, AUDIT_DEFAULT_CHECKPOINT_S};
    (void)audit_settings_load(&audit, NULL, &as, err, sizeof err);
    yconf_free(conf);
}

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fd = memfd_create("fuzz_config", MFD_CLOEXEC);
        if (fd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (size > (256u << 10))
        return 0;
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
        abort();

    struct broker_settings s;
    char err[512];
    broker_settings_init(&s);
    if (broker_settings_load(&s, path, err, sizeof err) == 0) {
        (void)broker_settings_check(&s, err, sizeof err);
        struct policy *p = NULL;
        if (broker_settings_policy(&s, 1000, &p, err, sizeof err) == 0)
            policy_free(p);
    }
    broker_settings_free(&s);
    credd_walk(data, size);
    return 0;
}
