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
#include <sys/stat.h>
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
    void *msg; /* the SPAWN sent, for USE_STEM */
    size_t len;
};

/* A sandbox that started and has not ended yet. */
struct live {
    struct live *next;
    char id[WISP_SB_ID_MAX + 1];
};

/* An exec stem the spawner handed over (WISP_SB_STEM), not bound yet. */
struct offer {
    struct offer *next;
    char id[WISP_SB_ID_MAX + 1];
    pid_t pid;
    dev_t code_dev; /* the code folder it has mounted */
    ino_t code_ino;
    void *msg; /* the spawn request it was built from; spec points into it */
    struct wisp__sb_spec spec;
    int fds[4]; /* bind socket, listener, stdout and stderr read ends */
    uint64_t made_ns;
};

/* A stem bound by wisp_sandbox_spawn, its callback still to run (callbacks
 * run on the loop, never within wisp_sandbox_spawn). */
struct bound {
    struct bound *next;
    char id[WISP_SB_ID_MAX + 1];
    wisp_sandbox_started_t st;
    wisp_sandbox_spawn_cb cb;
    void *data;
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
    struct offer *offers;    /* oldest first */
    uv_timer_t *offer_timer; /* drops offers kept stem_ttl_ns */
    uint64_t stem_ttl_ns;
    struct bound *bound;   /* bound stems whose callbacks are due */
    uv_idle_t *bound_idle; /* runs them */
    bool dead;             /* the spawner is gone */
    int dispatching;       /* > 0 while callbacks run */
    bool closed;           /* wisp_sandbox_close ran during a callback; free later */
    union {
        struct wisp__sb_hdr hdr;
        struct wisp__sb_result result;
        struct wisp__sb_exit exit;
        struct wisp__sb_stem stem;
        struct wisp__sb_kill kill;
        char raw[WISP_SB_MSG_MAX];
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
    sb->stem_ttl_ns =
        (uint64_t)(cfg && cfg->exec_stem_ttl_ms ? cfg->exec_stem_ttl_ms : WISP_SB_XSTEM_TTL_MS) *
        1000000u;
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

/* False if id was not live. */
static bool remove_live(wisp_sandbox_t *sb, const char *id)
{
    for (struct live **pp = &sb->live; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0) {
            struct live *l = *pp;
            *pp = l->next;
            free(l);
            sb->nlive--;
            return true;
        }
    return false;
}

/* ---- exec stems bound here --------------------------------------------------
 * The spawner builds exec stems (spawner.c) and hands each to the daemon
 * with its bind socket and the descriptors a spawn reply carries. A spawn
 * request whose sandbox matches an offer writes its argv and environment to
 * that socket itself, so the stem execs without a round trip through the
 * spawner (one process and two wake-ups fewer before the runtime starts, and
 * no wait behind the spawner's other work), then tells the spawner (BOUND),
 * which renames the stem's groups and tracks it as that sandbox. The daemon
 * owns an offer until it binds or drops it (DROP: kept 10 s (exec_stem_ttl_ms),
 * or its code folder replaced); a stem that ends unbound comes back as an
 * EXIT under its own id. */

static void free_sandbox(wisp_sandbox_t *sb);
static void spawner_gone(wisp_sandbox_t *sb);

static void offer_free(struct offer *o, bool close_all)
{
    if (close_all)
        close_fds(o->fds, 4);
    wisp__sb_spec_free(&o->spec);
    free(o->msg);
    free(o);
}

/* Unlink and return the offer of stem id, or NULL. */
static struct offer *offer_take(wisp_sandbox_t *sb, const char *id)
{
    for (struct offer **pp = &sb->offers; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0) {
            struct offer *o = *pp;
            *pp = o->next;
            return o;
        }
    return NULL;
}

/* Give an unlinked offer back unbound: the spawner kills the stem. A send
 * failure means the spawner is gone, which the poll reports. */
static void offer_drop(wisp_sandbox_t *sb, struct offer *o)
{
    if (!sb->dead) {
        struct wisp__sb_kill d = {.hdr = {WISP_SB_DROP, 0}};
        snprintf(d.id, sizeof d.id, "%s", o->id);
        (void)send_msg(sb, &d, sizeof d);
    }
    offer_free(o, true);
}

static void offer_timer_cb(uv_timer_t *t);

/* Relink an unlinked offer where its age puts it (oldest first). */
static void offer_put_back(wisp_sandbox_t *sb, struct offer *o)
{
    struct offer **pp = &sb->offers;
    while (*pp && (*pp)->made_ns <= o->made_ns)
        pp = &(*pp)->next;
    o->next = *pp;
    *pp = o;
}

/* Wake when the oldest offer has been kept stem_ttl_ns. */
static void offer_arm(wisp_sandbox_t *sb)
{
    if (sb->offer_timer == NULL)
        return;
    if (sb->offers == NULL) {
        uv_timer_stop(sb->offer_timer);
        return;
    }
    uint64_t due = sb->offers->made_ns + sb->stem_ttl_ns;
    uint64_t now = wisp_mono_ns();
    uv_timer_start(sb->offer_timer, offer_timer_cb, due > now ? (due - now) / 1000000u + 1 : 0, 0);
}

static void offer_timer_cb(uv_timer_t *t)
{
    wisp_sandbox_t *sb = t->data;
    uint64_t now = wisp_mono_ns();
    while (sb->offers && now - sb->offers->made_ns >= sb->stem_ttl_ns) {
        struct offer *o = sb->offers;
        sb->offers = o->next;
        offer_drop(sb, o);
    }
    offer_arm(sb);
}

/* WISP_SB_STEM: n bytes in sb->in, fds its four descriptors. */
static void on_offer(wisp_sandbox_t *sb, size_t n, const int *fds)
{
    const struct wisp__sb_stem *m = &sb->in.stem;
    struct offer *o = xcalloc(1, sizeof *o);
    memcpy(o->fds, fds, sizeof o->fds);
    memcpy(o->id, m->id, sizeof o->id);
    o->id[WISP_SB_ID_MAX] = '\0';
    o->pid = m->pid;
    o->code_dev = (dev_t)m->code_dev;
    o->code_ino = (ino_t)m->code_ino;
    o->made_ns = wisp_mono_ns();
    wisp_err_t err;
    if (m->spec_len != n - sizeof *m || m->spec_len == 0) {
        offer_drop(sb, o);
        return;
    }
    o->msg = xmalloc(m->spec_len);
    memcpy(o->msg, m->spec, m->spec_len);
    if (wisp__sb_decode_spawn(o->msg, m->spec_len, &o->spec, &err) < 0) {
        offer_drop(sb, o);
        return;
    }
    struct offer **tail = &sb->offers;
    while (*tail)
        tail = &(*tail)->next;
    *tail = o;
    if (sb->offers == o)
        offer_arm(sb);
}

static void run_bound(uv_idle_t *h)
{
    wisp_sandbox_t *sb = h->data;
    uv_idle_stop(h);
    sb->dispatching++;
    while (sb->bound && !sb->closed) {
        struct bound *q = sb->bound;
        sb->bound = q->next;
        q->cb(q->data, &q->st, NULL);
        free(q);
    }
    sb->dispatching--;
    if (sb->closed && sb->dispatching == 0)
        free_sandbox(sb);
}

static void bound_close(struct bound *q)
{
    int fds[] = {q->st.api_fd, q->st.out_fd, q->st.err_fd, q->st.peak_fd};
    for (size_t i = 0; i < WISP_ARRAY_LEN(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void add_live(wisp_sandbox_t *sb, const char *id)
{
    struct live *l = xcalloc(1, sizeof *l);
    snprintf(l->id, sizeof l->id, "%s", id);
    l->next = sb->live;
    sb->live = l;
    sb->nlive++;
}

/* Bind offer o (unlinked) to the request want (for id). True: started (cb
 * then runs from the loop); false: o was dropped (its code folder replaced,
 * or it cannot take the message: it has ended) or, if *keep, it stays
 * offered (the request is too long for a stem) and the caller relinks it. */
static bool bind_one(wisp_sandbox_t *sb, struct offer *o, const struct wisp__sb_spec *want,
                     const char *id, wisp_sandbox_spawn_cb cb, void *data, uint64_t t0, bool *keep)
{
    *keep = false;
    wisp_err_t err;
    cleanup_free void *bind_msg = NULL;
    size_t bind_len = 0;
    if (wisp__sb_stem_message(want, &bind_msg, &bind_len, &err) < 0) {
        *keep = true;
        return false;
    }
    struct stat code;
    if (stat(want->code_dir, &code) < 0 || code.st_dev != o->code_dev ||
        code.st_ino != o->code_ino) {
        offer_drop(sb, o); /* another folder by that name now */
        return false;
    }
    /* The socket has room for the whole message (spawner.c); short: the
     * stem has ended or cannot take it, and is dropped. */
    ssize_t w = send(o->fds[0], bind_msg, bind_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w != (ssize_t)bind_len) {
        offer_drop(sb, o);
        return false;
    }
    /* The stem's groups keep its name until the spawner reads BOUND. */
    int peak = wisp__cg_peak_open(&sb->cg, o->id);
    struct wisp__sb_bound b = {.hdr = {WISP_SB_BOUND, 0}};
    snprintf(b.stem, sizeof b.stem, "%s", o->id);
    snprintf(b.id, sizeof b.id, "%s", id);
    if (send_msg(sb, &b, sizeof b) < 0) { /* the spawner is gone, and its stems */
        if (peak >= 0)
            close(peak);
        offer_free(o, true);
        return false;
    }
    add_live(sb, id);
    struct bound *q = xcalloc(1, sizeof *q);
    q->st = (wisp_sandbox_started_t){.pid = o->pid,
                                     .api_fd = o->fds[1],
                                     .out_fd = o->fds[2],
                                     .err_fd = o->fds[3],
                                     .setup_ns = wisp_mono_ns() - t0,
                                     .how = WISP_SANDBOX_EXEC_STEM,
                                     .peak_fd = peak};
    snprintf(q->id, sizeof q->id, "%s", id);
    q->cb = cb;
    q->data = data;
    struct bound **tail = &sb->bound;
    while (*tail)
        tail = &(*tail)->next;
    *tail = q;
    uv_idle_start(sb->bound_idle, run_bound);
    close(o->fds[0]);
    offer_free(o, false);
    return true;
}

/* Bind an offered stem that fits the spawn request msg (for id); false if
 * there is none (the spawner is asked). */
static bool bind_offer(wisp_sandbox_t *sb, const char *id, const void *msg, size_t len,
                       wisp_sandbox_spawn_cb cb, void *data)
{
    uint64_t t0 = wisp_mono_ns();
    struct wisp__sb_spec want;
    wisp_err_t err;
    if (wisp__sb_decode_spawn(msg, len, &want, &err) < 0)
        return false;
    bool done = false;
    struct offer **pp = &sb->offers;
    while (*pp && !done) {
        struct offer *o = *pp;
        if (!wisp__sb_same_sandbox(&o->spec, &want)) {
            pp = &o->next;
            continue;
        }
        *pp = o->next;
        bool keep;
        done = bind_one(sb, o, &want, id, cb, data, t0, &keep);
        if (keep) { /* this request cannot use a stem at all */
            offer_put_back(sb, o);
            break;
        }
    }
    wisp__sb_spec_free(&want);
    return done;
}

/* USE_STEM: the spawner answers SPAWN seq with a stem it had offered. */
static void on_use_stem(wisp_sandbox_t *sb, const struct wisp__sb_kill *m)
{
    wisp_step("use-stem");
    struct pending *p = NULL, **pp = &sb->pending;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->seq == m->hdr.seq) {
            p = *pp;
            break;
        }
    if (p == NULL || p->msg == NULL)
        return;
    *pp = p->next;
    char stem[WISP_SB_ID_MAX + 1];
    memcpy(stem, m->id, sizeof stem);
    stem[WISP_SB_ID_MAX] = '\0';
    struct offer *o = offer_take(sb, stem);
    bool done = false;
    if (o != NULL) {
        struct wisp__sb_spec want;
        wisp_err_t err;
        bool keep = true; /* unless bind_one took or dropped it */
        if (wisp__sb_decode_spawn(p->msg, p->len, &want, &err) == 0) {
            if (wisp__sb_same_sandbox(&o->spec, &want))
                done = bind_one(sb, o, &want, p->id, p->cb, p->data, wisp_mono_ns(), &keep);
            wisp__sb_spec_free(&want);
        }
        if (!done && keep)
            offer_put_back(sb, o);
    }
    if (!done)
        done = bind_offer(sb, p->id, p->msg, p->len, p->cb, p->data);
    if (done) {
        free(p->msg);
        free(p);
        return;
    }
    /* Bound or dropped meanwhile (the spawner reads that before this SPAWN
     * again, so it does not answer with that stem twice): exec. */
    p->next = *pp;
    *pp = p;
    if (send_msg(sb, p->msg, p->len) < 0)
        spawner_gone(sb);
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
        add_live(sb, p->id);
        wisp_sandbox_started_t st = {.pid = r->pid,
                                     .peak_fd = -1,
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
    free(p->msg);
    free(p);
}

static void spawner_gone(wisp_sandbox_t *sb);

static void on_exit_event(wisp_sandbox_t *sb, const struct wisp__sb_exit *e)
{
    char id[WISP_SB_ID_MAX + 1];
    memcpy(id, e->id, sizeof id);
    id[WISP_SB_ID_MAX] = '\0';
    struct offer *o = offer_take(sb, id);
    if (o != NULL) { /* an offered stem ended unbound */
        offer_free(o, true);
        offer_arm(sb);
        return;
    }
    /* Not ours (a stem bound here that had ended first: its EXIT under the
     * stem's name, then one under the id, which is the one that counts). */
    if (!remove_live(sb, id))
        return;
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
        free(p->msg);
        free(p);
    }
    /* Bound stems whose callbacks have not run: as if not started. */
    while (sb->bound && !sb->closed) {
        struct bound *q = sb->bound;
        sb->bound = q->next;
        remove_live(sb, q->id);
        bound_close(q);
        q->cb(q->data, NULL, &err);
        free(q);
    }
    while (sb->offers) {
        struct offer *o = sb->offers;
        sb->offers = o->next;
        offer_free(o, true);
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
        free(p->msg);
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
    while (sb->bound) {
        struct bound *q = sb->bound;
        sb->bound = q->next;
        bound_close(q);
        free(q);
    }
    while (sb->offers) {
        struct offer *o = sb->offers;
        sb->offers = o->next;
        offer_free(o, true);
    }
    wisp__cg_free(&sb->cg);
    free(sb);
}

static void read_messages(wisp_sandbox_t *sb)
{
    while (!sb->closed && !sb->dead) {
        int fds[4], nfds = 4;
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
        else if (n >= (ssize_t)sizeof sb->in.stem && sb->in.hdr.type == WISP_SB_STEM && nfds == 4)
            on_offer(sb, (size_t)n, fds);
        else if (n == (ssize_t)sizeof sb->in.kill && sb->in.hdr.type == WISP_SB_USE_STEM &&
                 nfds == 0)
            on_use_stem(sb, &sb->in.kill);
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
    sb->offer_timer = xcalloc(1, sizeof *sb->offer_timer);
    uv_timer_init(loop, sb->offer_timer);
    sb->offer_timer->data = sb;
    sb->bound_idle = xcalloc(1, sizeof *sb->bound_idle);
    uv_idle_init(loop, sb->bound_idle);
    sb->bound_idle->data = sb;
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
    if (sb->offers && bind_offer(sb, spec->id, msg, len, cb, data))
        return 0;
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
    p->msg = steal_pointer(&msg);
    p->len = len;
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

static void free_poll(uv_handle_t *h) /* any handle allocated alone */
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
    if (sb->offer_timer) {
        uv_close((uv_handle_t *)sb->offer_timer, free_poll);
        sb->offer_timer = NULL;
    }
    if (sb->bound_idle) {
        uv_close((uv_handle_t *)sb->bound_idle, free_poll);
        sb->bound_idle = NULL;
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
