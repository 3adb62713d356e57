/*
 * runtime.c - the runtime table: which interpreter runs a task's code, with
 * which arguments, and where the code is written inside the sandbox.
 * Paths are Debian's system interpreters, never whatever is first on PATH.
 */
#include <string.h>

#include "sandbox_internal.h"

/* python3's bootstrap: started with the sandbox, before any task exists.
 * Says ready (fd 4), waits for the go (fd 3: 'G' and the environment), then
 * runs /work/main.py as `python3 /work/main.py` would: a fresh __main__,
 * argv, and an uncaught exception printed without this frame, exit 1. */
static const char python_boot[] =
    "def _airlock_boot():\n"
    "    import os, sys\n"
    "    os.write(4, b'R'); os.close(4)\n"
    "    d = b''\n"
    "    while True:\n"
    "        c = os.read(3, 65536)\n"
    "        if not c: break\n"
    "        d += c\n"
    "    os.close(3)\n"
    "    if d[:1] != b'G': os._exit(126)\n"
    "    for kv in d[1:].split(b'\\0'):\n"
    "        if kv:\n"
    "            k, _, v = kv.partition(b'=')\n"
    "            os.environb[k] = v\n"
    "    p = '/work/main.py'\n"
    "    sys.argv[:] = [p]\n"
    "    m = type(sys)('__main__')\n"
    "    m.__file__ = p\n"
    "    m.__builtins__ = __builtins__\n"
    "    sys.modules['__main__'] = m\n"
    "    try:\n"
    "        with open(p, 'rb') as f:\n"
    "            code = compile(f.read(), p, 'exec')\n"
    "    except (SyntaxError, ValueError) as e:\n"
    "        e.__traceback__ = None\n"
    "        sys.excepthook(type(e), e, None); sys.exit(1)\n"
    "    try:\n"
    "        exec(code, m.__dict__)\n"
    "    except SystemExit:\n"
    "        raise\n"
    "    except BaseException as e:\n"
    "        e.__traceback__ = e.__traceback__.tb_next\n"
    "        sys.excepthook(type(e), e, e.__traceback__); sys.exit(1)\n"
    "_airlock_boot()\n";

/* -I isolated (no env, no user site, no cwd on sys.path), -B no .pyc,
 * -u unbuffered so output streams and survives a timeout kill. */
static const char *const python_boot_argv[] = {"python3", "-I", "-B", "-u", "-c", python_boot,
                                               NULL};

static const struct sbx_runtime runtimes[] = {
    /* Always through the bootstrap: the argv it stands for is
     * `python3 -I -B -u /work/main.py`. */
    {"python3", "/usr/bin/python3", {NULL}, "/work/main.py", python_boot_argv},
    {"sh", "/bin/sh", {"sh", "/work/main.sh", NULL}, "/work/main.sh", NULL},
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
