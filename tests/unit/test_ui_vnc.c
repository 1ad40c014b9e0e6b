/*
 * Display front ends: the VNC server (a hand-written RFB 3.8 client talks to
 * it over TCP on a free port), the -display dispatch of ui/ui.c, and the SDL
 * window under SDL's "dummy" video driver.
 *
 * ui/ui.c is linked against fakes defined here: render_* (a frame source),
 * kbc_* (records input) and screendump_png, which win over anything in
 * libretrovisor.a because the test object comes first.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <SDL.h>
#include <rfb/keysym.h>
#include <rfb/rfbproto.h>

#include "ui/frontend.h"
#include "ui/hotkeys.h"
#include "ui/render.h"
#include "ui/ui.h"

/* ---- fakes: frame source, keyboard controller, screendump ---- */

struct fake_src {
    struct render_frame f;
    uint32_t px[1024 * 768];
    int renders;
};
static struct fake_src src;

static uint32_t pattern(unsigned x, unsigned y, unsigned seed)
{
    return ((x * 7 + seed) & 0xff) << 16 | ((y * 5 + seed * 3) & 0xff) << 8 | ((x ^ y ^ seed) & 0xff);
}

static void set_frame(unsigned w, unsigned h, unsigned seed)
{
    src.f.width = w;
    src.f.height = h;
    src.f.pixels = src.px;
    for (unsigned y = 0; y < h; y++)
        for (unsigned x = 0; x < w; x++)
            src.px[y * w + x] = pattern(x, y, seed);
    src.f.dirty_y0 = 0;
    src.f.dirty_y1 = h;
}

struct renderer *render_new(struct vga *vga)
{
    return (struct renderer *)&src;
}

void render_free(struct renderer *r)
{
}

const struct render_frame *render_update(struct renderer *r, uint64_t now_ms)
{
    static struct render_frame out;
    out = src.f;
    src.f.dirty_y0 = src.f.dirty_y1 = 0;    /* reported once, like the real renderer */
    src.renders++;
    return &out;
}

static int dumps;
static unsigned dump_w, dump_h;
bool screendump_png(const struct render_frame *f, const char *path, char *err, size_t errlen)
{
    dumps++;
    dump_w = f->width;
    dump_h = f->height;
    return true;
}

/* Input log, shared by the fake kbc and the fake struct ui_input. */
static char keylog[2048];
static int mouse_dx, mouse_dy, mouse_dz, mouse_buttons, mouse_events;
static bool fake_mouse_on;

static void log_key(int code, bool e0, bool down)
{
    char s[16];
    snprintf(s, sizeof(s), "%s%s%02x%c", keylog[0] ? " " : "", e0 ? "e0" : "", code, down ? '+' : '-');
    strncat(keylog, s, sizeof(keylog) - strlen(keylog) - 1);
}

static void log_mouse(int dx, int dy, int dz, int buttons)
{
    mouse_dx += dx;
    mouse_dy += dy;
    mouse_dz += dz;
    mouse_buttons = buttons;
    mouse_events++;
}

static void reset_input(void)
{
    keylog[0] = 0;
    mouse_dx = mouse_dy = mouse_dz = mouse_buttons = mouse_events = 0;
}

void kbc_key_event(struct kbc *k, int code, bool e0, bool down) { log_key(code, e0, down); }
void kbc_mouse_event(struct kbc *k, int dx, int dy, int dz, int b) { log_mouse(dx, dy, dz, b); }
bool kbc_mouse_enabled(struct kbc *k) { return fake_mouse_on; }
uint8_t kbc_leds(struct kbc *k) { return 0; }

static void in_key(void *o, int code, bool e0, bool down) { log_key(code, e0, down); }
static void in_mouse(void *o, int dx, int dy, int dz, int b) { log_mouse(dx, dy, dz, b); }
static uint8_t in_leds(void *o) { return 0; }
static const struct ui_input fake_input = { NULL, in_key, in_mouse, NULL, in_leds };

/* ---- helpers ---- */

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A TCP port nobody listens on right now, >= 5900. */
static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    int port = ntohs(a.sin_port);
    assert_true(port > 5900);
    return port;
}

/* The server side runs only when the client pumps it (single thread). */
typedef void (*pump_fn)(void *server);

static void pump_vnc(void *v)
{
    vnc_poll(v, &src.f);
    src.f.dirty_y0 = src.f.dirty_y1 = 0;
}

static void pump_ui(void *ui)
{
    assert_true(ui_poll(ui));
}

/* For a run that is allowed to end (a power-off hotkey). */
static void pump_ui_ending(void *ui)
{
    (void)ui_poll(ui);
}

struct client {
    int fd;
    pump_fn pump;
    void *server;
    unsigned w, h;
    uint32_t *fb;
    bool resized;
};

static void cl_recv(struct client *c, void *buf, size_t n)
{
    uint8_t *p = buf;
    uint64_t deadline = ms_now() + 5000;
    while (n) {
        c->pump(c->server);
        struct pollfd pfd = { c->fd, POLLIN, 0 };
        if (poll(&pfd, 1, 1) == 1) {
            ssize_t r = recv(c->fd, p, n, 0);
            if (r <= 0)
                fail_msg("server closed the connection (%zd, %s)", r, strerror(errno));
            p += r;
            n -= (size_t)r;
        }
        if (ms_now() > deadline)
            fail_msg("timed out waiting for %zu bytes from the server", n);
    }
}

static void cl_send(struct client *c, const void *buf, size_t n)
{
    assert_int_equal(send(c->fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put16(uint8_t *p, unsigned v) { p[0] = v >> 8; p[1] = v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static void cl_connect(struct client *c, int port)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        fail_msg("connect to port %d: %s", port, strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* RFB 3.8 handshake up to ServerInit; password NULL = expect no security.
 * Returns the SecurityResult (0 = OK). */
static uint32_t cl_handshake(struct client *c, int port, const char *password)
{
    cl_connect(c, port);
    char ver[13] = { 0 };
    cl_recv(c, ver, 12);
    assert_string_equal(ver, "RFB 003.008\n");
    cl_send(c, "RFB 003.008\n", 12);
    uint8_t n;
    cl_recv(c, &n, 1);
    assert_true(n > 0);
    uint8_t types[32];
    cl_recv(c, types, n);
    uint8_t want = password ? 2 : 1;
    assert_non_null(memchr(types, want, n));
    if (!password)
        assert_null(memchr(types, 2, n));       /* no password asked when none set */
    else
        assert_null(memchr(types, 1, n));       /* and no way around it when set */
    cl_send(c, &want, 1);
    if (password) {
        uint8_t challenge[16];
        char pw[9] = { 0 };
        strncpy(pw, password, 8);
        cl_recv(c, challenge, 16);
        rfbEncryptBytes(challenge, pw);
        cl_send(c, challenge, 16);
    }
    uint8_t res[4];
    cl_recv(c, res, 4);
    if (be32(res) != 0)
        return be32(res);
    uint8_t shared = 1;
    cl_send(c, &shared, 1);
    uint8_t init[24];
    cl_recv(c, init, 24);
    c->w = be16(init);
    c->h = be16(init + 2);
    char name[256];
    uint32_t nl = be32(init + 20);
    assert_true(nl < sizeof(name));
    cl_recv(c, name, nl);
    name[nl] = 0;
    assert_non_null(strstr(name, "retrovisor"));
    c->fb = calloc((size_t)c->w * c->h, 4);

    /* 32 bpp little-endian 0x00RRGGBB, the frame's own layout */
    uint8_t spf[20] = { 0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0 };
    cl_send(c, spf, sizeof(spf));
    uint8_t enc[4 + 8] = { 2, 0 };
    put16(enc + 2, 2);
    put32(enc + 4, 0);                  /* Raw */
    put32(enc + 8, 0xFFFFFF21);         /* DesktopSize */
    cl_send(c, enc, sizeof(enc));
    return 0;
}

static void cl_request(struct client *c, bool incremental)
{
    uint8_t m[10] = { 3, incremental };
    put16(m + 2, 0);
    put16(m + 4, 0);
    put16(m + 6, c->w);
    put16(m + 8, c->h);
    cl_send(c, m, sizeof(m));
}

/* Reads one FramebufferUpdate (skipping other server messages) into c->fb. */
static void cl_read_update(struct client *c)
{
    for (;;) {
        uint8_t type;
        cl_recv(c, &type, 1);
        if (type == 2)                  /* Bell */
            continue;
        if (type == 3) {                /* ServerCutText */
            uint8_t h[7];
            cl_recv(c, h, 7);
            for (uint32_t i = 0, l = be32(h + 3); i < l; i++) {
                char ch;
                cl_recv(c, &ch, 1);
            }
            continue;
        }
        if (type != 0)
            fail_msg("unexpected server message %d", type);
        break;
    }
    uint8_t h[3];
    cl_recv(c, h, 3);
    unsigned nrects = be16(h + 1);
    for (unsigned i = 0; i < nrects; i++) {
        uint8_t r[12];
        cl_recv(c, r, 12);
        unsigned x = be16(r), y = be16(r + 2), w = be16(r + 4), hh = be16(r + 6);
        uint32_t enc = be32(r + 8);
        if (enc == 0xFFFFFF21) {
            free(c->fb);
            c->w = w;
            c->h = hh;
            c->fb = calloc((size_t)w * hh, 4);
            c->resized = true;
            continue;
        }
        if (enc != 0)
            fail_msg("unexpected encoding %d", (int)enc);
        if (x + w > c->w || y + hh > c->h)
            fail_msg("rect %ux%u+%u+%u outside %ux%u", w, hh, x, y, c->w, c->h);
        for (unsigned row = 0; row < hh; row++)
            cl_recv(c, c->fb + (size_t)(y + row) * c->w + x, (size_t)w * 4);
    }
}

static void cl_key(struct client *c, uint32_t sym, bool down)
{
    uint8_t m[8] = { 4, down };
    put32(m + 4, sym);
    cl_send(c, m, sizeof(m));
}

static void cl_pointer(struct client *c, int mask, int x, int y)
{
    uint8_t m[6] = { 5, (uint8_t)mask };
    put16(m + 2, x);
    put16(m + 4, y);
    cl_send(c, m, sizeof(m));
}

static void cl_close(struct client *c)
{
    close(c->fd);
    free(c->fb);
    c->fb = NULL;
}

/* Requests full updates until the client's copy shows the pattern (a viewer
 * may see a part of the old request's answer first, after a resize). */
static void expect_frame(struct client *c, unsigned w, unsigned h, unsigned seed)
{
    for (int i = 0; i < 10; i++) {
        bool ok = c->w == w && c->h == h;
        for (unsigned y = 0; ok && y < h; y++)
            for (unsigned x = 0; ok && x < w; x++)
                ok = (c->fb[y * w + x] & 0xffffff) == pattern(x, y, seed);
        if (ok)
            return;
        cl_request(c, false);
        cl_read_update(c);
    }
    fail_msg("the client never saw the %ux%u frame %u", w, h, seed);
}

static void expect_pixels(struct client *c, unsigned w, unsigned h, unsigned seed)
{
    assert_int_equal(c->w, w);
    assert_int_equal(c->h, h);
    for (unsigned y = 0; y < h; y++)
        for (unsigned x = 0; x < w; x++)
            if ((c->fb[y * w + x] & 0xffffff) != pattern(x, y, seed))
                fail_msg("pixel %u,%u: got %06x want %06x", x, y, c->fb[y * w + x] & 0xffffff,
                         pattern(x, y, seed));
}

/* Pumps the server until the key log reads `want` (or times out). */
static void wait_keys(pump_fn pump, void *server, const char *want)
{
    uint64_t deadline = ms_now() + 3000;
    while (strcmp(keylog, want) && ms_now() < deadline) {
        pump(server);
        usleep(1000);
    }
    assert_string_equal(keylog, want);
}

static void wait_mouse_events(pump_fn pump, void *server, int n)
{
    uint64_t deadline = ms_now() + 3000;
    while (mouse_events < n && ms_now() < deadline) {
        pump(server);
        usleep(1000);
    }
    assert_int_equal(mouse_events, n);
}

/* ---- VNC back end ---- */

static void vnc_pixels_keys_and_pointer(void **state)
{
    int port = free_port();
    char opt[32], err[256] = "";
    snprintf(opt, sizeof(opt), ":%d", port - 5900);
    set_frame(64, 48, 1);
    struct vnc_ui *v = vnc_open(opt, &fake_input, err, sizeof(err));
    if (!v)
        fail_msg("vnc_open(%s): %s", opt, err);
    assert_int_equal(vnc_port(v), port);
    pump_vnc(v);

    struct client c = { .pump = pump_vnc, .server = v };
    assert_int_equal(cl_handshake(&c, port, NULL), 0);
    assert_int_equal(c.w, 64);
    assert_int_equal(c.h, 48);
    cl_request(&c, false);
    cl_read_update(&c);
    expect_pixels(&c, 64, 48, 1);

    /* '!' from a client that did not report Shift: the server adds it */
    reset_input();
    cl_key(&c, '!', true);
    cl_key(&c, '!', false);
    wait_keys(pump_vnc, v, "2a+ 02+ 2a- 02-");
    /* a key held at disconnect is released */
    reset_input();
    cl_key(&c, XK_Control_L, true);
    cl_key(&c, XK_Left, true);
    wait_keys(pump_vnc, v, "1d+ e04b+");

    /* absolute pointer -> relative motion; RFB middle/right -> PS/2 bits */
    cl_pointer(&c, 0, 100, 100);
    cl_pointer(&c, 0, 110, 95);
    cl_pointer(&c, 4, 110, 95);         /* right button */
    cl_pointer(&c, 8, 110, 95);         /* wheel up: away from the user */
    wait_mouse_events(pump_vnc, v, 3);
    assert_int_equal(mouse_dx, 10);
    assert_int_equal(mouse_dy, -5);
    assert_int_equal(mouse_dz, -1);
    assert_int_equal(mouse_buttons, 0);

    /* a changed part of the frame reaches the client */
    reset_input();
    for (unsigned x = 0; x < 64; x++)
        src.px[20 * 64 + x] = pattern(x, 20, 1) ^ 0x00ffffff;
    src.f.dirty_y0 = 20;
    src.f.dirty_y1 = 21;
    cl_request(&c, true);
    cl_read_update(&c);
    for (unsigned x = 0; x < 64; x++)
        assert_int_equal(c.fb[20 * 64 + x] & 0xffffff, pattern(x, 20, 1) ^ 0x00ffffff);

    /* a mode change: DesktopSize, then the new frame */
    set_frame(80, 40, 2);
    cl_request(&c, true);
    uint64_t deadline = ms_now() + 3000;
    while (!c.resized && ms_now() < deadline)
        cl_read_update(&c);
    assert_true(c.resized);
    expect_frame(&c, 80, 40, 2);
    expect_pixels(&c, 80, 40, 2);

    cl_close(&c);
    wait_keys(pump_vnc, v, "1d- e04b-");
    vnc_close(v);
}

static void vnc_password(void **state)
{
    int port = free_port();
    char opt[64], err[256] = "";
    snprintf(opt, sizeof(opt), ":%d,password", port - 5900);

    unsetenv("RETROVISOR_VNC_PASSWORD");
    assert_null(vnc_open(opt, &fake_input, err, sizeof(err)));
    assert_non_null(strstr(err, "RETROVISOR_VNC_PASSWORD"));
    assert_non_null(strstr(err, "-display vnc="));

    setenv("RETROVISOR_VNC_PASSWORD", "s3cret", 1);
    set_frame(32, 16, 3);
    struct vnc_ui *v = vnc_open(opt, &fake_input, err, sizeof(err));
    if (!v)
        fail_msg("vnc_open(%s): %s", opt, err);
    struct client c = { .pump = pump_vnc, .server = v };
    assert_int_not_equal(cl_handshake(&c, port, "wrong"), 0);
    cl_close(&c);
    usleep(1100 * 1000);        /* the back-off after one wrong password is 1 s */
    assert_int_equal(cl_handshake(&c, port, "s3cret"), 0);
    cl_request(&c, false);
    cl_read_update(&c);
    expect_pixels(&c, 32, 16, 3);
    cl_close(&c);
    vnc_close(v);

    /* password-file= */
    char path[] = "/tmp/rv-vncpw-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "filepw\n", 7), 7);
    close(fd);
    snprintf(opt, sizeof(opt), ":%d,password-file=%s", port - 5900, path);
    v = vnc_open(opt, &fake_input, err, sizeof(err));
    if (!v)
        fail_msg("vnc_open(%s): %s", opt, err);
    c = (struct client){ .pump = pump_vnc, .server = v };
    assert_int_equal(cl_handshake(&c, port, "filepw"), 0);
    cl_close(&c);
    vnc_close(v);
    unlink(path);
    assert_null(vnc_open(opt, &fake_input, err, sizeof(err)));
    assert_non_null(strstr(err, path));
    unsetenv("RETROVISOR_VNC_PASSWORD");
}

/* A WebSocket upgrade request with the given Origin (NULL: none); returns the
 * client with the connection open and the server's HTTP response head in resp. */
static void ws_request(struct client *c, int port, const char *origin, char *resp, size_t resplen)
{
    cl_connect(c, port);
    char req[512];
    snprintf(req, sizeof(req),
             "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
             "%s%s%s\r\n", port, origin ? "Origin: " : "", origin ? origin : "", origin ? "\r\n" : "");
    cl_send(c, req, strlen(req));
    size_t n = 0;
    resp[0] = 0;
    while (n < resplen - 1 && !strstr(resp, "\r\n\r\n")) {
        cl_recv(c, resp + n, 1);
        resp[++n] = 0;
    }
}

/* After a refusal the server closes the connection and sends nothing more. */
static void expect_closed(struct client *c, void *server)
{
    uint64_t deadline = ms_now() + 5000;
    for (;;) {
        pump_vnc(server);
        struct pollfd pfd = { c->fd, POLLIN, 0 };
        if (poll(&pfd, 1, 10) == 1) {
            char b;
            ssize_t r = recv(c->fd, &b, 1, 0);
            if (r == 1)
                fail_msg("the server sent 0x%02x after refusing", (uint8_t)b);
            return;
        }
        if (ms_now() > deadline)
            fail_msg("the server did not close the refused connection");
    }
}

/* noVNC: with websocket=on, a WebSocket handshake on the same port from an
 * allowed origin, then RFB in binary frames. */
static void vnc_websocket(void **state)
{
    int port = free_port();
    char opt[160], err[256] = "", origin[64], resp[1024];
    snprintf(opt, sizeof(opt), ":%d,websocket=on", port - 5900);
    set_frame(16, 16, 7);
    struct vnc_ui *v = vnc_open(opt, &fake_input, err, sizeof(err));
    if (!v)
        fail_msg("vnc_open(%s): %s", opt, err);
    pump_vnc(v);
    struct client c = { .pump = pump_vnc, .server = v };
    snprintf(origin, sizeof(origin), "http://localhost:%d", port);
    ws_request(&c, port, origin, resp, sizeof(resp));
    if (getenv("WSDEBUG"))
        fprintf(stderr, "%s", resp);
    assert_non_null(strstr(resp, " 101 "));
    /* RFC 6455's example key and its accept value */
    assert_non_null(strstr(resp, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    uint8_t hdr[2];
    cl_recv(&c, hdr, 2);
    assert_int_equal(hdr[0], 0x82);         /* FIN + binary */
    assert_int_equal(hdr[1], 12);           /* unmasked, 12 bytes */
    char ver[13] = { 0 };
    cl_recv(&c, ver, 12);
    assert_string_equal(ver, "RFB 003.008\n");
    cl_close(&c);

    /* the same origin spelled with the address */
    snprintf(origin, sizeof(origin), "https://127.0.0.1:%d", port);
    ws_request(&c, port, origin, resp, sizeof(resp));
    assert_non_null(strstr(resp, " 101 "));
    cl_close(&c);
    /* no Origin: refused (libvncserver's handshake needs one) */
    ws_request(&c, port, NULL, resp, sizeof(resp));
    assert_non_null(strstr(resp, " 403 "));
    expect_closed(&c, v);
    cl_close(&c);

    /* any other page: refused before the RFB greeting */
    static const char *evil[] = { "http://evil.example", "http://localhost", "http://localhost:80",
                                  "http://127.0.0.1.evil.example:5999", "null" };
    for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
        ws_request(&c, port, evil[i], resp, sizeof(resp));
        if (!strstr(resp, " 403 "))
            fail_msg("Origin %s: %s", evil[i], resp);
        expect_closed(&c, v);
        cl_close(&c);
    }
    vnc_close(v);

    /* an explicit list replaces the default */
    snprintf(opt, sizeof(opt), ":%d,websocket=on,websocket-origins=http://novnc.example:6080;https://b.example",
             port - 5900);
    v = vnc_open(opt, &fake_input, err, sizeof(err));
    if (!v)
        fail_msg("vnc_open(%s): %s", opt, err);
    c = (struct client){ .pump = pump_vnc, .server = v };
    ws_request(&c, port, "http://novnc.example:6080", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 101 "));
    cl_close(&c);
    ws_request(&c, port, origin, resp, sizeof(resp));
    assert_non_null(strstr(resp, " 403 "));
    cl_close(&c);
    vnc_close(v);
}

/* Websockets are off by default: an upgrade request is refused. */
static void vnc_websocket_off(void **state)
{
    int port = free_port();
    char opt[32], err[256] = "", origin[64], resp[1024];
    snprintf(opt, sizeof(opt), ":%d", port - 5900);
    struct vnc_ui *v = vnc_open(opt, &fake_input, err, sizeof(err));
    if (!v)
        fail_msg("vnc_open(%s): %s", opt, err);
    struct client c = { .pump = pump_vnc, .server = v };
    snprintf(origin, sizeof(origin), "http://localhost:%d", port);
    ws_request(&c, port, origin, resp, sizeof(resp));
    assert_non_null(strstr(resp, " 403 "));
    expect_closed(&c, v);
    cl_close(&c);
    /* nor does anything else sent before the greeting get an RFB session */
    cl_connect(&c, port);
    cl_send(&c, "RFB 003.008\n", 12);
    expect_closed(&c, v);
    cl_close(&c);
    /* a plain RFB client still works */
    assert_int_equal(cl_handshake(&c, port, NULL), 0);
    cl_close(&c);
    vnc_close(v);
}

/* max-clients counts connections not yet authenticated; more are closed at once. */
static void vnc_max_clients(void **state)
{
    int port = free_port();
    char opt[48], err[256] = "";
    snprintf(opt, sizeof(opt), ":%d,max-clients=2", port - 5900);
    set_frame(8, 8, 9);
    struct vnc_ui *v = vnc_open(opt, &fake_input, err, sizeof(err));
    if (!v)
        fail_msg("vnc_open(%s): %s", opt, err);
    pump_vnc(v);
    struct client a = { .pump = pump_vnc, .server = v }, b = a, extra = a;
    cl_connect(&a, port);
    cl_connect(&b, port);
    char ver[13] = { 0 };
    cl_recv(&a, ver, 12);
    assert_string_equal(ver, "RFB 003.008\n");
    cl_recv(&b, ver, 12);
    assert_string_equal(ver, "RFB 003.008\n");
    for (int i = 0; i < 3; i++) {
        cl_connect(&extra, port);
        expect_closed(&extra, v);
        cl_close(&extra);
    }
    /* a slot freed is a slot for the next client */
    cl_close(&a);
    struct client c = { .pump = pump_vnc, .server = v };
    uint64_t deadline = ms_now() + 5000;
    for (;;) {
        cl_connect(&c, port);
        char first;
        struct pollfd pfd = { c.fd, POLLIN, 0 };
        while (ms_now() < deadline && poll(&pfd, 1, 10) == 0)
            pump_vnc(v);
        if (recv(c.fd, &first, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
            break;
        cl_close(&c);           /* closed: the server had not reaped the old one yet */
        if (ms_now() > deadline)
            fail_msg("no slot came free after a client left");
    }
    cl_close(&c);
    cl_close(&b);
    vnc_close(v);
}

/* Explicit addresses: an IPv4 literal, and IPv6 in brackets when the host has ::1. */
static void vnc_explicit_addresses(void **state)
{
    int port = free_port();
    char opt[48], err[256] = "";
    snprintf(opt, sizeof(opt), "127.0.0.1:%d", port - 5900);
    set_frame(8, 8, 8);
    struct vnc_ui *v = vnc_open(opt, &fake_input, err, sizeof(err));
    if (!v)
        fail_msg("vnc_open(%s): %s", opt, err);
    struct client c = { .pump = pump_vnc, .server = v };
    assert_int_equal(cl_handshake(&c, port, NULL), 0);
    cl_close(&c);
    vnc_close(v);

    int s6 = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    bool have6 = s6 >= 0 && bind(s6, (struct sockaddr *)&a6, sizeof(a6)) == 0;
    if (s6 >= 0)
        close(s6);
    if (!have6)
        return;
    snprintf(opt, sizeof(opt), "[::1]:%d", port - 5900);
    v = vnc_open(opt, &fake_input, err, sizeof(err));
    if (!v)
        fail_msg("vnc_open(%s): %s", opt, err);
    c = (struct client){ .pump = pump_vnc, .server = v };
    c.fd = socket(AF_INET6, SOCK_STREAM, 0);
    a6.sin6_port = htons(port);
    if (connect(c.fd, (struct sockaddr *)&a6, sizeof(a6)) != 0)
        fail_msg("connect [::1]:%d: %s", port, strerror(errno));
    char ver[13] = { 0 };
    cl_recv(&c, ver, 12);
    assert_string_equal(ver, "RFB 003.008\n");
    cl_close(&c);
    vnc_close(v);
}

static void vnc_port_in_use(void **state)
{
    int port = free_port();
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s, 1), 0);
    char opt[32], err[256] = "", num[16];
    snprintf(opt, sizeof(opt), ":%d", port - 5900);
    assert_null(vnc_open(opt, &fake_input, err, sizeof(err)));
    snprintf(num, sizeof(num), ":%d", port);
    assert_non_null(strstr(err, "-display vnc="));
    assert_non_null(strstr(err, num));
    assert_non_null(strstr(err, "in use"));
    assert_null(strchr(err, '\n'));
    close(s);
}

static void vnc_bad_specs(void **state)
{
    static const char *bad[] = { "", "5", ":", ":x", ":-1", ":60000", ":0,bogus", "::1:0",
                                 "no.such.host.invalid:0", ":0,max-clients=0", ":0,max-clients=257",
                                 ":0,max-clients=x", ":0,websocket=maybe",
                                 ":0,websocket-origins=http://a.example",
                                 ":0,websocket=on,websocket-origins=evil",
                                 ":0,websocket=on,websocket-origins=" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        struct vnc_ui *v = vnc_open(bad[i], &fake_input, err, sizeof(err));
        if (v)
            fail_msg("vnc=%s accepted", bad[i]);
        if (strncmp(err, "-display vnc=", 13) || strchr(err, '\n'))
            fail_msg("vnc=%s: error \"%s\"", bad[i], err);
    }
}

/* Off loopback without a password, and passwords DES cannot hold: refused at start. */
static void vnc_refusals(void **state)
{
    int port = free_port();
    char opt[64], err[400] = "";
    snprintf(opt, sizeof(opt), "0.0.0.0:%d", port - 5900);
    assert_null(vnc_open(opt, &fake_input, err, sizeof(err)));
    assert_non_null(strstr(err, "-display vnc=0.0.0.0:"));
    assert_non_null(strstr(err, "insecure"));
    assert_null(strchr(err, '\n'));

    setenv("RETROVISOR_VNC_PASSWORD", "123456789", 1);
    snprintf(opt, sizeof(opt), ":%d,password", port - 5900);
    assert_null(vnc_open(opt, &fake_input, err, sizeof(err)));
    assert_non_null(strstr(err, "9 characters"));
    assert_non_null(strstr(err, "first 8"));
    assert_null(strchr(err, '\n'));
    setenv("RETROVISOR_VNC_PASSWORD", "12345678", 1);
    struct vnc_ui *v = vnc_open(opt, &fake_input, err, sizeof(err));
    if (!v)
        fail_msg("vnc_open(%s): %s", opt, err);
    vnc_close(v);
    unsetenv("RETROVISOR_VNC_PASSWORD");
}

/* ---- ui.c dispatch ---- */

static void ui_bad_and_none(void **state)
{
    char err[256] = "";
    assert_null(ui_open("gtk", NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "-display gtk"));
    assert_null(ui_open("sdlx", NULL, NULL, err, sizeof(err)));
    assert_null(ui_open("vnc", NULL, NULL, err, sizeof(err)));

    struct ui *ui = ui_open("none", NULL, NULL, err, sizeof(err));
    assert_non_null(ui);
    assert_true(ui_poll(ui));
    ui_set_status(ui, "running");
    ui_close(ui);
}

static char hotkeylog[256];
static bool fake_hotkey(void *opaque, int action)
{
    strncat(hotkeylog, hotkey_action_name(action), sizeof(hotkeylog) - strlen(hotkeylog) - 2);
    strcat(hotkeylog, " ");
    return true;
}

/* The machine cannot act on it: power off ends the run. */
static bool refusing_hotkey(void *opaque, int action)
{
    fake_hotkey(opaque, action);
    return false;
}

static void ui_vnc_end_to_end(void **state)
{
    int port = free_port();
    char spec[32], err[256] = "";
    snprintf(spec, sizeof(spec), "vnc=:%d", port - 5900);
    set_frame(64, 32, 4);
    struct ui *ui = ui_open(spec, (struct vga *)&src, (struct kbc *)&src, err, sizeof(err));
    if (!ui)
        fail_msg("ui_open(%s): %s", spec, err);
    ui_set_status(ui, "running");
    struct client c = { .pump = pump_ui, .server = ui };
    assert_int_equal(cl_handshake(&c, port, NULL), 0);
    cl_request(&c, false);
    cl_read_update(&c);
    expect_pixels(&c, 64, 32, 4);

    reset_input();
    cl_key(&c, 'a', true);
    cl_key(&c, 'a', false);
    wait_keys(pump_ui, ui, "1e+ 1e-");

    /* the window's Ctrl+Alt hotkeys, from a VNC client */
    ui_set_hotkeys(ui, fake_hotkey, NULL);
    reset_input();
    hotkeylog[0] = 0;
    cl_key(&c, XK_Control_L, true);
    cl_key(&c, XK_Alt_L, true);
    cl_key(&c, 'p', true);
    cl_key(&c, 'p', false);
    cl_key(&c, XK_Delete, true);
    cl_key(&c, XK_Delete, false);
    cl_key(&c, XK_Alt_L, false);
    cl_key(&c, XK_Control_L, false);
    cl_key(&c, 'b', true);
    cl_key(&c, 'b', false);
    wait_keys(pump_ui, ui, "1d+ 38+ e053+ e053- 38- 1d- 30+ 30-");
    assert_string_equal(hotkeylog, "pause ");
    assert_true(ui_poll(ui));
    ui_set_hotkeys(ui, refusing_hotkey, NULL);
    c.pump = pump_ui_ending;
    reset_input();
    cl_key(&c, XK_Control_L, true);
    cl_key(&c, XK_Alt_L, true);
    cl_key(&c, 'q', true);
    cl_key(&c, 'q', false);
    cl_key(&c, XK_Alt_L, false);
    cl_key(&c, XK_Control_L, false);
    wait_keys(pump_ui_ending, ui, "1d+ 38+ 38- 1d-");
    assert_string_equal(hotkeylog, "pause power off ");
    assert_false(ui_poll(ui));

    /* a screendump between polls does not lose dirty rows for the viewer */
    src.px[5 * 64 + 3] = 0x123456;
    src.f.dirty_y0 = 5;
    src.f.dirty_y1 = 6;
    assert_true(ui_screendump(ui, "/dev/null", err, sizeof(err)));
    assert_int_equal(dumps, 1);
    assert_int_equal(dump_w, 64);
    assert_int_equal(dump_h, 32);
    cl_request(&c, true);
    cl_read_update(&c);
    assert_int_equal(c.fb[5 * 64 + 3] & 0xffffff, 0x123456);

    cl_close(&c);
    ui_close(ui);
}

/* ---- SDL under the dummy video driver ---- */


static SDL_Window *the_window(void)
{
    for (Uint32 id = 1; id < 64; id++) {
        SDL_Window *w = SDL_GetWindowFromID(id);
        if (w)
            return w;
    }
    return NULL;
}

static void push_key(SDL_Scancode sc, bool down)
{
    SDL_Event e = { 0 };
    e.type = down ? SDL_KEYDOWN : SDL_KEYUP;
    e.key.state = down ? SDL_PRESSED : SDL_RELEASED;
    e.key.keysym.scancode = sc;
    SDL_PushEvent(&e);
}

static void sdl_no_display(void **state)
{
    char *display = getenv("DISPLAY") ? strdup(getenv("DISPLAY")) : NULL;
    unsetenv("DISPLAY");
    unsetenv("WAYLAND_DISPLAY");
    setenv("SDL_VIDEODRIVER", "x11", 1);
    char err[256] = "";
    struct ui *ui = ui_open("sdl", NULL, NULL, err, sizeof(err));
    if (display)
        setenv("DISPLAY", display, 1);
    free(display);
    assert_null(ui);
    assert_non_null(strstr(err, "-display sdl"));
    assert_non_null(strstr(err, "-display vnc=:0"));
    assert_non_null(strstr(err, "-display none"));
    assert_null(strchr(err, '\n'));
}

/* RV_TEST_SDL_DRIVER=x11 runs this against a real X server (e.g. under xvfb-run). */
static void sdl_dummy_window(void **state)
{
    const char *driver = getenv("RV_TEST_SDL_DRIVER");
    setenv("SDL_VIDEODRIVER", driver ? driver : "dummy", 1);
    char err[256] = "";
    set_frame(320, 200, 5);
    fake_mouse_on = false;
    struct ui *ui = ui_open("sdl", (struct vga *)&src, (struct kbc *)&src, err, sizeof(err));
    if (!ui) {
        print_message("SDL dummy driver unavailable (%s): skipped\n", err);
        skip();
    }
    ui_set_status(ui, "running");
    assert_true(ui_poll(ui));
    SDL_Window *w = the_window();
    assert_non_null(w);
    assert_string_equal(SDL_GetWindowTitle(w), "retrovisor [running]");
    ui_set_name(ui, "vm1");
    assert_string_equal(SDL_GetWindowTitle(w), "vm1 - retrovisor [running]");
    int ww, wh;
    SDL_GetWindowSize(w, &ww, &wh);
    assert_int_equal(ww, 640);          /* 320x200 shown doubled */
    assert_int_equal(wh, 400);
    /* the software renderer of the dummy driver can be read back */
    SDL_Renderer *ren = SDL_GetRenderer(w);
    assert_non_null(ren);
    static uint32_t shot[640 * 400];
    if (!driver && SDL_RenderReadPixels(ren, NULL, SDL_PIXELFORMAT_RGB888, shot, 640 * 4) == 0) {
        for (unsigned y = 0; y < 200; y += 7)
            for (unsigned x = 0; x < 320; x += 5)
                if ((shot[(2 * y + 1) * 640 + 2 * x + 1] & 0xffffff) != pattern(x, y, 5))
                    fail_msg("window pixel for %u,%u: %06x, want %06x", x, y,
                             shot[(2 * y + 1) * 640 + 2 * x + 1] & 0xffffff, pattern(x, y, 5));
    }

    /* keys go to the keyboard controller; releases only for keys down */
    reset_input();
    push_key(SDL_SCANCODE_A, true);
    push_key(SDL_SCANCODE_A, false);
    push_key(SDL_SCANCODE_RIGHT, true);
    push_key(SDL_SCANCODE_RIGHT, false);
    push_key(SDL_SCANCODE_B, false);
    assert_true(ui_poll(ui));
    assert_string_equal(keylog, "1e+ 1e- e04d+ e04d-");

    /* no grab while the guest has no mouse */
    SDL_Event e = { 0 };
    e.type = SDL_MOUSEBUTTONDOWN;
    e.button.button = SDL_BUTTON_LEFT;
    SDL_PushEvent(&e);
    assert_true(ui_poll(ui));
    assert_null(strstr(SDL_GetWindowTitle(w), "Ctrl+Alt"));

    /* with a guest mouse, a click grabs (and is not passed on) */
    fake_mouse_on = true;
    assert_true(ui_poll(ui));
    assert_non_null(strstr(SDL_GetWindowTitle(w), "click to grab"));
    SDL_PushEvent(&e);
    e.type = SDL_MOUSEBUTTONUP;
    SDL_PushEvent(&e);
    assert_true(ui_poll(ui));
    assert_non_null(strstr(SDL_GetWindowTitle(w), "Press Ctrl+Alt to release"));
    reset_input();
    e = (SDL_Event){ 0 };
    e.type = SDL_MOUSEMOTION;
    e.motion.xrel = 5;
    e.motion.yrel = -3;
    SDL_PushEvent(&e);
    SDL_PushEvent(&e);
    e = (SDL_Event){ 0 };
    e.type = SDL_MOUSEWHEEL;
    e.wheel.y = 1;
    SDL_PushEvent(&e);
    e = (SDL_Event){ 0 };
    e.type = SDL_MOUSEBUTTONDOWN;
    e.button.button = SDL_BUTTON_RIGHT;
    SDL_PushEvent(&e);
    assert_true(ui_poll(ui));
    assert_int_equal(mouse_dx, 10);
    assert_int_equal(mouse_dy, -6);
    assert_int_equal(mouse_dz, -1);
    assert_int_equal(mouse_buttons, 2);
    e.type = SDL_MOUSEBUTTONUP;
    SDL_PushEvent(&e);
    assert_true(ui_poll(ui));
    assert_int_equal(mouse_buttons, 0);

    /* Ctrl+Alt pressed and released alone ends the grab; the guest sees them too */
    reset_input();
    push_key(SDL_SCANCODE_LCTRL, true);
    push_key(SDL_SCANCODE_LALT, true);
    push_key(SDL_SCANCODE_LALT, false);
    push_key(SDL_SCANCODE_LCTRL, false);
    assert_true(ui_poll(ui));
    assert_string_equal(keylog, "1d+ 38+ 38- 1d-");
    assert_non_null(strstr(SDL_GetWindowTitle(w), "click to grab"));

    /* Ctrl+Alt hotkeys: the action key stays out of the guest */
    ui_set_hotkeys(ui, fake_hotkey, NULL);
    reset_input();
    hotkeylog[0] = 0;
    push_key(SDL_SCANCODE_LCTRL, true);
    push_key(SDL_SCANCODE_LALT, true);
    push_key(SDL_SCANCODE_P, true);
    push_key(SDL_SCANCODE_P, false);
    push_key(SDL_SCANCODE_S, true);
    push_key(SDL_SCANCODE_S, false);
    push_key(SDL_SCANCODE_R, true);
    push_key(SDL_SCANCODE_R, false);
    push_key(SDL_SCANCODE_Q, true);
    push_key(SDL_SCANCODE_Q, false);
    push_key(SDL_SCANCODE_LALT, false);
    push_key(SDL_SCANCODE_LCTRL, false);
    assert_true(ui_poll(ui));           /* power off handled by the machine: the run goes on */
    assert_string_equal(keylog, "1d+ 38+ 38- 1d-");
    assert_string_equal(hotkeylog, "pause snapshot revert power off ");
    /* Ctrl+Alt+Del goes to the guest as typed; Ctrl+Alt+Insert sends it */
    reset_input();
    hotkeylog[0] = 0;
    push_key(SDL_SCANCODE_RCTRL, true);
    push_key(SDL_SCANCODE_RALT, true);
    push_key(SDL_SCANCODE_DELETE, true);
    push_key(SDL_SCANCODE_DELETE, false);
    push_key(SDL_SCANCODE_INSERT, true);
    push_key(SDL_SCANCODE_INSERT, false);
    push_key(SDL_SCANCODE_RALT, false);
    push_key(SDL_SCANCODE_RCTRL, false);
    assert_true(ui_poll(ui));
    assert_string_equal(keylog, "e01d+ e038+ e053+ e053- e053+ e053- e038- e01d-");
    assert_string_equal(hotkeylog, "");
    /* a hotkey's result shows in the title */
    ui_show_message(ui, "snapshot x taken");
    assert_true(ui_poll(ui));
    assert_non_null(strstr(SDL_GetWindowTitle(w), "vm1 - retrovisor [running]"));
    assert_non_null(strstr(SDL_GetWindowTitle(w), " - snapshot x taken"));
    /* Ctrl+Alt+Enter: full screen and back */
    push_key(SDL_SCANCODE_LCTRL, true);
    push_key(SDL_SCANCODE_LALT, true);
    push_key(SDL_SCANCODE_RETURN, true);
    push_key(SDL_SCANCODE_RETURN, false);
    assert_true(ui_poll(ui));
    assert_true(SDL_GetWindowFlags(w) & SDL_WINDOW_FULLSCREEN);
    push_key(SDL_SCANCODE_RETURN, true);
    push_key(SDL_SCANCODE_RETURN, false);
    push_key(SDL_SCANCODE_LALT, false);
    push_key(SDL_SCANCODE_LCTRL, false);
    assert_true(ui_poll(ui));
    assert_false(SDL_GetWindowFlags(w) & SDL_WINDOW_FULLSCREEN);

    /* a mode change resizes the window */
    set_frame(720, 400, 6);
    assert_true(ui_poll(ui));
    SDL_GetWindowSize(w, &ww, &wh);
    assert_int_equal(ww, 720);
    assert_int_equal(wh, 400);

    /* closing the window asks to power off */
    e = (SDL_Event){ 0 };
    e.type = SDL_QUIT;
    SDL_PushEvent(&e);
    assert_false(ui_poll(ui));
    ui_close(ui);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vnc_pixels_keys_and_pointer),
        cmocka_unit_test(vnc_password),
        cmocka_unit_test(vnc_websocket),
        cmocka_unit_test(vnc_websocket_off),
        cmocka_unit_test(vnc_max_clients),
        cmocka_unit_test(vnc_refusals),
        cmocka_unit_test(vnc_explicit_addresses),
        cmocka_unit_test(vnc_port_in_use),
        cmocka_unit_test(vnc_bad_specs),
        cmocka_unit_test(ui_bad_and_none),
        cmocka_unit_test(ui_vnc_end_to_end),
        cmocka_unit_test(sdl_no_display),
        cmocka_unit_test(sdl_dummy_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
