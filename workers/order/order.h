/* The order worker's handlers (one file per command group). */
#ifndef BK_ORDER_H
#define BK_ORDER_H

#include "shared/worker.h"

int order_place(struct bk_call *c);
int order_list(struct bk_call *c);
int order_get(struct bk_call *c);
int order_set_status(struct bk_call *c);

#endif
