/* What an uploaded file is, decided by its bytes and never by its name or the
 * client's Content-Type: libmagic names the type, and our own bounded header
 * parsers must agree and read the image's dimensions, so that an image that
 * would decode to gigabytes (a decompression bomb) is refused before anyone
 * decodes it. No function here reads past the buffer it is given. */
#include <magic.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "workers/profile/profile.h"

static magic_t cookie;

int pr_upload_init(void)
{
    if (cookie)
        return 0;
    cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_TAR |
                        MAGIC_NO_CHECK_ELF);
    if (!cookie)
        return -1;
    if (magic_load(cookie, NULL) != 0) {
        fprintf(stderr, "libmagic: %s\n", magic_error(cookie));
        magic_close(cookie);
        cookie = NULL;
        return -1;
    }
    return 0;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t be16(const unsigned char *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le24(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static uint32_t le32(const unsigned char *p)
{
    return le24(p) | (uint32_t)p[3] << 24;
}

/* PNG: the signature, then IHDR first (13 bytes, CRC checked). */
int pr_png_size(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 8 + 8 + 13 + 4 || memcmp(p, sig, 8) != 0)
        return -1;
    if (be32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4) != 0)
        return -1;
    uint32_t crc = (uint32_t)crc32(0L, p + 12, 4 + 13);
    if (crc != be32(p + 12 + 4 + 13))
        return -1;
    uint32_t width = be32(p + 16), height = be32(p + 20);
    /* the spec caps both at 2^31 - 1; zero is invalid */
    if (width == 0 || height == 0 || width > 0x7fffffffu || height > 0x7fffffffu)
        return -1;
    unsigned depth = p[24], color = p[25];
    if (color > 6 || color == 1 || color == 5 ||
        !(depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16))
        return -1;
    *w = width;
    *h = height;
    return 0;
}

/* JPEG: markers from SOI until a start-of-frame segment gives the size. */
int pr_jpeg_size(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h)
{
    if (n < 4 || p[0] != 0xff || p[1] != 0xd8)
        return -1;
    size_t i = 2;
    while (i < n) {
        if (p[i] != 0xff)
            return -1;                /* a segment must start with a marker */
        while (i < n && p[i] == 0xff) /* fill bytes */
            i++;
        if (i >= n)
            return -1;
        unsigned m = p[i++];
        if (m == 0xd8 || m == 0xd9 || m == 0x00)
            return -1; /* a second SOI, EOI before any frame, or a stuffed byte */
        if ((m >= 0xd0 && m <= 0xd7) || m == 0x01)
            continue; /* no length */
        if (i + 2 > n)
            return -1;
        size_t len = be16(p + i);
        if (len < 2 || i + len > n)
            return -1;
        bool sof = m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
        if (sof) {
            if (len < 8)
                return -1;
            uint32_t height = be16(p + i + 3), width = be16(p + i + 5);
            if (width == 0 || height == 0) /* height 0 means "see DNL": refuse */
                return -1;
            *w = width;
            *h = height;
            return 0;
        }
        if (m == 0xda)
            return -1; /* scan data before any frame header */
        i += len;
    }
    return -1;
}

/* Skips GIF data sub-blocks from *i; 0 or -1 when they run off the end. */
static int gif_skip_blocks(const unsigned char *p, size_t n, size_t *i)
{
    while (*i < n) {
        size_t len = p[(*i)++];
        if (len == 0)
            return 0;
        if (len > n - *i)
            return -1;
        *i += len;
    }
    return -1;
}

/* GIF: the logical screen, then every frame walked so that no frame is
 * larger than the limits either (a decoder allocates per frame): -2 when
 * the frames are too large or too many. */
int pr_gif_size(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h)
{
    if (n < 13 || (memcmp(p, "GIF87a", 6) != 0 && memcmp(p, "GIF89a", 6) != 0))
        return -1;
    uint32_t width = le16(p + 6), height = le16(p + 8);
    if (width == 0 || height == 0)
        return -1;
    size_t i = 13;
    if (p[10] & 0x80)
        i += 3u * (2u << (p[10] & 7));
    int frames = 0;
    uint64_t total = 0;
    while (i < n) {
        unsigned b = p[i++];
        if (b == 0x3b) /* trailer */
            break;
        if (b == 0x21) { /* extension: label, then sub-blocks */
            if (i >= n)
                return -1;
            i++;
            if (gif_skip_blocks(p, n, &i) != 0)
                return -1;
        } else if (b == 0x2c) { /* image descriptor */
            if (i + 9 > n)
                return -1;
            uint32_t fw = le16(p + i + 4), fh = le16(p + i + 6);
            unsigned flags = p[i + 8];
            i += 9;
            if (fw > PR_MAX_SIDE || fh > PR_MAX_SIDE || (uint64_t)fw * fh > PR_MAX_PIXELS)
                return -2;
            total += (uint64_t)fw * fh;
            if (++frames > 10000 || total > 5ull * PR_MAX_PIXELS)
                return -2; /* too much to decode, however it is spread */
            if (flags & 0x80)
                i += 3u * (2u << (flags & 7));
            if (i >= n)
                return -1;
            i++; /* LZW minimum code size */
            if (gif_skip_blocks(p, n, &i) != 0)
                return -1;
        } else {
            return -1;
        }
    }
    if (frames == 0)
        return -1;
    *w = width;
    *h = height;
    return 0;
}

/* WebP: RIFF "WEBP" and its first chunk: VP8 (lossy), VP8L (lossless) or
 * VP8X (extended: the canvas size). */
int pr_webp_size(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h)
{
    if (n < 30 || memcmp(p, "RIFF", 4) != 0 || memcmp(p + 8, "WEBP", 4) != 0)
        return -1;
    uint32_t riff = le32(p + 4);
    if (riff < 4 + 8 + 10 || riff > n - 8)
        return -1;
    uint32_t chunk = le32(p + 16);
    if (chunk > riff - 12)
        return -1;
    const unsigned char *d = p + 20;
    uint32_t width, height;
    if (memcmp(p + 12, "VP8 ", 4) == 0) {
        /* frame tag (3 bytes, key frame bit clear), start code, sizes */
        if (chunk < 10 || (d[0] & 1) != 0 || d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a)
            return -1;
        width = le16(d + 6) & 0x3fff;
        height = le16(d + 8) & 0x3fff;
    } else if (memcmp(p + 12, "VP8L", 4) == 0) {
        if (chunk < 5 || d[0] != 0x2f)
            return -1;
        uint32_t bits = le32(d + 1);
        width = (bits & 0x3fff) + 1;
        height = ((bits >> 14) & 0x3fff) + 1;
        if (bits >> 29) /* version must be 0 */
            return -1;
    } else if (memcmp(p + 12, "VP8X", 4) == 0) {
        if (chunk < 10)
            return -1;
        width = le24(d + 4) + 1;
        height = le24(d + 7) + 1;
    } else {
        return -1;
    }
    if (width == 0 || height == 0)
        return -1;
    *w = width;
    *h = height;
    return 0;
}

static const char BAD_IMAGE[] =
    "Upload a valid image. The file you uploaded was either not an image or a corrupted image.";
static const char BAD_PDF[] = "Upload a valid PDF document. The file you uploaded was not a PDF.";

static bool pdf_ok(const unsigned char *p, size_t n)
{
    if (n < 16 || memcmp(p, "%PDF-", 5) != 0)
        return false;
    /* a complete document ends with %%EOF (maybe followed by line ends) */
    size_t from = n > 1024 ? n - 1024 : 0;
    for (size_t i = n - 5 + 1; i-- > from;)
        if (memcmp(p + i, "%%EOF", 5) == 0)
            return true;
    return false;
}

/* libmagic's type of the bytes, "" when it has none (or cannot load). The
 * types we take are told by their first bytes: libmagic need not read
 * megabytes. */
static const char *magic_type(const void *data, size_t len)
{
    if (pr_upload_init() != 0)
        return "";
    const char *mime = magic_buffer(cookie, data, len < 65536 ? len : 65536);
    return mime ? mime : "";
}

const char *pr_file_check(const void *data, size_t len, enum pr_kind kind, struct pr_file *f)
{
    const unsigned char *p = data;
    memset(f, 0, sizeof *f);
    if (len == 0)
        return "The submitted file is empty.";
    if (len > PR_MAX_UPLOAD)
        return "The submitted file is too large (at most 5 MiB).";
    /* Our bounded readers first: each requires its type's signature, so
     * bytes that none of them accepts are refused whatever libmagic would
     * say, and libmagic (a linear walk of its whole database, ~0.3 ms a
     * call) runs only on bytes that already look like a type we take, to
     * agree with it. The verdict is the one of asking libmagic first. */
    if (kind == PR_PDF) {
        if (!pdf_ok(p, len) || strcmp(magic_type(data, len), "application/pdf") != 0)
            return BAD_PDF;
        f->content_type = "application/pdf";
        return NULL;
    }
    static const struct {
        const char *mime;
        int (*size)(const unsigned char *, size_t, uint32_t *, uint32_t *);
    } types[] = {
        {"image/png", pr_png_size},
        {"image/jpeg", pr_jpeg_size},
        {"image/gif", pr_gif_size},
        {"image/webp", pr_webp_size},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        uint32_t w = 0, h = 0;
        int rc = types[i].size(p, len, &w, &h);
        if (rc == -1)
            continue;
        if (strcmp(magic_type(data, len), types[i].mime) != 0)
            return BAD_IMAGE;
        if (rc == -2 || w > PR_MAX_SIDE || h > PR_MAX_SIDE || (uint64_t)w * h > PR_MAX_PIXELS)
            return "The image is too large: at most 10000 pixels a side and 50 megapixels.";
        f->content_type = types[i].mime;
        f->width = w;
        f->height = h;
        return NULL;
    }
    return BAD_IMAGE;
}
