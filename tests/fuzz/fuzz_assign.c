/*
 * fuzz_assign.c - the sandbox init's decoding of its task: the input is what
 * the supervisor writes on the assignment pipe (struct sbx_assign_header,
 * code_len bytes of code, env_len bytes of environment). It goes through
 * the init's checks (sbx_assign_check, for a sandbox prepared with the
 * default disk size), and, if they pass, the environment through the go
 * message to sbx_build_envp, as worker/init.c does without the pipes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox_internal.h"

/* gen_corpus.py writes headers with this layout */
_Static_assert(sizeof(struct sbx_assign_header) == 80, "update gen_corpus.py's header layout");

static struct sbx_plan plan; /* large (the init's scratch): not on the stack */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sbx_assign_header h;
    if (size < sizeof h)
        return 0;
    memcpy(&h, data, sizeof h);
    data += sizeof h;
    size -= sizeof h;
    if (sbx_assign_check(&h, SBX_DEFAULT_DISK) != 0)
        return 0;
    /* the code goes to /work as it is: only its length matters here */
    if (h.code_len > size)
        return 0; /* the pipe ends early: "reading the code" */
    data += h.code_len;
    size -= (size_t)h.code_len;
    if (h.env_len > size)
        return 0;
    /* the go message, 'G' and the environment, read by the task into
     * env_buf; one that fills it is refused there (_exit 126) */
    if ((size_t)h.env_len + 1 >= sizeof plan.env_buf)
        return 0;
    plan.env_buf[0] = 'G';
    memcpy(plan.env_buf + 1, data, h.env_len);
    sbx_build_envp(&plan, plan.env_buf + 1, h.env_len);

    /* envp: NULL-terminated within its array, every entry a string that
     * ends inside the blob or is one of the base environment's */
    size_t n = 0;
    const char *blob = plan.env_buf + 1, *end = blob + h.env_len;
    for (; plan.envp[n]; n++) {
        if (n == sizeof plan.envp / sizeof plan.envp[0] - 1)
            abort();
        const char *s = plan.envp[n];
        if (s >= blob && s < end && memchr(s, '\0', (size_t)(end - s)) == NULL)
            abort();
        if ((s < blob || s >= end) && strchr(s, '=') == NULL)
            abort(); /* not from the blob: must be a base entry */
    }
    return 0;
}
