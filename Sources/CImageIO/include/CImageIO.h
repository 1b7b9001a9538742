#ifndef LETHE_CIMAGEIO_H
#define LETHE_CIMAGEIO_H

#include <stddef.h>
#include <stdint.h>

/* zlib and libpng behind plain functions: inflateInit2 is a macro, and libpng reports errors by
   longjmp, neither of which Swift can use directly. Every function returns 0 on success, or writes a
   message into err and returns -1. Buffers the library allocates are freed with lethe_free. */

/* Decompresses a gzip (or zlib) stream. */
int lethe_gunzip(const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len, char *err, size_t err_len);
/* Raw deflate (ZIP members) into a malloc'd buffer; same contract as lethe_gunzip. */
int lethe_inflate_raw(const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len, char *err, size_t err_len);

/* Writes 8-bit grey (channels 1) or RGB (channels 3) pixels, rows top to bottom. */
int lethe_png_write(const char *path, const uint8_t *pixels, int width, int height, int channels, char *err, size_t err_len);

/* Reads any PNG as 8-bit grey (grey and grey+alpha files) or RGB (colour files); alpha is dropped. */
int lethe_png_decode(const uint8_t *data, size_t len, uint8_t **pixels, int *width, int *height, int *channels, char *err, size_t err_len);

void lethe_free(void *p);

#endif
