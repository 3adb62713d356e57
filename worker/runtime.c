/*
 * runtime.c - the runtime table: which interpreter runs a task's code, with
 * which arguments, and where the code is written inside the sandbox.
 * Paths are Debian's system interpreters, never whatever is first on PATH.
 */
#include <string.h>

#include "sandbox_internal.h"

static const struct sbx_runtime runtimes[] = {
    /* -I isolated (no env, no user site, no cwd on sys.path), -B no .pyc,
     * -u unbuffered so output streams and survives a timeout kill. */
    {"python3", "/usr/bin/python3", {"python3", "-I", "-B", "-u", "/work/main.py", NULL},
     "/work/main.py"},
    {"sh", "/bin/sh", {"sh", "/work/main.sh", NULL}, "/work/main.sh"},
};

const struct sbx_runtime *sbx_runtime_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof runtimes / sizeof runtimes[0]; i++)
        if (strcmp(runtimes[i].name, name) == 0)
            return &runtimes[i];
    return NULL;
}

int sandbox_runtime_known(const char *runtime)
{
    return sbx_runtime_find(runtime) != NULL;
}
