/*
 * client.c - the daemon's side of the sandbox subsystem: the public API of
 * sandbox.h. wisp_sandbox_init finds the cgroup layout and forks the spawner
 * (spawner.c); afterwards requests go down the socketpair with a sequence
 * number, and replies (matched to their callbacks by that number) and exit
 * events come up and are dispatched from a uv_poll_t on the daemon's loop.
 * File descriptors arrive with SCM_RIGHTS, close-on-exec. Requests the
 * socket cannot take right away wait in a queue until it is writable, so the
 * loop never blocks.
 */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "sandbox/internal.h"
#include "sandbox/sandbox.h"

#define READY_TIMEOUT_MS 30000

/* A spawn request waiting for its reply. */
struct pending {
    struct pending *next;
    uint32_t seq;
    char id[WISP_SB_ID_MAX + 1];
    wisp_sandbox_spawn_cb cb;
    void *data;
};

/* A sandbox that started and has not ended yet. */
struct live {
    struct live *next;
    char id[WISP_SB_ID_MAX + 1];
};

/* A message the socket could not take yet. */
struct outmsg {
    struct outmsg *next;
    size_t len;
    char data[];
};

/* The daemon's handle. Owned by the loop thread; poll is a separate
 * allocation because libuv frees handles only in their close callback. */
struct wisp_sandbox {
    int sock;           /* our end of the socketpair */
    pid_t spawner;      /* the spawner's pid, reaped by close */
    struct wisp__cg cg; /* the layout the spawner uses too */
    uv_loop_t *loop;    /* set by attach */
    uv_poll_t *poll;    /* watches sock; freed in its close callback */
    int poll_events;    /* UV_READABLE, plus UV_WRITABLE while out is non-empty */
    wisp_sandbox_exit_cb exit_cb;
    void *exit_data;
    uint32_t next_seq;
    struct pending *pending;
    struct live *live;
    unsigned nlive;
    struct outmsg *out, **out_tail;
    bool dead;       /* the spawner is gone */
    int dispatching; /* > 0 while callbacks run */
    bool closed;     /* wisp_sandbox_close ran during a callback; free later */
    union {
        struct wisp__sb_hdr hdr;
        struct wisp__sb_result result;
        struct wisp__sb_exit exit;
    } in; /* the message being read */
};

/* ---- start-up ---------------------------------------------------------------- */

static int wait_ready(wisp_sandbox_t *sb, wisp_err_t *err)
{
    struct pollfd p = {.fd = sb->sock, .events = POLLIN};
    int n;
    do
        n = poll(&p, 1, READY_TIMEOUT_MS);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return wisp_err_set(err, WISP_EUNAVAILABLE, "sandbox spawner did not start in time");
    struct wisp__sb_result r;
    ssize_t len = wisp__sb_recv(sb->sock, &r, sizeof r, NULL, NULL, 0);
    if (len != (ssize_t)sizeof r || r.hdr.type != WISP_SB_READY)
        return wisp_err_set(err, WISP_EUNAVAILABLE, "sandbox spawner failed to start");
    if (r.code != WISP_OK) {
        r.msg[sizeof r.msg - 1] = '\0';
        wisp_err_set(err, (wisp_errcode_t)r.code, "sandbox spawner: %s", r.msg);
        err->sys_errno = r.sys_errno;
        return -1;
    }
    return 0;
}

int wisp_sandbox_init(wisp_sandbox_t **out, const wisp_sandbox_config_t *cfg, wisp_err_t *err)
{
    *out = NULL;
    wisp_sandbox_config_t c = {
        .state_dir = cfg && cfg->state_dir ? cfg->state_dir : "/run/wisp",
        .cgroup_name = cfg && cfg->cgroup_name ? cfg->cgroup_name : "wisp",
        .uid = cfg && cfg->uid ? cfg->uid : 65534,
        .gid = cfg && cfg->gid ? cfg->gid : 65534,
        .pool_size = !cfg || cfg->pool_size == 0         ? WISP_SB_DEFAULT_POOL
                     : cfg->pool_size < 0                ? 0
                     : cfg->pool_size > WISP_SB_POOL_MAX ? WISP_SB_POOL_MAX
                                                         : cfg->pool_size,
        .no_zygote = (cfg && cfg->no_zygote) ||
                     (getenv("WISP_ZYGOTE") && strcmp(getenv("WISP_ZYGOTE"), "0") == 0),
        .no_netns_reuse =
            (cfg && cfg->no_netns_reuse) ||
            (getenv("WISP_NETNS_REUSE") && strcmp(getenv("WISP_NETNS_REUSE"), "0") == 0),
        .no_exec_stems = (cfg && cfg->no_exec_stems) ||
                         (getenv("WISP_EXEC_STEMS") && strcmp(getenv("WISP_EXEC_STEMS"), "0") == 0),
    };
    if (geteuid() != 0)
        return wisp_err_set(err, WISP_EUNAVAILABLE, "sandboxes need root");
    if (c.state_dir[0] != '/')
        return wisp_err_set(err, WISP_EINVALID, "sandbox state_dir must be an absolute path");
    wisp_sandbox_t *sb = xcalloc(1, sizeof *sb);
    sb->out_tail = &sb->out;
    sb->spawner = -1;
    sb->sock = -1;
    if (wisp__cg_setup(&sb->cg, c.cgroup_name, err) < 0) {
        free(sb);
        return -1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        wisp_err_sys(err, errno, "socketpair");
        goto fail;
    }
    pid_t daemon = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        wisp_err_sys(err, errno, "fork");
        close(sv[0]);
        close(sv[1]);
        goto fail;
    }
    if (pid == 0) {
        close(sv[0]);
        wisp__spawner_main(sv[1], daemon, &c, &sb->cg);
    }
    close(sv[1]);
    sb->sock = sv[0];
    sb->spawner = pid;
    if (wait_ready(sb, err) < 0)
        goto fail;
    wisp_info("sandbox", "spawner %d ready, cgroups %s%s", (int)pid, sb->cg.mode,
              sb->cg.limits_ok ? "" : " (no limits)");
    *out = sb;
    return 0;
fail:
    if (sb->sock >= 0)
        close(sb->sock);
    if (sb->spawner > 0) {
        kill(sb->spawner, SIGKILL);
        waitpid(sb->spawner, NULL, 0);
    }
    wisp__cg_free(&sb->cg);
    free(sb);
    return -1;
}

/* ---- sending ----------------------------------------------------------------- */

static void update_poll(wisp_sandbox_t *sb);

/* Send msg now or queue it; -1 if the spawner is gone. */
static int send_msg(wisp_sandbox_t *sb, const void *msg, size_t len)
{
    if (sb->out == NULL) {
        if (wisp__sb_send(sb->sock, msg, len, NULL, 0, MSG_DONTWAIT) == 0)
            return 0;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
            return -1;
    }
    struct outmsg *m = xmalloc(sizeof *m + len);
    m->next = NULL;
    m->len = len;
    memcpy(m->data, msg, len);
    *sb->out_tail = m;
    sb->out_tail = &m->next;
    update_poll(sb);
    return 0;
}

static int flush_out(wisp_sandbox_t *sb)
{
    while (sb->out) {
        struct outmsg *m = sb->out;
        if (wisp__sb_send(sb->sock, m->data, m->len, NULL, 0, MSG_DONTWAIT) < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? 0 : -1;
        sb->out = m->next;
        if (sb->out == NULL)
            sb->out_tail = &sb->out;
        free(m);
    }
    return 0;
}

/* ---- receiving --------------------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events);

static void update_poll(wisp_sandbox_t *sb)
{
    if (sb->poll == NULL || sb->dead)
        return;
    int want = UV_READABLE | (sb->out ? UV_WRITABLE : 0);
    if (want != sb->poll_events) {
        sb->poll_events = want;
        uv_poll_start(sb->poll, want, on_poll);
    }
}

static void close_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

static void remove_live(wisp_sandbox_t *sb, const char *id)
{
    for (struct live **pp = &sb->live; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0) {
            struct live *l = *pp;
            *pp = l->next;
            free(l);
            sb->nlive--;
            return;
        }
}

static void on_spawned(wisp_sandbox_t *sb, const struct wisp__sb_result *r, int *fds, int nfds)
{
    struct pending *p = NULL;
    for (struct pending **pp = &sb->pending; *pp; pp = &(*pp)->next)
        if ((*pp)->seq == r->hdr.seq) {
            p = *pp;
            *pp = p->next;
            break;
        }
    if (p == NULL) {
        close_fds(fds, nfds);
        return;
    }
    wisp_err_t err;
    if (r->code == WISP_OK && nfds == 3) {
        struct live *l = xcalloc(1, sizeof *l);
        memcpy(l->id, p->id, sizeof l->id);
        l->next = sb->live;
        sb->live = l;
        sb->nlive++;
        wisp_sandbox_started_t st = {.pid = r->pid,
                                     .api_fd = fds[0],
                                     .out_fd = fds[1],
                                     .err_fd = fds[2],
                                     .setup_ns = r->setup_ns,
                                     .how = r->how <= WISP_SANDBOX_EXEC_STEM
                                                ? (wisp_sandbox_how_t)r->how
                                                : WISP_SANDBOX_EXEC};
        p->cb(p->data, &st, NULL);
    } else {
        close_fds(fds, nfds);
        if (r->code == WISP_OK) {
            wisp_err_set(&err, WISP_EINTERNAL, "spawner reply without descriptors");
        } else {
            wisp_err_set(&err, (wisp_errcode_t)r->code, "%.*s", (int)sizeof r->msg, r->msg);
            err.sys_errno = r->sys_errno;
        }
        p->cb(p->data, NULL, &err);
    }
    free(p);
}

static void spawner_gone(wisp_sandbox_t *sb);

static void on_exit_event(wisp_sandbox_t *sb, const struct wisp__sb_exit *e)
{
    char id[WISP_SB_ID_MAX + 1];
    memcpy(id, e->id, sizeof id);
    id[WISP_SB_ID_MAX] = '\0';
    remove_live(sb, id);
    if (sb->exit_cb)
        sb->exit_cb(sb->exit_data, id, e->wait_status, e->oom != 0, e->peak_mem);
    /* The exit callback has closed the sandbox's listener (sandbox.h): the
     * spawner may give its network namespace to the next sandbox of the same
     * code. Until this message it must not, or a listener still polled here
     * could accept the next sandbox's runtime. */
    if (sb->dead || sb->closed)
        return;
    struct wisp__sb_kill r = {.hdr = {WISP_SB_RELEASED, 0}};
    memcpy(r.id, id, sizeof r.id);
    if (send_msg(sb, &r, sizeof r) < 0)
        spawner_gone(sb);
}

/* The spawner went away: fail what waits and end what ran (the spawner's
 * death kills the sandboxes). */
static void spawner_gone(wisp_sandbox_t *sb)
{
    if (sb->dead)
        return;
    sb->dead = true;
    wisp_error("sandbox", "the sandbox spawner exited; no more sandboxes can start");
    if (sb->poll)
        uv_poll_stop(sb->poll);
    wisp_err_t err;
    wisp_err_set(&err, WISP_EUNAVAILABLE, "sandbox spawner exited");
    while (sb->pending && !sb->closed) {
        struct pending *p = sb->pending;
        sb->pending = p->next;
        p->cb(p->data, NULL, &err);
        free(p);
    }
    while (sb->live && !sb->closed) {
        struct live *l = sb->live;
        sb->live = l->next;
        sb->nlive--;
        if (sb->exit_cb)
            sb->exit_cb(sb->exit_data, l->id, SIGKILL, false, 0);
        free(l);
    }
}

static void free_sandbox(wisp_sandbox_t *sb)
{
    while (sb->pending) {
        struct pending *p = sb->pending;
        sb->pending = p->next;
        free(p);
    }
    while (sb->live) {
        struct live *l = sb->live;
        sb->live = l->next;
        free(l);
    }
    while (sb->out) {
        struct outmsg *m = sb->out;
        sb->out = m->next;
        free(m);
    }
    wisp__cg_free(&sb->cg);
    free(sb);
}

static void read_messages(wisp_sandbox_t *sb)
{
    while (!sb->closed && !sb->dead) {
        int fds[3], nfds = 3;
        ssize_t n = wisp__sb_recv(sb->sock, &sb->in, sizeof sb->in, fds, &nfds, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EMSGSIZE)
            continue;
        if (n <= 0) {
            spawner_gone(sb);
            return;
        }
        if (n == (ssize_t)sizeof sb->in.result && sb->in.hdr.type == WISP_SB_SPAWNED)
            on_spawned(sb, &sb->in.result, fds, nfds);
        else if (n == (ssize_t)sizeof sb->in.exit && sb->in.hdr.type == WISP_SB_EXIT)
            on_exit_event(sb, &sb->in.exit);
        else
            close_fds(fds, nfds);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    wisp_sandbox_t *sb = h->data;
    sb->dispatching++;
    if (status < 0) {
        spawner_gone(sb);
    } else {
        if (events & UV_WRITABLE) {
            if (flush_out(sb) < 0)
                spawner_gone(sb);
            else
                update_poll(sb);
        }
        if (events & (UV_READABLE | UV_DISCONNECT))
            read_messages(sb);
    }
    sb->dispatching--;
    if (sb->closed && sb->dispatching == 0)
        free_sandbox(sb);
}

/* ---- the public API ---------------------------------------------------------- */

int wisp_sandbox_attach(wisp_sandbox_t *sb, uv_loop_t *loop, wisp_sandbox_exit_cb exit_cb,
                        void *data, wisp_err_t *err)
{
    if (sb->loop)
        return wisp_err_set(err, WISP_EINVALID, "sandbox subsystem already attached");
    sb->poll = xcalloc(1, sizeof *sb->poll);
    int rc = uv_poll_init(loop, sb->poll, sb->sock);
    if (rc < 0) {
        free(sb->poll);
        sb->poll = NULL;
        return wisp_err_set(err, WISP_EINTERNAL, "uv_poll_init: %s", uv_strerror(rc));
    }
    sb->poll->data = sb;
    sb->loop = loop;
    sb->exit_cb = exit_cb;
    sb->exit_data = data;
    sb->poll_events = 0;
    update_poll(sb);
    return 0;
}

static bool id_known(wisp_sandbox_t *sb, const char *id)
{
    for (struct live *l = sb->live; l; l = l->next)
        if (strcmp(l->id, id) == 0)
            return true;
    for (struct pending *p = sb->pending; p; p = p->next)
        if (strcmp(p->id, id) == 0)
            return true;
    return false;
}

int wisp_sandbox_spawn(wisp_sandbox_t *sb, const wisp_sandbox_spec_t *spec,
                       wisp_sandbox_spawn_cb cb, void *data, wisp_err_t *err)
{
    if (sb->loop == NULL)
        return wisp_err_set(err, WISP_EINVALID, "wisp_sandbox_attach was not called");
    if (cb == NULL)
        return wisp_err_set(err, WISP_EINVALID, "wisp_sandbox_spawn needs a callback");
    if (sb->dead)
        return wisp_err_set(err, WISP_EUNAVAILABLE, "sandbox spawner exited");
    uint32_t seq = ++sb->next_seq;
    cleanup_free void *msg = NULL;
    size_t len;
    if (wisp__sb_encode_spawn(spec, seq, &msg, &len, err) < 0)
        return -1;
    if (id_known(sb, spec->id))
        return wisp_err_set(err, WISP_ECONFLICT, "sandbox %s exists", spec->id);
    if (send_msg(sb, msg, len) < 0) {
        int e = errno;
        spawner_gone(sb);
        return wisp_err_set(err, WISP_EUNAVAILABLE, "sandbox spawner: %s", strerror(e));
    }
    struct pending *p = xcalloc(1, sizeof *p);
    p->seq = seq;
    snprintf(p->id, sizeof p->id, "%s", spec->id);
    p->cb = cb;
    p->data = data;
    struct pending **tail = &sb->pending;
    while (*tail)
        tail = &(*tail)->next;
    *tail = p;
    return 0;
}

/* A message about one live sandbox of ours (KILL, UP). */
static void send_about(wisp_sandbox_t *sb, enum wisp__sb_type type, const char *id)
{
    if (sb->dead || !wisp__sb_id_valid(id) || !id_known(sb, id))
        return;
    struct wisp__sb_kill k = {.hdr = {type, 0}};
    snprintf(k.id, sizeof k.id, "%s", id);
    if (send_msg(sb, &k, sizeof k) < 0)
        spawner_gone(sb);
}

void wisp_sandbox_kill(wisp_sandbox_t *sb, const char *id)
{
    send_about(sb, WISP_SB_KILL, id);
}

void wisp_sandbox_up(wisp_sandbox_t *sb, const char *id)
{
    send_about(sb, WISP_SB_UP, id);
}

const char *wisp_sandbox_how_name(wisp_sandbox_how_t how)
{
    switch (how) {
    case WISP_SANDBOX_ZYGOTE: return "zygote";
    case WISP_SANDBOX_NODEJS_STEM: return "nodejs_stem";
    case WISP_SANDBOX_EXEC_STEM: return "exec_stem";
    case WISP_SANDBOX_EXEC: break;
    }
    return "exec";
}

uint64_t wisp_sandbox_mem_peak(wisp_sandbox_t *sb, const char *id)
{
    return wisp__cg_peak(&sb->cg, id);
}

int wisp_sandbox_mem_peak_open(wisp_sandbox_t *sb, const char *id)
{
    return wisp__cg_peak_open(&sb->cg, id);
}

uint64_t wisp_sandbox_mem_peak_read(int fd)
{
    char buf[64];
    ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtoull(buf, NULL, 10);
}

unsigned wisp_sandbox_count(wisp_sandbox_t *sb)
{
    return sb->nlive;
}

const char *wisp_sandbox_cgroup_mode(wisp_sandbox_t *sb)
{
    return sb->cg.mode;
}

bool wisp_sandbox_limits_ok(wisp_sandbox_t *sb)
{
    return sb->cg.limits_ok;
}

static void free_poll(uv_handle_t *h)
{
    free(h);
}

void wisp_sandbox_close(wisp_sandbox_t *sb)
{
    if (sb == NULL || sb->closed)
        return;
    if (!sb->dead) {
        struct wisp__sb_hdr bye = {WISP_SB_SHUTDOWN, 0};
        wisp__sb_send(sb->sock, &bye, sizeof bye, NULL, 0, MSG_DONTWAIT);
    }
    if (sb->poll) {
        sb->poll->data = NULL;
        uv_close((uv_handle_t *)sb->poll, free_poll);
        sb->poll = NULL;
    }
    /* Closing our end is also a shutdown request (EOF), even if the spawner
     * is stuck sending to us; it exits after it has killed and removed every
     * sandbox. */
    close(sb->sock);
    while (waitpid(sb->spawner, NULL, 0) < 0 && errno == EINTR)
        ;
    sb->closed = true;
    if (sb->dispatching == 0)
        free_sandbox(sb);
}
