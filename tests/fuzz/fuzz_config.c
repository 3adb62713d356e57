/*
 * fuzz_config.c - the broker's settings file: the input is the YAML, loaded
 * with broker_settings_load from a memfd (as /proc/self/fd/N), then checked,
 * and the policy it describes built and freed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "policy.h"

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
    return 0;
}
