/*
 * The VNC server: libvncserver, driven entirely from ui_poll on the main
 * thread (rfbProcessEvents with a zero timeout, no background threads), so
 * the keyboard and mouse callbacks below run on the thread that owns the
 * machine.  libvncserver detects WebSocket handshakes on the same port, so
 * noVNC connects to ws://HOST:5900+N directly.
 *
 * Keyboard: RFB sends X11 keysyms; keymap_keysym_event (ui/keymap.c) turns
 * them into US-layout set-1 keys, synthesising Shift where the character
 * needs it.  Each client's held keys are released when it disconnects.
 *
 * Mouse: the guest has a relative PS/2 mouse while RFB pointers are
 * absolute, so the server sends the difference from the client's previous
 * position.  The guest applies its own acceleration and clipping, so its
 * cursor drifts away from the client's; the client's local cursor is
 * hidden (empty cursor shape) to leave only the guest's.  Moving the
 * pointer against the window edge cannot push the guest cursor further.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rfb/rfb.h>

#include "ui/frontend.h"
#include "ui/keymap.h"

struct vnc_ui {
    rfbScreenInfoPtr screen;
    struct ui_input in;
    uint32_t *fb;               /* width*height pixels in the server format */
    unsigned width, height;
    int port;
    char *passwords[2];         /* rfbCheckPasswordByList list, NULL-terminated */
    char desktop_name[96];
};

/* Per-client state, in cl->clientData. */
struct vnc_client {
    struct vnc_ui *v;
    struct keysym_tracker kt;
    uint8_t held[32];           /* bit (code | e0 << 7): keys this client holds down */
    bool have_pos;
    int last_x, last_y, last_mask;
};

/* ---- libvncserver log: silent unless RETROVISOR_VNC_DEBUG is set; the last
 * error is kept for the message of a failed vnc_open. ---- */

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

/* ---- input ---- */

static void client_emit(void *opaque, int code, bool e0, bool down)
{
    struct vnc_client *c = opaque;
    unsigned bit = (unsigned)code | (e0 ? 0x80 : 0);
    if (down)
        c->held[bit / 8] |= 1u << (bit % 8);
    else
        c->held[bit / 8] &= ~(1u << (bit % 8));
    if (c->v->in.key)
        c->v->in.key(c->v->in.opaque, code, e0, down);
}

static void vnc_key(rfbBool down, rfbKeySym keysym, rfbClientPtr cl)
{
    struct vnc_client *c = cl->clientData;
    if (!c || cl->viewOnly)
        return;
    struct vnc_ui *v = c->v;
    uint8_t leds = v->in.leds ? v->in.leds(v->in.opaque) : 0;
    keymap_keysym_event(&c->kt, keysym, down, leds, client_emit, c);
}

static void vnc_pointer(int mask, int x, int y, rfbClientPtr cl)
{
    struct vnc_client *c = cl->clientData;
    if (!c || cl->viewOnly)
        return;
    struct vnc_ui *v = c->v;
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
    if ((dx || dy || dz || buttons != old) && v->in.mouse)
        v->in.mouse(v->in.opaque, dx, dy, dz, buttons);
}

static void client_gone(rfbClientPtr cl)
{
    struct vnc_client *c = cl->clientData;
    if (!c)
        return;
    /* Release what this client held so no key stays stuck in the guest. */
    for (unsigned bit = 0; bit < 256; bit++)
        if (c->held[bit / 8] & (1u << (bit % 8)))
            client_emit(c, bit & 0x7f, bit & 0x80, false);
    if (c->last_mask & 7 && c->v->in.mouse)
        c->v->in.mouse(c->v->in.opaque, 0, 0, 0, 0);
    free(c);
    cl->clientData = NULL;
}

static enum rfbNewClientAction new_client(rfbClientPtr cl)
{
    struct vnc_client *c = calloc(1, sizeof(*c));
    if (!c)
        return RFB_CLIENT_REFUSE;
    c->v = cl->screen->screenData;
    cl->clientData = c;
    cl->clientGoneHook = client_gone;
    return RFB_CLIENT_ACCEPT;
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
 * DES with only the first 8 characters of the password as the key, and the
 * session itself is not encrypted.  Use it with the default 127.0.0.1
 * binding or through an SSH tunnel. */
struct vnc_opts {
    char addr[160];             /* "" = 127.0.0.1 */
    bool ipv6;
    int display;
    char *password;
};

static bool parse_opts(const char *opt, struct vnc_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
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
        if (len == 8 && !strncmp(item, "password", 8)) {
            const char *pw = getenv("RETROVISOR_VNC_PASSWORD");
            if (!pw || !*pw) {
                snprintf(err, errlen, "password: set the password in RETROVISOR_VNC_PASSWORD");
                return false;
            }
            free(o->password);
            o->password = strdup(pw);
        } else if (len > 14 && !strncmp(item, "password-file=", 14)) {
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
        } else {
            snprintf(err, errlen, "unknown option '%.*s' (known: password, password-file=PATH)",
                     (int)len, item);
            return false;
        }
    }
    return true;
}

/* ---- frame buffer ---- */

/* The server format on a little-endian host is red in the low byte
 * (libvncserver's default, which rfbNewFramebuffer resets to), so swap R and B. */
static inline uint32_t to_server(uint32_t p)
{
    return ((p >> 16) & 0xff) | (p & 0xff00) | ((p & 0xff) << 16);
}

static bool resize(struct vnc_ui *v, unsigned w, unsigned h)
{
    uint32_t *fb = calloc((size_t)w * h, 4);
    if (!fb)
        return false;
    rfbNewFramebuffer(v->screen, (char *)fb, (int)w, (int)h, 8, 3, 4);
    free(v->fb);
    v->fb = fb;
    v->width = w;
    v->height = h;
    return true;
}

void vnc_poll(struct vnc_ui *v, const struct render_frame *f)
{
    if (f && f->width && f->height && f->pixels) {
        unsigned y0 = f->dirty_y0, y1 = f->dirty_y1;
        if (f->width != v->width || f->height != v->height) {
            if (!resize(v, f->width, f->height))
                y0 = y1 = 0;
            else {
                y0 = 0;
                y1 = f->height;
            }
        }
        if (y1 > v->height)
            y1 = v->height;
        /* Copy the dirty rows and mark only the ones whose pixels changed. */
        unsigned my0 = y1, my1 = y0;
        for (unsigned y = y0; y < y1; y++) {
            const uint32_t *src = f->pixels + (size_t)y * f->width;
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
        if (my0 < my1)
            rfbMarkRectAsModified(v->screen, 0, (int)my0, (int)v->width, (int)my1);
    }
    rfbProcessEvents(v->screen, 0);
}

/* ---- open / close ---- */

struct vnc_ui *vnc_open(const char *opt, const struct ui_input *in, char *err, size_t errlen)
{
    log_verbose = getenv("RETROVISOR_VNC_DEBUG") != NULL;
    rfbLog = vnc_log;
    rfbErr = vnc_err;

    struct vnc_opts o;
    char why[256];
    if (!parse_opts(opt, &o, why, sizeof(why))) {
        snprintf(err, errlen, "-display vnc=%s: %s", opt, why);
        free(o.password);
        return NULL;
    }

    struct vnc_ui *v = calloc(1, sizeof(*v));
    if (!v) {
        free(o.password);
        snprintf(err, errlen, "-display vnc=%s: out of memory", opt);
        return NULL;
    }
    if (in)
        v->in = *in;
    v->port = 5900 + o.display;
    v->width = 640;
    v->height = 480;
    v->fb = calloc((size_t)v->width * v->height, 4);
    rfbScreenInfoPtr s = rfbGetScreen(NULL, NULL, (int)v->width, (int)v->height, 8, 3, 4);
    if (!v->fb || !s) {
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
    s->handleEventsEagerly = TRUE;  /* drain every pending message in one poll */
    s->deferUpdateTime = 0;         /* ui_poll's 10 ms period is the batching */
    s->httpDir = NULL;
    s->httpPort = s->http6Port = 0;

    const char *shown = o.addr[0] ? o.addr : "127.0.0.1";
    if (o.ipv6) {
        s->port = 0;            /* IPv6 only */
        s->ipv6port = v->port;
        s->listen6Interface = o.addr;
    } else {
        s->port = v->port;
        s->ipv6port = 0;        /* otherwise libvncserver also listens on every IPv6 address */
        in_addr_t a;
        if (!o.addr[0])
            a = htonl(INADDR_LOOPBACK);
        else if (!rfbStringToAddr(o.addr, &a)) {
            snprintf(err, errlen, "-display vnc=%s: cannot resolve address '%s'", opt, o.addr);
            goto fail;
        }
        s->listenInterface = a;
    }
    if (o.password) {
        v->passwords[0] = o.password;
        o.password = NULL;
        s->authPasswdData = (void *)v->passwords;
        s->passwordCheck = rfbCheckPasswordByList;
    }

    last_error[0] = 0;
    errno = 0;
    rfbInitServer(s);
    int e = errno;
    bool listening = o.ipv6 ? s->listen6Sock != RFB_INVALID_SOCKET
                            : s->listenSock != RFB_INVALID_SOCKET;
    if (!listening) {
        const char *reason = e ? strerror(e) : last_error[0] ? last_error : "unknown error";
        snprintf(err, errlen, "-display vnc=%s: cannot listen on %s%s%s:%d: %s", opt,
                 o.ipv6 ? "[" : "", shown, o.ipv6 ? "]" : "", v->port, reason);
        s->listen6Interface = NULL;
        goto fail;
    }
    s->listen6Interface = NULL;     /* only needed while binding; o.addr goes away */
    return v;

fail:
    free(o.password);
    vnc_close(v);
    return NULL;
}

void vnc_set_status(struct vnc_ui *v, const char *status)
{
    /* Viewers read the name when they connect. */
    snprintf(v->desktop_name, sizeof(v->desktop_name), "retrovisor \xe2\x80\x94 %s", status);
}

int vnc_port(const struct vnc_ui *v)
{
    return v->port;
}

void vnc_close(struct vnc_ui *v)
{
    if (!v)
        return;
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
    free(v->passwords[0]);
    free(v->fb);
    free(v);
}
