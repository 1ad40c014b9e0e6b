/*
 * What the VNC server lets in (see vnc_policy.h).
 *
 * Browsers do not apply the same-origin policy to WebSockets: any page the
 * user visits may open ws://127.0.0.1:5901 and, without the check here,
 * watch the VM and type into it.  A browser always says which page opened
 * the socket in the Origin header, and a page cannot change it, so the
 * Origin is what is checked.  The default allows only pages served from the
 * server's own host and port; the host is compared with the address the
 * client connected to, not with the request's Host header, which a
 * DNS-rebinding page controls.
 */
#include "ui/vnc_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hosted-driver/xalloc.h"

static const char reply_forbidden[] =
    "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char reply_bad_request[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char reply_too_large[] =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static bool starts_with_nocase(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && !strncasecmp(s, prefix, n);
}

static bool has_token_nocase(const char *s, size_t len, const char *token)
{
    size_t n = strlen(token);
    for (size_t i = 0; i + n <= len; i++)
        if (!strncasecmp(s + i, token, n))
            return true;
    return false;
}

static bool same_nocase(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    while (alen && a[alen - 1] == '/')
        alen--;
    while (blen && b[blen - 1] == '/')
        blen--;
    return alen == blen && !strncasecmp(a, b, alen);
}

/* scheme://host:port with scheme http or https, host one of allow->hosts,
 * port the server's. */
static bool same_host_and_port(const struct vnc_origins *allow, const char *o, size_t len)
{
    size_t skip;
    if (starts_with_nocase(o, len, "http://"))
        skip = 7;
    else if (starts_with_nocase(o, len, "https://"))
        skip = 8;
    else
        return false;
    o += skip;
    len -= skip;
    while (len && o[len - 1] == '/')
        len--;
    const char *host = o, *rest;
    size_t hlen;
    if (len && o[0] == '[') {
        const char *close = memchr(o, ']', len);
        if (!close)
            return false;
        host = o + 1;
        hlen = (size_t)(close - host);
        rest = close + 1;
    } else {
        const char *colon = memchr(o, ':', len);
        if (!colon)
            return false;       /* no port: 80 or 443, never the VNC port */
        hlen = (size_t)(colon - o);
        rest = colon;
    }
    size_t rlen = len - (size_t)(rest - o);
    char want[16];
    int wl = snprintf(want, sizeof(want), ":%d", allow->port);
    if (rlen != (size_t)wl || memcmp(rest, want, rlen))
        return false;
    for (size_t i = 0; i < allow->nhosts; i++)
        if (allow->hosts[i] && strlen(allow->hosts[i]) == hlen &&
            !strncasecmp(allow->hosts[i], host, hlen))
            return true;
    return false;
}

bool vnc_origin_allowed(const struct vnc_origins *allow, const char *origin, size_t len)
{
    if (!allow)
        return false;
    if (!allow->list)
        return same_host_and_port(allow, origin, len);
    for (size_t i = 0; i < allow->n; i++)
        if (same_nocase(origin, len, allow->list[i]))
            return true;
    return false;
}

static enum vnc_verdict refuse(const char **reply, const char *r, char *why, size_t whylen,
                               const char *reason)
{
    *reply = r;
    snprintf(why, whylen, "%s", reason);
    return VNC_REFUSE;
}

enum vnc_verdict vnc_judge_preamble(const char *buf, size_t len, bool websocket,
                                    const struct vnc_origins *allow, const char **reply,
                                    char *why, size_t whylen, char *origin, size_t originlen)
{
    *reply = NULL;
    if (originlen)
        origin[0] = 0;
    if (!len)
        return VNC_WAIT;
    size_t cmp = len < 4 ? len : 4;
    if (memcmp(buf, "GET ", cmp))
        return refuse(reply, NULL, why, whylen, "sent data before the server's greeting");
    if (len < 4)
        return VNC_WAIT;
    if (!websocket)
        return refuse(reply, reply_forbidden, why, whylen,
                      "asked for a WebSocket upgrade and websockets are off (websocket=on)");
    if (memchr(buf, 0, len))
        return refuse(reply, reply_bad_request, why, whylen, "sent a NUL byte in its HTTP request");

    const char *end = NULL;
    for (size_t i = 0; i + 4 <= len; i++)
        if (!memcmp(buf + i, "\r\n\r\n", 4)) {
            end = buf + i + 2;  /* just after the last header's CRLF */
            break;
        }
    if (!end) {
        if (len >= VNC_HTTP_HEAD_MAX)
            return refuse(reply, reply_too_large, why, whylen, "sent an HTTP request head too large");
        return VNC_WAIT;
    }
    if ((size_t)(end - buf) + 2 > VNC_HTTP_HEAD_MAX)
        return refuse(reply, reply_too_large, why, whylen, "sent an HTTP request head too large");

    bool upgrade = false, has_origin = false;
    const char *line = memchr(buf, '\n', (size_t)(end - buf)) + 1;     /* after the request line */
    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        size_t llen = (size_t)(eol - line);
        if (llen && line[llen - 1] == '\r')
            llen--;
        const char *colon = memchr(line, ':', llen);
        if (colon) {
            size_t nlen = (size_t)(colon - line);
            const char *val = colon + 1;
            size_t vlen = llen - nlen - 1;
            while (vlen && (*val == ' ' || *val == '\t')) {
                val++;
                vlen--;
            }
            while (vlen && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
                vlen--;
            if ((nlen == 6 && !strncasecmp(line, "origin", 6)) ||
                (nlen == 20 && !strncasecmp(line, "sec-websocket-origin", 20))) {
                has_origin = true;
                if (!vnc_origin_allowed(allow, val, vlen)) {
                    if (originlen)
                        snprintf(origin, originlen, "%.*s", (int)vlen, val);
                    return refuse(reply, reply_forbidden, why, whylen,
                                  "is a WebSocket from a page whose origin is not allowed "
                                  "(websocket-origins=)");
                }
            } else if (nlen == 7 && !strncasecmp(line, "upgrade", 7)) {
                upgrade = has_token_nocase(val, vlen, "websocket");
            }
        }
        line = eol + 1;
    }
    if (!upgrade)
        return refuse(reply, reply_bad_request, why, whylen,
                      "sent an HTTP request that is not a WebSocket upgrade");
    if (!has_origin)    /* libvncserver would refuse it too */
        return refuse(reply, reply_forbidden, why, whylen, "sent a WebSocket request without Origin");
    return VNC_PASS;
}

/* ---- back-off ---- */

#define BACKOFF_SLOTS 128

struct backoff_entry {
    char addr[64];
    unsigned failures;
    uint64_t last_fail;
    uint64_t until;
};

struct vnc_backoff {
    struct backoff_entry e[BACKOFF_SLOTS];
};

struct vnc_backoff *vnc_backoff_new(void)
{
    return xcalloc(1, sizeof(struct vnc_backoff));
}

void vnc_backoff_free(struct vnc_backoff *b)
{
    free(b);
}

static struct backoff_entry *find(struct vnc_backoff *b, const char *addr, uint64_t now)
{
    for (unsigned i = 0; i < BACKOFF_SLOTS; i++) {
        struct backoff_entry *e = &b->e[i];
        if (e->failures && !strncmp(e->addr, addr, sizeof(e->addr) - 1)) {
            if (now - e->last_fail > VNC_BACKOFF_FORGET_MS && now >= e->until) {
                e->failures = 0;
                return NULL;
            }
            return e;
        }
    }
    return NULL;
}

uint64_t vnc_backoff_wait(struct vnc_backoff *b, const char *addr, uint64_t now_ms)
{
    struct backoff_entry *e = find(b, addr, now_ms);
    return e && e->until > now_ms ? e->until - now_ms : 0;
}

uint64_t vnc_backoff_failed(struct vnc_backoff *b, const char *addr, uint64_t now_ms)
{
    struct backoff_entry *e = find(b, addr, now_ms);
    if (!e) {
        /* A free slot, else the one whose last failure is oldest: a flood of
         * addresses can only push out the least recent offenders. */
        e = &b->e[0];
        for (unsigned i = 0; i < BACKOFF_SLOTS; i++) {
            struct backoff_entry *c = &b->e[i];
            if (!c->failures || now_ms - c->last_fail > VNC_BACKOFF_FORGET_MS) {
                e = c;
                break;
            }
            if (c->last_fail < e->last_fail)
                e = c;
        }
        memset(e, 0, sizeof(*e));
        snprintf(e->addr, sizeof(e->addr), "%s", addr);
    }
    if (e->failures < 32)
        e->failures++;
    uint64_t delay = (uint64_t)VNC_BACKOFF_FIRST_MS << (e->failures - 1 < 16 ? e->failures - 1 : 16);
    if (delay > VNC_BACKOFF_MAX_MS)
        delay = VNC_BACKOFF_MAX_MS;
    e->last_fail = now_ms;
    e->until = now_ms + delay;
    return delay;
}

void vnc_backoff_succeeded(struct vnc_backoff *b, const char *addr)
{
    for (unsigned i = 0; i < BACKOFF_SLOTS; i++)
        if (b->e[i].failures && !strncmp(b->e[i].addr, addr, sizeof(b->e[i].addr) - 1))
            b->e[i].failures = 0;
}
