/* Undoing PNG row filters (PNG spec, section 9) for the evaluation's PNG readers.

   unfilter(rows, out, height, row_bytes, bpp): rows holds height filtered rows of
   1 + row_bytes bytes (the filter type, then the row), out receives height rows of
   row_bytes bytes; bpp is the bytes per pixel (1 to 8). Works outside the GIL, so that a
   thread pool decodes on every core. Raises ValueError on sizes that do not fit and on a
   filter type other than 0 to 4 (the row is named). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
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

static void recurrent(int kind, const unsigned char *f, unsigned char *o,
                      const unsigned char *p, Py_ssize_t row, Py_ssize_t bpp) {
    switch (bpp) {
    case 1: recurrent_row(kind, f, o, p, row, 1); break;
    case 2: recurrent_row(kind, f, o, p, row, 2); break;
    case 3: recurrent_row(kind, f, o, p, row, 3); break;
    case 4: recurrent_row(kind, f, o, p, row, 4); break;
    default: recurrent_row(kind, f, o, p, row, (int)bpp); break;
    }
}

/* Returns -1, or the index of the first row whose filter type is unknown. The row above
   the first is zeros. */
static Py_ssize_t unfilter_rows(const unsigned char *in, unsigned char *out,
                                const unsigned char *zeros, Py_ssize_t height,
                                Py_ssize_t row, Py_ssize_t bpp) {
    for (Py_ssize_t r = 0; r < height; r++) {
        const unsigned char *f = in + r * (row + 1) + 1;
        unsigned char *o = out + r * row;
        const unsigned char *p = r ? o - row : zeros;
        int kind = f[-1];
        if (kind == 0) {
            memcpy(o, f, (size_t)row);
        } else if (kind == 2) {
            for (Py_ssize_t i = 0; i < row; i++) o[i] = (unsigned char)(f[i] + p[i]);
        } else if (kind == 1 || kind == 3 || kind == 4) {
            recurrent(kind, f, o, p, row, bpp);
        } else {
            return r;
        }
    }
    return -1;
}

static PyObject *unfilter(PyObject *self, PyObject *args) {
    Py_buffer rows, out;
    Py_ssize_t height, row, bpp, bad = -1;
    PyObject *result = NULL;
    unsigned char *zeros;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*w*nnn", &rows, &out, &height, &row, &bpp)) return NULL;
    if (height < 0 || row < 1 || bpp < 1 || bpp > 8 || row % bpp
        || height > PY_SSIZE_T_MAX / (row + 1)
        || rows.len != height * (row + 1) || out.len != height * row) {
        PyErr_SetString(PyExc_ValueError,
                        "unfilter: the buffers are not height rows of 1 + row_bytes and "
                        "row_bytes bytes, or bpp is not 1 to 8 dividing row_bytes");
        goto done;
    }
    zeros = calloc((size_t)row, 1);
    if (zeros == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    bad = unfilter_rows(rows.buf, out.buf, zeros, height, row, bpp);
    Py_END_ALLOW_THREADS
    free(zeros);
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "unfilter: row %zd has an unknown filter type", bad);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&rows);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"unfilter", unfilter, METH_VARARGS,
     "unfilter(rows, out, height, row_bytes, bpp): undo the PNG filters of height rows of "
     "1 + row_bytes bytes into out (height * row_bytes bytes), outside the GIL."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_png_filters", "PNG row filters undone in C.", -1, methods,
    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__png_filters(void) { return PyModule_Create(&module); }
