/*
 * audit_cmd.h - the `airlock audit` verbs (audit_cmd.c: query, verify,
 * tokens), and the few helpers of main.c they share: JSON output, protobuf
 * to JSON, channels and the reporting of failed RPCs. (Not "audit.h": that
 * name is lib/audit.h, the chain library these verbs use.)
 */
#ifndef AIRLOCK_CLI_AUDIT_CMD_H
#define AIRLOCK_CLI_AUDIT_CMD_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "args.h"
#include "rpc.h"

#define CLI_UNARY_TIMEOUT_MS 10000

/* ---------------------------------------------------------- from main.c */

/* Prints json (stealing the reference) as one line, or indented, on stdout.
 * 0, or -1 (out of memory or write error, errno set). */
int cli_print_json(json_t *json, bool pretty);

/* Every field of msg, defaults included (oneof: only the member that is
 * set), keyed by the .proto field name; enums by value name. NULL on
 * allocation failure. */
json_t *cli_pb_to_json(const ProtobufCMessage *msg);

/* "airlock: CODE: message" on stderr, or with json the line
 * {"error":{"code":..,"message":..}} on stdout. Returns CLI_EXIT_UNAVAILABLE. */
int cli_rpc_failed(const struct rpc_status *st, bool json);

/* A channel to target (peer credentials for unix:, else mutual TLS from the
 * TLS options), or NULL after reporting why with cli_rpc_failed (*rc set). */
struct rpc_channel *cli_channel_or_fail(const struct cli_args *a, const char *target, bool json,
                                        int *rc);

/* ------------------------------------------------------ from audit_cmd.c */

/* Each returns the process exit code (enum cli_exit). a->since_ms and
 * a->until_ms must already be resolved. */
int cmd_audit_query(const struct cli_args *a);
int cmd_audit_verify(const struct cli_args *a);
int cmd_audit_tokens(const struct cli_args *a);

#endif
