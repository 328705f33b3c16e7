/* libFuzzer harness: uploaded bytes through the profile worker's checks
 * (libmagic plus the PNG, JPEG, GIF and WebP header readers). */
#include <stddef.h>
#include <stdint.h>

#include "workers/profile/upload.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready)
        ready = pr_upload_init() == 0 ? 1 : -1;
    uint32_t w, h;
    pr_png_size(data, size, &w, &h);
    pr_jpeg_size(data, size, &w, &h);
    pr_gif_size(data, size, &w, &h);
    pr_webp_size(data, size, &w, &h);
    if (ready == 1) {
        struct pr_file f;
        pr_file_check(data, size, PR_IMAGE, &f);
        pr_file_check(data, size, PR_PDF, &f);
    }
    return 0;
}
