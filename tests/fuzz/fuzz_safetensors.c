/* libFuzzer target: st_parse on arbitrary bytes must fail cleanly or give a table whose every
 * view lies inside the buffer; conversions of small tensors run over the borrowed data. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    err_t e;
    st_file_t *f = st_parse(data, size, "fuzz", &e);
    if (!f) {
        if (strlen(e.msg) == 0) abort();  /* every failure says why */
        return 0;
    }
    const uint8_t *end = data + size;
    for (size_t i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_get(f, i);
        const uint8_t *p = t->data;
        if (p < data || p > end || t->nbytes > (size_t)(end - p)) abort();
        if (st_find(f, t->name) != t) abort();
        if (t->numel > 4096) continue;
        float fv[4096];
        int64_t iv[4096];
        if (st_dtype_is_float(t->dtype))
            st_tensor_to_f32(t, fv, &e);
        else
            st_tensor_to_i64(t, iv, &e);
    }
    for (size_t i = 0; i < st_meta_count(f); i++)
        if (st_meta_find(f, st_meta_get(f, i)->key) == NULL) abort();
    st_close(f);
    return 0;
}
