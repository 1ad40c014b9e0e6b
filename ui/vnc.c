/*
 * The VNC server: libvncserver on a thread of its own, so that nothing a
 * client does or fails to do can hold up the guest.
 *
 * Threads.  The machine's thread calls vnc_poll every ~10 ms.  It hands the
 * changed rows of the frame over (a locked copy into `shared`; it only ever
 * try-locks, so it never waits for the VNC thread) and applies the input
 * events that clients queued (key and pointer events become PS/2 bytes on
 * the machine's thread, as the devices expect).  The VNC thread owns
 * libvncserver: it accepts connections itself, screens them, hands the
 * good ones to libvncserver (rfbNewClient) and runs rfbProcessEvents.
 * libvncserver's blocking reads and writes (up to CLIENT_STALL_MS per
 * wait; a client silent that long mid-message is dropped) stall only this
 * thread.
 *
 * Admission, in our own accept path rather than libvncserver's:
 *  - at most max-clients connections at a time, counting the ones still
 *    being screened and the ones not yet authenticated; any further one is
 *    accepted and closed at once.  libvncserver select()s on its clients,
 *    so every descriptor it gets must be below FD_SETSIZE: the cap keeps
 *    them low, and a descriptor >= FD_SETSIZE is closed, never handed over
 *    (glibc aborts the process on FD_SET of such a descriptor);
 *  - libvncserver (Debian builds it with WebSockets) looks for an HTTP GET
 *    in a new connection's first bytes and, if it finds one, speaks
 *    WebSocket.  We look first: a client that sends anything before the
 *    server's greeting is refused, except an HTTP upgrade to WebSocket when
 *    websocket=on and its Origin is allowed (ui/vnc_policy.c).  A client
 *    silent for PREAMBLE_WAIT_MS is an RFB client; a WebSocket handshake
 *    that libvncserver still finds later is refused in new_client;
 *  - a connection that has not authenticated within PREAUTH_TIMEOUT_MS is
 *    closed;
 *  - after a wrong password, the source address waits 1 s, doubling with
 *    each further failure (ui/vnc_policy.c); meanwhile its connections are
 *    closed at once.
 *
 * Keyboard: RFB sends X11 keysyms; keymap_keysym_event (ui/keymap.c) turns
 * them into US-layout set-1 keys, synthesising Shift where the character
 * needs it.  Each client's held keys are released when it disconnects.
 * The window's Ctrl+Alt hotkeys (ui/hotkeys.h) apply to the keys the
 * clients send, on the machine's thread as they are delivered, all clients
 * through one filter; the mouse release and full screen mean nothing here.
 *
 * Mouse: the guest has a relative PS/2 mouse while RFB pointers are
 * absolute, so the server sends the difference from the client's previous
 * position.  The guest applies its own acceleration and clipping, so its
 * cursor drifts away from the client's; the client's local cursor is
 * hidden (empty cursor shape) to leave only the guest's.  Moving the
 * pointer against the window edge cannot push the guest cursor further.
 */
#define _GNU_SOURCE             /* accept4, pipe2 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <rfb/rfb.h>

#include "hosted-driver/xalloc.h"
#include "ui/frontend.h"
#include "ui/hotkeys.h"
#include "ui/keymap.h"
#include "ui/vnc_policy.h"

#define DEFAULT_MAX_CLIENTS 16
#define MAX_CLIENTS_LIMIT 256       /* well below FD_SETSIZE (1024) */
#define PREAMBLE_WAIT_MS 250        /* a browser's GET follows its connect at once */
#define HTTP_HEAD_WAIT_MS 3000      /* for the rest of a WebSocket request head */
#define PREAUTH_TIMEOUT_MS 10000    /* connect to authenticated */
#define CLIENT_STALL_MS 2000        /* libvncserver's wait for a client's next bytes */
#define LOOP_MS 10
#define INPUT_QUEUE 1024
#define LOGGED_ORIGINS 32

struct in_event {
    bool mouse;
    bool e0, down;
    int code;
    int dx, dy, dz, buttons;
};

/* A connection being screened before libvncserver sees it. */
struct pending {
    int fd;
    uint64_t since;
    bool speaking;              /* it sent bytes: re-peek on the timer, not on POLLIN */
    int pfd;                    /* its slot in the last poll set, -1 if none */
    char local[INET6_ADDRSTRLEN];   /* the address it connected to */
};

struct vnc_ui {
    /* set by vnc_open, read-only afterwards */
    struct ui_input in;
    int port;
    bool websocket;
    unsigned max_clients;
    char **origins;             /* websocket-origins=, NULL: same host and port */
    size_t norigins;
    char listen_name[160];      /* the ADDR given, for same-origin checks */
    char *passwords[2];         /* rfbCheckPasswordByList list, NULL-terminated */
    int listen_fd;
    int wake[2];                /* vnc_close -> VNC thread */
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    atomic_uint leds;           /* the guest's keyboard LEDs, from the machine's thread */

    /* the VNC thread's own (and vnc_open's/vnc_close's while it is not running) */
    rfbScreenInfoPtr screen;
    uint32_t *fb;               /* width*height pixels in the server format */
    unsigned width, height;
    char desktop_name[96];
    struct pending pend[MAX_CLIENTS_LIMIT];
    unsigned npend;
    unsigned nclients;          /* handed to libvncserver and not yet gone */
    uint64_t accept_paused_until;
    int handing_fd;             /* the descriptor rfbNewClient is working on */
    bool handing_ws;            /* ... and whether we checked its WebSocket request */
    struct vnc_backoff *backoff;
    char logged_origins[LOGGED_ORIGINS][128];
    unsigned nlogged;
    uint64_t full_logged_at;
    unsigned long refused_full;
    struct pollfd pfds[3 + 2 * MAX_CLIENTS_LIMIT];
    bool listen_polled;         /* pfds[1] is the listening socket */
    unsigned long late_websockets;

    /* the frame hand-off */
    pthread_mutex_t lock;
    uint32_t *shared;           /* XRGB8888, sw*sh */
    unsigned sw, sh, sy0, sy1;  /* sy0..sy1: rows changed since the VNC thread's last copy */
    char status[96];
    char name[64];              /* the VM's name, before the status */
    bool status_new;
    unsigned my0, my1;          /* machine's thread: changed rows not yet handed over */

    /* client input -> machine's thread */
    pthread_mutex_t qlock;
    struct in_event q[INPUT_QUEUE];
    unsigned qhead, qcount;
    unsigned long qdropped;
    struct in_event drain[INPUT_QUEUE];     /* machine's thread */
    struct hotkey_filter hk;                /* machine's thread */
};

/* Per-client state, in cl->clientData. */
struct vnc_client {
    struct vnc_ui *v;
    struct keysym_tracker kt;
    uint8_t held[32];           /* bit (code | e0 << 7): keys this client holds down */
    bool have_pos;
    int last_x, last_y, last_mask;
    uint64_t deadline;          /* to be authenticated by */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- logs: libvncserver's are silent unless RETROVISOR_VNC_DEBUG is set;
 * the last error is kept for the message of a failed vnc_open.  What a
 * hostile client does is reported on stderr, each kind once. ---- */

static char last_error[256];
static bool log_verbose;

static void vnc_log(const char *fmt, ...)
{
    if (!log_verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("vnc: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void vnc_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    size_t n = strlen(last_error);
    while (n && (last_error[n - 1] == '\n' || last_error[n - 1] == ' '))
        last_error[--n] = 0;
    if (log_verbose)
        fprintf(stderr, "vnc: %s\n", last_error);
}

static void warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("retrovisor: vnc: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- input: queued on the VNC thread, applied on the machine's ---- */

static void queue_event(struct vnc_ui *v, const struct in_event *e)
{
    pthread_mutex_lock(&v->qlock);
    if (v->qcount == INPUT_QUEUE)
        v->qdropped++;
    else
        v->q[(v->qhead + v->qcount++) % INPUT_QUEUE] = *e;
    pthread_mutex_unlock(&v->qlock);
}

#define KEY_DEL 0x53    /* with E0 */

static void deliver_key(struct vnc_ui *v, const struct in_event *e)
{
    bool to_guest;
    enum hotkey_action a = hotkey_filter_key(&v->hk, e->code, e->e0, e->down, &to_guest);
    if (to_guest && v->in.key)
        v->in.key(v->in.opaque, e->code, e->e0, e->down);
    switch (a) {
    case HOTKEY_NONE:
    case HOTKEY_CTRL_ALT_DEL:
    case HOTKEY_RELEASE_MOUSE:
    case HOTKEY_FULLSCREEN:
        break;
    case HOTKEY_SEND_DEL:
        if (v->in.key) {
            v->in.key(v->in.opaque, KEY_DEL, true, true);
            v->in.key(v->in.opaque, KEY_DEL, true, false);
        }
        break;
    default:
        if (v->in.hotkey)
            v->in.hotkey(v->in.opaque, a);
        break;
    }
}

static void deliver_input(struct vnc_ui *v)
{
    if (pthread_mutex_trylock(&v->qlock))
        return;                 /* the VNC thread is queueing: next poll */
    unsigned n = v->qcount;
    for (unsigned i = 0; i < n; i++)
        v->drain[i] = v->q[(v->qhead + i) % INPUT_QUEUE];
    v->qhead = (v->qhead + n) % INPUT_QUEUE;
    v->qcount = 0;
    pthread_mutex_unlock(&v->qlock);
    for (unsigned i = 0; i < n; i++) {
        const struct in_event *e = &v->drain[i];
        if (!e->mouse)
            deliver_key(v, e);
        else if (e->mouse && v->in.mouse)
            v->in.mouse(v->in.opaque, e->dx, e->dy, e->dz, e->buttons);
    }
}

static void client_emit(void *opaque, int code, bool e0, bool down)
{
    struct vnc_client *c = opaque;
    unsigned bit = (unsigned)code | (e0 ? 0x80 : 0);
    if (down)
        c->held[bit / 8] |= 1u << (bit % 8);
    else
        c->held[bit / 8] &= ~(1u << (bit % 8));
    queue_event(c->v, &(struct in_event){ .code = code, .e0 = e0, .down = down });
}

/* Only an authenticated client's input counts (libvncserver dispatches
 * input messages in RFB_NORMAL only; this says so where it matters). */
static struct vnc_client *input_client(rfbClientPtr cl)
{
    struct vnc_client *c = cl->clientData;
    if (!c || cl->viewOnly || cl->state != RFB_NORMAL)
        return NULL;
    return c;
}

static void vnc_key(rfbBool down, rfbKeySym keysym, rfbClientPtr cl)
{
    struct vnc_client *c = input_client(cl);
    if (!c)
        return;
    uint8_t leds = (uint8_t)atomic_load(&c->v->leds);
    keymap_keysym_event(&c->kt, keysym, down, leds, client_emit, c);
}

static void vnc_pointer(int mask, int x, int y, rfbClientPtr cl)
{
    struct vnc_client *c = input_client(cl);
    if (!c)
        return;
    if (!c->have_pos) {
        c->have_pos = true;
        c->last_x = x;
        c->last_y = y;
    }
    int dx = x - c->last_x, dy = y - c->last_y, dz = 0;
    int pressed = mask & ~c->last_mask;
    if (pressed & 8)            /* button 4: wheel away from the user */
        dz--;
    if (pressed & 16)           /* button 5: wheel towards the user */
        dz++;
    /* RFB: bit0 left, bit1 middle, bit2 right; PS/2: bit0 left, bit1 right, bit2 middle */
    int buttons = (mask & 1) | (mask & 4 ? 2 : 0) | (mask & 2 ? 4 : 0);
    int old = (c->last_mask & 1) | (c->last_mask & 4 ? 2 : 0) | (c->last_mask & 2 ? 4 : 0);
    c->last_x = x;
    c->last_y = y;
    c->last_mask = mask;
    if (dx || dy || dz || buttons != old)
        queue_event(c->v, &(struct in_event){ .mouse = true, .dx = dx, .dy = dy, .dz = dz,
                                              .buttons = buttons });
}

/* ---- clients handed to libvncserver ---- */

static void client_gone(rfbClientPtr cl)
{
    struct vnc_client *c = cl->clientData;
    if (!c)
        return;
    /* Release what this client held so no key stays stuck in the guest. */
    for (unsigned bit = 0; bit < 256; bit++)
        if (c->held[bit / 8] & (1u << (bit % 8)))
            client_emit(c, bit & 0x7f, bit & 0x80, false);
    if (c->last_mask & 7)
        queue_event(c->v, &(struct in_event){ .mouse = true });
    c->v->nclients--;
    free(c);
    cl->clientData = NULL;
}

static enum rfbNewClientAction new_client(rfbClientPtr cl)
{
    struct vnc_ui *v = cl->screen->screenData;
    bool checked = cl->sock == v->handing_fd && v->handing_ws;
    if ((cl->wsctx || cl->sslctx) && !(v->websocket && checked)) {
        /* Its GET came after PREAMBLE_WAIT_MS: libvncserver read it, we did not. */
        if (!v->late_websockets++)
            warn("refused a WebSocket from %s whose request came too late to be checked "
                 "(further ones are not logged)", cl->host);
        return RFB_CLIENT_REFUSE;
    }
    struct vnc_client *c = xcalloc(1, sizeof(*c));
    c->v = v;
    c->deadline = now_ms() + PREAUTH_TIMEOUT_MS;
    cl->clientData = c;
    cl->clientGoneHook = client_gone;
    v->nclients++;
    return RFB_CLIENT_ACCEPT;
}

/* Wrong passwords: the address waits, doubling each time (vnc_policy.c). */
static rfbBool check_password(rfbClientPtr cl, const char *response, int len)
{
    struct vnc_ui *v = cl->screen->screenData;
    const char *who = cl->host ? cl->host : "";
    uint64_t now = now_ms();
    if (vnc_backoff_wait(v->backoff, who, now))
        return FALSE;           /* opened before the last failure: no check, no answer */
    if (rfbCheckPasswordByList(cl, response, len)) {
        vnc_backoff_succeeded(v->backoff, who);
        return TRUE;
    }
    uint64_t wait = vnc_backoff_failed(v->backoff, who, now);
    warn("wrong password from %s; it may try again in %llu s", who, (unsigned long long)(wait / 1000));
    return FALSE;
}

/* Closes the clients that have not authenticated in time. */
static void expire_preauth(struct vnc_ui *v, uint64_t now)
{
    rfbClientIteratorPtr it = rfbGetClientIterator(v->screen);
    rfbClientPtr cl;
    while ((cl = rfbClientIteratorNext(it))) {
        struct vnc_client *c = cl->clientData;
        if (c && cl->sock != RFB_INVALID_SOCKET && cl->state != RFB_NORMAL && now >= c->deadline) {
            vnc_log("closing %s: not authenticated after %d s\n", cl->host, PREAUTH_TIMEOUT_MS / 1000);
            rfbCloseClient(cl);
        }
    }
    rfbReleaseClientIterator(it);
}

/* ---- our accept path ---- */

static void close_pending(struct vnc_ui *v, unsigned i)
{
    close(v->pend[i].fd);
    v->pend[i] = v->pend[--v->npend];
}

static void numeric_host(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
    if (getnameinfo(sa, len, out, (socklen_t)outlen, NULL, 0, NI_NUMERICHOST))
        snprintf(out, outlen, "?");
}

static void admit(struct vnc_ui *v, int fd, const struct sockaddr *peer, socklen_t peerlen,
                  uint64_t now)
{
    if (fd >= FD_SETSIZE) {
        /* Other parts of the VMM hold many descriptors; libvncserver could not select() on it. */
        close(fd);
        return;
    }
    if (v->npend + v->nclients >= v->max_clients) {
        close(fd);
        v->refused_full++;
        if (!v->full_logged_at || now - v->full_logged_at >= 10000) {
            warn("max-clients=%u reached: closing further connections (%lu so far)",
                 v->max_clients, v->refused_full);
            v->full_logged_at = now;
        }
        return;
    }
    char who[INET6_ADDRSTRLEN];
    numeric_host(peer, peerlen, who, sizeof(who));
    if (v->passwords[0] && vnc_backoff_wait(v->backoff, who, now)) {
        close(fd);
        return;
    }
    struct pending *p = &v->pend[v->npend++];
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    p->since = now;
    p->pfd = -1;
    struct sockaddr_storage local;
    socklen_t ll = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &ll) == 0)
        numeric_host((struct sockaddr *)&local, ll, p->local, sizeof(p->local));
}

static void accept_connections(struct vnc_ui *v, uint64_t now)
{
    /* A bounded batch, so a flood cannot keep this thread from its clients. */
    for (int k = 0; k < 256; k++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(v->listen_fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: the connection stays in the backlog; try again soon. */
                v->accept_paused_until = now + 100;
            }
            return;
        }
        admit(v, fd, (struct sockaddr *)&peer, len, now);
    }
}

static bool is_loopback_text(const char *host)
{
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strncmp(host, "::ffff:127.", 11);
}

static void log_refused_origin(struct vnc_ui *v, const char *who, const char *origin)
{
    for (unsigned i = 0; i < v->nlogged; i++)
        if (!strcmp(v->logged_origins[i], origin))
            return;
    if (v->nlogged == LOGGED_ORIGINS)
        return;
    snprintf(v->logged_origins[v->nlogged++], sizeof(v->logged_origins[0]), "%s", origin);
    warn("refused a WebSocket from %s opened by a page from %s%s", who, origin,
         v->nlogged == LOGGED_ORIGINS ? " (further refused origins are not logged)" : "");
}

static void hand_over(struct vnc_ui *v, unsigned i, bool websocket_checked)
{
    int fd = v->pend[i].fd;
    v->pend[i] = v->pend[--v->npend];
    v->handing_fd = fd;
    v->handing_ws = websocket_checked;
    /* libvncserver peeks for a WebSocket request (up to 100 ms on a silent
     * client) and sends its greeting; it closes fd itself on failure. */
    rfbNewClient(v->screen, fd);
    v->handing_fd = -1;
}

static void screen_pending(struct vnc_ui *v, uint64_t now)
{
    for (unsigned i = v->npend; i-- > 0;) {
        struct pending *p = &v->pend[i];
        bool readable = p->pfd >= 0 && (v->pfds[p->pfd].revents & (POLLIN | POLLERR | POLLHUP));
        if (!p->speaking && !readable) {
            if (now - p->since >= PREAMBLE_WAIT_MS)
                hand_over(v, i, false);     /* silent: an RFB client */
            continue;
        }
        char buf[VNC_HTTP_HEAD_MAX];
        ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_PEEK);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (!p->speaking && now - p->since >= PREAMBLE_WAIT_MS)
                hand_over(v, i, false);
            continue;
        }
        if (n <= 0) {
            close_pending(v, i);    /* gone, or an error */
            continue;
        }
        p->speaking = true;
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        char who[INET6_ADDRSTRLEN] = "?";
        if (getpeername(p->fd, (struct sockaddr *)&peer, &plen) == 0)
            numeric_host((struct sockaddr *)&peer, plen, who, sizeof(who));
        const char *hosts[3] = { p->local, is_loopback_text(p->local) ? "localhost" : NULL,
                                 v->listen_name[0] ? v->listen_name : NULL };
        struct vnc_origins allow = { (const char *const *)v->origins, v->norigins, hosts, 3, v->port };
        const char *reply;
        char why[160], origin[128];
        enum vnc_verdict verdict = vnc_judge_preamble(buf, (size_t)n, v->websocket, &allow, &reply,
                                                      why, sizeof(why), origin, sizeof(origin));
        if (verdict == VNC_WAIT && now - p->since < HTTP_HEAD_WAIT_MS)
            continue;
        if (verdict == VNC_PASS) {
            hand_over(v, i, true);
            continue;
        }
        if (verdict == VNC_WAIT) {
            snprintf(why, sizeof(why), "did not finish its HTTP request in time");
            reply = NULL;
        }
        if (reply)
            (void)!send(p->fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (origin[0])
            log_refused_origin(v, who, origin);
        else
            vnc_log("refused %s: it %s\n", who, why);
        close_pending(v, i);
    }
}

/* ---- frame hand-off ---- */

/* The server format on a little-endian host is red in the low byte
 * (libvncserver's default, which rfbNewFramebuffer resets to), so swap R and B. */
static inline uint32_t to_server(uint32_t p)
{
    return ((p >> 16) & 0xff) | (p & 0xff00) | ((p & 0xff) << 16);
}

/* Machine's thread: copy the changed rows for the VNC thread, unless it is
 * copying them out right now (then they wait for the next poll). */
static void hand_over_frame(struct vnc_ui *v, const struct render_frame *f)
{
    if (f->dirty_y0 < f->dirty_y1) {
        if (v->my0 >= v->my1) {
            v->my0 = f->dirty_y0;
            v->my1 = f->dirty_y1;
        } else {
            if (f->dirty_y0 < v->my0)
                v->my0 = f->dirty_y0;
            if (f->dirty_y1 > v->my1)
                v->my1 = f->dirty_y1;
        }
    }
    if (pthread_mutex_trylock(&v->lock))
        return;
    if (f->width != v->sw || f->height != v->sh) {
        free(v->shared);
        v->shared = xmalloc((size_t)f->width * f->height * 4);
        v->sw = f->width;
        v->sh = f->height;
        v->my0 = 0;
        v->my1 = f->height;
        v->sy0 = v->sy1 = 0;
    }
    if (v->my1 > v->sh)
        v->my1 = v->sh;
    if (v->my0 < v->my1) {
        memcpy(v->shared + (size_t)v->my0 * v->sw, f->pixels + (size_t)v->my0 * f->width,
               (size_t)(v->my1 - v->my0) * v->sw * 4);
        if (v->sy0 >= v->sy1) {
            v->sy0 = v->my0;
            v->sy1 = v->my1;
        } else {
            if (v->my0 < v->sy0)
                v->sy0 = v->my0;
            if (v->my1 > v->sy1)
                v->sy1 = v->my1;
        }
    }
    v->my0 = v->my1 = 0;
    pthread_mutex_unlock(&v->lock);
}

static bool resize(struct vnc_ui *v, unsigned w, unsigned h)
{
    uint32_t *fb = xcalloc((size_t)w * h, 4);
    rfbNewFramebuffer(v->screen, (char *)fb, (int)w, (int)h, 8, 3, 4);
    free(v->fb);
    v->fb = fb;
    v->width = w;
    v->height = h;
    return true;
}

/* VNC thread: take the rows the machine's thread handed over, mark the ones
 * whose pixels changed. */
static void pick_up_frame(struct vnc_ui *v)
{
    unsigned my0 = 1, my1 = 0;
    pthread_mutex_lock(&v->lock);
    if (v->status_new) {
        snprintf(v->desktop_name, sizeof(v->desktop_name), "%s", v->status);
        v->status_new = false;
    }
    unsigned y0 = v->sy0, y1 = v->sy1;
    if (v->sw && v->sh && (v->sw != v->width || v->sh != v->height)) {
        if (resize(v, v->sw, v->sh)) {
            y0 = 0;
            y1 = v->sh;
        } else {
            y0 = y1 = 0;
        }
    }
    if (v->sw == v->width && v->sh == v->height && y0 < y1) {
        my0 = y1;
        my1 = y0;
        for (unsigned y = y0; y < y1 && y < v->height; y++) {
            const uint32_t *src = v->shared + (size_t)y * v->sw;
            uint32_t *dst = v->fb + (size_t)y * v->width;
            bool changed = false;
            for (unsigned x = 0; x < v->width; x++) {
                uint32_t p = to_server(src[x]);
                if (dst[x] != p) {
                    dst[x] = p;
                    changed = true;
                }
            }
            if (changed) {
                if (y < my0)
                    my0 = y;
                my1 = y + 1;
            }
        }
    }
    v->sy0 = v->sy1 = 0;
    pthread_mutex_unlock(&v->lock);
    if (my0 < my1)
        rfbMarkRectAsModified(v->screen, 0, (int)my0, (int)v->width, (int)my1);
}

/* ---- the VNC thread ---- */

static void wait_for_events(struct vnc_ui *v, uint64_t now)
{
    unsigned n = 0;
    v->pfds[n++] = (struct pollfd){ v->wake[0], POLLIN, 0 };
    v->listen_polled = now >= v->accept_paused_until;
    if (v->listen_polled)
        v->pfds[n++] = (struct pollfd){ v->listen_fd, POLLIN, 0 };
    for (unsigned i = 0; i < v->npend; i++) {
        struct pending *p = &v->pend[i];
        p->pfd = -1;
        if (!p->speaking) {
            p->pfd = (int)n;
            v->pfds[n++] = (struct pollfd){ p->fd, POLLIN, 0 };
        }
    }
    rfbClientIteratorPtr it = rfbGetClientIterator(v->screen);
    rfbClientPtr cl;
    while ((cl = rfbClientIteratorNext(it)) && n < sizeof(v->pfds) / sizeof(v->pfds[0]))
        if (cl->sock != RFB_INVALID_SOCKET)
            v->pfds[n++] = (struct pollfd){ cl->sock, POLLIN, 0 };
    rfbReleaseClientIterator(it);
    if (poll(v->pfds, n, LOOP_MS) > 0 && (v->pfds[0].revents & POLLIN)) {
        char buf[64];
        (void)!read(v->wake[0], buf, sizeof(buf));
    }
}

static bool listen_ready(const struct vnc_ui *v)
{
    return v->listen_polled && (v->pfds[1].revents & POLLIN);
}

static void *vnc_thread(void *opaque)
{
    struct vnc_ui *v = opaque;
    while (!atomic_load(&v->stop)) {
        wait_for_events(v, now_ms());
        uint64_t now = now_ms();
        if (listen_ready(v))
            accept_connections(v, now);
        screen_pending(v, now);
        pick_up_frame(v);
        rfbProcessEvents(v->screen, 0);
        expire_preauth(v, now_ms());
    }
    return NULL;
}

/* ---- options ---- */

static bool read_password_file(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read password-file %.200s: %s", path, strerror(errno));
        return false;
    }
    char line[256];
    if (!fgets(line, sizeof(line), f))
        line[0] = 0;
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0]) {
        snprintf(err, errlen, "password-file %.200s is empty", path);
        return false;
    }
    *out = strdup(line);
    return true;
}

/* The password is checked with RFB's "VNC authentication" (security type 2):
 * DES with the first 8 characters of the password as the key, and the
 * session itself is not encrypted (libvncserver has no VeNCrypt/TLS server
 * side).  Use it with the default 127.0.0.1 binding or through an SSH tunnel. */
#define VNC_PASSWORD_MAX 8

struct vnc_opts {
    char addr[160];             /* "" = 127.0.0.1 */
    bool ipv6;
    int display;
    char *password;
    bool websocket;
    bool insecure;
    unsigned max_clients;
    char **origins;
    size_t norigins;
};

static void free_opts(struct vnc_opts *o)
{
    free(o->password);
    for (size_t i = 0; i < o->norigins; i++)
        free(o->origins[i]);
    free(o->origins);
    o->password = NULL;
    o->origins = NULL;
    o->norigins = 0;
}

static bool is_item(const char *item, size_t len, const char *name)
{
    return strlen(name) == len && !strncmp(item, name, len);
}

static bool has_value(const char *item, size_t len, const char *key)
{
    size_t k = strlen(key);
    return len > k && !strncmp(item, key, k);
}

/* websocket-origins=O1;O2;...: each scheme://host[:port], as a browser sends it. */
static bool add_origins(struct vnc_opts *o, const char *list, size_t len, char *err, size_t errlen)
{
    const char *p = list, *end = list + len;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        size_t n = semi ? (size_t)(semi - p) : (size_t)(end - p);
        if (!n || n > 120 || (strncmp(p, "http://", 7) && strncmp(p, "https://", 8))) {
            snprintf(err, errlen, "websocket-origins: '%.*s' is not an origin (http[s]://HOST[:PORT])",
                     (int)(n > 120 ? 120 : n), p);
            return false;
        }
        if (o->norigins == 64) {
            snprintf(err, errlen, "websocket-origins: at most 64 origins");
            return false;
        }
        char **grown = realloc(o->origins, (o->norigins + 1) * sizeof(*grown));
        if (!grown) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
        o->origins = grown;
        o->origins[o->norigins++] = strndup(p, n);
        p += n + (semi ? 1 : 0);
    }
    return true;
}

static bool parse_on_off(const char *val, size_t len, bool *out)
{
    if ((len == 2 && !strncmp(val, "on", 2)) || (len == 4 && !strncmp(val, "true", 4))) {
        *out = true;
        return true;
    }
    if ((len == 3 && !strncmp(val, "off", 3)) || (len == 5 && !strncmp(val, "false", 5))) {
        *out = false;
        return true;
    }
    return false;
}

static bool parse_item(struct vnc_opts *o, const char *item, size_t len, char *err, size_t errlen)
{
    if (is_item(item, len, "password") || is_item(item, len, "password=on")) {
        const char *pw = getenv("RETROVISOR_VNC_PASSWORD");
        if (!pw || !*pw) {
            snprintf(err, errlen, "password: set the password in RETROVISOR_VNC_PASSWORD");
            return false;
        }
        free(o->password);
        o->password = strdup(pw);
    } else if (has_value(item, len, "password-file=")) {
        char path[4096];
        if (len - 14 >= sizeof(path)) {
            snprintf(err, errlen, "password-file path too long");
            return false;
        }
        memcpy(path, item + 14, len - 14);
        path[len - 14] = 0;
        free(o->password);
        o->password = NULL;
        if (!read_password_file(path, &o->password, err, errlen))
            return false;
    } else if (has_value(item, len, "websocket=")) {
        if (!parse_on_off(item + 10, len - 10, &o->websocket)) {
            snprintf(err, errlen, "websocket=%.*s: want on or off", (int)(len - 10), item + 10);
            return false;
        }
    } else if (has_value(item, len, "websocket-origins=")) {
        if (!add_origins(o, item + 18, len - 18, err, errlen))
            return false;
    } else if (has_value(item, len, "max-clients=")) {
        char num[16];
        size_t nl = len - 12;
        char *end;
        if (nl >= sizeof(num))
            nl = sizeof(num) - 1;
        memcpy(num, item + 12, nl);
        num[nl] = 0;
        errno = 0;
        long n = strtol(num, &end, 10);
        if (end == num || *end || errno || n < 1 || n > MAX_CLIENTS_LIMIT) {
            snprintf(err, errlen, "max-clients=%s: want 1..%d", num, MAX_CLIENTS_LIMIT);
            return false;
        }
        o->max_clients = (unsigned)n;
    } else if (is_item(item, len, "insecure") || is_item(item, len, "insecure=on")) {
        o->insecure = true;
    } else {
        snprintf(err, errlen,
                 "unknown option '%.*s' (known: password, password-file=PATH, websocket=on|off, "
                 "websocket-origins=ORIGIN[;ORIGIN...], max-clients=N, insecure)",
                 (int)(len > 64 ? 64 : len), item);
        return false;
    }
    return true;
}

static bool parse_opts(const char *opt, struct vnc_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    o->max_clients = DEFAULT_MAX_CLIENTS;
    const char *comma = strchr(opt, ',');
    size_t hostlen = comma ? (size_t)(comma - opt) : strlen(opt);
    char host[160];
    if (hostlen >= sizeof(host)) {
        snprintf(err, errlen, "address too long");
        return false;
    }
    memcpy(host, opt, hostlen);
    host[hostlen] = 0;
    char *colon = strrchr(host, ':');   /* the last ':' separates the display number */
    if (!colon) {
        snprintf(err, errlen, "expected [ADDR]:N (display N listens on TCP port 5900+N)");
        return false;
    }
    *colon = 0;
    const char *addr = host;
    size_t alen = strlen(host);
    if (alen >= 2 && host[0] == '[' && host[alen - 1] == ']') {
        o->ipv6 = true;
        host[alen - 1] = 0;
        addr = host + 1;
    } else if (strchr(host, ':')) {
        snprintf(err, errlen, "write an IPv6 address in brackets: [ADDR]:N");
        return false;
    }
    snprintf(o->addr, sizeof(o->addr), "%s", addr);
    const char *num = colon + 1;
    char *end;
    errno = 0;
    long n = strtol(num, &end, 10);
    if (end == num || *end || errno || n < 0 || n > 65535 - 5900) {
        snprintf(err, errlen, "bad display number '%s' (want 0..%d: TCP port 5900+N)",
                 num, 65535 - 5900);
        return false;
    }
    o->display = (int)n;
    while (comma) {
        const char *item = comma + 1;
        comma = strchr(item, ',');
        size_t len = comma ? (size_t)(comma - item) : strlen(item);
        if (!parse_item(o, item, len, err, errlen))
            return false;
    }
    if (o->norigins && !o->websocket) {
        snprintf(err, errlen, "websocket-origins= needs websocket=on");
        return false;
    }
    if (o->password && strlen(o->password) > VNC_PASSWORD_MAX) {
        snprintf(err, errlen,
                 "the password has %zu characters, but VNC authentication (DES) uses only the "
                 "first %d, as in every VNC server: use at most %d (and reach the server on "
                 "127.0.0.1 or through an SSH tunnel)",
                 strlen(o->password), VNC_PASSWORD_MAX, VNC_PASSWORD_MAX);
        return false;
    }
    return true;
}

/* ---- listening ---- */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* Resolves and binds; the policy on non-loopback addresses is checked in
 * between, so a refused address is never bound.  -1 and err on failure. */
static int open_listener(const struct vnc_opts *o, int port, const char *opt, char *err, size_t errlen)
{
    const char *host = o->addr[0] ? o->addr : "127.0.0.1";
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = { .ai_family = o->ipv6 ? AF_INET6 : AF_INET, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, service, &hints, &res) || !res) {
        snprintf(err, errlen, "-display vnc=%s: cannot resolve address '%s'", opt, host);
        return -1;
    }
    const char *lb = o->ipv6 ? "[" : "", *rb = o->ipv6 ? "]" : "";
    if (!is_loopback(res->ai_addr) && !o->password && !o->insecure) {
        snprintf(err, errlen,
                 "-display vnc=%s: %s%s%s is not a loopback address and no password is set, so "
                 "anyone who reaches port %d could watch and type into the VM: set one "
                 "(,password or ,password-file=FILE) or add ,insecure",
                 opt, lb, host, rb, port);
        freeaddrinfo(res);
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (res->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 64)) {
        snprintf(err, errlen, "-display vnc=%s: cannot listen on %s%s%s:%d: %s", opt, lb, host, rb,
                 port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* ---- ui/frontend.h ---- */

void vnc_poll(struct vnc_ui *v, const struct render_frame *f)
{
    if (v->in.leds)
        atomic_store(&v->leds, v->in.leds(v->in.opaque));
    if (f && f->width && f->height && f->pixels)
        hand_over_frame(v, f);
    deliver_input(v);
}

static bool start_thread(struct vnc_ui *v)
{
    /* The machine's thread takes the signals (SIGINT ends the run). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&v->thread, NULL, vnc_thread, v);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    v->thread_started = r == 0;
    return r == 0;
}

struct vnc_ui *vnc_open(const char *opt, const struct ui_input *in, char *err, size_t errlen)
{
    log_verbose = getenv("RETROVISOR_VNC_DEBUG") != NULL;
    rfbLog = vnc_log;
    rfbErr = vnc_err;

    struct vnc_opts o;
    char why[400];
    if (!parse_opts(opt, &o, why, sizeof(why))) {
        snprintf(err, errlen, "-display vnc=%s: %s", opt, why);
        free_opts(&o);
        return NULL;
    }

    struct vnc_ui *v = xcalloc(1, sizeof(*v));
    v->listen_fd = v->wake[0] = v->wake[1] = v->handing_fd = -1;
    pthread_mutex_init(&v->lock, NULL);
    pthread_mutex_init(&v->qlock, NULL);
    if (in)
        v->in = *in;
    v->port = 5900 + o.display;
    v->websocket = o.websocket;
    v->max_clients = o.max_clients;
    v->origins = o.origins;
    v->norigins = o.norigins;
    o.origins = NULL;
    o.norigins = 0;
    snprintf(v->listen_name, sizeof(v->listen_name), "%s", o.addr);
    v->backoff = vnc_backoff_new();
    v->width = 640;
    v->height = 480;
    v->fb = xcalloc((size_t)v->width * v->height, 4);

    v->listen_fd = open_listener(&o, v->port, opt, err, errlen);
    if (v->listen_fd < 0)
        goto fail;
    if (pipe2(v->wake, O_CLOEXEC | O_NONBLOCK)) {
        snprintf(err, errlen, "-display vnc=%s: pipe: %s", opt, strerror(errno));
        goto fail;
    }

    rfbScreenInfoPtr s = rfbGetScreen(NULL, NULL, (int)v->width, (int)v->height, 8, 3, 4);
    if (!s) {
        snprintf(err, errlen, "-display vnc=%s: out of memory", opt);
        goto fail;
    }
    v->screen = s;
    s->screenData = v;
    s->frameBuffer = (char *)v->fb;
    snprintf(v->desktop_name, sizeof(v->desktop_name), "retrovisor");
    s->desktopName = v->desktop_name;
    s->alwaysShared = TRUE;     /* a second viewer joins instead of kicking the first */
    s->cursor = NULL;           /* the guest draws its own pointer */
    s->kbdAddEvent = vnc_key;
    s->ptrAddEvent = vnc_pointer;
    s->newClientHook = new_client;
    s->handleEventsEagerly = FALSE; /* one round per loop: the loop checks deadlines */
    s->deferUpdateTime = 0;         /* the machine's 10 ms polls are the batching */
    s->maxClientWait = CLIENT_STALL_MS;
    s->httpDir = NULL;
    s->httpPort = s->http6Port = 0;
    s->port = s->ipv6port = 0;      /* we listen and accept; libvncserver gets the sockets */
    s->autoPort = FALSE;
    if (o.password) {
        v->passwords[0] = o.password;
        o.password = NULL;
        s->authPasswdData = (void *)v->passwords;
        s->passwordCheck = check_password;
    }
    last_error[0] = 0;
    rfbInitServer(s);

    if (v->websocket && !v->passwords[0])
        warn("-display vnc=%s: websockets are on without a password: any program that can reach "
             "port %d, and any web page from an allowed origin, can watch the VM and type into it",
             opt, v->port);
    if (!start_thread(v)) {
        snprintf(err, errlen, "-display vnc=%s: cannot start the VNC thread", opt);
        goto fail;
    }
    free_opts(&o);
    return v;

fail:
    free_opts(&o);
    vnc_close(v);
    return NULL;
}

void vnc_set_status(struct vnc_ui *v, const char *status)
{
    /* Viewers read the name when they connect. */
    pthread_mutex_lock(&v->lock);
    snprintf(v->status, sizeof(v->status), "%s%sretrovisor [%s]", v->name, v->name[0] ? " - " : "", status);
    v->status_new = true;
    pthread_mutex_unlock(&v->lock);
}

void vnc_set_name(struct vnc_ui *v, const char *name)
{
    pthread_mutex_lock(&v->lock);
    snprintf(v->name, sizeof(v->name), "%s", name ? name : "");
    pthread_mutex_unlock(&v->lock);
}

int vnc_port(const struct vnc_ui *v)
{
    return v->port;
}

void vnc_close(struct vnc_ui *v)
{
    if (!v)
        return;
    if (v->thread_started) {
        atomic_store(&v->stop, true);
        (void)!write(v->wake[1], "x", 1);
        pthread_join(v->thread, NULL);
    }
    while (v->npend)
        close_pending(v, v->npend - 1);
    rfbScreenInfoPtr s = v->screen;
    if (s) {
        /* Close the clients ourselves and let rfbProcessEvents reap them:
         * rfbShutdownServer(s, TRUE) would join client threads we never started. */
        rfbClientIteratorPtr it = rfbGetClientIterator(s);
        rfbClientPtr cl;
        while ((cl = rfbClientIteratorNext(it)))
            if (cl->sock != RFB_INVALID_SOCKET)
                rfbCloseClient(cl);
        rfbReleaseClientIterator(it);
        rfbProcessEvents(s, 0);
        rfbShutdownServer(s, FALSE);
        rfbScreenCleanup(s);
    }
    if (v->listen_fd >= 0)
        close(v->listen_fd);
    for (int i = 0; i < 2; i++)
        if (v->wake[i] >= 0)
            close(v->wake[i]);
    for (size_t i = 0; i < v->norigins; i++)
        free(v->origins[i]);
    free(v->origins);
    vnc_backoff_free(v->backoff);
    pthread_mutex_destroy(&v->lock);
    pthread_mutex_destroy(&v->qlock);
    free(v->passwords[0]);
    free(v->shared);
    free(v->fb);
    free(v);
}
