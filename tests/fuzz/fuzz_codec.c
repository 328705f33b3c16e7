/* libFuzzer harness: any bytes through the bounded decoder and, when they
 * decode, through the JSON conversion the bridge applies to replies,
 * through every argument reader, and as the args of every declared command
 * through the runtime's validation and the typed values handlers read. */
#include <stddef.h>
#include <stdint.h>

#include "shared/codec.h"
#include "shared/contract.h"
#include "shared/json.h"
#include "shared/worker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_unpacked u;
    const char *why;
    if (bk_codec_unpack((const char *)data, size, &u, &why) == 0) {
        json_t *j = bk_json_from_msgpack(&u.data);
        json_decref(j);
        struct bk_call *c = bk_call_new(&u.data);
        static const char *const keys[] = {"", "a", "id", "page", "price", NULL};
        for (int i = 0; keys[i]; i++) {
            int64_t v;
            bool b;
            size_t n;
            struct bk_page p;
            bk_arg_str(c, keys[i], BK_REQUIRED, 5);
            bk_arg_int(c, keys[i], BK_OPTIONAL, -5, 5, &v);
            bk_arg_bool(c, keys[i], BK_OPTIONAL, &b);
            bk_arg_money(c, keys[i], BK_OPTIONAL, 10, 1, &v);
            bk_arg_id(c, keys[i]);
            bk_arg_bin(c, keys[i], BK_OPTIONAL, 16, &n);
            bk_page_args(c, &p);
        }
        bk_reply_invalid(c);
        bk_call_free(c);
        for (const struct bk_command_decl *d = bk_contract_commands; d->name; d++) {
            c = bk_call_new(&u.data);
            c->command = d->name;
            bk_call_validate(c);
            for (const struct bk_field *f = d->input ? d->input->fields : d->args; f && f->name;
                 f++) {
                int64_t v;
                bool b;
                size_t n;
                if (f->flags & BK_F_READ_ONLY)
                    continue;
                bk_in_str(c, f->name);
                bk_in_int(c, f->name, &v);
                bk_in_bool(c, f->name, &b);
                bk_in_bin(c, f->name, &n);
                bk_in_null(c, f->name);
            }
            bk_reply_invalid(c);
            bk_call_free(c);
        }
    }
    msgpack_unpacked_destroy(&u);
    return 0;
}
