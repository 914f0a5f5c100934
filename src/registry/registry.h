/*
 * registry.h - functions and their code packages.
 *
 * The registry validates function configuration (one validator for the native
 * API, the Lambda API and the CLI), stores it through the store interface, and
 * keeps code packages content-addressed under <data>/code: the zip as
 * <sha256>.zip and its safely extracted tree as <sha256>/ (read-only to
 * sandboxes). Extraction runs on the libuv thread pool; everything else, and
 * every callback, runs on the event-loop thread. Packages no function refers
 * to are garbage-collected.
 *
 * Native configuration JSON (PUT /v1/functions/{name}); every field optional
 * on update, defaults on create:
 *   runtime "provided"|"python3"|"nodejs" (required on create), handler
 *   (required for python3/nodejs), memory_mb 128-10240 (128), timeout_s 1-900
 *   (3), env {string:string} (4 KiB total of keys+values), concurrency
 *   0-1000 or null (reserved max; unset = none), tmp_mb 512-10240 (512),
 *   idle_timeout_s 0-86400 (300), min_warm 0-100 (0), description (<= 256).
 * Unknown fields are rejected (WISP_EINVALID) so typos are not silently lost.
 */
#ifndef WISP_REGISTRY_REGISTRY_H
#define WISP_REGISTRY_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"
#include "store/store.h"

#define WISP_FN_NAME_MAX 64
#define WISP_ZIP_MAX (50u * 1024 * 1024)       /* zipped package */
#define WISP_UNZIPPED_MAX (250u * 1024 * 1024) /* sum of extracted file sizes */
#define WISP_ZIP_ENTRIES_MAX 20000
#define WISP_ENV_BYTES_MAX 4096

typedef struct wisp_registry wisp_registry_t;

/* One function's configuration and code identity. */
typedef struct wisp_fn {
    char name[WISP_FN_NAME_MAX + 1];
    char runtime[16];   /* "provided" | "python3" | "nodejs" */
    char handler[129];  /* "app.handler"; may be "" for provided */
    int memory_mb;      /* 128-10240 */
    int timeout_s;      /* 1-900 */
    int tmp_mb;         /* size of the writable /tmp */
    int idle_timeout_s; /* keep-alive of idle envs; 0 = retire after each invocation */
    int concurrency;    /* reserved maximum of concurrent envs; -1 = not set */
    int min_warm;       /* envs kept warm (provisioned concurrency) */
    char description[257];
    json_t *env;          /* object of string values; owned; never NULL */
    char code_sha256[65]; /* hex SHA-256 of the zip; "" while no code was uploaded */
    int64_t code_size;    /* bytes of the zip */
    char revision[37];    /* UUID; changes on every code or config change */
    int64_t created_ms;   /* epoch ms */
    int64_t modified_ms;  /* epoch ms of the last code or config change */
} wisp_fn_t;

wisp_fn_t *wisp_fn_new(void);
wisp_fn_t *wisp_fn_dup(const wisp_fn_t *fn);
void wisp_fn_free(wisp_fn_t *fn);
/* The native JSON view (GET /v1/functions/{name}); new reference. */
json_t *wisp_fn_to_json(const wisp_fn_t *fn);
/* True if name matches [A-Za-z0-9_-]{1,64}. */
bool wisp_fn_name_valid(const char *name);
/* Apply a native config JSON object onto fn (defaults already in fn for a
 * create; config NULL checks fn as it is). Validates every field, then the
 * rules across fields (runtime set, handler shape for the runtime, min_warm <=
 * concurrency); errors name the field. Unknown and read-only fields are
 * WISP_EINVALID; an env over WISP_ENV_BYTES_MAX is WISP_ELIMIT. A "name" field
 * is accepted only if it equals fn->name (or sets it when fn->name is "").
 * On error fn may be partly changed. */
int wisp_fn_apply_config(wisp_fn_t *fn, json_t *config, bool creating, wisp_err_t *err)
    __attribute__((warn_unused_result));

/* Open the registry over an open store and the data folder; creates <data>/code
 * and removes packages no function refers to (and leftovers of interrupted
 * extractions), the big trees on the thread pool. Registers the metrics
 * wisp_functions (gauge) and wisp_deploys_total{outcome} (counter). */
wisp_registry_t *wisp_registry_new(uv_loop_t *loop, wisp_store_t *store, const char *data_dir,
                                   wisp_err_t *err);
/* Deploys not yet started are dropped and their callbacks never run; a deploy
 * or removal already on the thread pool finishes there, and the registry's
 * memory is released when its completion runs on the loop (so run the loop
 * until it is idle before closing it). The store must outlive that. */
void wisp_registry_free(wisp_registry_t *reg);

/* Look up one function; *out is a copy the caller frees. WISP_ENOTFOUND if absent. */
int wisp_registry_get(wisp_registry_t *reg, const char *name, wisp_fn_t **out, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* Up to limit functions with name > after (NULL = from the start), by name.
 * *out is an array of copies; free with wisp_fn_list_free. */
int wisp_registry_list(wisp_registry_t *reg, const char *after, int limit, wisp_fn_t ***out,
                       size_t *n, wisp_err_t *err) __attribute__((warn_unused_result));
void wisp_fn_list_free(wisp_fn_t **list, size_t n);
size_t wisp_registry_count(wisp_registry_t *reg);
/* Delete a function and its log lines (its package is collected if unused);
 * change listeners run with fn = NULL. WISP_ENOTFOUND if absent. */
int wisp_registry_delete(wisp_registry_t *reg, const char *name, wisp_err_t *err)
    __attribute__((warn_unused_result));

typedef enum wisp_deploy_mode {
    WISP_DEPLOY_UPSERT,      /* create or update */
    WISP_DEPLOY_CREATE_ONLY, /* WISP_ECONFLICT if it exists */
    WISP_DEPLOY_UPDATE_ONLY, /* WISP_ENOTFOUND if it does not */
} wisp_deploy_mode_t;

/* Called on the loop thread when a deploy finishes. On success fn is the new
 * state (borrowed for the call) and created tells whether it is new; on
 * failure fn is NULL and err says why (INVALID/LIMIT for bad packages;
 * CONFLICT/NOTFOUND if a deploy or delete before it changed what the mode
 * allows). */
typedef void (*wisp_registry_deploy_cb)(void *data, const wisp_fn_t *fn, bool created,
                                        const wisp_err_t *err);

/* Create or change a function: config (native JSON, may be NULL: no config
 * change) and/or a zip package (zip may be NULL: no code change; the registry
 * copies the bytes). Config is validated before anything is written; the zip
 * is checked and extracted on the thread pool; then the function is stored
 * with a new revision, change listeners run, and cb runs. Returns -1 with
 * *err only if the request is rejected at once (then cb is not called);
 * otherwise cb runs exactly once, always after this returns.
 *
 * A function may be created without code (code_sha256 ""); a config-only
 * update keeps the code. Deploys of one function are applied one after the
 * other in the order they were asked for, each re-validated against the
 * state it finds (while earlier deploys of the same function are in flight,
 * only each field is checked at once; mode and cross-field errors then come
 * through cb). A deploy that changes nothing (same config, same package)
 * keeps the revision and does not call the change listeners. */
int wisp_registry_deploy(wisp_registry_t *reg, const char *name, json_t *config, const void *zip,
                         size_t zip_len, wisp_deploy_mode_t mode, wisp_registry_deploy_cb cb,
                         void *data, wisp_err_t *err) __attribute__((warn_unused_result));

/* Host path of a package's extracted tree (<data>/code/<sha256>). */
void wisp_registry_code_dir(wisp_registry_t *reg, const char *sha256, char *out, size_t n);

/* Keep a package's tree while an environment uses it, even after no function
 * refers to it any more (the function changed code or was deleted while the
 * env still runs). Holds are counted per sha256; each hold needs one release.
 * A package is collected when it is neither referenced nor held, so the last
 * release may remove it. "" and NULL are ignored. Loop thread only. */
void wisp_registry_pkg_hold(wisp_registry_t *reg, const char *sha256);
void wisp_registry_pkg_release(wisp_registry_t *reg, const char *sha256);

/* Called after a function was created, changed (fn = new state, borrowed for
 * the call) or deleted (fn = NULL). Any number of listeners; run in
 * registration order, before the deploy's own callback. */
typedef void (*wisp_registry_change_cb)(void *data, const char *name, const wisp_fn_t *fn);
void wisp_registry_on_change(wisp_registry_t *reg, wisp_registry_change_cb cb, void *data);

/* Check and extract a zip (bytes in memory) into dest, which must not exist.
 * Refuses: more than WISP_ZIP_MAX bytes, entries with absolute paths or "..",
 * symlinks or hard links, device files/fifos/sockets, more than
 * WISP_ZIP_ENTRIES_MAX entries or WISP_UNZIPPED_MAX bytes in all (counted
 * while extracting, not trusted from headers), unreadable archives. Files keep
 * their executable bit; everything is made read-only. On failure dest is
 * removed. Thread-safe (no shared state); used by the fuzz target.
 * WISP_ELIMIT for the size and count limits, WISP_EINVALID for everything
 * wrong with the archive, WISP_ECONFLICT if dest exists. */
int wisp_package_extract(const void *zip, size_t len, const char *dest, wisp_err_t *err)
    __attribute__((warn_unused_result));
/* Only the checks of wisp_package_extract, without writing anything (it still
 * inflates every entry to count the bytes). Does not detect duplicate names,
 * which only extraction finds. */
int wisp_package_check(const void *zip, size_t len, wisp_err_t *err)
    __attribute__((warn_unused_result));

#endif
