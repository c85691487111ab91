/*
 * `_wasinn_image`: decode, resize and tensor conversion for guest programs (docs/contracts.md).
 *
 * Why C: decoding a 640x427 JPEG in pure Python inside wasm takes seconds; here it takes
 * milliseconds.  The same file is linked into the wasm runtime and built as a native CPython
 * extension (setup.py), so native mode produces byte-identical tensors.  That is also why
 * stb's SIMD paths are disabled: its SSE2 IDCT/colour conversion exist natively only, and the
 * scalar code is what runs in wasm.
 *
 * `resize(..., "triangle")` reimplements the sampling algorithm of the Rust `image` crate's
 * `resize_exact(.., FilterType::Triangle)` (which the WasmEdge/wasi-nn Rust examples use):
 * a vertical pass into f32 without rounding, then a horizontal pass, clamp to 0..255 and round
 * half away from zero -- all in single precision with no fused multiply-add, so results match
 * the Rust code bit for bit.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_SIMD
#if defined(__wasi__)
#define STBI_NO_THREAD_LOCALS /* single-threaded wasm: a plain global is enough */
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include "stb_image.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "wasinn_runtime.h"

/* ---------------------------------------------------------------- shared argument checks */

/* Check width/height/channels against the pixel buffer's length; 64-bit arithmetic. */
static int check_image(Py_ssize_t len, long long width, long long height, long long channels) {
    if (width <= 0 || height <= 0) {
        PyErr_SetString(PyExc_ValueError, "width and height must be positive");
        return 0;
    }
    if (channels < 1 || channels > 4) {
        PyErr_SetString(PyExc_ValueError, "channels must be 1, 2, 3 or 4");
        return 0;
    }
    if (width > (1 << 24) || height > (1 << 24) || width * height * channels != (long long)len) {
        PyErr_Format(PyExc_ValueError,
                     "pixel buffer holds %zd bytes, but %lldx%lldx%lld needs %lld", len, width,
                     height, channels, width * height * channels);
        return 0;
    }
    return 1;
}

/*
 * True if a buffer of `bytes` bytes can be asked for; else MemoryError naming `what`.  Sizes
 * are computed in 64 bits (dimensions <= 2**24, channels <= 4, elements <= 4 bytes, so no
 * product overflows), but in wasm32 Py_ssize_t and size_t have 32 bits: without this check
 * a large resize or an f32 tensor of a big image would wrap to a small allocation and be
 * written past its end.
 */
static int addressable(int64_t bytes, const char *what) {
    if (bytes > (int64_t)PY_SSIZE_T_MAX) {
        PyErr_Format(PyExc_MemoryError, "%s needs %lld bytes, more than this build can address",
                     what, (long long)bytes);
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- decode */

/* stb-decode `data` (released here, whatever happens) into `channels` channels (0: the
 * file's own). NULL with ValueError set when it is too large or not a picture; free the
 * result with stbi_image_free. */
static unsigned char *decode_pixels(Py_buffer *data, int channels, int *width, int *height,
                                    int *file_channels) {
    if (data->len > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "image data is too large (%zd bytes)", data->len);
        PyBuffer_Release(data);
        return NULL;
    }
    unsigned char *pixels;
    const char *reason = NULL;
    Py_BEGIN_ALLOW_THREADS
    pixels = stbi_load_from_memory(data->buf, (int)data->len, width, height, file_channels,
                                   channels);
    if (pixels == NULL)
        reason = stbi_failure_reason();
    Py_END_ALLOW_THREADS
    PyBuffer_Release(data);
    if (pixels == NULL)
        PyErr_Format(PyExc_ValueError, "cannot decode image: %s",
                     reason ? reason : "unknown error");
    return pixels;
}

static PyObject *py_decode(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"data", "channels", NULL};
    Py_buffer data;
    int channels = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|i:decode", kwlist, &data, &channels))
        return NULL;
    if (channels < 0 || channels > 4) {
        PyBuffer_Release(&data);
        return PyErr_Format(PyExc_ValueError, "channels must be 0 (keep) or 1..4, not %d", channels);
    }
    int width = 0, height = 0, file_channels = 0;
    unsigned char *pixels = decode_pixels(&data, channels, &width, &height, &file_channels);
    if (pixels == NULL)
        return NULL;
    int out_channels = channels ? channels : file_channels;
    /* One copy into a bytes object: stb owns its buffer's allocator. */
    PyObject *bytes = PyBytes_FromStringAndSize(
        (const char *)pixels, (Py_ssize_t)width * height * out_channels);
    stbi_image_free(pixels);
    if (bytes == NULL)
        return NULL;
    return Py_BuildValue("(Niii)", bytes, width, height, out_channels);
}

/* ---------------------------------------------------------------- resize */

typedef enum { FILTER_TRIANGLE, FILTER_NEAREST } filter_kind;

/* The sampling window of one output coordinate: inputs [left, left + count), weights. */
typedef struct {
    int64_t left;
    int64_t count;
} window;

static float triangle_kernel(float x) {
    float a = fabsf(x);
    return a < 1.0f ? 1.0f - a : 0.0f;
}

/*
 * Windows and normalised weights for all `out_size` outputs, as the Rust image crate computes
 * them: centre (out + 0.5) * ratio, support scaled by max(ratio, 1), window
 * [floor(c - support), ceil(c + support)) clamped, weight kernel((i - (c - 0.5)) / sratio),
 * each divided by the f32 sum.  Nearest is the same with a box kernel of support 0: the one
 * input floor(c).  `weights` has out_size * stride floats, stride = the widest window.
 */
static float *make_windows(int64_t in_size, int64_t out_size, filter_kind filter, window *wins,
                           int64_t *stride_out) {
    float ratio = (float)in_size / (float)out_size;
    float sratio = ratio < 1.0f ? 1.0f : ratio;
    float support = (filter == FILTER_TRIANGLE ? 1.0f : 0.0f) * sratio;
    int64_t stride = 1;
    for (int64_t o = 0; o < out_size; o++) {
        float centre = ((float)o + 0.5f) * ratio;
        int64_t left = (int64_t)floorf(centre - support);
        if (left < 0) left = 0;
        if (left > in_size - 1) left = in_size - 1;
        int64_t right = (int64_t)ceilf(centre + support);
        if (right < left + 1) right = left + 1;
        if (right > in_size) right = in_size;
        wins[o].left = left;
        wins[o].count = right - left;
        if (right - left > stride) stride = right - left;
    }
    if (out_size * stride > (int64_t)(PY_SSIZE_T_MAX / sizeof(float)))
        return NULL; /* reported as out of memory, like a failed allocation */
    float *weights = PyMem_RawMalloc((size_t)(out_size * stride) * sizeof(float));
    if (weights == NULL)
        return NULL;
    for (int64_t o = 0; o < out_size; o++) {
        float *w = weights + o * stride;
        float centre = ((float)o + 0.5f) * ratio - 0.5f;
        float sum = 0.0f;
        for (int64_t k = 0; k < wins[o].count; k++) {
            float x = ((float)(wins[o].left + k) - centre) / sratio;
            w[k] = filter == FILTER_TRIANGLE ? triangle_kernel(x) : 1.0f;
            sum += w[k];
        }
        for (int64_t k = 0; k < wins[o].count; k++)
            w[k] /= sum;
    }
    *stride_out = stride;
    return weights;
}

/* Rust's f32::round (half away from zero) after clamping to 0..255 (NaN gives 0).
 * Exactly roundf for 0 <= t <= 255, without its libm call (a function call per byte in
 * wasm): `t - i` is exact there (Sterbenz: i <= t < i + 1 <= 2i, or i = 0). */
static unsigned char to_u8(float t) {
    if (!(t > 0.0f)) return 0;
    if (t > 255.0f) t = 255.0f;
    int i = (int)t;
    return (unsigned char)(i + (t - (float)i >= 0.5f));
}

/* Vertical pass for output row `y`: acc[x][ch] = sum_k src[left+k][x][ch] * w[k], in k order,
 * in f32 starting from 0.0f. Four columns at a time with the sums in locals: each tap is a
 * load and a multiply-add, not a load and store of the sum too (the order of the additions,
 * hence every bit of the result, is the same as summing into `acc`; this loop is most of a
 * resize, and most of the difference between wasm and native code). */
static void vertical_row(const unsigned char *src, int64_t row, const window *win,
                         const float *wy, float *acc) {
    const int64_t count = win->count;
    const unsigned char *top = src + win->left * row;
    int64_t j = 0;
    for (; j + 4 <= row; j += 4) {
        float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f, t3 = 0.0f;
        const unsigned char *p = top + j;
        for (int64_t k = 0; k < count; k++, p += row) {
            const float weight = wy[k];
            t0 += (float)p[0] * weight;
            t1 += (float)p[1] * weight;
            t2 += (float)p[2] * weight;
            t3 += (float)p[3] * weight;
        }
        acc[j] = t0;
        acc[j + 1] = t1;
        acc[j + 2] = t2;
        acc[j + 3] = t3;
    }
    for (; j < row; j++) {
        float t = 0.0f;
        const unsigned char *p = top + j;
        for (int64_t k = 0; k < count; k++, p += row)
            t += (float)*p * wy[k];
        acc[j] = t;
    }
}

/* Horizontal pass of one f32 row, then clamp and round to u8 (RGB: the three channels of a
 * pixel in one sweep of its window, each summed in k order). */
static void horizontal_row(const float *line, int64_t c, int64_t nw, const window *hwin,
                           const float *hweights, int64_t hstride, unsigned char *out) {
    for (int64_t x = 0; x < nw; x++) {
        const float *wx = hweights + x * hstride;
        const float *base = line + hwin[x].left * c;
        const int64_t count = hwin[x].count;
        if (c == 3) {
            float r = 0.0f, g = 0.0f, b = 0.0f;
            for (int64_t k = 0; k < count; k++) {
                const float weight = wx[k];
                r += base[3 * k] * weight;
                g += base[3 * k + 1] * weight;
                b += base[3 * k + 2] * weight;
            }
            out[3 * x] = to_u8(r);
            out[3 * x + 1] = to_u8(g);
            out[3 * x + 2] = to_u8(b);
            continue;
        }
        for (int64_t ch = 0; ch < c; ch++) {
            float t = 0.0f;
            for (int64_t k = 0; k < count; k++)
                t += base[k * c + ch] * wx[k];
            out[x * c + ch] = to_u8(t);
        }
    }
}

/* Runs without the GIL: only raw memory. Returns 0 on allocation failure.  Row by row: the
 * vertical pass of an output row goes into one f32 row that its horizontal pass consumes at
 * once (the same arithmetic as a whole f32 intermediate image, without its megabytes: in a
 * fresh wasm instance every page of those is a page fault). */
static int resize_pixels(const unsigned char *src, int64_t w, int64_t h, int64_t c,
                         unsigned char *dst, int64_t nw, int64_t nh, filter_kind filter) {
    int ok = 0;
    window *vwin = PyMem_RawMalloc((size_t)nh * sizeof(window));
    window *hwin = PyMem_RawMalloc((size_t)nw * sizeof(window));
    float *acc = PyMem_RawMalloc((size_t)(w * c) * sizeof(float));
    float *vweights = NULL, *hweights = NULL;
    int64_t vstride = 0, hstride = 0;
    if (vwin == NULL || hwin == NULL || acc == NULL)
        goto done;
    vweights = make_windows(h, nh, filter, vwin, &vstride);
    hweights = make_windows(w, nw, filter, hwin, &hstride);
    if (vweights == NULL || hweights == NULL)
        goto done;
    for (int64_t y = 0; y < nh; y++) {
        vertical_row(src, w * c, &vwin[y], vweights + y * vstride, acc);
        horizontal_row(acc, c, nw, hwin, hweights, hstride, dst + y * nw * c);
    }
    ok = 1;
done:
    PyMem_RawFree(vwin);
    PyMem_RawFree(hwin);
    PyMem_RawFree(acc);
    PyMem_RawFree(vweights);
    PyMem_RawFree(hweights);
    return ok;
}

/* The target size and filter of a resize, checked and parsed; 0 with ValueError set if bad. */
static int resize_target(long long nw, long long nh, const char *filter_name,
                         filter_kind *filter) {
    if (nw <= 0 || nh <= 0 || nw > (1 << 24) || nh > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "new_width and new_height must be in 1..2**24");
        return 0;
    }
    if (strcmp(filter_name, "triangle") == 0)
        *filter = FILTER_TRIANGLE;
    else if (strcmp(filter_name, "nearest") == 0)
        *filter = FILTER_NEAREST;
    else {
        PyErr_Format(PyExc_ValueError, "filter must be 'triangle' or 'nearest', not '%s'",
                     filter_name);
        return 0;
    }
    return 1;
}

/* `src` (w x h x c) resized to a new bytes object of nw x nh x c; NULL with an error set. */
static PyObject *resized_bytes(const unsigned char *src, int64_t w, int64_t h, int64_t c,
                               int64_t nw, int64_t nh, filter_kind filter) {
    /* The output, and the f32 row of the vertical pass (resize_pixels's `acc`). */
    if (!addressable(nw * nh * c, "the resized image") ||
        !addressable(w * c * (int64_t)sizeof(float), "resizing"))
        return NULL;
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(nw * nh * c));
    if (result == NULL)
        return NULL;
    int ok;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
    Py_BEGIN_ALLOW_THREADS
    ok = resize_pixels(src, w, h, c, dst, nw, nh, filter);
    Py_END_ALLOW_THREADS
    if (!ok) {
        Py_CLEAR(result);
        PyErr_NoMemory();
    }
    return result;
}

static PyObject *py_resize(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"pixels", "width", "height", "channels", "new_width",
                             "new_height", "filter", NULL};
    Py_buffer pixels;
    long long w, h, c, nw, nh;
    const char *filter_name = "triangle";
    filter_kind filter;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*LLLLL|s:resize", kwlist, &pixels, &w, &h,
                                     &c, &nw, &nh, &filter_name))
        return NULL;
    PyObject *result = NULL;
    if (check_image(pixels.len, w, h, c) && resize_target(nw, nh, filter_name, &filter))
        result = resized_bytes(pixels.buf, w, h, c, nw, nh, filter);
    PyBuffer_Release(&pixels);
    return result;
}

/* ---------------------------------------------------------------- decode + resize */

/* decode(data, channels) then resize(...) to new_width x new_height, without the decoded
 * picture ever becoming a bytes object: resized straight from stb's buffer. The same bytes as
 * the two calls; what it saves is a copy of the whole decoded picture (~1 MB for a photo),
 * which inside a fresh wasm instance is also that many pages faulted in. */
static PyObject *py_decode_resize(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"data", "channels", "new_width", "new_height", "filter", NULL};
    Py_buffer data;
    int channels;
    long long nw, nh;
    const char *filter_name = "triangle";
    filter_kind filter;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*iLL|s:decode_resize", kwlist, &data,
                                     &channels, &nw, &nh, &filter_name))
        return NULL;
    if (channels < 1 || channels > 4) {
        PyBuffer_Release(&data);
        return PyErr_Format(PyExc_ValueError, "channels must be 1..4, not %d", channels);
    }
    if (!resize_target(nw, nh, filter_name, &filter)) {
        PyBuffer_Release(&data);
        return NULL;
    }
    int width = 0, height = 0, file_channels = 0;
    unsigned char *pixels = decode_pixels(&data, channels, &width, &height, &file_channels);
    if (pixels == NULL)
        return NULL;
    PyObject *result = NULL;
    if (nw == width && nh == height) {   /* resize() returns such a picture unchanged */
        result = PyBytes_FromStringAndSize((const char *)pixels,
                                           (Py_ssize_t)width * height * channels);
    } else {
        result = resized_bytes(pixels, width, height, channels, nw, nh, filter);
    }
    stbi_image_free(pixels);
    if (result == NULL)
        return NULL;
    return Py_BuildValue("(NLLi)", result, nw, nh, channels);
}

/* ---------------------------------------------------------------- to_tensor */

/* Fill `out` (`channels` floats) from an optional sequence: absent -> fill; one value ->
 * broadcast; otherwise at least `channels` values. */
static int float_params(PyObject *seq_obj, const char *what, float fill, int channels, float *out) {
    for (int i = 0; i < channels; i++)
        out[i] = fill;
    if (seq_obj == NULL || seq_obj == Py_None)
        return 1;
    PyObject *seq = PySequence_Fast(seq_obj, "mean and std must be sequences of numbers");
    if (seq == NULL)
        return 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n != 1 && n < channels) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s needs 1 or %d values, got %zd", what, channels, n);
        return 0;
    }
    for (int i = 0; i < channels; i++) {
        double v = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, n == 1 ? 0 : i));
        if (v == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return 0;
        }
        out[i] = (float)v;
    }
    Py_DECREF(seq);
    return 1;
}

static PyObject *py_to_tensor(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"pixels", "width", "height", "channels", "layout", "order",
                             "dtype", "divisor", "mean", "std", NULL};
    Py_buffer pixels;
    long long w, h, c;
    const char *layout = "NCHW", *order = "RGB", *dtype = "f32";
    double divisor_d = 1.0;
    PyObject *mean_obj = NULL, *std_obj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*LLL|sssdOO:to_tensor", kwlist, &pixels, &w,
                                     &h, &c, &layout, &order, &dtype, &divisor_d, &mean_obj,
                                     &std_obj))
        return NULL;
    PyObject *result = NULL;
    float mean[4], stdv[4];
    int nchw, bgr, as_f32;
    if (!check_image(pixels.len, w, h, c))
        goto done;
    if (!(nchw = strcmp(layout, "NCHW") == 0) && strcmp(layout, "NHWC") != 0) {
        PyErr_Format(PyExc_ValueError, "layout must be 'NCHW' or 'NHWC', not '%s'", layout);
        goto done;
    }
    if (!(bgr = strcmp(order, "BGR") == 0) && strcmp(order, "RGB") != 0) {
        PyErr_Format(PyExc_ValueError, "order must be 'RGB' or 'BGR', not '%s'", order);
        goto done;
    }
    if (bgr && c < 3) {
        PyErr_SetString(PyExc_ValueError, "order 'BGR' needs at least 3 channels");
        goto done;
    }
    if (!(as_f32 = strcmp(dtype, "f32") == 0) && strcmp(dtype, "u8") != 0) {
        PyErr_Format(PyExc_ValueError, "dtype must be 'f32' or 'u8', not '%s'", dtype);
        goto done;
    }
    if (!float_params(mean_obj, "mean", 0.0f, (int)c, mean) ||
        !float_params(std_obj, "std", 1.0f, (int)c, stdv))
        goto done;
    const float divisor = (float)divisor_d;
    const int64_t plane = w * h;
    if (!addressable(plane * c * (as_f32 ? 4 : 1), "the tensor"))
        goto done;
    result = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(plane * c * (as_f32 ? 4 : 1)));
    if (result == NULL)
        goto done;
    void *out = PyByteArray_AS_STRING(result);
    const unsigned char *src = pixels.buf;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t oc = 0; oc < c; oc++) {
        /* Output channel oc reads source channel sc (BGR swaps 0 and 2). */
        int64_t sc = bgr && oc == 0 ? 2 : bgr && oc == 2 ? 0 : oc;
        int64_t step = nchw ? 1 : c;
        int64_t first = nchw ? oc * plane : oc;
        if (as_f32) {
            float *dst = (float *)out + first;
            const float m = mean[oc], s = stdv[oc];
            for (int64_t i = 0; i < plane; i++)
                dst[i * step] = ((float)src[i * c + sc] / divisor - m) / s;
        } else {
            unsigned char *dst = (unsigned char *)out + first;
            for (int64_t i = 0; i < plane; i++)
                dst[i * step] = src[i * c + sc];
        }
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&pixels);
    return result;
}

/* ---------------------------------------------------------------- module */

static PyMethodDef methods[] = {
    {"decode", (PyCFunction)(void (*)(void))py_decode, METH_VARARGS | METH_KEYWORDS,
     "decode(data, channels=0) -> (pixels: bytes, width, height, channels)\n\n"
     "JPEG (baseline, progressive), PNG, BMP, GIF (first frame).  channels=0 keeps the file's."},
    {"resize", (PyCFunction)(void (*)(void))py_resize, METH_VARARGS | METH_KEYWORDS,
     "resize(pixels, width, height, channels, new_width, new_height, filter='triangle') -> bytes\n\n"
     "'triangle' is exactly the Rust image crate's resize_exact(.., Triangle); 'nearest' too."},
    {"decode_resize", (PyCFunction)(void (*)(void))py_decode_resize, METH_VARARGS | METH_KEYWORDS,
     "decode_resize(data, channels, new_width, new_height, filter='triangle')\n"
     "    -> (pixels: bytes, new_width, new_height, channels)\n\n"
     "resize(*decode(data, channels), new_width, new_height, filter) without the decoded\n"
     "picture as an intermediate bytes object."},
    {"to_tensor", (PyCFunction)(void (*)(void))py_to_tensor, METH_VARARGS | METH_KEYWORDS,
     "to_tensor(pixels, width, height, channels, layout='NCHW', order='RGB', dtype='f32',\n"
     "          divisor=1.0, mean=(0,0,0), std=(1,1,1)) -> bytearray\n\n"
     "f32 value = ((float)p / divisor - mean[c]) / std[c] in single precision; c is the output\n"
     "channel (after 'BGR' swapped channels 0 and 2)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_wasinn_image",
    "Image decoding (stb_image), Rust-image-compatible resizing and tensor conversion in C.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__wasinn_image(void) { return PyModule_Create(&module_def); }
