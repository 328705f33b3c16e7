/* JSON (jansson) <-> MessagePack (msgpack-c). The bridge transcodes request
 * and reply bodies with these; workers turn the JSON that PostgreSQL builds
 * (json_build_object) into MessagePack replies and events. */
#ifndef BK_JSON_H
#define BK_JSON_H

#include <jansson.h>
#include <msgpack.h>

/* Packs v. Integers become msgpack ints, reals float64, strings str.
 * Returns 0, or -1 when the tree is deeper than BK_CODEC_MAX_DEPTH. */
int bk_json_pack(msgpack_packer *pk, const json_t *v);

/* Parses text (len bytes, UTF-8) and packs it. Returns 0 or -1. */
int bk_json_pack_text(msgpack_packer *pk, const char *text, size_t len);

/* A new json_t for o (caller owns the reference), or NULL when o holds what
 * JSON cannot say: a map key that is not a string, an ext, or bin (bin is
 * refused: replies never carry raw bytes). */
json_t *bk_json_from_msgpack(const msgpack_object *o);

#endif
