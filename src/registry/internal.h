/*
 * internal.h - what the registry's files share with each other and with its
 * tests and fuzz targets; nothing else includes it.
 */
#ifndef WISP_REGISTRY_INTERNAL_H
#define WISP_REGISTRY_INTERNAL_H

#include <stdint.h>

#include "registry/registry.h"

/* Deepest folder nesting a package may have. It bounds the file descriptors
 * that a recursive walk of an extracted tree (removal) holds open at once. */
#define WISP_PKG_DEPTH_MAX 128

/* The limits that package checks enforce; tests use smaller ones for speed. */
struct wisp__pkg_limits {
    uint64_t zip_max;      /* bytes of the zip itself */
    uint64_t unzipped_max; /* sum of the bytes of all files, counted while inflating */
    unsigned entries_max;  /* entries of any kind, folders included */
};

/* WISP_ZIP_MAX, WISP_UNZIPPED_MAX and WISP_ZIP_ENTRIES_MAX. */
extern const struct wisp__pkg_limits wisp__pkg_default_limits;

/* wisp_package_extract and wisp_package_check with chosen limits. */
int wisp__package_extract_limits(const void *zip, size_t len, const char *dest,
                                 const struct wisp__pkg_limits *lim, wisp_err_t *err)
    __attribute__((warn_unused_result));
int wisp__package_check_limits(const void *zip, size_t len, const struct wisp__pkg_limits *lim,
                               wisp_err_t *err) __attribute__((warn_unused_result));

/* rm -rf for extracted trees: like wisp_rm_rf, but first gives read-only
 * folders back their owner's write permission, so that it also works when
 * wisp does not run as root. Thread-safe. */
int wisp__package_remove(const char *path, wisp_err_t *err) __attribute__((warn_unused_result));

/* Lower-case hex SHA-256 of data (OpenSSL EVP). */
void wisp__sha256_hex(const void *data, size_t len, char out[65]);

/* True if s is 64 lower-case hex digits (a package name under <data>/code). */
bool wisp__is_sha256_hex(const char *s, size_t len);

/* Check each field of a config on its own (types, ranges, unknown fields),
 * without the rules across fields that depend on the state it will apply to.
 * For deploys queued behind others of the same function. */
int wisp__fn_check_fields(const char *name, json_t *config, wisp_err_t *err)
    __attribute__((warn_unused_result));

/* Rebuild a function from a stored document (the wisp_fn_to_json view).
 * *out is new; WISP_EINTERNAL if the document is not one. */
int wisp__fn_from_doc(json_t *doc, wisp_fn_t **out, wisp_err_t *err)
    __attribute__((warn_unused_result));

#endif
