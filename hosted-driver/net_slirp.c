/*
 * -netdev user: user-mode NAT through libslirp.  The guest network is
 * 10.0.2.0/24 as in QEMU: the gateway and host loopback at 10.0.2.2, DNS at
 * 10.0.2.3, DHCP leases from 10.0.2.15, TFTP on the gateway.
 *
 * slirp's timers are virtual-clock timers (fired by the run loop), and its
 * sockets are polled by the run loop through net_poll: without waiting
 * between slices, and with a timeout while the guest idles.
 */
#define _GNU_SOURCE
#include "hosted-driver/net.h"
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <slirp/libslirp.h>

#define MAX_POLLFDS 256
#define MAX_HOSTFWD 16

struct slirp_backend {
    Slirp *slirp;
    struct vclock *clock;
    struct netdev *nd;
    struct pollfd fds[MAX_POLLFDS];
    int nfds;
    bool fds_overflow;
    char *tftp, *bootfile, *hostname;
};

/* ---- callbacks from libslirp ---- */

static ssize_t send_to_guest(const void *buf, size_t len, void *opaque)
{
    struct slirp_backend *s = opaque;
    netdev_deliver(s->nd, buf, len);
    return len;
}

static void guest_error(const char *msg, void *opaque)
{
    (void)msg;
    (void)opaque;   /* a guest's malformed packet is the guest's business */
}

static int64_t clock_ns(void *opaque)
{
    struct slirp_backend *s = opaque;
    return vclock_now(s->clock);
}

static void *timer_new_cb(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
    struct slirp_backend *s = opaque;
    return vtimer_new(s->clock, cb, cb_opaque);
}

static void timer_free_cb(void *timer, void *opaque)
{
    vtimer_free(timer);
}

static void timer_mod_cb(void *timer, int64_t expire_ms, void *opaque)
{
    vtimer_mod(timer, expire_ms * 1000000);
}

static void poll_fd_noop(int fd, void *opaque)
{
}

static void notify_noop(void *opaque)
{
}

static const SlirpCb callbacks = {
    .send_packet = send_to_guest,
    .guest_error = guest_error,
    .clock_get_ns = clock_ns,
    .timer_new = timer_new_cb,
    .timer_free = timer_free_cb,
    .timer_mod = timer_mod_cb,
    .register_poll_fd = poll_fd_noop,
    .unregister_poll_fd = poll_fd_noop,
    .notify = notify_noop,
};

/* ---- polling ---- */

static int add_poll(int fd, int events, void *opaque)
{
    struct slirp_backend *s = opaque;
    if (s->nfds == MAX_POLLFDS) {
        s->fds_overflow = true;
        return -1;
    }
    short ev = 0;
    if (events & SLIRP_POLL_IN)
        ev |= POLLIN;
    if (events & SLIRP_POLL_OUT)
        ev |= POLLOUT;
    if (events & SLIRP_POLL_PRI)
        ev |= POLLPRI;
    s->fds[s->nfds] = (struct pollfd){ .fd = fd, .events = ev };
    return s->nfds++;
}

static int get_revents(int idx, void *opaque)
{
    struct slirp_backend *s = opaque;
    if (idx < 0 || idx >= s->nfds)
        return 0;
    short r = s->fds[idx].revents;
    int ev = 0;
    if (r & POLLIN)
        ev |= SLIRP_POLL_IN;
    if (r & POLLOUT)
        ev |= SLIRP_POLL_OUT;
    if (r & POLLPRI)
        ev |= SLIRP_POLL_PRI;
    if (r & POLLERR)
        ev |= SLIRP_POLL_ERR;
    if (r & POLLHUP)
        ev |= SLIRP_POLL_HUP;
    return ev;
}

static void slirp_backend_poll(struct netdev *nd, int64_t timeout_ns)
{
    struct slirp_backend *s = nd->backend;
    uint32_t timeout_ms = UINT32_MAX;
    s->nfds = 0;
    slirp_pollfds_fill(s->slirp, &timeout_ms, add_poll, s);
    if (timeout_ms != UINT32_MAX && (int64_t)timeout_ms * 1000000 < timeout_ns)
        timeout_ns = (int64_t)timeout_ms * 1000000;
    if (timeout_ns < 0)
        timeout_ns = 0;
    if (!s->nfds && !timeout_ns)
        return;                 /* no sockets yet (no connection was made): no system call */
    struct timespec ts = { timeout_ns / 1000000000, timeout_ns % 1000000000 };
    int rc = ppoll(s->fds, s->nfds, &ts, NULL);
    if (rc < 0 && errno == EINTR)
        return;
    slirp_pollfds_poll(s->slirp, rc < 0, get_revents, s);
}

static void slirp_backend_send(struct netdev *nd, const uint8_t *frame, size_t len)
{
    struct slirp_backend *s = nd->backend;
    slirp_input(s->slirp, frame, (int)len);
}

static void slirp_backend_free(struct netdev *nd)
{
    struct slirp_backend *s = nd->backend;
    if (!s)
        return;
    if (s->slirp)
        slirp_cleanup(s->slirp);
    free(s->tftp);
    free(s->bootfile);
    free(s->hostname);
    free(s);
    nd->backend = NULL;
}

static const struct netdev_ops slirp_ops = {
    .send = slirp_backend_send,
    .poll = slirp_backend_poll,
    .free = slirp_backend_free,
};

/* ---- options ---- */

struct hostfwd {
    bool udp;
    struct in_addr host_addr, guest_addr;
    int host_port, guest_port;
    char text[128];
};

static bool parse_port(const char *s, int *port)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 0 || v > 65535)
        return false;
    *port = (int)v;
    return true;
}

/* [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport; the host address
 * defaults to 127.0.0.1 (never all interfaces unless named). */
static bool parse_hostfwd(const char *v, struct hostfwd *fw, char *err, size_t errlen)
{
    char buf[128];
    snprintf(fw->text, sizeof(fw->text), "%s", v);
    if (strlen(v) >= sizeof(buf))
        goto bad;
    strcpy(buf, v);
    char *p = buf;
    fw->udp = false;
    if (!strncmp(p, "tcp:", 4)) {
        p += 4;
    } else if (!strncmp(p, "udp:", 4)) {
        fw->udp = true;
        p += 4;
    } else if (*p != ':') {
        goto bad;
    } else {
        p++;
    }
    char *dash = strchr(p, '-');
    if (!dash)
        goto bad;
    *dash = 0;
    char *hport = strrchr(p, ':');
    char *gside = dash + 1;
    char *gport = strrchr(gside, ':');
    if (!hport || !gport)
        goto bad;
    *hport++ = 0;
    *gport++ = 0;
    fw->host_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (*p && !inet_aton(p, &fw->host_addr))
        goto bad;
    inet_aton("10.0.2.15", &fw->guest_addr);
    if (*gside && !inet_aton(gside, &fw->guest_addr))
        goto bad;
    if (!parse_port(hport, &fw->host_port) || !parse_port(gport, &fw->guest_port) || fw->guest_port == 0)
        goto bad;
    return true;
bad:
    snprintf(err, errlen, "hostfwd=%s: expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT", v);
    return false;
}

static bool on_off(const char *key, const char *v, bool *out, char *err, size_t errlen)
{
    if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true")) {
        *out = true;
        return true;
    }
    if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false")) {
        *out = false;
        return true;
    }
    snprintf(err, errlen, "%s=%s: expected on or off", key, v);
    return false;
}

struct netdev *net_slirp_new(const char *spec, struct vclock *clock, char *err, size_t errlen)
{
    char *copy = strdup(spec);
    struct slirp_backend *s = xcalloc(1, sizeof(*s));
    s->clock = clock;
    struct hostfwd fw[MAX_HOSTFWD];
    int nfw = 0;
    const char *id = NULL, *pcap = NULL;
    bool restrict_ = false, ipv6 = false, ipv4 = true;
    struct netdev *nd = NULL;
    char *save;
    char *opt = strtok_r(copy, ",", &save);
    if (!opt || strcmp(opt, "user")) {
        snprintf(err, errlen, "'%s': only the 'user' backend exists (-netdev user,id=NAME,...)", spec);
        goto fail;
    }
    while ((opt = strtok_r(NULL, ",", &save))) {
        char *eq = strchr(opt, '=');
        if (!eq) {
            snprintf(err, errlen, "'%s' is not key=value", opt);
            goto fail;
        }
        *eq = 0;
        const char *v = eq + 1;
        if (!strcmp(opt, "id")) {
            id = v;
        } else if (!strcmp(opt, "hostfwd")) {
            if (nfw == MAX_HOSTFWD) {
                snprintf(err, errlen, "at most %d hostfwd= rules", MAX_HOSTFWD);
                goto fail;
            }
            if (!parse_hostfwd(v, &fw[nfw++], err, errlen))
                goto fail;
        } else if (!strcmp(opt, "restrict")) {
            if (!on_off(opt, v, &restrict_, err, errlen))
                goto fail;
        } else if (!strcmp(opt, "ipv6")) {
            if (!on_off(opt, v, &ipv6, err, errlen))
                goto fail;
        } else if (!strcmp(opt, "ipv4")) {
            if (!on_off(opt, v, &ipv4, err, errlen))
                goto fail;
        } else if (!strcmp(opt, "tftp")) {
            free(s->tftp);
            s->tftp = strdup(v);
        } else if (!strcmp(opt, "bootfile")) {
            free(s->bootfile);
            s->bootfile = strdup(v);
        } else if (!strcmp(opt, "hostname")) {
            free(s->hostname);
            s->hostname = strdup(v);
        } else if (!strcmp(opt, "pcap")) {
            pcap = v;
        } else {
            snprintf(err, errlen, "unknown parameter '%s' (id, hostfwd, restrict, tftp, bootfile, hostname, pcap, ipv6)",
                     opt);
            goto fail;
        }
    }
    if (!ipv4) {
        snprintf(err, errlen, "ipv4=off is not supported");
        goto fail;
    }

    SlirpConfig cfg = { .version = 3 };
    cfg.restricted = restrict_;
    cfg.in_enabled = true;
    inet_aton("10.0.2.0", &cfg.vnetwork);
    inet_aton("255.255.255.0", &cfg.vnetmask);
    inet_aton("10.0.2.2", &cfg.vhost);
    inet_aton("10.0.2.15", &cfg.vdhcp_start);
    inet_aton("10.0.2.3", &cfg.vnameserver);
    cfg.in6_enabled = ipv6;
    if (ipv6) {
        inet_pton(AF_INET6, "fec0::", &cfg.vprefix_addr6);
        cfg.vprefix_len = 64;
        inet_pton(AF_INET6, "fec0::2", &cfg.vhost6);
        inet_pton(AF_INET6, "fec0::3", &cfg.vnameserver6);
    }
    cfg.vhostname = s->hostname;
    cfg.tftp_server_name = NULL;
    cfg.tftp_path = s->tftp;
    cfg.bootfile = s->bootfile;

    nd = netdev_new(id, &slirp_ops, s, err, errlen);
    if (!nd)
        goto fail;
    s->nd = nd;
    s->slirp = slirp_new(&cfg, &callbacks, s);
    if (!s->slirp) {
        snprintf(err, errlen, "libslirp refused the configuration");
        goto fail;
    }
    for (int k = 0; k < nfw; k++) {
        if (slirp_add_hostfwd(s->slirp, fw[k].udp, fw[k].host_addr, fw[k].host_port, fw[k].guest_addr,
                              fw[k].guest_port) < 0) {
            snprintf(err, errlen, "hostfwd=%s: cannot bind %s port %s:%d (taken, or not an address of this host)",
                     fw[k].text, fw[k].udp ? "UDP" : "TCP", inet_ntoa(fw[k].host_addr), fw[k].host_port);
            goto fail;
        }
    }
    if (pcap && !netdev_set_pcap(nd, pcap, err, errlen))
        goto fail;
    free(copy);
    return nd;
fail:
    if (nd)
        netdev_free(nd);     /* frees s through slirp_backend_free */
    else
        slirp_backend_free(&(struct netdev){ .backend = s });
    free(copy);
    return NULL;
}
