/* MessagePack decoding of untrusted bytes, bounded. msgpack-c trusts the
 * counts in its input (a 5-byte array header may claim 4 billion items and it
 * allocates for them), so every buffer is first walked by bk_codec_check,
 * which refuses anything deeper, longer or bigger than the limits, and only
 * then handed to msgpack_unpack. */
#ifndef BK_CODEC_H
#define BK_CODEC_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#define BK_CODEC_MAX_DEPTH 16
#define BK_CODEC_MAX_ITEMS 10000      /* elements of one array or pairs of one map */
#define BK_CODEC_MAX_TOTAL 100000     /* objects in one message */
#define BK_CODEC_MAX_BYTES (8u << 20) /* a whole message (5 MiB upload + envelope) */

/* Walks buf as exactly one MessagePack object with nothing after it. Returns 0
 * when it fits the limits, else -1 with *why set to a static reason. */
int bk_codec_check(const char *buf, size_t len, const char **why);

/* bk_codec_check, then msgpack_unpack into *out (caller calls
 * msgpack_unpacked_destroy whatever the result). Returns 0 or -1 with *why. */
int bk_codec_unpack(const char *buf, size_t len, msgpack_unpacked *out, const char **why);

/* The value stored under key in a map, or NULL (also when map is not a map). */
const msgpack_object *bk_codec_get(const msgpack_object *map, const char *key);

/* True when o is a str equal to s. */
bool bk_codec_str_eq(const msgpack_object *o, const char *s);

#endif
