/* The notify worker: password reset, password changed and welcome mails,
 * once per event (the subscriber's inbox), delayed but never dropped while
 * the mail server is down. */
#include "shared/config.h"
#include "shared/mail.h"
#include "workers/notify/notify.h"

/* Exactly the events bound to notify.events (bk_amqp_subscriptions; the
 * runtime checks the two agree at start). */
static const struct bk_event_handler handlers[] = {
    {"user.password_reset_requested", notify_password_reset},
    {"user.password_changed", notify_password_changed},
    {"user.registered", notify_welcome},
    {NULL, NULL},
};

static int init(void)
{
    if (bk_mail_init() != 0)
        return -1;
    return notify_templates_load();
}

int main(int argc, char **argv)
{
    int rc = bk_subscriber_main("notify", handlers, init, argc, argv);
    notify_templates_free();
    bk_mail_cleanup();
    return rc;
}
