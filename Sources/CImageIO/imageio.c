#include "CImageIO.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* The most a compressed stream may expand to: 4 GiB (every data set Lethe reads is far smaller). */
#define LETHE_MAX_INFLATED ((size_t)1 << 32)

static int fail(char *err, size_t err_len, const char *message) {
    if (err && err_len) snprintf(err, err_len, "%s", message);
    return -1;
}

void lethe_free(void *p) { free(p); }

/* inflateInit2 is a macro, so it stays on this side of the bridge. */
static int inflate_all(const uint8_t *in, size_t in_len, int window_bits, uint8_t **out, size_t *out_len, char *err, size_t err_len) {
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, window_bits) != Z_OK) return fail(err, err_len, "zlib could not start");
    size_t cap = in_len * 4 + 1024, len = 0;
    if (cap > LETHE_MAX_INFLATED) cap = LETHE_MAX_INFLATED;
    uint8_t *buf = malloc(cap);
    if (!buf) { inflateEnd(&s); return fail(err, err_len, "out of memory"); }
    s.next_in = (Bytef *)in;
    s.avail_in = (uInt)in_len;
    int rc;
    do {
        if (len == cap) {
            if (cap >= LETHE_MAX_INFLATED) {
                free(buf);
                inflateEnd(&s);
                return fail(err, err_len, "the data decompresses to more than 4 GiB; refusing (a decompression bomb?)");
            }
            cap = cap * 2 > LETHE_MAX_INFLATED ? LETHE_MAX_INFLATED : cap * 2;
            uint8_t *grown = realloc(buf, cap);
            if (!grown) { free(buf); inflateEnd(&s); return fail(err, err_len, "out of memory"); }
            buf = grown;
        }
        s.next_out = buf + len;
        s.avail_out = (uInt)(cap - len);
        rc = inflate(&s, Z_NO_FLUSH);
        len = cap - s.avail_out;
        if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR || rc == Z_MEM_ERROR) {
            char message[256];
            snprintf(message, sizeof message, "corrupt compressed data (%s)", s.msg ? s.msg : "zlib error");
            free(buf);
            inflateEnd(&s);
            return fail(err, err_len, message);
        }
        if (rc == Z_BUF_ERROR && s.avail_in == 0) {
            free(buf);
            inflateEnd(&s);
            return fail(err, err_len, "truncated compressed data (the stream ends early)");
        }
    } while (rc != Z_STREAM_END);
    inflateEnd(&s);
    *out = buf;
    *out_len = len;
    return 0;
}

int lethe_gunzip(const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len, char *err, size_t err_len) {
    return inflate_all(in, in_len, 15 + 32, out, out_len, err, err_len);  /* 32: gzip or zlib header */
}

int lethe_inflate_raw(const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len, char *err, size_t err_len) {
    return inflate_all(in, in_len, -15, out, out_len, err, err_len);  /* raw deflate, as in ZIP members */
}

struct png_error_box { jmp_buf jump; char message[256]; };

static void on_png_error(png_structp png, png_const_charp message) {
    struct png_error_box *box = png_get_error_ptr(png);
    snprintf(box->message, sizeof box->message, "%s", message);
    longjmp(box->jump, 1);
}

static void on_png_warning(png_structp png, png_const_charp message) { (void)png; (void)message; }

int lethe_png_write(const char *path, const uint8_t *pixels, int width, int height, int channels, char *err, size_t err_len) {
    if (channels != 1 && channels != 3) return fail(err, err_len, "PNG output takes 1 or 3 channels");
    FILE *f = fopen(path, "wb");
    if (!f) return fail(err, err_len, "cannot open the file for writing");
    struct png_error_box box;
    box.message[0] = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &box, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) { fclose(f); return fail(err, err_len, "libpng could not start"); }
    if (setjmp(box.jump)) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return fail(err, err_len, box.message);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * width * channels));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0) return fail(err, err_len, "could not finish writing the file");
    return 0;
}

struct png_memory { const uint8_t *data; size_t len, at; };

static void read_from_memory(png_structp png, png_bytep out, png_size_t n) {
    struct png_memory *m = png_get_io_ptr(png);
    if (n > m->len - m->at) png_error(png, "truncated PNG (the data ends early)");
    memcpy(out, m->data + m->at, n);
    m->at += n;
}

int lethe_png_decode(const uint8_t *data, size_t len, uint8_t **pixels, int *width, int *height, int *channels, char *err, size_t err_len) {
    if (len < 8 || png_sig_cmp((png_const_bytep)data, 0, 8)) return fail(err, err_len, "not a PNG file");
    struct png_memory memory = { data, len, 8 };
    struct png_error_box box;
    box.message[0] = 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &box, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        return fail(err, err_len, "libpng could not start");
    }
    uint8_t *volatile buf = NULL;
    if (setjmp(box.jump)) {
        free(buf);
        png_destroy_read_struct(&png, &info, NULL);
        return fail(err, err_len, box.message[0] ? box.message : "corrupt PNG");
    }
    png_set_read_fn(png, &memory, read_from_memory);
    png_set_sig_bytes(png, 8);
    /* Images beyond 16384 pixels a side or chunks beyond 64 MiB are refused before any allocation. */
    png_set_user_limits(png, 16384, 16384);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)64 << 20);
    png_read_info(png, info);
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png), png_set_strip_alpha(png);
    png_read_update_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    int c = png_get_channels(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * c) png_error(png, "unexpected row layout");
    buf = malloc((size_t)w * h * c);
    if (!buf) png_error(png, "out of memory");
    int passes = png_set_interlace_handling(png);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++) png_read_row(png, buf + (size_t)y * w * c, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    *pixels = buf;
    *width = w;
    *height = h;
    *channels = c;
    return 0;
}
