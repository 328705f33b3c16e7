/* /api/asyncapi.json: the AMQP side of the contract as AsyncAPI 3.0, from the
 * same declarations as /api/openapi.json (shared/contract.h) and the
 * broker's names (shared/amqp.h). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "shared/amqp.h"
#include "shared/contract.h"
#include "workers/bridge/openapi.h"
#include "workers/bridge/schema.h"

#define REFS "#/components/schemas/"

static const char DESCRIPTION[] =
    "Commands, replies and events of the backend over RabbitMQ (AMQP 0-9-1); the HTTP bridge "
    "(/api/openapi.json) is one client of these commands. Every body is MessagePack "
    "(content_type application/msgpack).\n\n"
    "Calling a command: publish to the topic exchange backend.commands with routing key = the "
    "command name, persistent (delivery_mode 2) and mandatory, with message_id (a UUID: the "
    "idempotency key; the same message_id twice has its effect once and gets the first reply "
    "again), correlation_id, reply_to (your reply queue, or amq.rabbitmq.reply-to; absent: "
    "fire-and-forget) and optionally expiration (ms; an expired command is not run). Body: "
    "{v: 1, auth: <access JWT, without 'Bearer '> or nil, args: {...}}. The reply, on reply_to "
    "with the same correlation_id, is {status: <HTTP status>, body: <the JSON body as "
    "MessagePack>}.\n\n"
    "A routing key that no queue serves: the broker returns the command (basic.return, reply "
    "code 312 NO_ROUTE) to a mandatory publisher, which must treat it as 'no worker for this "
    "command' (the bridge answers 503 at once); a non-mandatory publish is silently dropped.\n\n"
    "Delivery guarantees: commands are at-least-once (a worker acks after its transaction "
    "commits and its reply is sent; a redelivered write is answered from the inbox by "
    "message_id, never run twice). Read commands travel a classic queue per worker "
    "(<worker>.reads, no quorum log) and run at most once per publish: a read delivered again "
    "(the worker copy holding it died) is not run but answered {status: 503, retry: true}, "
    "and one whose queue's broker node died gets no reply; publish it again (the bridge does "
    "so once for a GET). Events are published after the transaction that caused "
    "them commits, never before and never lost after (transactional outbox, publisher "
    "confirms), at least once: de-duplicate by the event id (also the message_id). Events of "
    "one command keep their order; events of different commands, workers or worker copies "
    "have no order between them, and a retried publish may come after a later event: use "
    "occurred_at and the resource's own state, not arrival order.\n\n"
    "Dead letters: a command that cannot be decoded, or that failed max_deliveries times "
    "(default 5), is dead-lettered through backend.dlx to the queue backend.dead; a caller "
    "with reply_to gets a 400 (undecodable) or 500 reply first.";

/* The AMQP channel binding of a routing key on exchange. */
static json_t *exchange_binding(const char *exchange)
{
    return json_pack("{s:{s:s, s:{s:s, s:s, s:b, s:b, s:s}, s:s}}", "amqp", "is", "routingKey",
                     "exchange", "name", exchange, "type", "topic", "durable", 1, "autoDelete", 0,
                     "vhost", "/", "bindingVersion", "0.3.0");
}

static json_t *queue_binding(const char *queue, bool durable)
{
    return json_pack("{s:{s:s, s:{s:s, s:b, s:b, s:b, s:s}, s:s}}", "amqp", "is", "queue", "queue",
                     "name", queue, "durable", durable, "exclusive", !durable, "autoDelete",
                     !durable, "vhost", "/", "bindingVersion", "0.3.0");
}

static json_t *ref(const char *kind, const char *name)
{
    char buf[200];
    snprintf(buf, sizeof buf, "#/%s/%s", kind, name);
    return json_pack("{s:s}", "$ref", buf);
}

/* "order.place" -> "OrderPlace" */
static void camel(const char *s, const char *suffix, char *out, size_t n)
{
    size_t o = 0;
    bool up = true;
    for (; *s && o + 1 < n; s++) {
        if (*s == '.' || *s == '_') {
            up = true;
            continue;
        }
        out[o++] = up && *s >= 'a' && *s <= 'z' ? (char)(*s - 'a' + 'A') : *s;
        up = false;
    }
    snprintf(out + o, n - o, "%s", suffix);
}

/* The AMQP properties of a command, as the message's headers schema. */
static json_t *command_properties(void)
{
    static const char schema[] =
        "{\"type\":\"object\",\"description\":\"AMQP basic properties (not table headers) of a "
        "command\",\"required\":[\"message_id\"],\"properties\":{"
        "\"message_id\":{\"type\":\"string\",\"format\":\"uuid\",\"description\":\"The "
        "idempotency key\"},"
        "\"correlation_id\":{\"type\":\"string\",\"description\":\"Copied into the reply\"},"
        "\"reply_to\":{\"type\":\"string\",\"description\":\"Where the reply goes; absent: no "
        "reply\"},"
        "\"expiration\":{\"type\":\"string\",\"pattern\":\"^[0-9]+$\",\"description\":"
        "\"Milliseconds; an expired command is not run\"},"
        "\"content_type\":{\"type\":\"string\",\"const\":\"application/msgpack\"},"
        "\"delivery_mode\":{\"type\":\"integer\",\"const\":2}}}";
    return json_loads(schema, 0, NULL);
}

static json_t *reply_body(const struct bk_reply_decl *rd)
{
    char buf[160];
    switch (rd->shape) {
    case BK_R_ONE:
        return ref("components/schemas", rd->body->name);
    case BK_R_PAGE:
        snprintf(buf, sizeof buf, "Paginated%sList", rd->body->name);
        return ref("components/schemas", buf);
    case BK_R_RAW:
        return json_pack("{s:s, s:{s:{s:s}, s:{s:s, s:s}, s:{s:s}}}", "type", "object",
                         "properties", "content_type", "type", "string", "data", "type", "string",
                         "contentEncoding", "binary", "etag", "type", "string");
    case BK_R_EMPTY:
        break;
    }
    return json_pack("{s:s}", "type", "null");
}

/* {status, body} for each declared status, and the runtime's own refusals. */
static json_t *reply_schema(const struct bk_command_decl *d)
{
    json_t *one_of = json_array();
    for (const struct bk_reply_decl *rd = d->replies; rd->status; rd++)
        json_array_append_new(one_of, json_pack("{s:s, s:s, s:[s,s], s:{s:{s:i}, s:o}}", "type",
                                                "object", "description", rd->doc, "required",
                                                "status", "body", "properties", "status", "const",
                                                rd->status, "body", reply_body(rd)));
    json_array_append_new(
        one_of,
        json_pack("{s:s, s:s, s:[s,s], s:{s:{s:s, s:[i,i,i,i,i]}, s:o}}", "type", "object",
                  "description",
                  "Refused by the runtime: 400 undecodable, 401 no or a bad token, 403 "
                  "not permitted, 500 failed max_deliveries times, 503 database down",
                  "required", "status", "body", "properties", "status", "type", "integer", "enum",
                  400, 401, 403, 500, 503, "body", ref("components/schemas", "Detail")));
    return json_pack("{s:s, s:o}", "description", "The reply", "oneOf", one_of);
}

char *br_asyncapi_json(void)
{
    json_t *channels = json_object(), *operations = json_object(), *messages = json_object();
    json_t *schemas = json_object();
    char name[160], msg[160];

    for (const struct bk_repr *const *r = bk_contract_reprs; *r; r++)
        json_object_set_new(schemas, (*r)->name, br_schema_repr(*r, REFS));

    for (const struct bk_command_decl *d = bk_contract_commands; d->name; d++) {
        for (const struct bk_reply_decl *rd = d->replies; rd->status; rd++)
            if (rd->shape == BK_R_PAGE) {
                char item[160];
                snprintf(name, sizeof name, "Paginated%sList", rd->body->name);
                snprintf(item, sizeof item, REFS "%s", rd->body->name);
                json_object_set_new(schemas, name, br_schema_page(item));
            }
        camel(d->name, "Args", name, sizeof name);
        json_t *args =
            br_schema_args(d, (d->flags & BK_C_PARTIAL) ? BR_PATCH : BR_ARGS, true, REFS);
        if (d->flags & BK_C_PARTIAL) { /* path args stay required over AMQP */
            json_decref(args);
            args = br_schema_args(d, BR_ARGS, true, REFS);
            json_object_del(args, "required");
            if (bk_contract_arg(d, "id"))
                json_object_set_new(args, "required", json_pack("[s]", "id"));
        }
        json_object_set_new(schemas, name, args);

        camel(d->name, "Command", msg, sizeof msg);
        json_object_set_new(
            messages, msg,
            json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:[s,s,s], s:{s:{s:i}, s:{s:[s,s], s:s}, "
                      "s:o}}, s:{s:s}, s:{s:{s:s, s:s}}}",
                      "name", d->name, "title", d->name, "contentType", "application/msgpack",
                      "headers", command_properties(), "payload", "type", "object", "required", "v",
                      "auth", "args", "properties", "v", "const", 1, "auth", "type", "string",
                      "null", "description",
                      "An access token (the JWT alone, no 'Bearer '), or nil", "args",
                      ref("components/schemas", name), "correlationId", "location",
                      "$message.header#/correlation_id", "bindings", "amqp", "messageType", d->name,
                      "bindingVersion", "0.3.0"));
        camel(d->name, "Reply", name, sizeof name);
        json_object_set_new(messages, name,
                            json_pack("{s:s, s:s, s:o, s:{s:s}}", "name", name, "contentType",
                                      "application/msgpack", "payload", reply_schema(d),
                                      "correlationId", "location",
                                      "$message.header#/correlation_id"));

        json_t *cm = json_object();
        json_object_set_new(cm, msg, ref("components/messages", msg));
        json_object_set_new(channels, d->name,
                            json_pack("{s:s, s:s, s:o, s:o}", "address", d->name, "description",
                                      "Routing key on backend.commands", "messages", cm, "bindings",
                                      exchange_binding(BK_EX_COMMANDS)));
        char reply_ch[160];
        snprintf(reply_ch, sizeof reply_ch, "%s.reply", d->name);
        json_t *rm = json_object();
        json_object_set_new(rm, name, ref("components/messages", name));
        json_object_set_new(channels, reply_ch,
                            json_pack("{s:n, s:s, s:o}", "address", "description",
                                      "The caller's reply_to queue (default exchange)", "messages",
                                      rm));
        char ch_ref[256];
        snprintf(ch_ref, sizeof ch_ref, "#/channels/%s", d->name);
        char rch_ref[256];
        snprintf(rch_ref, sizeof rch_ref, "#/channels/%s", reply_ch);
        char m_ref[512];
        snprintf(m_ref, sizeof m_ref, "#/channels/%s/messages/%s", d->name, msg);
        char rm_ref[512];
        snprintf(rm_ref, sizeof rm_ref, "#/channels/%s/messages/%s", reply_ch, name);
        json_object_set_new(
            operations, d->name,
            json_pack("{s:s, s:{s:s}, s:[{s:s}], s:{s:{s:b, s:i, s:s}}, s:{s:{s:s}, s:{s:s}, "
                      "s:[{s:s}]}}",
                      "action", "send", "channel", "$ref", ch_ref, "messages", "$ref", m_ref,
                      "bindings", "amqp", "mandatory", 1, "deliveryMode", 2, "bindingVersion",
                      "0.3.0", "reply", "address", "location", "$message.header#/reply_to",
                      "channel", "$ref", rch_ref, "messages", "$ref", rm_ref));
    }

    /* the event envelope, then one channel and one message per event */
    json_object_set_new(
        schemas, "EventEnvelope",
        json_pack("{s:s, s:[s,s,s,s,s], s:{s:{s:i}, s:{s:s}, s:{s:s, s:s}, s:{s:s, s:s}, "
                  "s:{s:s}}}",
                  "type", "object", "required", "v", "event", "id", "occurred_at", "data",
                  "properties", "v", "const", 1, "event", "type", "string", "id", "type", "string",
                  "format", "uuid", "occurred_at", "type", "string", "format", "date-time", "data",
                  "type", "object"));
    /* who caused it (shared/outbox.h bk_event_actor): the audit trail reads it */
    json_object_set_new(
        json_object_get(json_object_get(schemas, "EventEnvelope"), "properties"), "actor",
        json_pack("{s:s, s:s, s:{s:{s:[s,s]}, s:{s:[s,s]}, s:{s:s, s:[s,s,s]}}}", "type", "object",
                  "description",
                  "Who caused the event: the token's user or service, and the channel",
                  "properties", "user_id", "type", "integer", "null", "service", "type", "string",
                  "null", "channel", "type", "string", "enum", "http", "amqp", "cli"));
    for (const struct bk_event_decl *e = bk_contract_events; e->name; e++) {
        camel(e->name, "Event", msg, sizeof msg);
        char data_ref[200];
        snprintf(data_ref, sizeof data_ref, REFS "%s", e->data->name);
        json_object_set_new(
            messages, msg,
            json_pack("{s:s, s:s, s:s, s:s, s:{s:[{s:s}, {s:{s:{s:s}, s:{s:s}}}]}, "
                      "s:{s:{s:s, s:s}}, s:{s:s, s:{s:{s:s, s:s, s:s}, s:{s:s, s:s}}}}",
                      "name", e->name, "title", e->name, "summary", e->doc, "contentType",
                      "application/msgpack", "payload", "allOf", "$ref", REFS "EventEnvelope",
                      "properties", "event", "const", e->name, "data", "$ref", data_ref, "bindings",
                      "amqp", "messageType", e->name, "bindingVersion", "0.3.0", "headers", "type",
                      "object", "properties", "message_id", "type", "string", "format", "uuid",
                      "description", "The event id", "type", "type", "string", "description",
                      "The event name"));
        json_t *em = json_object();
        json_object_set_new(em, msg, ref("components/messages", msg));
        json_object_set_new(channels, e->name,
                            json_pack("{s:s, s:s, s:o, s:o}", "address", e->name, "description",
                                      "Routing key on backend.events (bind with it, or a pattern "
                                      "such as order.#)",
                                      "messages", em, "bindings", exchange_binding(BK_EX_EVENTS)));
        char ch_ref[200], m_ref[512];
        snprintf(ch_ref, sizeof ch_ref, "#/channels/%s", e->name);
        snprintf(m_ref, sizeof m_ref, "#/channels/%s/messages/%s", e->name, msg);
        snprintf(name, sizeof name, "on.%s", e->name);
        json_object_set_new(operations, name,
                            json_pack("{s:s, s:{s:s}, s:[{s:s}]}", "action", "receive", "channel",
                                      "$ref", ch_ref, "messages", "$ref", m_ref));
    }

    /* the dead-letter path */
    json_object_set_new(messages, "DeadLetter",
                        json_pack("{s:s, s:s, s:s, s:{s:s}}", "name", "DeadLetter", "summary",
                                  "A command or event as it was published, with x-death "
                                  "headers; replayed by backendctl replay-dead-letters",
                                  "contentType", "application/msgpack", "payload", "type",
                                  "object"));
    json_object_set_new(channels, "backend.dead",
                        json_pack("{s:s, s:s, s:{s:o}, s:o}", "address", BK_Q_DEAD, "description",
                                  "Dead letters: backend.dlx (topic) bound with # to this queue",
                                  "messages", "DeadLetter",
                                  ref("components/messages", "DeadLetter"), "bindings",
                                  queue_binding(BK_Q_DEAD, true)));
    json_object_set_new(operations, "on.backend.dead",
                        json_pack("{s:s, s:{s:s}, s:[{s:s}]}", "action", "receive", "channel",
                                  "$ref", "#/channels/backend.dead", "messages", "$ref",
                                  "#/channels/backend.dead/messages/DeadLetter"));

    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:s, s:{s:{s:s, s:s, s:s, s:s}}, s:o, s:o, s:{s:o, s:o}}",
        "asyncapi", "3.0.0", "info", "title", "Backend commands and events", "version", "1.0.0",
        "description", DESCRIPTION, "defaultContentType", "application/msgpack", "servers",
        "rabbitmq", "host", "127.0.0.1:5672", "protocol", "amqp", "protocolVersion", "0.9.1",
        "description",
        "The broker (amqp_nodes in config/backend.conf; each service has its "
        "own identity: backendctl service-account)",
        "channels", channels, "operations", operations, "components", "schemas", schemas,
        "messages", messages);
    if (!doc)
        return NULL;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}
