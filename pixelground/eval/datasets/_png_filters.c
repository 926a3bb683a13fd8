/* Undoing PNG row filters (PNG spec, section 9) for the evaluation's PNG readers.

   unfilter(rows, out, height, row_bytes, bpp): rows holds height filtered rows of
   1 + row_bytes bytes (the filter type, then the row), out receives height rows of
   row_bytes bytes; bpp is the bytes per pixel (1 to 8).

   unfilter_words(rows, out, height, row_bytes, bpp): the same rows of RGB (bpp 3) or RGBA
   (bpp 4) pixels, each pixel written to out as the native uint32
   R + 256 G + 65536 B (a COCO panoptic segment id; alpha dropped): height * width * 4
   bytes. Rows are unfiltered in two alternating row buffers, so the RGB image itself is
   never written out.

   pair_runs(gt_rows, gt_bpp, pred_rows, pred_bpp, height, width, out) -> count: the rows
   of two RGB(A) id PNGs of one size (a COCO panoptic ground truth and prediction),
   unfiltered side by side in alternating row buffers and split into runs of one
   (GT id, predicted id) pair along each row (a run ends at its row's end at the latest).
   Run k is written to out[k] as the uint64 gt_id << 40 | pred_id << 16 | length (width
   < 65536, so the length fits); out must hold height * width words (one run per pixel at
   worst). Neither id map is ever written out.

   All work outside the GIL, so that a thread pool decodes on every core, and raise
   ValueError on sizes that do not fit and on a filter type other than 0 to 4 (the row, and
   for pair_runs the image, is named). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The Paeth predictor without branches: the nearest of a, b, c to a + b - c, ties to a
   then b (the spec's order), as min/max selections against c's threshold. */
static inline __attribute__((always_inline)) int paeth(int a, int b, int c) {
    int threshold = 3 * c - (a + b);
    int low = a < b ? a : b, high = a < b ? b : a;
    int nearer = high <= threshold ? low : c;
    return threshold <= low ? high : nearer;
}

/* A row whose bytes depend on the byte bpp to their left (Sub = 1, Average = 3,
   Paeth = 4). The left pixel and the pixel above it are carried in registers; bpp is a
   constant where this is inlined, so each byte of a pixel is its own chain. */
static inline __attribute__((always_inline)) void
recurrent_row(int kind, const unsigned char *f, unsigned char *o, const unsigned char *p,
              Py_ssize_t row, const int bpp) {
    unsigned char a[8] = {0}, c[8] = {0};
    for (Py_ssize_t i = 0; i < row; i += bpp) {
#pragma GCC unroll 8
        for (int k = 0; k < bpp; k++) {
            unsigned char b = p[i + k], x;
            if (kind == 1)
                x = (unsigned char)(f[i + k] + a[k]);
            else if (kind == 3)
                x = (unsigned char)(f[i + k] + ((a[k] + b) >> 1));
            else
                x = (unsigned char)(f[i + k] + paeth(a[k], b, c[k]));
            o[i + k] = x;
            a[k] = x;
            c[k] = b;
        }
    }
}

/* One row: f its filtered bytes (after the type byte), p the row above (unfiltered), o
   the output. Returns 0, or -1 for an unknown filter type. */
static int unfilter_row(int kind, const unsigned char *f, unsigned char *o,
                        const unsigned char *p, Py_ssize_t row, Py_ssize_t bpp) {
    switch (kind) {
    case 0:
        memcpy(o, f, (size_t)row);
        return 0;
    case 2:
        for (Py_ssize_t i = 0; i < row; i++) o[i] = (unsigned char)(f[i] + p[i]);
        return 0;
    case 1:
    case 3:
    case 4:
        switch (bpp) {
        case 1: recurrent_row(kind, f, o, p, row, 1); break;
        case 2: recurrent_row(kind, f, o, p, row, 2); break;
        case 3: recurrent_row(kind, f, o, p, row, 3); break;
        case 4: recurrent_row(kind, f, o, p, row, 4); break;
        default: recurrent_row(kind, f, o, p, row, (int)bpp); break;
        }
        return 0;
    default:
        return -1;
    }
}

/* Returns -1, or the index of the first row whose filter type is unknown. work holds
   zeros (the row above the first). */
static Py_ssize_t unfilter_rows(const unsigned char *in, unsigned char *out,
                                unsigned char *work, Py_ssize_t height, Py_ssize_t row,
                                Py_ssize_t bpp) {
    for (Py_ssize_t r = 0; r < height; r++) {
        const unsigned char *f = in + r * (row + 1);
        unsigned char *o = out + r * row;
        if (unfilter_row(f[0], f + 1, o, r ? o - row : work, row, bpp)) return r;
    }
    return -1;
}

/* One unfiltered row of bpp-byte pixels to words: each pixel's first three bytes, read as
   one 4-byte load (the row buffer has 4 spare bytes after it) and masked. */
static void row_words(const unsigned char *here, uint32_t *o, Py_ssize_t width, int bpp) {
    for (Py_ssize_t x = 0; x < width; x++, here += bpp) {
        uint32_t word;
        memcpy(&word, here, 4);
#if PY_BIG_ENDIAN
        word = __builtin_bswap32(word);
#endif
        o[x] = word & 0xFFFFFFu;
    }
}

/* Rows of bpp 3 or 4 to 24-bit words. work holds 2 * row + 4 zero bytes: the row above and
   the row being unfiltered, alternating. */
static Py_ssize_t unfilter_words_rows(const unsigned char *in, uint32_t *out,
                                      unsigned char *work, Py_ssize_t height,
                                      Py_ssize_t row, Py_ssize_t bpp) {
    Py_ssize_t width = row / bpp;
    for (Py_ssize_t r = 0; r < height; r++) {
        const unsigned char *f = in + r * (row + 1);
        unsigned char *above = work + (r % 2) * row, *here = work + ((r + 1) % 2) * row;
        if (unfilter_row(f[0], f + 1, here, above, row, bpp)) return r;
        row_words(here, out + r * width, width, (int)bpp);
    }
    return -1;
}

static inline uint32_t pixel_word(const unsigned char *row, Py_ssize_t x, Py_ssize_t bpp) {
    uint32_t word;
    memcpy(&word, row + x * bpp, 4);
#if PY_BIG_ENDIAN
    word = __builtin_bswap32(word);
#endif
    return word & 0xFFFFFFu;
}

/* The runs of one row pair into out; returns how many. */
static Py_ssize_t row_runs(const unsigned char *gt, Py_ssize_t gt_bpp, const unsigned char *pred,
                           Py_ssize_t pred_bpp, Py_ssize_t width, uint64_t *out) {
    Py_ssize_t count = 0, start = 0;
    uint32_t g0 = pixel_word(gt, 0, gt_bpp), p0 = pixel_word(pred, 0, pred_bpp);
    for (Py_ssize_t x = 1; x < width; x++) {
        uint32_t g = pixel_word(gt, x, gt_bpp), p = pixel_word(pred, x, pred_bpp);
        if (g != g0 || p != p0) {
            out[count++] = (uint64_t)g0 << 40 | (uint64_t)p0 << 16 | (uint64_t)(x - start);
            start = x;
            g0 = g;
            p0 = p;
        }
    }
    out[count++] = (uint64_t)g0 << 40 | (uint64_t)p0 << 16 | (uint64_t)(width - start);
    return count;
}

/* Runs of every row pair; returns how many, or -1 with *bad_row and *bad_image (0 GT,
   1 prediction) set. work holds 2 * (row + 4) zero bytes per image. */
static Py_ssize_t pair_runs_rows(const unsigned char *gt_in, Py_ssize_t gt_bpp,
                                 const unsigned char *pred_in, Py_ssize_t pred_bpp,
                                 Py_ssize_t height, Py_ssize_t width, unsigned char *work,
                                 uint64_t *out, Py_ssize_t *bad_row, int *bad_image) {
    Py_ssize_t gt_row = width * gt_bpp, pred_row = width * pred_bpp, count = 0;
    unsigned char *gt_work = work, *pred_work = work + 2 * (gt_row + 4);
    for (Py_ssize_t r = 0; r < height; r++) {
        const unsigned char *g = gt_in + r * (gt_row + 1), *p = pred_in + r * (pred_row + 1);
        unsigned char *gt_here = gt_work + ((r + 1) % 2) * (gt_row + 4);
        unsigned char *pred_here = pred_work + ((r + 1) % 2) * (pred_row + 4);
        *bad_row = r;
        *bad_image = 0;
        if (unfilter_row(g[0], g + 1, gt_here, gt_work + (r % 2) * (gt_row + 4), gt_row,
                         gt_bpp))
            return -1;
        *bad_image = 1;
        if (unfilter_row(p[0], p + 1, pred_here, pred_work + (r % 2) * (pred_row + 4),
                         pred_row, pred_bpp))
            return -1;
        count += row_runs(gt_here, gt_bpp, pred_here, pred_bpp, width, out + count);
    }
    return count;
}

static PyObject *pair_runs(PyObject *self, PyObject *args) {
    Py_buffer gt, pred, out;
    Py_ssize_t gt_bpp, pred_bpp, height, width, count = 0, bad_row = 0;
    int bad_image = 0;
    PyObject *result = NULL;
    unsigned char *work;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*ny*nnnw*", &gt, &gt_bpp, &pred, &pred_bpp, &height, &width,
                          &out))
        return NULL;
    int fits = height >= 1 && width >= 1 && width < 65536 && (gt_bpp == 3 || gt_bpp == 4)
               && (pred_bpp == 3 || pred_bpp == 4) && height <= PY_SSIZE_T_MAX / 8 / 65536;
    if (!fits || gt.len != height * (width * gt_bpp + 1)
        || pred.len != height * (width * pred_bpp + 1) || out.len < height * width * 8) {
        PyErr_SetString(PyExc_ValueError,
                        "pair_runs: the buffers are not height rows of 1 + width * bpp bytes "
                        "(bpp 3 or 4, width < 65536) and height * width words");
        goto done;
    }
    work = calloc(2 * (size_t)(width * gt_bpp + 4) + 2 * (size_t)(width * pred_bpp + 4), 1);
    if (work == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    count = pair_runs_rows(gt.buf, gt_bpp, pred.buf, pred_bpp, height, width, work, out.buf,
                           &bad_row, &bad_image);
    Py_END_ALLOW_THREADS
    free(work);
    if (count < 0) {
        PyErr_Format(PyExc_ValueError, "pair_runs: row %zd of the %s has an unknown filter type",
                     bad_row, bad_image ? "prediction" : "ground truth");
        goto done;
    }
    result = PyLong_FromSsize_t(count);
done:
    PyBuffer_Release(&gt);
    PyBuffer_Release(&pred);
    PyBuffer_Release(&out);
    return result;
}

/* Parses and checks the arguments of unfilter and unfilter_words, runs one of them. */
static PyObject *run(PyObject *args, int words) {
    Py_buffer rows, out;
    Py_ssize_t height, row, bpp, bad = -1, out_bytes;
    PyObject *result = NULL;
    unsigned char *work;
    if (!PyArg_ParseTuple(args, "y*w*nnn", &rows, &out, &height, &row, &bpp)) return NULL;
    int fits = height >= 0 && row >= 1 && bpp >= 1 && bpp <= 8 && row % bpp == 0
               && (!words || bpp == 3 || bpp == 4) && height <= PY_SSIZE_T_MAX / (row + 1) / 2;
    out_bytes = fits ? (words ? height * (row / bpp) * 4 : height * row) : -1;
    if (!fits || rows.len != height * (row + 1) || out.len != out_bytes) {
        PyErr_SetString(PyExc_ValueError,
                        words ? "unfilter_words: the buffers are not height rows of "
                                "1 + row_bytes bytes and height * width words, or bpp is not 3 "
                                "or 4 dividing row_bytes"
                              : "unfilter: the buffers are not height rows of 1 + row_bytes "
                                "and row_bytes bytes, or bpp is not 1 to 8 dividing row_bytes");
        goto done;
    }
    work = calloc(words ? 2 * (size_t)row + 4 : (size_t)row, 1);
    if (work == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    if (words)
        bad = unfilter_words_rows(rows.buf, out.buf, work, height, row, bpp);
    else
        bad = unfilter_rows(rows.buf, out.buf, work, height, row, bpp);
    Py_END_ALLOW_THREADS
    free(work);
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "%s: row %zd has an unknown filter type",
                     words ? "unfilter_words" : "unfilter", bad);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&rows);
    PyBuffer_Release(&out);
    return result;
}

static PyObject *unfilter(PyObject *self, PyObject *args) {
    (void)self;
    return run(args, 0);
}

static PyObject *unfilter_words(PyObject *self, PyObject *args) {
    (void)self;
    return run(args, 1);
}

static PyMethodDef methods[] = {
    {"unfilter", unfilter, METH_VARARGS,
     "unfilter(rows, out, height, row_bytes, bpp): undo the PNG filters of height rows of "
     "1 + row_bytes bytes into out (height * row_bytes bytes), outside the GIL."},
    {"unfilter_words", unfilter_words, METH_VARARGS,
     "unfilter_words(rows, out, height, row_bytes, bpp): the same for RGB(A) rows (bpp 3 "
     "or 4), each pixel written to out as the uint32 R + 256 G + 65536 B, outside the GIL."},
    {"pair_runs", pair_runs, METH_VARARGS,
     "pair_runs(gt_rows, gt_bpp, pred_rows, pred_bpp, height, width, out) -> count: runs of "
     "(GT id, predicted id) pairs of two RGB(A) id PNGs' filtered rows, as gt << 40 | "
     "pred << 16 | length words in out, outside the GIL."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_png_filters", "PNG row filters undone in C.", -1, methods,
    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__png_filters(void) { return PyModule_Create(&module); }
