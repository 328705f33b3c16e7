/* libFuzzer harness: any bytes as an HTTP request body through the bridge's
 * JSON-to-command transcoding (br_request_parse_json, then the envelope
 * br_request_pack builds), and the envelope back through the workers'
 * bounded decoder. Whatever the bridge accepts must pack, and what it packs
 * must decode: a body the bridge forwards is never one a worker refuses as
 * undecodable. Also the header readers the same request goes through. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/codec.h"
#include "workers/bridge/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *obj = NULL, *err = NULL;
    int rc = br_request_parse_json((const char *)data, size, &obj, &err);
    if (rc == 0) {
        if (!obj || !json_is_object(obj))
            abort();
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (br_request_pack(&sb, "tok", 3, obj, NULL) == 0) {
            msgpack_unpacked u;
            const char *why;
            if (bk_codec_unpack(sb.data, sb.size, &u, &why) != 0)
                abort(); /* the bridge forwarded what a worker cannot read */
            msgpack_unpacked_destroy(&u);
        }
        msgpack_sbuffer_destroy(&sb);
    } else if (!err) {
        abort(); /* a refusal always says why */
    }
    json_decref(obj);
    json_decref(err);

    /* the same bytes as header values */
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    const char *tok;
    size_t len;
    /* a token, when there is one, lies within the header value */
    if (br_request_bearer(s, &tok, &len) && len > 0 && (tok < s || tok + len > s + size))
        abort();
    br_request_header_ok(s, 255);
    br_request_body_kind(s);
    free(s);
    return 0;
}
