/* The notify worker: mails users what happened to their account. A
 * subscriber of backend.events (shared/subscriber.h) with a handler per
 * event it mails; templates/mail/ holds the words. */
#ifndef NOTIFY_H
#define NOTIFY_H

#include "shared/subscriber.h"

/* One mail's templates: <name>.txt (first line "Subject: ...", a blank
 * line, the plain text) and <name>.html. */
enum notify_mail {
    NOTIFY_PASSWORD_RESET,
    NOTIFY_PASSWORD_CHANGED,
    NOTIFY_WELCOME,
    NOTIFY_N_MAILS,
};

/* The placeholders every template may use, in this order in values[]:
 * {site_name} {name} {username} {email} {reset_url} {expires_at} {how}
 * {when}. Those a mail does not know are "". */
extern const char *const notify_placeholders[];
#define NOTIFY_N_PLACEHOLDERS 8

/* Reads and checks every template (mail_template_dir). 0 or -1 (printed). */
int notify_templates_load(void);
void notify_templates_free(void);

/* Renders mail m with values (NOTIFY_N_PLACEHOLDERS of them) and sends it
 * to (to, to_name) through the mail backend, as ev's effect. */
enum bk_effect notify_send(struct bk_event *ev, enum notify_mail m, const char *to,
                           const char *to_name, const char *const *values);

enum bk_effect notify_password_reset(struct bk_event *ev);
enum bk_effect notify_password_changed(struct bk_event *ev);
enum bk_effect notify_welcome(struct bk_event *ev);

#endif
