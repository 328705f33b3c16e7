/* The order worker: place, list, read and move orders through their states.
 * The tables and the Order representation are in schema/002_orders.sql. */
#include "workers/order/order.h"

static const struct bk_command commands[] = {
    {"order.place", order_place, BK_USER, BK_WRITE},
    {"order.list", order_list, BK_USER, BK_READ},
    {"order.get", order_get, BK_USER, BK_READ},
    {"order.set_status", order_set_status, BK_USER, BK_WRITE},
    {NULL, NULL, 0, 0},
};

int main(int argc, char **argv)
{
    return bk_worker_main("order", commands, NULL, argc, argv);
}
