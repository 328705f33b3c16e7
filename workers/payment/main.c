/* The payment worker: one payment per order, its status moved by staff or a
 * payment service. The tables and the Payment representation are in
 * schema/002_orders.sql (shared with the order worker). */
#include "workers/payment/payment.h"

static const struct bk_command commands[] = {
    {"payment.initiate", payment_initiate, BK_USER, BK_WRITE},
    {"payment.list", payment_list, BK_USER, BK_READ},
    {"payment.get", payment_get, BK_USER, BK_READ},
    {"payment.set_status", payment_set_status, BK_USER_OR_SERVICE, BK_WRITE},
    {NULL, NULL, 0, 0},
};

int main(int argc, char **argv)
{
    return bk_worker_main("payment", commands, NULL, argc, argv);
}
