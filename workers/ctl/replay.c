/* backendctl replay-dead-letters: puts commands from backend.dead back on
 * backend.commands (after the cause was fixed: a database that was down for
 * five deliveries, a bug since deployed). Each keeps its message_id, so a
 * command that had in fact taken effect gets its stored reply and no second
 * effect. The broker's delivery bookkeeping (x-death, x-delivery-count) is
 * dropped so the worker counts afresh. A message leaves backend.dead only
 * after the broker confirmed its republication. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/amqp.h"
#include "shared/log.h"
#include "workers/ctl/ctl.h"

#define MAX_HEADERS 64

static bool is_bookkeeping(amqp_bytes_t key)
{
    static const char *const drop[] = {
        "x-death", "x-delivery-count", "x-first-death-exchange", "x-first-death-queue",
        "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue",
        "x-last-death-reason",
        /* the runtime's retry count: a replay
         * starts afresh (x-bk-publisher stays) */
        "x-bk-attempts", "x-bk-delays", "x-bk-first-failure", "x-bk-last-failure",
        "x-bk-last-error", "x-bk-retry-tier", NULL};
    for (int i = 0; drop[i]; i++)
        if (key.len == strlen(drop[i]) && memcmp(key.bytes, drop[i], key.len) == 0)
            return true;
    return false;
}

int ctl_replay_dead_letters(const struct ctl_args *a)
{
    long limit = ctl_opt_long(a, "limit", 1000);
    const char *prefix = ctl_opt(a, "command") ? ctl_opt(a, "command") : "";
    amqp_connection_state_t c = bk_amqp_connect("backendctl-replay", 0);
    if (!c) {
        fprintf(stderr, "replay: cannot reach the broker (is it running? check amqp_port, or "
                        "amqp_nodes)\n");
        return 1;
    }
    int rc = 1;
    long replayed = 0, kept = 0;
    uint64_t *skipped = calloc((size_t)limit, sizeof *skipped);
    if (!skipped) {
        bk_amqp_close(c);
        return 1;
    }
    amqp_confirm_select(c, 1);
    if (bk_amqp_check(amqp_get_rpc_reply(c), "confirm.select") != 0)
        goto out;
    uint64_t tag = 0;
    while (replayed + kept < limit) {
        amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(BK_Q_DEAD), 0);
        if (bk_amqp_check(r, "basic.get") != 0)
            goto out;
        if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
            break;
        amqp_basic_get_ok_t *ok = r.reply.decoded;
        uint64_t delivery = ok->delivery_tag;
        char key[256];
        bk_amqp_cstr(ok->routing_key, key, sizeof key);
        amqp_message_t m;
        if (bk_amqp_check(amqp_read_message(c, 1, &m, 0), "read message") != 0)
            goto out;
        if (strncmp(key, prefix, strlen(prefix)) != 0) {
            /* not asked for: held unacked (so basic.get moves past it) and
             * handed back when we are done */
            skipped[kept++] = delivery;
            amqp_destroy_message(&m);
            continue;
        }
        amqp_basic_properties_t p = m.properties;
        amqp_table_entry_t headers[MAX_HEADERS];
        int n = 0;
        if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
            for (int i = 0; i < p.headers.num_entries && n < MAX_HEADERS; i++)
                if (!is_bookkeeping(p.headers.entries[i].key))
                    headers[n++] = p.headers.entries[i];
            p.headers.entries = headers;
            p.headers.num_entries = n;
        }
        /* the caller is long gone: no reply, and no expiry that would make
         * the worker drop it again */
        p._flags &= ~(amqp_flags_t)(AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG);
        /* mandatory, as every command we publish: a key no queue serves
         * comes back instead of vanishing (CONTRACT: basic.return) */
        int pub = amqp_basic_publish(c, 1, amqp_cstring_bytes(BK_EX_COMMANDS),
                                     amqp_cstring_bytes(key), 1, 0, &p, m.body);
        amqp_destroy_message(&m);
        int confirmed = pub == AMQP_STATUS_OK ? bk_amqp_wait_confirms(c, 1, ++tag, 5000) : -1;
        if (confirmed != 0) {
            fprintf(stderr, "replay: %s %s; it stays in %s\n", key,
                    confirmed > 0 ? "has no queue (returned by the broker)" : "publishing failed",
                    BK_Q_DEAD);
            goto out;
        }
        amqp_basic_ack(c, 1, delivery, 0);
        printf("replay: %s\n", key);
        replayed++;
    }
    printf("replay: %ld replayed, %ld left in %s\n", replayed, kept, BK_Q_DEAD);
    rc = 0;
out:
    for (long i = 0; i < kept; i++)
        amqp_basic_reject(c, 1, skipped[i], 1);
    free(skipped);
    bk_amqp_close(c);
    return rc;
}
