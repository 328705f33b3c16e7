/* reply_to validation: the names RabbitMQ issues for direct reply-to and plain
 * queue names pass; anything the broker could choke on does not. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "shared/amqp.h"

/* one that RabbitMQ 3.10.8 issued to a pika consumer of amq.rabbitmq.reply-to */
#define REAL                                                                                       \
    "amq.rabbitmq.reply-to.g1h2AA5yZXBseUA2OTc4MDIxMgAAArEAAAAAawxHWg==.kAJLfq9ZzWdRJeRn++ZL0g=="

static bool ok(const char *s)
{
    return bk_amqp_reply_to_valid(s, strlen(s));
}

static void accepts_direct_reply_to_as_issued(void **state)
{
    assert_true(ok(REAL));
    /* PID_EXT with a small UTF-8 atom: \x83 g w \x05 a@b.c, ID, Serial, Creation(1) */
    assert_true(ok("amq.rabbitmq.reply-to.g2d3BWFAYi5jAAAAAQAAAAAB.a2V5"));
}

static void refuses_malformed_direct_reply_to(void **state)
{
    assert_false(ok("amq.rabbitmq.reply-to.x.y")); /* finding 1 */
    assert_false(ok("amq.rabbitmq.reply-to"));
    assert_false(ok("amq.rabbitmq.reply-to."));
    assert_false(ok("amq.rabbitmq.reply-to.g1h2AA5yZXBseUA2OTc4MDIxMgAAArEAAAAAawxHWg=="));
    assert_false(ok("amq.rabbitmq.reply-to.g1h2AA5yZXBseUA2OTc4MDIxMgAAArEAAAAAawxHWg==."));
    /* valid base64, not a pid: the atom 'ok' */
    assert_false(ok("amq.rabbitmq.reply-to.g2QAAm9r.a2V5"));
    /* a pid with one byte too many, and one too few */
    assert_false(ok("amq.rabbitmq.reply-to.g2d3BWFAYi5jAAAAAQAAAAABAA==.a2V5"));
    assert_false(ok("amq.rabbitmq.reply-to.g2d3BWFAYi5jAAAAAQAAAAA=.a2V5"));
    /* a node name without '@' */
    assert_false(ok("amq.rabbitmq.reply-to.g2d3BWFiY2RlAAAAAQAAAAAB.a2V5"));
    /* base64url is not what RabbitMQ issues; a third part neither */
    assert_false(ok("amq.rabbitmq.reply-to.g1h2AA5yZXBseUA2OTc4MDIxMgAAArEAAAAAawxHWg==."
                    "kAJLfq9ZzWdRJeRn--ZL0g=="));
    assert_false(ok(REAL ".x"));
}

static void accepts_plain_queue_names(void **state)
{
    assert_true(ok("billing.replies"));
    assert_true(ok("svc:replies-1_a"));
    assert_true(ok("amq.gen-JzTY20BRgKO-HjmUJj0wLg"));
}

static void refuses_other_names(void **state)
{
    assert_false(ok(""));
    assert_false(ok("amq.direct"));
    assert_false(ok("amq.gen-"));
    assert_false(ok("has space"));
    assert_false(ok("slash/name"));
    assert_false(ok("caf\xc3\xa9"));
    assert_false(bk_amqp_reply_to_valid("a\0b", 3));
    char name[300];
    memset(name, 'a', sizeof name);
    assert_true(bk_amqp_reply_to_valid(name, BK_AMQP_REPLY_TO_MAX));
    assert_false(bk_amqp_reply_to_valid(name, BK_AMQP_REPLY_TO_MAX + 1));
    assert_false(bk_amqp_reply_to_valid(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_direct_reply_to_as_issued),
        cmocka_unit_test(refuses_malformed_direct_reply_to),
        cmocka_unit_test(accepts_plain_queue_names),
        cmocka_unit_test(refuses_other_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
