/* The search behind broker/messaging_spans.py, in C: where the records of a batch hold a
 * sampled W3C `traceparent` header.
 *
 * sampled_headers(buffer) -> list[int]: the offset of each `traceparent` record header as a
 * record encodes it (key length 11 and value length 55 as zigzag varints, the key, then a
 * version 00 value: "\x16traceparent\x6e00-" and 52 more bytes) whose flags' last hex digit
 * is odd (sampled), left to right, not overlapping: exactly what the pure-Python fallback's
 * regular expression finds. memchr (vectorised in libc) looks for the first byte and each
 * candidate is compared in place, so the cost is about that of reading the buffer once,
 * where the regular expression engine steps byte by byte (0.35 us per KiB measured here).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static const unsigned char NEEDLE[] = "\x16traceparent\x6e" "00-";
#define NEEDLE_LEN 16
#define HEADER_LEN 68 /* the needle, 32 hex trace id, '-', 16 hex span id, '-', 2 hex flags */

static int
odd_hex_digit(unsigned char c)
{
    switch (c) {
    case '1': case '3': case '5': case '7': case '9': case 'b': case 'd': case 'f':
        return 1;
    default:
        return 0;
    }
}

static PyObject *
sampled_headers(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *out = PyList_New(0);
    const unsigned char *base = (const unsigned char *)view.buf;
    const unsigned char *p = base, *end = base + view.len;
    while (out != NULL && end - p >= HEADER_LEN) {
        p = memchr(p, NEEDLE[0], (size_t)((end - p) - HEADER_LEN + 1));
        if (p == NULL) {
            break;
        }
        if (memcmp(p + 1, NEEDLE + 1, NEEDLE_LEN - 1) != 0
            || !odd_hex_digit(p[HEADER_LEN - 1])) {
            p++;
            continue;
        }
        PyObject *offset = PyLong_FromSsize_t((Py_ssize_t)(p - base));
        if (offset == NULL || PyList_Append(out, offset) < 0) {
            Py_CLEAR(out);
        }
        Py_XDECREF(offset);
        p += HEADER_LEN;
    }
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"sampled_headers", sampled_headers, METH_O,
     "sampled_headers(buffer) -> list[int]: offsets of the sampled traceparent record headers"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "broker._tracescan",
    "The sampled traceparent search of broker/messaging_spans.py, in C.", -1, methods,
};

PyMODINIT_FUNC
PyInit__tracescan(void)
{
    return PyModule_Create(&module);
}
