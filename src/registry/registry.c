/*
 * registry.c - functions and their code packages: deploys, lookups, change
 * listeners, package references and garbage collection.
 *
 * Threads: everything here runs on the event-loop thread except deploy_work,
 * which hashes, extracts and writes a package on the libuv thread pool and
 * touches nothing but its own struct deploy and immutable registry fields.
 *
 * Ordering: deploys of one function run one after the other, in the order
 * they were asked for (a per-name queue); each re-reads the stored state when
 * it commits, and writes with the revision it read, so that a change made
 * meanwhile by another process is detected rather than overwritten.
 *
 * Package lifetime: <code>/<sha> and <code>/<sha>.zip exist while some
 * function refers to the sha (store) or an environment holds it
 * (wisp_registry_pkg_hold). Collection renames the tree away at once (so the
 * name is free and no one can start using a half-removed tree) and deletes it
 * on the thread pool. It is postponed while any deploy is in flight, because a
 * deploy's worker may have found the tree present and be about to refer to it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/util.h"
#include "obs/metrics.h"
#include "registry/internal.h"

struct listener {
    wisp_registry_change_cb cb;
    void *data;
};

/* Environments' holds on one package. */
struct hold {
    char sha[65];
    unsigned n; /* > 0 while listed */
    struct hold *next;
};

/* One requested deploy, from wisp_registry_deploy until its callback ran. */
struct deploy {
    wisp_registry_t *reg;
    struct deploy *next; /* next deploy of the same function */
    uv_work_t work;      /* work.data unused; container_of via offset */
    char name[WISP_FN_NAME_MAX + 1];
    json_t *config;     /* own copy, or NULL */
    unsigned char *zip; /* own copy, or NULL (no code change) */
    size_t zip_len;
    wisp_deploy_mode_t mode;
    wisp_registry_deploy_cb cb;
    void *data;
    /* Results of the thread-pool part. */
    char sha[65]; /* of the zip, when there is one */
    int rc;       /* 0 or -1 with err */
    wisp_err_t err;
};

/* The deploys of one function: head runs (its work is queued), the others wait. */
struct fnqueue {
    char name[WISP_FN_NAME_MAX + 1];
    struct deploy *head, *tail;
    struct fnqueue *next;
};

/* Removal of a renamed-away tree on the thread pool. */
struct removal {
    uv_work_t work;
    wisp_registry_t *reg;
    char *path;
};

struct wisp_registry {
    uv_loop_t *loop;
    wisp_store_t *store;
    char *code_dir;             /* <data>/code */
    struct listener *listeners; /* in registration order */
    size_t nlisteners;
    struct hold *holds;     /* packages held by environments */
    struct fnqueue *queues; /* functions with deploys in flight */
    unsigned inflight;      /* deploys accepted and not finished */
    unsigned removing;      /* removals in flight */
    bool gc_wanted;         /* a collection was postponed by in-flight deploys */
    bool freed;             /* wisp_registry_free ran; release at the last completion */
    wisp_metric_t *deploys_total;
    /* Packages found referenced by a function, valid while no function has
     * been written or deleted since (ref_gen): the last env of a package
     * that is still its function's code ends without a query (every cold
     * start with idle_timeout_s 0 ended with one). */
    struct {
        char sha[65];
        uint64_t gen;
    } refd[8];
    unsigned next_refd;
    uint64_t ref_gen; /* bumped at every write or delete of a function */
};

/* ---- metrics ---- */

static void count_deploy(wisp_registry_t *reg, const wisp_err_t *err)
{
    char labels[64];
    snprintf(labels, sizeof labels, "outcome=\"%s\"",
             err ? wisp_errcode_name(err->code) : "success");
    wisp_metrics_add(reg->deploys_total, labels, 1);
}

static void functions_gauge(wisp_buf_t *out, const char *name, void *data)
{
    wisp_registry_t *reg = data;
    if (reg == NULL)
        return;
    int64_t n = wisp_store_fn_count(reg->store);
    if (n >= 0)
        wisp_buf_addf(out, "%s %lld\n", name, (long long)n);
}

/* ---- package collection ---- */

static struct hold *find_hold(wisp_registry_t *reg, const char *sha)
{
    for (struct hold *h = reg->holds; h; h = h->next)
        if (strcmp(h->sha, sha) == 0)
            return h;
    return NULL;
}

static void really_free(wisp_registry_t *reg);

static void removal_work(uv_work_t *w)
{
    struct removal *r = (struct removal *)w;
    wisp_err_t err;
    if (wisp__package_remove(r->path, &err) < 0)
        wisp_warn("registry", "removing %s: %s", r->path, err.msg);
}

static void removal_done(uv_work_t *w, int status)
{
    struct removal *r = (struct removal *)w;
    wisp_registry_t *reg = r->reg;
    free(r->path);
    free(r);
    reg->removing--;
    if (reg->freed && reg->inflight == 0 && reg->removing == 0)
        really_free(reg);
}

/* Rename path to a unique trash name (fast, atomic) and delete it on the
 * thread pool. */
static void trash(wisp_registry_t *reg, const char *path)
{
    char rnd[9];
    unsigned char b[4];
    wisp_random_bytes(b, sizeof b);
    wisp_hex(b, sizeof b, rnd);
    char *to = xasprintf("%s/.trash-%s", reg->code_dir, rnd);
    if (rename(path, to) < 0) {
        if (errno != ENOENT)
            wisp_warn("registry", "cannot move %s away: %s", path, strerror(errno));
        free(to);
        return;
    }
    struct removal *r = xcalloc(1, sizeof *r);
    r->reg = reg;
    r->path = to;
    reg->removing++;
    if (uv_queue_work(reg->loop, &r->work, removal_work, removal_done) != 0) {
        /* Cannot happen with a valid loop; leave the trash for the next start. */
        reg->removing--;
        free(r->path);
        free(r);
    }
}

/* Collect one package if nothing refers to it or holds it. */
static void collect(wisp_registry_t *reg, const char *sha)
{
    if (sha == NULL || sha[0] == '\0')
        return;
    if (reg->inflight > 0) {
        reg->gc_wanted = true;
        return;
    }
    if (find_hold(reg, sha) != NULL)
        return;
    for (unsigned i = 0; i < WISP_ARRAY_LEN(reg->refd); i++)
        if (reg->refd[i].gen == reg->ref_gen && strcmp(reg->refd[i].sha, sha) == 0)
            return; /* referenced, and no function changed since */
    int64_t refs = wisp_store_pkg_refs(reg->store, sha);
    if (refs > 0) {
        unsigned i = reg->next_refd++ % WISP_ARRAY_LEN(reg->refd);
        snprintf(reg->refd[i].sha, sizeof reg->refd[i].sha, "%s", sha);
        reg->refd[i].gen = reg->ref_gen;
    }
    if (refs != 0) /* -1: unsure, keep it */
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.zip", reg->code_dir, sha);
    if (unlink(path) < 0 && errno != ENOENT)
        wisp_warn("registry", "cannot remove %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/%s", reg->code_dir, sha);
    trash(reg, path);
    wisp_debug("registry", "collected package %s", sha);
}

/* Look at every entry of <code>: collect unused packages; at start, also
 * remove what interrupted extractions and removals left behind. */
static void sweep(wisp_registry_t *reg, bool at_start)
{
    if (reg->inflight > 0) {
        reg->gc_wanted = true;
        return;
    }
    reg->gc_wanted = false;
    DIR *d = opendir(reg->code_dir);
    if (d == NULL) {
        wisp_warn("registry", "cannot list %s: %s", reg->code_dir, strerror(errno));
        return;
    }
    /* Names are gathered first: collecting renames entries of this folder. */
    size_t n = 0, cap = 16;
    char **names = xmalloc(cap * sizeof *names);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap *= 2;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        const char *nm = names[i];
        size_t len = strlen(nm);
        char sha[65];
        if (wisp__is_sha256_hex(nm, len) ||
            (len == 68 && strcmp(nm + 64, ".zip") == 0 && wisp__is_sha256_hex(nm, 64))) {
            memcpy(sha, nm, 64);
            sha[64] = '\0';
            collect(reg, sha);
        } else if (at_start && (strncmp(nm, ".trash-", 7) == 0 || strncmp(nm, ".tmp-", 5) == 0 ||
                                (len > 69 && wisp__is_sha256_hex(nm, 64) &&
                                 strncmp(nm + 64, ".tmp-", 5) == 0))) {
            char *path = xasprintf("%s/%s", reg->code_dir, nm);
            if (strncmp(nm, ".tmp-", 5) == 0) {
                if (unlink(path) < 0 && errno != ENOENT)
                    wisp_warn("registry", "cannot remove %s: %s", path, strerror(errno));
            } else {
                trash(reg, path);
            }
            free(path);
        }
        free(names[i]);
    }
    free(names);
}

void wisp_registry_pkg_hold(wisp_registry_t *reg, const char *sha256)
{
    if (sha256 == NULL || sha256[0] == '\0')
        return;
    struct hold *h = find_hold(reg, sha256);
    if (h == NULL) {
        h = xcalloc(1, sizeof *h);
        snprintf(h->sha, sizeof h->sha, "%s", sha256);
        h->next = reg->holds;
        reg->holds = h;
    }
    h->n++;
}

void wisp_registry_pkg_release(wisp_registry_t *reg, const char *sha256)
{
    if (sha256 == NULL || sha256[0] == '\0')
        return;
    for (struct hold **pp = &reg->holds; *pp; pp = &(*pp)->next) {
        struct hold *h = *pp;
        if (strcmp(h->sha, sha256) != 0)
            continue;
        if (--h->n > 0)
            return;
        *pp = h->next;
        free(h);
        collect(reg, sha256);
        return;
    }
    wisp_warn("registry", "release of package %.64s that was not held", sha256);
}

/* ---- lookups ---- */

int wisp_registry_get(wisp_registry_t *reg, const char *name, wisp_fn_t **out, wisp_err_t *err)
{
    *out = NULL;
    if (!wisp_fn_name_valid(name))
        return wisp_err_set(err, WISP_ENOTFOUND, "function %.64s not found", name ? name : "");
    cleanup_json json_t *doc = NULL;
    if (wisp_store_fn_get(reg->store, name, &doc, err) < 0)
        return -1;
    return wisp__fn_from_doc(doc, out, err);
}

int wisp_registry_list(wisp_registry_t *reg, const char *after, int limit, wisp_fn_t ***out,
                       size_t *n, wisp_err_t *err)
{
    *out = NULL;
    *n = 0;
    cleanup_json json_t *docs = NULL;
    if (wisp_store_fn_list(reg->store, after, limit, &docs, err) < 0)
        return -1;
    size_t count = json_array_size(docs);
    wisp_fn_t **list = xcalloc(count ? count : 1, sizeof *list);
    for (size_t i = 0; i < count; i++) {
        if (wisp__fn_from_doc(json_array_get(docs, i), &list[i], err) < 0) {
            wisp_fn_list_free(list, i);
            return -1;
        }
    }
    *out = list;
    *n = count;
    return 0;
}

void wisp_fn_list_free(wisp_fn_t **list, size_t n)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        wisp_fn_free(list[i]);
    free(list);
}

size_t wisp_registry_count(wisp_registry_t *reg)
{
    int64_t n = wisp_store_fn_count(reg->store);
    return n > 0 ? (size_t)n : 0;
}

void wisp_registry_code_dir(wisp_registry_t *reg, const char *sha256, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", reg->code_dir, sha256);
}

void wisp_registry_on_change(wisp_registry_t *reg, wisp_registry_change_cb cb, void *data)
{
    reg->listeners = xrealloc(reg->listeners, (reg->nlisteners + 1) * sizeof *reg->listeners);
    reg->listeners[reg->nlisteners++] = (struct listener){cb, data};
}

static void notify(wisp_registry_t *reg, const char *name, const wisp_fn_t *fn)
{
    for (size_t i = 0; i < reg->nlisteners; i++)
        reg->listeners[i].cb(reg->listeners[i].data, name, fn);
}

int wisp_registry_delete(wisp_registry_t *reg, const char *name, wisp_err_t *err)
{
    wisp_fn_t *cur = NULL;
    if (wisp_registry_get(reg, name, &cur, err) < 0)
        return -1;
    char sha[65];
    snprintf(sha, sizeof sha, "%s", cur->code_sha256);
    wisp_fn_free(cur);
    reg->ref_gen++; /* even on failure: the store may have changed */
    if (wisp_store_fn_delete(reg->store, name, err) < 0)
        return -1;
    /* A function created again under this name starts with an empty log. */
    wisp_err_t lerr;
    if (wisp_store_log_delete_function(reg->store, name, &lerr) < 0)
        wisp_warn("registry", "deleting logs of %s: %s", name, lerr.msg);
    wisp_info("registry", "deleted function %s", name);
    notify(reg, name, NULL);
    collect(reg, sha);
    return 0;
}

/* ---- deploys ---- */

/* The state a deploy starts from and the state it would produce: what the
 * synchronous validation and the commit both compute. *cur is NULL for a new
 * function; *next is always set on success. */
static int plan(wisp_registry_t *reg, const char *name, json_t *config, wisp_deploy_mode_t mode,
                wisp_fn_t **cur, wisp_fn_t **next, wisp_err_t *err)
{
    *cur = NULL;
    *next = NULL;
    wisp_err_t gerr;
    if (wisp_registry_get(reg, name, cur, &gerr) < 0) {
        if (gerr.code != WISP_ENOTFOUND) {
            *err = gerr;
            return -1;
        }
        *cur = NULL;
    }
    if (*cur != NULL && mode == WISP_DEPLOY_CREATE_ONLY)
        return wisp_err_set(err, WISP_ECONFLICT, "function %s already exists", name);
    if (*cur == NULL && mode == WISP_DEPLOY_UPDATE_ONLY)
        return wisp_err_set(err, WISP_ENOTFOUND, "function %s not found", name);
    wisp_fn_t *fn;
    if (*cur != NULL) {
        fn = wisp_fn_dup(*cur);
    } else {
        fn = wisp_fn_new();
        snprintf(fn->name, sizeof fn->name, "%s", name);
    }
    if (wisp_fn_apply_config(fn, config, *cur == NULL, err) < 0) {
        wisp_fn_free(fn);
        return -1;
    }
    *next = fn;
    return 0;
}

/* True if b differs from a in configuration or code (revision and times aside). */
static bool changed(const wisp_fn_t *a, const wisp_fn_t *b)
{
    static const char *const volatile_keys[] = {"revision", "modified", "modified_ms"};
    cleanup_json json_t *ja = wisp_fn_to_json(a);
    cleanup_json json_t *jb = wisp_fn_to_json(b);
    for (size_t i = 0; i < WISP_ARRAY_LEN(volatile_keys); i++) {
        json_object_del(ja, volatile_keys[i]);
        json_object_del(jb, volatile_keys[i]);
    }
    return !json_equal(ja, jb);
}

/* Write the zip next to its tree: temp file, fsync, rename (content-addressed,
 * so replacing an existing one changes nothing). */
static int write_zip(const char *code_dir, const char *sha, const void *zip, size_t len,
                     wisp_err_t *err)
{
    cleanup_free char *path = xasprintf("%s/%s.zip", code_dir, sha);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len)
        return 0;
    cleanup_free char *tmp = xasprintf("%s/.tmp-%.16s-XXXXXX", code_dir, sha);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return wisp_err_sys(err, errno, "create %s", tmp);
    const unsigned char *p = zip;
    size_t left = len;
    int rc = 0;
    while (left > 0 && rc == 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = wisp_err_sys(err, errno, "write %s", tmp);
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (rc == 0 && (fchmod(fd, 0444) < 0 || fsync(fd) < 0))
        rc = wisp_err_sys(err, errno, "sync %s", tmp);
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = wisp_err_sys(err, errno, "rename %s", path);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* Thread pool: hash the zip, extract it unless its tree exists, keep the zip,
 * and make both durable before the loop thread stores a reference to them. */
static void deploy_work(uv_work_t *w)
{
    struct deploy *d = (struct deploy *)((char *)w - offsetof(struct deploy, work));
    if (d->zip == NULL)
        return;
    const char *code_dir = d->reg->code_dir;
    wisp__sha256_hex(d->zip, d->zip_len, d->sha);
    cleanup_free char *dest = xasprintf("%s/%s", code_dir, d->sha);
    struct stat st;
    if (lstat(dest, &st) < 0 || !S_ISDIR(st.st_mode)) {
        if (wisp_package_extract(d->zip, d->zip_len, dest, &d->err) < 0 &&
            d->err.code != WISP_ECONFLICT) { /* ECONFLICT: a concurrent deploy made it */
            d->rc = -1;
            return;
        }
    }
    if (write_zip(code_dir, d->sha, d->zip, d->zip_len, &d->err) < 0) {
        d->rc = -1;
        return;
    }
    /* One syncfs covers the extracted files, the zip and the folder entries. */
    cleanup_close int fd = open(code_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) < 0) {
        d->rc = wisp_err_sys(&d->err, errno, "sync %s", code_dir);
        return;
    }
    /* The zip is no longer needed in memory. */
    free(d->zip);
    d->zip = NULL;
}

static void deploy_free(struct deploy *d)
{
    json_decref(d->config);
    free(d->zip);
    free(d);
}

static void deploy_done(uv_work_t *w, int status);

static void deploy_start(struct deploy *d)
{
    int rc = uv_queue_work(d->reg->loop, &d->work, deploy_work, deploy_done);
    if (rc != 0) {
        /* Only an invalid loop makes this fail; report it through done. */
        d->rc = wisp_err_set(&d->err, WISP_EINTERNAL, "cannot queue deploy: %s", uv_strerror(rc));
        deploy_done(&d->work, 0);
    }
}

static struct fnqueue *find_queue(wisp_registry_t *reg, const char *name)
{
    for (struct fnqueue *q = reg->queues; q; q = q->next)
        if (strcmp(q->name, name) == 0)
            return q;
    return NULL;
}

/* Apply a finished deploy to the stored state; runs its callback. */
static void deploy_commit(struct deploy *d)
{
    wisp_registry_t *reg = d->reg;
    wisp_err_t err;
    bool has_code = d->sha[0] != '\0';
    if (d->rc < 0) {
        count_deploy(reg, &d->err);
        d->cb(d->data, NULL, false, &d->err);
        collect(reg, d->sha); /* a tree extracted before a later step failed */
        return;
    }
    wisp_fn_t *cur = NULL, *fn = NULL;
    cleanup_json json_t *doc = NULL; /* before any goto: cleanup runs at every exit */
    if (plan(reg, d->name, d->config, d->mode, &cur, &fn, &err) < 0)
        goto fail;
    if (has_code) {
        snprintf(fn->code_sha256, sizeof fn->code_sha256, "%s", d->sha);
        fn->code_size = (int64_t)d->zip_len;
    }
    if (cur != NULL && !changed(cur, fn)) {
        /* Nothing changed: keep the revision, so environments stay warm. */
        count_deploy(reg, NULL);
        d->cb(d->data, cur, false, NULL);
        wisp_fn_free(cur);
        wisp_fn_free(fn);
        return;
    }
    int64_t now = wisp_now_ms();
    wisp_uuid4(fn->revision);
    fn->modified_ms = now;
    if (cur == NULL)
        fn->created_ms = now;
    doc = wisp_fn_to_json(fn);
    reg->ref_gen++; /* even on failure: the store may have changed */
    if (wisp_store_fn_put(reg->store, d->name, doc, cur ? cur->revision : "", &err) < 0)
        goto fail;
    wisp_info("registry", "%s function %s (revision %s, code %.12s)", cur ? "updated" : "created",
              d->name, fn->revision, fn->code_sha256[0] ? fn->code_sha256 : "none");
    count_deploy(reg, NULL);
    notify(reg, d->name, fn);
    d->cb(d->data, fn, cur == NULL, NULL);
    if (cur != NULL && strcmp(cur->code_sha256, fn->code_sha256) != 0)
        collect(reg, cur->code_sha256);
    wisp_fn_free(cur);
    wisp_fn_free(fn);
    return;
fail:
    count_deploy(reg, &err);
    d->cb(d->data, NULL, false, &err);
    /* The package this deploy brought may now be unused. */
    collect(reg, d->sha);
    wisp_fn_free(cur);
    wisp_fn_free(fn);
}

static void deploy_done(uv_work_t *w, int status)
{
    struct deploy *d = (struct deploy *)((char *)w - offsetof(struct deploy, work));
    wisp_registry_t *reg = d->reg;
    struct fnqueue *q = find_queue(reg, d->name);
    if (!reg->freed && status == 0)
        deploy_commit(d);
    /* Next deploy of this function, if any. */
    struct deploy *next = d->next;
    deploy_free(d);
    reg->inflight--;
    if (q != NULL) {
        q->head = next;
        if (next == NULL) {
            for (struct fnqueue **pp = &reg->queues; *pp; pp = &(*pp)->next) {
                if (*pp == q) {
                    *pp = q->next;
                    break;
                }
            }
            free(q);
        }
    }
    /* wisp_registry_free already dropped the waiting deploys of a freed registry. */
    if (next != NULL)
        deploy_start(next);
    if (reg->freed) {
        if (reg->inflight == 0 && reg->removing == 0)
            really_free(reg);
        return;
    }
    if (reg->inflight == 0 && reg->gc_wanted)
        sweep(reg, false);
}

int wisp_registry_deploy(wisp_registry_t *reg, const char *name, json_t *config, const void *zip,
                         size_t zip_len, wisp_deploy_mode_t mode, wisp_registry_deploy_cb cb,
                         void *data, wisp_err_t *err)
{
    wisp_err_t local;
    if (err == NULL)
        err = &local;
    int rc = -1;
    if (!wisp_fn_name_valid(name)) {
        wisp_err_set(err, WISP_EINVALID, "function name must match [A-Za-z0-9_-]{1,64}");
    } else if (zip != NULL && zip_len == 0) {
        wisp_err_set(err, WISP_EINVALID, "package is empty");
    } else if (zip != NULL && zip_len > WISP_ZIP_MAX) {
        wisp_err_set(err, WISP_ELIMIT, "package is larger than 50 MiB zipped (%zu bytes)", zip_len);
    } else if (config != NULL && !json_is_object(config)) {
        wisp_err_set(err, WISP_EINVALID, "configuration must be a JSON object");
    } else if (find_queue(reg, name) != NULL) {
        /* Earlier deploys of this function are still running: the state this
         * one will apply to is not known yet, so only each field is checked
         * now; the commit checks the rest against the state it then finds. */
        rc = wisp__fn_check_fields(name, config, err);
    } else {
        /* Validate against the current state now, so callers get errors at
         * once; the commit checks again against the state it then finds. */
        wisp_fn_t *cur = NULL, *next = NULL;
        rc = plan(reg, name, config, mode, &cur, &next, err);
        wisp_fn_free(cur);
        wisp_fn_free(next);
    }
    if (rc < 0) {
        count_deploy(reg, err);
        return -1;
    }

    struct deploy *d = xcalloc(1, sizeof *d);
    d->reg = reg;
    snprintf(d->name, sizeof d->name, "%s", name);
    d->config = config ? json_deep_copy(config) : NULL;
    if (zip != NULL) {
        d->zip = xmalloc(zip_len);
        memcpy(d->zip, zip, zip_len);
        d->zip_len = zip_len;
    }
    d->mode = mode;
    d->cb = cb;
    d->data = data;
    reg->inflight++;
    struct fnqueue *q = find_queue(reg, name);
    if (q != NULL) {
        q->tail->next = d;
        q->tail = d;
        return 0;
    }
    q = xcalloc(1, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", name);
    q->head = q->tail = d;
    q->next = reg->queues;
    reg->queues = q;
    deploy_start(d);
    return 0;
}

/* ---- lifetime ---- */

wisp_registry_t *wisp_registry_new(uv_loop_t *loop, wisp_store_t *store, const char *data_dir,
                                   wisp_err_t *err)
{
    cleanup_free char *code_dir = xasprintf("%s/code", data_dir);
    if (wisp_mkdir_p(code_dir, 0755, err) < 0)
        return NULL;
    wisp_registry_t *reg = xcalloc(1, sizeof *reg);
    reg->loop = loop;
    reg->store = store;
    reg->code_dir = steal_pointer(&code_dir);
    reg->deploys_total = wisp_metrics_counter("wisp_deploys_total", "Function deploys by outcome.");
    wisp_metrics_gauge_fn("wisp_functions", "Functions registered.", functions_gauge, reg);
    sweep(reg, true);
    return reg;
}

static void really_free(wisp_registry_t *reg)
{
    while (reg->holds) {
        struct hold *h = reg->holds;
        reg->holds = h->next;
        free(h);
    }
    free(reg->listeners);
    free(reg->code_dir);
    free(reg);
}

void wisp_registry_free(wisp_registry_t *reg)
{
    if (reg == NULL)
        return;
    wisp_metrics_gauge_fn("wisp_functions", "Functions registered.", functions_gauge, NULL);
    reg->freed = true;
    /* Deploys that have not started are dropped; a running one finishes its
     * thread-pool part and is then dropped too, without its callback. */
    for (struct fnqueue *q = reg->queues; q; q = q->next) {
        struct deploy *d = q->head->next;
        q->head->next = NULL;
        q->tail = q->head;
        while (d != NULL) {
            struct deploy *after = d->next;
            deploy_free(d);
            reg->inflight--;
            d = after;
        }
        uv_cancel((uv_req_t *)&q->head->work);
    }
    if (reg->inflight == 0 && reg->removing == 0)
        really_free(reg);
}
