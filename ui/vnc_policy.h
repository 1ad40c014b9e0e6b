/*
 * What the VNC server lets in, as pure functions on bytes and addresses
 * (ui/vnc.c does the sockets): the verdict on what a client sent before the
 * server's greeting (a WebSocket upgrade and its Origin), and the
 * per-address back-off after wrong passwords.
 */
#ifndef RV_UI_VNC_POLICY_H
#define RV_UI_VNC_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest HTTP request head (request line + headers) a WebSocket client
 * may send; libvncserver's own handshake buffer is 4096 bytes. */
#define VNC_HTTP_HEAD_MAX 4000

enum vnc_verdict {
    VNC_WAIT,           /* not enough bytes yet */
    VNC_PASS,           /* an acceptable WebSocket upgrade: let libvncserver answer it */
    VNC_REFUSE,         /* close the connection (after sending *reply, if any) */
};

/* Where WebSocket pages may come from.  With no explicit list, the allowed
 * origins are http:// and https:// on the server's own port and one of the
 * `hosts` (the address the client connected to, "localhost" when that is a
 * loopback address, the name the server was started with). */
struct vnc_origins {
    const char *const *list;    /* explicit allow-list, or NULL for same host and port */
    size_t n;
    const char *const *hosts;   /* same-origin hosts (IPv6 without brackets) */
    size_t nhosts;
    int port;
};

/*
 * Judges the bytes a client sent before the RFB greeting (peeked, so still
 * unread).  RFB clients send nothing first; the only thing ever let through
 * is an HTTP GET that upgrades to WebSocket, when websockets are on and
 * it has an Origin header (libvncserver's handshake needs one) and every
 * Origin header names an allowed origin.
 * On VNC_REFUSE, *reply is an HTTP response to send (or NULL) and
 * why[whylen] says why; a refused origin is copied to origin[originlen]
 * (empty otherwise) so the caller can log each one once.
 */
enum vnc_verdict vnc_judge_preamble(const char *buf, size_t len, bool websocket,
                                    const struct vnc_origins *allow, const char **reply,
                                    char *why, size_t whylen, char *origin, size_t originlen);

/* Whether origin (scheme://host[:port]) is in the allow-list. */
bool vnc_origin_allowed(const struct vnc_origins *allow, const char *origin, size_t len);

/* ---- back-off after failed VNC authentication, per source address ---- */

struct vnc_backoff;
struct vnc_backoff *vnc_backoff_new(void);
void vnc_backoff_free(struct vnc_backoff *b);
/* Milliseconds until addr may try a password again (0: now). */
uint64_t vnc_backoff_wait(struct vnc_backoff *b, const char *addr, uint64_t now_ms);
/* Records a wrong password; returns how long addr must now wait (1 s,
 * doubling with each consecutive failure, at most VNC_BACKOFF_MAX_MS). */
uint64_t vnc_backoff_failed(struct vnc_backoff *b, const char *addr, uint64_t now_ms);
/* A right password forgives addr's failures. */
void vnc_backoff_succeeded(struct vnc_backoff *b, const char *addr);

#define VNC_BACKOFF_FIRST_MS 1000
#define VNC_BACKOFF_MAX_MS 60000
/* Failures older than this are forgotten. */
#define VNC_BACKOFF_FORGET_MS (10 * 60 * 1000)

#endif
