/* The profile worker's upload checks: type by content (libmagic plus our own
 * header parsers), image dimensions and their limits, and no read past the
 * buffer on truncated, bit-flipped or random input (run under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

/* the readers are static-free but live in the worker's sources, which the
 * unit test build does not link: compile them in */
#include "workers/profile/upload.c"

struct buf {
    unsigned char d[4096];
    size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof b->d);
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void put8(struct buf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}

static void put16be(struct buf *b, unsigned v)
{
    put8(b, v >> 8);
    put8(b, v);
}

static void put32be(struct buf *b, uint32_t v)
{
    put16be(b, v >> 16);
    put16be(b, v & 0xffff);
}

static void put16le(struct buf *b, unsigned v)
{
    put8(b, v);
    put8(b, v >> 8);
}

static void put32le(struct buf *b, uint32_t v)
{
    put16le(b, v & 0xffff);
    put16le(b, v >> 16);
}

static void png_chunk(struct buf *b, const char *type, const unsigned char *data, size_t n)
{
    put32be(b, (uint32_t)n);
    size_t at = b->n;
    put(b, type, 4);
    if (n)
        put(b, data, n);
    put32be(b, (uint32_t)crc32(0L, b->d + at, (uInt)(n + 4)));
}

/* A real w x h 8-bit greyscale PNG (IDAT deflated with zlib). */
static void make_png(struct buf *b, uint32_t w, uint32_t h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    b->n = 0;
    put(b, sig, 8);
    unsigned char ihdr[13] = {0};
    for (int i = 0; i < 4; i++) {
        ihdr[i] = (unsigned char)(w >> (24 - 8 * i));
        ihdr[4 + i] = (unsigned char)(h >> (24 - 8 * i));
    }
    ihdr[8] = 8; /* depth */
    ihdr[9] = 0; /* greyscale */
    png_chunk(b, "IHDR", ihdr, 13);
    unsigned char raw[64] = {0}, z[128];
    uLongf zn = sizeof z;
    size_t rn = w <= 7 && h <= 7 ? (size_t)(w + 1) * h : 8;
    assert_int_equal(compress(z, &zn, raw, (uLong)rn), Z_OK);
    png_chunk(b, "IDAT", z, zn);
    png_chunk(b, "IEND", NULL, 0);
}

/* A baseline JPEG header: SOI, APP0 JFIF, DQT, SOF0 with w x h, EOI. */
static void make_jpeg(struct buf *b, unsigned w, unsigned h)
{
    b->n = 0;
    put16be(b, 0xffd8);
    put16be(b, 0xffe0);
    put16be(b, 16);
    put(b, "JFIF\0", 5);
    put(b, "\x01\x01\x00\x00\x01\x00\x01\x00\x00", 9);
    put16be(b, 0xffdb);
    put16be(b, 67);
    put8(b, 0);
    for (int i = 0; i < 64; i++)
        put8(b, 1);
    put16be(b, 0xffc0);
    put16be(b, 11);
    put8(b, 8);
    put16be(b, h);
    put16be(b, w);
    put8(b, 1);
    put(b, "\x01\x11\x00", 3);
    put16be(b, 0xffd9);
}

/* A 1-frame GIF89a with a 2-colour table; the frame's size is given apart
 * from the screen's to test frame limits. */
static void make_gif(struct buf *b, unsigned w, unsigned h, unsigned fw, unsigned fh)
{
    b->n = 0;
    put(b, "GIF89a", 6);
    put16le(b, w);
    put16le(b, h);
    put8(b, 0x80); /* global colour table of 2 */
    put8(b, 0);
    put8(b, 0);
    put(b, "\x00\x00\x00\xff\xff\xff", 6);
    put(b, "\x21\xf9\x04\x00\x00\x00\x00\x00", 8); /* graphic control extension */
    put8(b, 0x2c);
    put16le(b, 0);
    put16le(b, 0);
    put16le(b, fw);
    put16le(b, fh);
    put8(b, 0);
    put8(b, 2);                    /* LZW minimum code size */
    put(b, "\x02\x44\x01\x00", 4); /* one sub-block, then the terminator */
    put8(b, 0x3b);
}

/* A lossless WebP (VP8L) header of w x h. */
static void make_webp(struct buf *b, unsigned w, unsigned h)
{
    b->n = 0;
    put(b, "RIFF", 4);
    put32le(b, 4 + 8 + 10);
    put(b, "WEBP", 4);
    put(b, "VP8L", 4);
    put32le(b, 10);
    put8(b, 0x2f);
    put32le(b, (uint32_t)((w - 1) & 0x3fff) | (uint32_t)((h - 1) & 0x3fff) << 14);
    put(b, "\x00\x00\x00\x00\x00", 5);
}

/* An extended WebP (VP8X) header: the canvas may claim 16M x 16M. */
static void make_webp_x(struct buf *b, uint32_t w, uint32_t h)
{
    b->n = 0;
    put(b, "RIFF", 4);
    put32le(b, 4 + 8 + 10 + 8 + 10);
    put(b, "WEBP", 4);
    put(b, "VP8X", 4);
    put32le(b, 10);
    put32le(b, 0);
    put8(b, (w - 1) & 0xff);
    put16le(b, ((w - 1) >> 8) & 0xffff);
    put8(b, (h - 1) & 0xff);
    put16le(b, ((h - 1) >> 8) & 0xffff);
    put(b, "VP8L", 4);
    put32le(b, 10);
    put8(b, 0x2f);
    put32le(b, 0);
    put(b, "\x00\x00\x00\x00\x00", 5);
}

static void make_pdf(struct buf *b)
{
    static const char pdf[] = "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
                              "2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
                              "trailer << /Root 1 0 R >>\n%%EOF\n";
    b->n = 0;
    put(b, pdf, sizeof pdf - 1);
}

static void setup_magic(void **state)
{
    (void)state;
    assert_int_equal(pr_upload_init(), 0);
}

static void test_png(void **state)
{
    setup_magic(state);
    struct buf b;
    struct pr_file f;
    make_png(&b, 3, 2);
    uint32_t w, h;
    assert_int_equal(pr_png_size(b.d, b.n, &w, &h), 0);
    assert_int_equal(w, 3);
    assert_int_equal(h, 2);
    assert_null(pr_file_check(b.d, b.n, PR_IMAGE, &f));
    assert_string_equal(f.content_type, "image/png");
    assert_int_equal(f.width, 3);
    /* a broken IHDR CRC is a corrupt file */
    b.d[29] ^= 1;
    assert_int_equal(pr_png_size(b.d, b.n, &w, &h), -1);
    assert_non_null(pr_file_check(b.d, b.n, PR_IMAGE, &f));
}

static void test_png_bomb(void **state)
{
    setup_magic(state);
    struct buf b;
    struct pr_file f;
    make_png(&b, 100000, 100000);
    const char *why = pr_file_check(b.d, b.n, PR_IMAGE, &f);
    assert_non_null(why);
    assert_non_null(strstr(why, "too large"));
    make_png(&b, 8000, 8000); /* 64 megapixels: each side fits, the area does not */
    assert_non_null(pr_file_check(b.d, b.n, PR_IMAGE, &f));
    make_png(&b, 10000, 5000);
    assert_null(pr_file_check(b.d, b.n, PR_IMAGE, &f));
    make_png(&b, 10001, 1);
    assert_non_null(pr_file_check(b.d, b.n, PR_IMAGE, &f));
}

static void test_jpeg(void **state)
{
    setup_magic(state);
    struct buf b;
    struct pr_file f;
    make_jpeg(&b, 640, 480);
    uint32_t w, h;
    assert_int_equal(pr_jpeg_size(b.d, b.n, &w, &h), 0);
    assert_int_equal(w, 640);
    assert_int_equal(h, 480);
    assert_null(pr_file_check(b.d, b.n, PR_IMAGE, &f));
    assert_string_equal(f.content_type, "image/jpeg");
    make_jpeg(&b, 60000, 60000);
    assert_non_null(pr_file_check(b.d, b.n, PR_IMAGE, &f));
    make_jpeg(&b, 10, 0); /* height from a DNL marker: refused */
    assert_int_equal(pr_jpeg_size(b.d, b.n, &w, &h), -1);
}

static void test_gif(void **state)
{
    setup_magic(state);
    struct buf b;
    struct pr_file f;
    make_gif(&b, 2, 2, 2, 2);
    uint32_t w, h;
    assert_int_equal(pr_gif_size(b.d, b.n, &w, &h), 0);
    assert_int_equal(w, 2);
    assert_null(pr_file_check(b.d, b.n, PR_IMAGE, &f));
    assert_string_equal(f.content_type, "image/gif");
    /* a small screen with a huge frame */
    make_gif(&b, 2, 2, 60000, 60000);
    assert_int_equal(pr_gif_size(b.d, b.n, &w, &h), -2);
    assert_non_null(strstr(pr_file_check(b.d, b.n, PR_IMAGE, &f), "too large"));
}

static void test_webp(void **state)
{
    setup_magic(state);
    struct buf b;
    struct pr_file f;
    make_webp(&b, 300, 200);
    uint32_t w, h;
    assert_int_equal(pr_webp_size(b.d, b.n, &w, &h), 0);
    assert_int_equal(w, 300);
    assert_int_equal(h, 200);
    assert_null(pr_file_check(b.d, b.n, PR_IMAGE, &f));
    assert_string_equal(f.content_type, "image/webp");
    make_webp_x(&b, 20000, 20000);
    assert_int_equal(pr_webp_size(b.d, b.n, &w, &h), 0);
    assert_int_equal(w, 20000);
    assert_non_null(pr_file_check(b.d, b.n, PR_IMAGE, &f));
}

static void test_pdf_and_kinds(void **state)
{
    setup_magic(state);
    struct buf b;
    struct pr_file f;
    make_pdf(&b);
    assert_null(pr_file_check(b.d, b.n, PR_PDF, &f));
    assert_string_equal(f.content_type, "application/pdf");
    /* a PDF is not an image, an image is not a PDF */
    assert_non_null(pr_file_check(b.d, b.n, PR_IMAGE, &f));
    make_png(&b, 1, 1);
    assert_non_null(pr_file_check(b.d, b.n, PR_PDF, &f));
    /* a PDF without its end is not accepted */
    make_pdf(&b);
    assert_non_null(pr_file_check(b.d, b.n - 7, PR_PDF, &f));
    /* text is neither, whatever it is called */
    static const char text[] = "just some text, named picture.png by its sender\n";
    assert_non_null(pr_file_check(text, sizeof text - 1, PR_IMAGE, &f));
    assert_non_null(pr_file_check(text, sizeof text - 1, PR_PDF, &f));
    /* a PNG signature followed by text: libmagic may say PNG, our parser not */
    static const unsigned char fake[] = "\x89PNG\r\n\x1a\nnot really a png at all, sorry";
    assert_non_null(pr_file_check(fake, sizeof fake - 1, PR_IMAGE, &f));
    /* size limits */
    assert_non_null(pr_file_check(text, 0, PR_IMAGE, &f));
    assert_non_null(pr_file_check(text, PR_MAX_UPLOAD + 1, PR_IMAGE, &f));
}

typedef int (*reader)(const unsigned char *, size_t, uint32_t *, uint32_t *);
static const reader readers[] = {pr_png_size, pr_jpeg_size, pr_gif_size, pr_webp_size};

/* Every prefix and every single-bit flip of each valid image through every
 * reader: each either parses or refuses, and ASan watches every read (the
 * prefix is copied to a buffer of exactly its size). */
static void test_truncated_and_flipped(void **state)
{
    setup_magic(state);
    struct buf imgs[5];
    make_png(&imgs[0], 4, 4);
    make_jpeg(&imgs[1], 4, 4);
    make_gif(&imgs[2], 4, 4, 4, 4);
    make_webp(&imgs[3], 4, 4);
    make_webp_x(&imgs[4], 4, 4);
    for (int k = 0; k < 5; k++) {
        for (size_t n = 0; n <= imgs[k].n; n++) {
            unsigned char *p = malloc(n ? n : 1);
            memcpy(p, imgs[k].d, n);
            for (size_t r = 0; r < 4; r++) {
                uint32_t w = 0, h = 0;
                int rc = readers[r](p, n, &w, &h);
                assert_true(rc == 0 || rc == -1 || rc == -2);
            }
            struct pr_file f;
            (void)pr_file_check(p, n, PR_IMAGE, &f);
            free(p);
        }
        for (size_t bit = 0; bit < imgs[k].n * 8; bit++) {
            unsigned char *p = malloc(imgs[k].n);
            memcpy(p, imgs[k].d, imgs[k].n);
            p[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            for (size_t r = 0; r < 4; r++) {
                uint32_t w = 0, h = 0;
                (void)readers[r](p, imgs[k].n, &w, &h);
            }
            free(p);
        }
    }
}

/* Random bytes, with and without a valid signature in front. */
static void test_garbage(void **state)
{
    setup_magic(state);
    static const char *const heads[] = {"", "\x89PNG\r\n\x1a\n", "\xff\xd8", "GIF89a",
                                        "RIFF\x20\x00\x00\x00WEBPVP8 "};
    srand(42);
    for (int iter = 0; iter < 4000; iter++) {
        size_t n = (size_t)(rand() % 200);
        const char *head = heads[iter % 5];
        size_t hn = strlen(head);
        if (iter % 5 == 4)
            hn = 16; /* the WebP head holds NUL bytes */
        unsigned char *p = malloc(n + hn + 1);
        memcpy(p, head, hn);
        for (size_t i = 0; i < n; i++)
            p[hn + i] = (unsigned char)(rand() % 8 == 0 ? 0xff : rand());
        for (size_t r = 0; r < 4; r++) {
            uint32_t w = 0, h = 0;
            (void)readers[r](p, n + hn, &w, &h);
        }
        struct pr_file f;
        (void)pr_file_check(p, n + hn, PR_IMAGE, &f);
        (void)pr_file_check(p, n + hn, PR_PDF, &f);
        free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png),
        cmocka_unit_test(test_png_bomb),
        cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_gif),
        cmocka_unit_test(test_webp),
        cmocka_unit_test(test_pdf_and_kinds),
        cmocka_unit_test(test_truncated_and_flipped),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
