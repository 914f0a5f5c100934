/*
 * protocol.c - the messages between the daemon and the spawner: encoding and
 * strict decoding of spawn requests, and sending/receiving one datagram with
 * file descriptors (SCM_RIGHTS) on the SOCK_SEQPACKET socketpair.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"
#include "sandbox/internal.h"

bool wisp__sb_id_valid(const char *id)
{
    size_t n = 0;
    if (id == NULL)
        return false;
    for (; id[n]; n++) {
        char ch = id[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
        if (!ok || n >= WISP_SB_ID_MAX)
            return false;
    }
    return n > 0;
}

static size_t count_strings(const char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

static uint8_t zygote_kind(const char *name)
{
    if (name && strcmp(name, "python3") == 0)
        return WISP_SB_ZYG_PYTHON3;
    if (name && strcmp(name, "nodejs") == 0)
        return WISP_SB_ZYG_NODEJS;
    return WISP_SB_ZYG_NONE;
}

int wisp__sb_encode_spawn(const wisp_sandbox_spec_t *spec, uint32_t seq, void **out, size_t *len,
                          wisp_err_t *err)
{
    if (!wisp__sb_id_valid(spec->id))
        return wisp_err_set(err, WISP_EINVALID, "sandbox id must match [A-Za-z0-9_-]{1,64}");
    if (spec->code_dir == NULL || spec->code_dir[0] != '/')
        return wisp_err_set(err, WISP_EINVALID, "code_dir must be an absolute path");
    if (spec->runtime_dir && spec->runtime_dir[0] != '/')
        return wisp_err_set(err, WISP_EINVALID, "runtime_dir must be an absolute path");
    if (spec->argv == NULL || spec->argv[0] == NULL || spec->argv[0][0] != '/')
        return wisp_err_set(err, WISP_EINVALID, "argv[0] must be an absolute path");
    if (spec->allow_network)
        return wisp_err_set(err, WISP_EUNSUPPORTED,
                            "sandboxes with network access are not "
                            "supported yet");
    if (spec->cpu_weight > 10000)
        return wisp_err_set(err, WISP_EINVALID, "cpu_weight must be 1-10000");
    size_t argc = count_strings(spec->argv), envc = count_strings(spec->envp);
    if (argc + envc > WISP_SB_ARGS_MAX)
        return wisp_err_set(err, WISP_ELIMIT, "too many arguments and environment entries");

    wisp_buf_t b = WISP_BUF_INIT(WISP_SB_MSG_MAX);
    struct wisp__sb_spawn m = {
        .hdr = {WISP_SB_SPAWN, seq},
        .memory_mb = spec->memory_mb,
        .tmp_mb = spec->tmp_mb ? spec->tmp_mb : WISP_SB_DEFAULT_TMP_MB,
        .pids_max = spec->pids_max ? spec->pids_max : WISP_SB_DEFAULT_PIDS,
        .cpu_weight = spec->cpu_weight,
        .nofile = spec->nofile ? spec->nofile : WISP_SB_DEFAULT_NOFILE,
        .api_port = spec->api_port ? spec->api_port : WISP_SB_DEFAULT_PORT,
        .has_runtime = spec->runtime_dir != NULL,
        .zygote = zygote_kind(spec->zygote),
        .argc = (uint32_t)argc,
        .envc = (uint32_t)envc,
    };
    int rc = wisp_buf_append(&b, &m, sizeof m, err);
    const char *fixed[] = {spec->id, spec->code_dir, spec->runtime_dir ? spec->runtime_dir : "",
                           spec->reuse_key ? spec->reuse_key : ""};
    for (size_t i = 0; rc == 0 && i < WISP_ARRAY_LEN(fixed); i++)
        rc = wisp_buf_append(&b, fixed[i], strlen(fixed[i]) + 1, err);
    for (size_t i = 0; rc == 0 && i < argc; i++)
        rc = wisp_buf_append(&b, spec->argv[i], strlen(spec->argv[i]) + 1, err);
    for (size_t i = 0; rc == 0 && i < envc; i++)
        rc = wisp_buf_append(&b, spec->envp[i], strlen(spec->envp[i]) + 1, err);
    if (rc < 0) {
        wisp_buf_free(&b);
        return wisp_err_wrap(err, "sandbox spec (argv, envp and paths) too large");
    }
    struct wisp__sb_spawn *hdr = (struct wisp__sb_spawn *)b.data;
    hdr->strings_len = (uint32_t)(b.len - sizeof m);
    *out = wisp_buf_steal(&b, len);
    return 0;
}

/* Take the next NUL-terminated string from [*p, end); NULL if there is none. */
static const char *next_string(const char **p, const char *end)
{
    const char *s = *p;
    if (s >= end)
        return NULL;
    const char *nul = memchr(s, '\0', (size_t)(end - s));
    if (nul == NULL)
        return NULL;
    *p = nul + 1;
    return s;
}

int wisp__sb_decode_spawn(const void *msg, size_t len, struct wisp__sb_spec *spec, wisp_err_t *err)
{
    memset(spec, 0, sizeof *spec);
    const struct wisp__sb_spawn *m = msg;
    if (len < sizeof *m || m->hdr.type != WISP_SB_SPAWN || m->strings_len != len - sizeof *m)
        return wisp_err_set(err, WISP_EINVALID, "malformed spawn request");
    if ((size_t)m->argc + m->envc > WISP_SB_ARGS_MAX || m->argc == 0)
        return wisp_err_set(err, WISP_EINVALID, "bad argument count in spawn request");
    const char *p = m->strings, *end = m->strings + m->strings_len;
    spec->seq = m->hdr.seq;
    spec->id = next_string(&p, end);
    spec->code_dir = next_string(&p, end);
    spec->runtime_dir = next_string(&p, end);
    spec->reuse_key = next_string(&p, end);
    spec->argv = xcalloc(m->argc + 1, sizeof(char *));
    spec->envp = xcalloc(m->envc + 1, sizeof(char *));
    bool ok = spec->id && spec->code_dir && spec->runtime_dir && spec->reuse_key;
    for (uint32_t i = 0; ok && i < m->argc; i++)
        ok = (spec->argv[i] = (char *)next_string(&p, end)) != NULL;
    for (uint32_t i = 0; ok && i < m->envc; i++)
        ok = (spec->envp[i] = (char *)next_string(&p, end)) != NULL;
    if (!ok || p != end || !wisp__sb_id_valid(spec->id) || spec->code_dir[0] != '/' ||
        (m->has_runtime && spec->runtime_dir[0] != '/')) {
        wisp__sb_spec_free(spec);
        return wisp_err_set(err, WISP_EINVALID, "malformed spawn request");
    }
    if (!m->has_runtime)
        spec->runtime_dir = NULL;
    if (spec->reuse_key[0] == '\0')
        spec->reuse_key = NULL;
    spec->memory_mb = m->memory_mb;
    spec->tmp_mb = m->tmp_mb;
    spec->pids_max = m->pids_max;
    spec->cpu_weight = m->cpu_weight;
    spec->nofile = m->nofile;
    spec->api_port = m->api_port;
    spec->zygote = m->zygote;
    return 0;
}

void wisp__sb_spec_free(struct wisp__sb_spec *spec)
{
    free(spec->argv);
    free(spec->envp);
    spec->argv = spec->envp = NULL;
}

static bool str_same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool wisp__sb_same_sandbox(const struct wisp__sb_spec *a, const struct wisp__sb_spec *b)
{
    if (!str_same(a->code_dir, b->code_dir) || !str_same(a->runtime_dir, b->runtime_dir) ||
        !str_same(a->reuse_key, b->reuse_key) || a->memory_mb != b->memory_mb ||
        a->tmp_mb != b->tmp_mb || a->pids_max != b->pids_max || a->cpu_weight != b->cpu_weight ||
        a->nofile != b->nofile || a->api_port != b->api_port || a->zygote != b->zygote)
        return false;
    int i = 0;
    for (; a->argv[i] && b->argv[i]; i++)
        if (strcmp(a->argv[i], b->argv[i]) != 0)
            return false;
    return a->argv[i] == b->argv[i];
}

int wisp__sb_put_strv(wisp_buf_t *b, char *const *v, wisp_err_t *err)
{
    for (; *v; v++)
        if (wisp_buf_append(b, *v, strlen(*v) + 1, err) < 0)
            return -1;
    return 0;
}

int wisp__sb_stem_message(const struct wisp__sb_spec *spec, void **out, size_t *len,
                          wisp_err_t *err)
{
    /* With the length first, exec-stem execs as soon as it has the whole
     * message, not at the writer's close (one wake-up fewer). */
    wisp_buf_t m = WISP_BUF_INIT(WISP_SB_MSG_MAX + 1);
    uint32_t body = 0;
    int rc = wisp_buf_append(&m, &body, sizeof body, err);
    if (rc == 0)
        rc = wisp__sb_put_strv(&m, spec->argv, err);
    if (rc == 0)
        rc = wisp_buf_append(&m, "", 1, err);
    if (rc == 0)
        rc = wisp__sb_put_strv(&m, spec->envp, err);
    if (rc == 0)
        rc = wisp_buf_append(&m, "", 1, err);
    if (rc == 0 && m.len - sizeof body >= WISP_SB_MSG_MAX)
        rc = wisp_err_set(err, WISP_ELIMIT, "argv and environment too long for a stem");
    if (rc < 0) {
        wisp_buf_free(&m);
        return -1;
    }
    body = (uint32_t)(m.len - sizeof body);
    memcpy(m.data, &body, sizeof body);
    *out = wisp_buf_steal(&m, len);
    return 0;
}

int wisp__sb_send(int sock, const void *msg, size_t len, const int *fds, int nfds, int flags)
{
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
    union {
        char buf[CMSG_SPACE(WISP_SB_FDS_MAX * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > WISP_SB_FDS_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (nfds > 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

ssize_t wisp__sb_recv(int sock, void *buf, size_t cap, int *fds, int *nfds, int flags)
{
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    union {
        char buf[CMSG_SPACE(WISP_SB_FDS_MAX * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    int want = nfds ? *nfds : 0;
    if (nfds)
        *nfds = 0;
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    int got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (got < want)
                fds[got++] = fd;
            else
                close(fd);
        }
    }
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        for (int i = 0; i < got; i++)
            close(fds[i]);
        errno = EMSGSIZE;
        return -1;
    }
    if (nfds)
        *nfds = got;
    return n;
}
