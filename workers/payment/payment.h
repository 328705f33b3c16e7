/* The payment worker's handlers (one file per command group). */
#ifndef BK_PAYMENT_H
#define BK_PAYMENT_H

#include "shared/worker.h"

int payment_initiate(struct bk_call *c);
int payment_list(struct bk_call *c);
int payment_get(struct bk_call *c);
int payment_set_status(struct bk_call *c);

#endif
