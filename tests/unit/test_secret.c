/* The server secret: the key file and its rotation, keyed message ids and
 * fingerprints, and sealed replies that open only in their own row. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/secret.h"
#include "shared/util.h"

static struct bk_secret_key key_of(unsigned char fill)
{
    struct bk_secret_key k;
    memset(&k, 0, sizeof k);
    snprintf(k.kid, sizeof k.kid, "%02x%02x%02x%02x", fill, fill, fill, fill);
    memset(k.key, fill, sizeof k.key);
    return k;
}

static void message_ids_are_keyed_and_scoped(void **state)
{
    struct bk_secret_key a = key_of(1), b = key_of(2);
    char id1[37], id2[37], id3[37], id4[37], id5[37];
    bk_secret_message_id(&a, "user:1", "POST /api/orders\nk", 18, id1);
    bk_secret_message_id(&a, "user:1", "POST /api/orders\nk", 18, id2);
    bk_secret_message_id(&a, "user:2", "POST /api/orders\nk", 18, id3);
    bk_secret_message_id(&b, "user:1", "POST /api/orders\nk", 18, id4);
    /* scope and name do not run into each other */
    bk_secret_message_id(&a, "user:1P", "OST /api/orders\nk", 17, id5);
    assert_string_equal(id1, id2);
    assert_string_not_equal(id1, id3);
    assert_string_not_equal(id1, id4);
    assert_string_not_equal(id1, id5);
    assert_true(bk_uuid_valid(id1, strlen(id1)));
    assert_int_equal(id1[14], '8'); /* version 8 */
    /* not the unkeyed derivation it replaces */
    char old[37];
    bk_uuid_name("user:1", "POST /api/orders\nk", 18, old);
    assert_string_not_equal(id1, old);
}

static void fingerprints_are_keyed(void **state)
{
    struct bk_secret_key a = key_of(1), b = key_of(2);
    const char args[] = "\x81\xa8password\xa6secret";
    unsigned char f1[BK_SECRET_FP_LEN], f2[BK_SECRET_FP_LEN], f3[BK_SECRET_FP_LEN],
        f4[BK_SECRET_FP_LEN], sha[crypto_hash_sha256_BYTES];
    bk_secret_fingerprint(&a, "auth.login", "anon", args, sizeof args - 1, f1);
    bk_secret_fingerprint(&b, "auth.login", "anon", args, sizeof args - 1, f2);
    bk_secret_fingerprint(&a, "auth.login", "user:1", args, sizeof args - 1, f3);
    bk_secret_fingerprint(&a, "auth.login", "anon", args, sizeof args - 1, f4);
    assert_memory_equal(f1, f4, sizeof f1);
    assert_memory_not_equal(f1, f2, sizeof f1);
    assert_memory_not_equal(f1, f3, sizeof f1);
    crypto_hash_sha256(sha, (const unsigned char *)args, sizeof args - 1);
    assert_memory_not_equal(f1, sha, sizeof f1);
}

static bool contains(const unsigned char *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, needle, k) == 0)
            return true;
    return false;
}

static void sealed_replies_open_only_in_their_row(void **state)
{
    struct bk_secret_key a = key_of(1), b = key_of(2);
    const char msg[] = "{\"access\": \"eyJ...\"}";
    unsigned char box[sizeof msg + BK_SECRET_SEAL_OVERHEAD], out[sizeof msg];
    bk_secret_seal(&a, "m1\nuser:1", msg, sizeof msg, box);
    assert_false(contains(box, sizeof box, "access")); /* not in clear */
    assert_int_equal(bk_secret_open(&a, "m1\nuser:1", box, sizeof box, out), 0);
    assert_memory_equal(out, msg, sizeof msg);
    assert_int_equal(bk_secret_open(&a, "m1\nuser:2", box, sizeof box, out), -1);
    assert_int_equal(bk_secret_open(&b, "m1\nuser:1", box, sizeof box, out), -1);
    box[sizeof box - 1] ^= 1;
    assert_int_equal(bk_secret_open(&a, "m1\nuser:1", box, sizeof box, out), -1);
    assert_int_equal(bk_secret_open(&a, "m1\nuser:1", box, BK_SECRET_SEAL_OVERHEAD - 1, out), -1);
    /* two seals of one reply differ (random nonce) */
    unsigned char box2[sizeof box];
    bk_secret_seal(&a, "m1\nuser:1", msg, sizeof msg, box);
    bk_secret_seal(&a, "m1\nuser:1", msg, sizeof msg, box2);
    assert_memory_not_equal(box, box2, sizeof box);
}

static void keygen_rotates_and_old_keys_stay(void **state)
{
    char dir[] = "/tmp/bk-secret-XXXXXX", kid1[9], kid2[9], again[9], path[64];
    struct bk_secret_key cur, first, old;
    struct stat st;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/%s", dir, BK_SECRET_FILE);
    assert_int_equal(bk_secret_get(dir, BK_SECRET_CURRENT, NULL, &cur), -1); /* none yet */
    assert_int_equal(bk_secret_keygen(dir, false, kid1), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(bk_secret_keygen(dir, false, again), 0); /* idempotent */
    assert_string_equal(kid1, again);
    assert_int_equal(bk_secret_get(dir, BK_SECRET_CURRENT, NULL, &cur), 0);
    assert_string_equal(cur.kid, kid1);
    assert_int_equal(bk_secret_keygen(dir, true, kid2), 0);
    assert_string_not_equal(kid1, kid2);
    /* another process rotated: an unknown kid makes the cache look again */
    assert_int_equal(bk_secret_get(dir, BK_SECRET_BY_KID, kid2, &cur), 0);
    assert_int_equal(bk_secret_get(dir, BK_SECRET_CURRENT, NULL, &cur), 0);
    assert_string_equal(cur.kid, kid2);
    assert_int_equal(bk_secret_get(dir, BK_SECRET_FIRST, NULL, &first), 0);
    assert_string_equal(first.kid, kid1);
    assert_int_equal(bk_secret_get(dir, BK_SECRET_BY_KID, kid1, &old), 0);
    assert_memory_equal(old.key, first.key, sizeof old.key);
    assert_int_equal(bk_secret_get(dir, BK_SECRET_BY_KID, "00000000", &old), -1);
    /* the oldest goes once there are BK_SECRET_MAX_KEYS */
    for (int i = 0; i < BK_SECRET_MAX_KEYS; i++)
        assert_int_equal(bk_secret_keygen(dir, true, again), 0);
    sleep(1); /* past the cache's look-again interval */
    assert_int_equal(bk_secret_get(dir, BK_SECRET_BY_KID, kid1, &old), -1);
    assert_int_equal(bk_secret_get(dir, BK_SECRET_CURRENT, NULL, &cur), 0);
    assert_string_equal(cur.kid, again);
    unlink(path);
    rmdir(dir);
}

static void refuses_a_file_others_may_read(void **state)
{
    char dir[] = "/tmp/bk-secret-XXXXXX", kid[9], path[64];
    struct bk_secret_key k;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(bk_secret_keygen(dir, false, kid), 0);
    snprintf(path, sizeof path, "%s/%s", dir, BK_SECRET_FILE);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(bk_secret_get(dir, BK_SECRET_CURRENT, NULL, &k), -1);
    /* and a malformed one */
    FILE *f = fopen(path, "w");
    fputs("zzzzzzzz 00\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(bk_secret_get(dir, BK_SECRET_CURRENT, NULL, &k), -1);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(message_ids_are_keyed_and_scoped),
        cmocka_unit_test(fingerprints_are_keyed),
        cmocka_unit_test(sealed_replies_open_only_in_their_row),
        cmocka_unit_test(keygen_rotates_and_old_keys_stay),
        cmocka_unit_test(refuses_a_file_others_may_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
