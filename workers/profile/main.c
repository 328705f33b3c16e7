/* The profile worker. Its commands come with their issue; until then it runs,
 * declares its queue and answers every command with the contract's error for
 * an unknown command. */
#include "shared/worker.h"

static const struct bk_command commands[] = {
    {NULL, NULL, 0, 0},
};

int main(int argc, char **argv)
{
    return bk_worker_main("profile", commands, NULL, argc, argv);
}
