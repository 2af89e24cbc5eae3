/* train: the training loop shared by every model (see train.h) — batches, AdamW, clipping, EMA,
 * validation, logs and atomic, resumable checkpoint directories. */
#include "train.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "philox.h"
#include "progress.h"
#include "version.h"

#define MODEL_FILE "model.safetensors"
#define STATE_FILE "train_state.safetensors"
#define LOG_FILE "train.log.jsonl"
/* The Philox record id of batch draws (a stream of its own: high word "batc"). */
#define BATCH_STREAM ((uint64_t)0x62617463 << 32)
/* Loss keys of validation batch i: BATCH_STREAM + i, apart from every training step's key. */

void train_defaults(struct train_opts *o)
{
    *o = (struct train_opts){
        .steps = 1000, .batch = 8, .lr = 3e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
        .weight_decay = 0.1, .warmup = 0, .cosine = 0, .lr_min = 0, .grad_clip = 1.0, .ema = 0,
        .eval_every = 100, .eval_batches = 8, .save_every = 1000, .seed = 0, .dtype = "f32",
        .device = "cpu", .precision = "fp32",
    };
}

/* ---- dtype conversion ---------------------------------------------------------------------- */

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static uint16_t f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    u &= 0x7fffffffu;
    if (u >= 0x7f800000u) return sign | 0x7c00 | (u > 0x7f800000u ? 0x200 : 0);
    if (u < 0x38800000u) { /* below 2^-14: an f16 subnormal (or zero) */
        if (u < 0x33000000u) return sign; /* below 2^-25: rounds to zero */
        uint32_t mant = (u & 0x7fffffu) | 0x800000u, shift = 126 - (u >> 23);
        uint32_t r = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = u - 0x38000000u; /* exponent bias 127 -> 15; overflow rounds into inf */
    r = (r + 0xfffu + ((r >> 13) & 1)) >> 13;
    return sign | (uint16_t)(r > 0x7c00 ? 0x7c00 : r);
}

/* ---- files ----------------------------------------------------------------------------------- */

int train_export(const train_model *m, const float *weights, const char *dir, const char *dtype,
                 const st_meta *meta, size_t n_meta, err_t *e)
{
    enum st_dtype dt = strcmp(dtype, "f32") == 0    ? ST_F32
                       : strcmp(dtype, "bf16") == 0 ? ST_BF16
                       : strcmp(dtype, "f16") == 0  ? ST_F16
                                                    : ST_NDTYPES;
    if (dt == ST_NDTYPES) return err_set(e, "unknown weight dtype '%s' (f32, bf16, f16)", dtype);
    if (m->write_config(m, dir, e) < 0) return ERR_FAIL;
    float *host = malloc(m->n_params * sizeof *host);
    uint16_t *half = dt == ST_F32 ? NULL : malloc(m->n_params * sizeof *half);
    st_tensor *ts = calloc((size_t)m->n_tensors, sizeof *ts);
    st_meta *all = calloc(n_meta + 1, sizeof *all);
    int rc = host && ts && all && (dt == ST_F32 || half) ? 0 : err_set(e, "out of memory");
    if (rc == 0) rc = m->be->to_host(host, weights, m->n_params * sizeof *host, e);
    for (int i = 0; rc == 0 && i < m->n_tensors; i++) {
        const struct train_tensor *t = &m->tensors[i];
        const void *data = host + t->offset;
        if (dt != ST_F32) {
            uint16_t *h = half + t->offset;
            for (size_t j = 0; j < t->numel; j++)
                h[j] = dt == ST_BF16 ? f32_to_bf16(host[t->offset + j])
                                     : f32_to_f16(host[t->offset + j]);
            data = h;
        }
        ts[i] = (st_tensor){.name = t->name, .dtype = dt, .ndim = t->ndim, .data = data};
        memcpy(ts[i].shape, t->shape, sizeof t->shape);
    }
    if (rc == 0) {
        all[0] = (st_meta){"format", "pt"};
        if (n_meta) memcpy(all + 1, meta, n_meta * sizeof *meta);
        char path[4096];
        snprintf(path, sizeof path, "%s/" MODEL_FILE, dir);
        rc = st_write(path, ts, (size_t)m->n_tensors, all, n_meta + 1, e);
    }
    free(host);
    free(half);
    free(ts);
    free(all);
    return rc;
}

/* Writes len bytes to path (created or truncated). */
static int write_text(const char *path, const char *text, size_t len, err_t *e)
{
    FILE *fp = fopen(path, "w");
    if (!fp) return err_set_errno(e, "cannot create '%s'", path);
    fwrite(text, 1, len, fp);
    if (ferror(fp) | (fclose(fp) != 0)) return err_set_errno(e, "writing '%s' failed", path);
    return 0;
}

/* The files a checkpoint directory holds: the only ones ever removed from one. */
static const char *const ckpt_files[] = {"config.json", MODEL_FILE, STATE_FILE, LOG_FILE};

/* Removes the known files of dir, then dir itself when that left it empty (else warns). */
static void remove_ckpt_dir(const char *dir)
{
    char path[4096];
    for (size_t i = 0; i < sizeof ckpt_files / sizeof *ckpt_files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, ckpt_files[i]);
        unlink(path);
    }
    if (rmdir(dir) != 0 && errno != ENOENT) log_warn("left '%s' in place: %s", dir, strerror(errno));
}

/* Removes the temporary checkpoint directories <out>.tmp.<pid> that a run killed while saving
 * left behind: those whose process no longer exists (another live run's is left alone). */
static void remove_stale_tmp_dirs(const char *out)
{
    char parent[4096], prefix[4096 + 8], path[8192];
    const char *slash = strrchr(out, '/');
    const char *base = slash ? slash + 1 : out;
    snprintf(parent, sizeof parent, "%.*s", slash ? (int)(slash - out) + 1 : 1, slash ? out : ".");
    snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    DIR *d = opendir(parent);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0) continue;
        const char *digits = de->d_name + strlen(prefix);
        char *end;
        long pid = strtol(digits, &end, 10);
        if (end == digits || *end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to know */
        snprintf(path, sizeof path, "%s/%s", parent, de->d_name);
        log_info("removing '%s', left by an interrupted save", path);
        remove_ckpt_dir(path);
    }
    closedir(d);
}

/* Creates the missing directories above path (mkdir -p of its parent), so that a run checks
 * where it will save before it trains rather than failing at its first save. */
static int make_parent_dirs(const char *path, err_t *e)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            return err_set_errno(e, "cannot create '%s'", dir);
        *p = '/';
    }
    return 0;
}

/* Zero when path may be replaced by a checkpoint: absent (its parent directories are created),
 * an empty directory, or a directory with a config.json (a model directory). */
static int check_replaceable(const char *dir, err_t *e)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno == ENOENT ? make_parent_dirs(dir, e) : err_set_errno(e, "cannot access '%s'", dir);
    if (!S_ISDIR(st.st_mode)) return err_set(e, "'%s' exists and is not a directory", dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (access(path, F_OK) == 0) return 0;
    DIR *d = opendir(dir);
    if (!d) return err_set_errno(e, "cannot read '%s'", dir);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)))
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    if (n) return err_set(e, "'%s' is a non-empty directory without config.json: not replaced", dir);
    return 0;
}

/* Moves the finished directory tmp to dir: an atomic exchange when dir exists (the old one then
 * sits at tmp and is removed), a rename otherwise. */
static int commit_dir(const char *tmp, const char *dir, err_t *e)
{
    if (rename(tmp, dir) == 0) return 0;
    if (errno != ENOTEMPTY && errno != EEXIST) return err_set_errno(e, "cannot rename '%s' to '%s'", tmp, dir);
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
        remove_ckpt_dir(tmp);
        return 0;
    }
    /* no exchange on this file system: move the old one aside first */
    char old[4096];
    snprintf(old, sizeof old, "%s.old.%ld", dir, (long)getpid());
    if (rename(dir, old) != 0) return err_set_errno(e, "cannot move '%s' aside", dir);
    if (rename(tmp, dir) != 0) {
        int rc = err_set_errno(e, "cannot rename '%s' to '%s'", tmp, dir);
        rename(old, dir);
        return rc;
    }
    remove_ckpt_dir(old);
    return 0;
}

/* ---- the run --------------------------------------------------------------------------------- */

enum { MAX_SETTINGS = 24 };

struct run {
    train_model *m;
    const struct train_opts *o;
    const int32_t *train, *val;
    size_t n_train, n_val;
    const char *out;
    float *adam_m, *adam_v, *ema;  /* backend memory, n_params each (ema NULL when off) */
    int32_t *batch;                /* host (batch, block_len) */
    char *log;                     /* train.log.jsonl so far */
    size_t log_len, log_cap;
    /* the settings a resumed run must match, as metadata strings */
    char keys[MAX_SETTINGS][32], vals[MAX_SETTINGS][64];
    int n_settings;
};

static void setting(struct run *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void setting(struct run *r, const char *key, const char *fmt, ...)
{
    ASSERT(r->n_settings < MAX_SETTINGS);
    snprintf(r->keys[r->n_settings], sizeof r->keys[0], "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->vals[r->n_settings], sizeof r->vals[0], fmt, ap);
    va_end(ap);
    r->n_settings++;
}

/* FNV-1a over the training blocks: resuming on other data is refused. */
static uint64_t data_hash(const int32_t *ids, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    const unsigned char *p = (const unsigned char *)ids;
    for (size_t i = 0; i < n * sizeof *ids; i++) h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

static void collect_settings(struct run *r)
{
    const train_model *m = r->m;
    const struct train_opts *o = r->o;
    setting(r, "arch", "%s", m->arch);
    setting(r, "n_params", "%zu", m->n_params);
    setting(r, "n_tensors", "%d", m->n_tensors);
    setting(r, "block_len", "%d", m->block_len);
    setting(r, "vocab", "%d", m->vocab);
    setting(r, "seed", "%" PRIu64, o->seed);
    setting(r, "batch", "%d", o->batch);
    setting(r, "train_blocks", "%zu", r->n_train);
    setting(r, "train_data_fnv1a", "%016" PRIx64,
            data_hash(r->train, r->n_train * (size_t)m->block_len));
    setting(r, "lr", "%.17g", o->lr);
    setting(r, "lr_min", "%.17g", o->lr_min);
    setting(r, "warmup", "%d", o->warmup);
    setting(r, "cosine", "%d", o->cosine);
    /* a cosine schedule depends on the total; a constant one may be extended */
    if (o->cosine) setting(r, "steps", "%d", o->steps);
    setting(r, "beta1", "%.17g", o->beta1);
    setting(r, "beta2", "%.17g", o->beta2);
    setting(r, "eps", "%.17g", o->eps);
    setting(r, "weight_decay", "%.17g", o->weight_decay);
    setting(r, "grad_clip", "%.17g", o->grad_clip);
    setting(r, "ema", "%.17g", o->ema);
}

static double lr_at(const struct train_opts *o, int step)
{
    if (o->warmup > 0 && step < o->warmup) return o->lr * step / o->warmup;
    if (!o->cosine || o->steps <= o->warmup) return o->lr;
    double progress = (double)(step - o->warmup) / (o->steps - o->warmup);
    return o->lr_min + 0.5 * (o->lr - o->lr_min) * (1 + cos(M_PI * progress));
}

static int log_append(struct run *r, const char *line, err_t *e)
{
    size_t n = strlen(line);
    if (r->log_len + n + 1 > r->log_cap) {
        size_t cap = (r->log_len + n + 1) * 2;
        char *p = realloc(r->log, cap);
        if (!p) return err_set(e, "out of memory");
        r->log = p;
        r->log_cap = cap;
    }
    memcpy(r->log + r->log_len, line, n + 1);
    r->log_len += n;
    return 0;
}

/* Mean loss over the fixed validation batches. */
static int validate(struct run *r, double *val, err_t *e)
{
    const train_model *m = r->m;
    int B = r->o->batch, T = m->block_len;
    double sum = 0;
    for (int i = 0; i < r->o->eval_batches; i++) {
        for (int b = 0; b < B; b++)
            memcpy(r->batch + (size_t)b * T, r->val + ((size_t)i * B + b) % r->n_val * T,
                   (size_t)T * sizeof *r->batch);
        double loss;
        if (r->m->loss(r->m, r->batch, B, r->o->seed, BATCH_STREAM + (uint64_t)i, false, &loss,
                       e) < 0)
            return ERR_FAIL;
        sum += loss;
    }
    *val = sum / r->o->eval_batches;
    return 0;
}

static int save(struct run *r, int step, err_t *e)
{
    const train_model *m = r->m;
    const struct train_opts *o = r->o;
    char tmp[4096], path[4096 + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", r->out, (long)getpid());
    remove_stale_tmp_dirs(r->out);
    remove_ckpt_dir(tmp); /* a leftover of this pid (none normally) */
    if (mkdir(tmp, 0777) != 0) return err_set_errno(e, "cannot create '%s'", tmp);
    char step_s[24], seed_s[24];
    snprintf(step_s, sizeof step_s, "%d", step);
    snprintf(seed_s, sizeof seed_s, "%" PRIu64, o->seed);
    st_meta meta[MAX_SETTINGS + 8];
    size_t n = 0;
    meta[n++] = (st_meta){"tool", "train"};
    meta[n++] = (st_meta){"version", DLM_VERSION " (" DLM_COMMIT ")"};
    meta[n++] = (st_meta){"step", step_s};
    meta[n++] = (st_meta){"dtype", o->dtype};
    meta[n++] = (st_meta){"device", o->device};
    meta[n++] = (st_meta){"precision", o->precision};
    for (int i = 0; i < r->n_settings; i++) meta[n++] = (st_meta){r->keys[i], r->vals[i]};
    int rc = train_export(m, r->ema ? r->ema : m->params, tmp, o->dtype, meta, n, e);
    /* train_state: exact fp32 copies of everything the next step reads */
    float *host = rc == 0 ? malloc(4 * m->n_params * sizeof *host) : NULL;
    if (rc == 0 && !host) rc = err_set(e, "out of memory");
    const float *src[4] = {m->params, r->adam_m, r->adam_v, r->ema};
    static const char *const names[4] = {"params", "adam_m", "adam_v", "ema"};
    st_tensor ts[4];
    int nt = 0;
    for (int i = 0; rc == 0 && i < 4; i++) {
        if (!src[i]) continue;
        float *dst = host + (size_t)nt * m->n_params;
        rc = m->be->to_host(dst, src[i], m->n_params * sizeof *dst, e);
        ts[nt++] = (st_tensor){.name = names[i], .dtype = ST_F32, .ndim = 1,
                               .shape = {(int64_t)m->n_params}, .data = dst};
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/" STATE_FILE, tmp);
        rc = st_write(path, ts, (size_t)nt, meta + 2, n - 2, e);
    }
    free(host);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/" LOG_FILE, tmp);
        rc = write_text(path, r->log ? r->log : "", r->log_len, e);
    }
    if (rc == 0) rc = commit_dir(tmp, r->out, e);
    if (rc < 0) remove_ckpt_dir(tmp);
    return rc;
}

/* Loads the state of out/train_state.safetensors, checking the settings; *step = its step. */
static int load_state(struct run *r, int *step, err_t *e)
{
    const train_model *m = r->m;
    char path[4096];
    snprintf(path, sizeof path, "%s/" STATE_FILE, r->out);
    st_file_t *f = st_open(path, e);
    if (!f) return err_prefix(e, "--resume");
    int rc = 0;
    for (int i = 0; rc == 0 && i < r->n_settings; i++) {
        const char *v = st_meta_find(f, r->keys[i]);
        if (!v || strcmp(v, r->vals[i]) != 0)
            rc = err_set(e, "--resume: %s: setting '%s' is %s in the checkpoint but %s now",
                         path, r->keys[i], v ? v : "absent", r->vals[i]);
    }
    /* another device or precision rounds differently: allowed, but not bit-identical */
    static const char *const info[2] = {"device", "precision"};
    const char *now_info[2] = {r->o->device, r->o->precision};
    for (int i = 0; rc == 0 && i < 2; i++) {
        const char *v = st_meta_find(f, info[i]);
        if (v && strcmp(v, now_info[i]) != 0)
            log_warn("--resume: the run so far used %s %s, this one %s: the result will not be "
                     "bit-identical to an uninterrupted run", info[i], v, now_info[i]);
    }
    const char *s = st_meta_find(f, "step");
    char *end = NULL;
    long st = s ? strtol(s, &end, 10) : -1;
    if (rc == 0 && (!s || *end || st < 0 || st > INT32_MAX))
        rc = err_set(e, "--resume: %s: no valid 'step' in the metadata", path);
    float *dst[4] = {m->params, r->adam_m, r->adam_v, r->ema};
    static const char *const names[4] = {"params", "adam_m", "adam_v", "ema"};
    float *host = rc == 0 ? malloc(m->n_params * sizeof *host) : NULL;
    if (rc == 0 && !host) rc = err_set(e, "out of memory");
    for (int i = 0; rc == 0 && i < 4; i++) {
        if (!dst[i]) continue;
        const st_tensor *t = st_find(f, names[i]);
        if (!t || t->dtype != ST_F32 || t->numel != m->n_params)
            rc = err_set(e, "--resume: %s: tensor '%s' is missing or mis-shaped", path, names[i]);
        else if ((rc = st_tensor_to_f32(t, host, e)) == 0)
            rc = m->be->to_device(dst[i], host, m->n_params * sizeof *host, e);
    }
    free(host);
    st_close(f);
    if (rc < 0) return rc;
    *step = (int)st;
    /* the log of the steps up to the checkpoint */
    snprintf(path, sizeof path, "%s/" LOG_FILE, r->out);
    FILE *fp = fopen(path, "r");
    if (fp) {
        char line[1024];
        while (rc == 0 && fgets(line, sizeof line, fp)) rc = log_append(r, line, e);
        fclose(fp);
    }
    return rc;
}

/* Fills r->batch with the blocks of `step`. */
static void draw_batch(struct run *r, int step)
{
    int T = r->m->block_len;
    for (int b = 0; b < r->o->batch; b++) {
        uint32_t w[4];
        philox_draw(r->o->seed, BATCH_STREAM, (uint32_t)step, (uint32_t)b, 0, w);
        size_t idx = (size_t)((((uint64_t)w[0] << 32) | w[1]) % r->n_train);
        memcpy(r->batch + (size_t)b * T, r->train + idx * T, (size_t)T * sizeof *r->batch);
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int check_opts(const struct train_opts *o, size_t n_train, err_t *e)
{
    if (o->steps < 0 || o->batch < 1 || o->warmup < 0 || o->eval_every < 0 ||
        o->eval_batches < 0 || o->save_every < 0)
        return err_set(e, "train: negative steps, batch or interval");
    if (!(o->lr >= 0) || !(o->lr_min >= 0) || !(o->beta1 >= 0 && o->beta1 < 1) ||
        !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0) || !(o->weight_decay >= 0) ||
        !(o->grad_clip >= 0) || !(o->ema >= 0 && o->ema < 1))
        return err_set(e, "train: an optimiser setting is out of range");
    if (n_train == 0 && o->steps > 0) return err_set(e, "train: no training blocks");
    return 0;
}

static void run_free(struct run *r)
{
    const backend *be = r->m->be;
    be->free(r->adam_m);
    be->free(r->adam_v);
    be->free(r->ema);
    free(r->batch);
    free(r->log);
}

int train_run(train_model *m, const struct train_opts *o, const int32_t *train_blocks,
              size_t n_train, const int32_t *val_blocks, size_t n_val, const char *out_dir,
              bool resume, err_t *e)
{
    if (check_opts(o, n_train, e) < 0) return ERR_FAIL;
    const backend *be = m->be;
    size_t bytes = m->n_params * sizeof(float);
    struct run r = {.m = m, .o = o, .train = train_blocks, .val = val_blocks,
                    .n_train = n_train, .n_val = n_val, .out = out_dir};
    collect_settings(&r);
    int rc = 0;
    r.batch = malloc((size_t)o->batch * m->block_len * sizeof *r.batch);
    if (!r.batch || !(r.adam_m = be->alloc(bytes)) || !(r.adam_v = be->alloc(bytes)) ||
        (o->ema > 0 && !(r.ema = be->alloc(bytes))))
        rc = err_set(e, "out of memory for the optimiser state (%zu parameters)", m->n_params);
    if (rc == 0) {
        be->zero(r.adam_m, bytes);
        be->zero(r.adam_v, bytes);
        if (r.ema) be->copy(r.ema, m->params, bytes);
    }
    if (rc == 0) rc = check_replaceable(out_dir, e);
    int start = 0;
    if (rc == 0 && resume) rc = load_state(&r, &start, e);
    if (rc == 0 && start > o->steps)
        rc = err_set(e, "--resume: %s is at step %d, past --steps %d", out_dir, start, o->steps);
    /* validation: the val blocks, or the training blocks when there are none */
    if (n_val == 0) {
        r.val = train_blocks;
        r.n_val = n_train;
    }
    bool eval_on = o->eval_every > 0 && o->eval_batches > 0 && r.n_val > 0;
    int log_every = o->eval_every > 0 ? o->eval_every : 100;
    if (rc == 0 && resume)
        log_info("resuming %s at step %d of %d", out_dir, start, o->steps);
    if (rc == 0 && start == 0 && eval_on) {
        double val;
        char line[256];
        rc = validate(&r, &val, e);
        if (rc == 0) {
            fprintf(stderr, "step 0/%d val %.4f\n", o->steps, val);
            snprintf(line, sizeof line, "{\"step\": 0, \"val\": %.9g}\n", val);
            rc = log_append(&r, line, e);
        }
    }
    progress pr;
    progress_start(&pr, "steps", (uint64_t)o->steps, o->progress);
    progress_update(&pr, (uint64_t)start);
    double t0 = now();
    long long tokens = 0;
    int end = o->stop_at > start && o->stop_at < o->steps ? o->stop_at : o->steps;
    for (int step = start + 1; rc == 0 && step <= end; step++) {
        draw_batch(&r, step);
        double loss;
        be->zero(m->grads, bytes);
        if ((rc = m->loss(m, r.batch, o->batch, o->seed, (uint64_t)step, true, &loss, e)) < 0)
            break;
        if (!isfinite(loss)) { /* before the update: the last checkpoint stays usable */
            rc = err_set(e, "step %d: the loss is %g; stopping", step, loss);
            break;
        }
        tokens += (long long)o->batch * m->block_len;
        double gnorm = sqrt(be->sumsq(m->grads, m->n_params));
        if (o->grad_clip > 0 && gnorm > o->grad_clip)
            be->scale(m->grads, (float)(o->grad_clip / gnorm), m->n_params);
        double lr = lr_at(o, step);
        for (int i = 0; i < m->n_tensors; i++) {
            const struct train_tensor *t = &m->tensors[i];
            be->adamw(m->params + t->offset, m->grads + t->offset, r.adam_m + t->offset,
                      r.adam_v + t->offset, t->numel, (float)lr, (float)o->beta1,
                      (float)o->beta2, (float)o->eps, t->decay ? (float)o->weight_decay : 0.0f,
                      step);
        }
        if (r.ema) be->ema(r.ema, m->params, m->n_params, (float)o->ema);
        bool last = step == end;
        if (step == start + 1 || step % log_every == 0 || last) {
            double val = NAN, t1 = now();
            if (eval_on && (step % o->eval_every == 0 || last) && (rc = validate(&r, &val, e)) < 0)
                break;
            double tps = tokens / (t1 - t0 > 1e-9 ? t1 - t0 : 1e-9);
            char vs[48] = "", vj[48] = "", line[512];
            if (!isnan(val)) {
                snprintf(vs, sizeof vs, " val %.4f", val);
                snprintf(vj, sizeof vj, ", \"val\": %.9g", val);
            }
            fprintf(stderr, "step %d/%d loss %.4f%s lr %.3g gnorm %.3g %.0f tok/s\n", step,
                    o->steps, loss, vs, lr, gnorm, tps);
            snprintf(line, sizeof line,
                     "{\"step\": %d, \"loss\": %.9g%s, \"lr\": %.9g, \"gnorm\": %.9g, "
                     "\"tokens_per_s\": %.1f}\n",
                     step, loss, vj, lr, gnorm, tps);
            if ((rc = log_append(&r, line, e)) < 0) break;
            t0 = now(); /* the rate of the next interval excludes validation */
            tokens = 0;
        }
        if (o->save_every > 0 && step % o->save_every == 0 && !last &&
            (rc = save(&r, step, e)) < 0)
            break;
        progress_update(&pr, (uint64_t)step);
    }
    if (pr.enabled) progress_finish(&pr);
    if (rc == 0 && !(resume && start == end)) rc = save(&r, end, e);
    if (rc == 0 && resume && start == end)
        log_warn("%s is already at step %d: nothing to do", out_dir, start);
    run_free(&r);
    return rc;
}
