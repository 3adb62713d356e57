/*
 * validate.h - the Execute request's own checks, made before policy sees it:
 * the size of code and stdin, the runtime, the shape of every text field and
 * the range of every limit. Each refusal names the field; the caller gets it
 * as INVALID_ARGUMENT. What a caller may have (runtimes, limits, scopes and
 * audiences granted) is policy's business: PERMISSION_DENIED.
 */
#ifndef AIRLOCK_BROKER_VALIDATE_H
#define AIRLOCK_BROKER_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "airlock/v1/broker.pb-c.h"

/* Defaults of max_code_bytes / max_stdin_bytes (config keys and flags). */
#define VALIDATE_DEFAULT_MAX_CODE_BYTES (1u << 20)
#define VALIDATE_DEFAULT_MAX_STDIN_BYTES (1u << 20)
/* code + stdin must leave room for the rest of the request within gRPC's
 * maximum receive message size (4 MiB; larger is RESOURCE_EXHAUSTED before
 * any handler runs), so that the caps above are what a caller meets. */
#define VALIDATE_GRPC_MAX_MESSAGE (4u << 20)
#define VALIDATE_MAX_PAYLOAD_BYTES (VALIDATE_GRPC_MAX_MESSAGE - (64u << 10))

#define VALIDATE_RUNTIME_MAX 32         /* bytes of a runtime name */
#define VALIDATE_RUNTIMES "python3, sh" /* the known runtimes, as refusals list them */
#define VALIDATE_MAX_LIST_ITEMS 16      /* scopes, audiences */
#define VALIDATE_MAX_WORD_LEN 256       /* a scope, an audience */
#define VALIDATE_MAX_REQUEST_ID_LEN 128 /* client_request_id */

/* Below these no runtime starts: a request asking less is refused, and so is
 * a policy default below them (execute.c). */
#define MIN_MEMORY_BYTES (16u << 20)
#define MIN_DISK_BYTES (64u << 10)
#define MIN_OPEN_FILES 16u

/* Above these a limit is absurd on any machine (memory: above its RAM). */
#define VALIDATE_MAX_TIME_MS 86400000u          /* timeout_ms, cpu_ms: a day */
#define VALIDATE_MAX_PIDS 4194304u              /* the kernel's PID_MAX_LIMIT */
#define VALIDATE_MAX_BYTES (1ull << 40)         /* output_bytes, disk_bytes, memory: 1 TiB */
#define VALIDATE_MAX_OPEN_FILES 1048576u        /* the kernel's default fs.nr_open */

struct request_caps {
    uint64_t max_code_bytes;  /* code: 1..this many bytes */
    uint64_t max_stdin_bytes; /* stdin: 0..this many bytes */
    uint64_t host_ram_bytes;  /* limits.memory_bytes ceiling; 0: unknown (1 TiB) */
};

/* The machine's physical memory in bytes, 0 if unknown. */
uint64_t validate_host_ram_bytes(void);

/* Checks req against caps. 0, or -1 with msg "field: why" (never echoing
 * bytes that are not printable ASCII). A zero limit means "the policy
 * default" and is always accepted. */
int validate_execute_request(const Airlock__V1__ExecuteRequest *req,
                             const struct request_caps *caps, char *msg, size_t msglen);

#endif
