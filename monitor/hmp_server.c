/*
 * The monitor console's thread (see hmp.h): -monitor's sockets and the
 * terminal, line reading, several clients at once.  Each complete line is
 * run on the machine's thread through machine_call; this thread never
 * touches the machine itself.
 */
#define _GNU_SOURCE
#include "monitor/hmp.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hosted-driver/chardev.h"
#include "hosted-driver/xalloc.h"
#include "monitor/control.h"
#include "monitor/machine.h"

#define MAX_CLIENTS 8
#define LINE_MAX_LEN 4096
#define PROMPT "(retrovisor) "
#define BANNER "retrovisor monitor - type 'help' for more information\n"

struct client {
    int fd_in, fd_out;
    bool is_socket;
    bool echo;               /* the terminal in raw mode: we echo what is typed */
    char line[LINE_MAX_LEN];
    size_t len;
    bool overflow;           /* the line is too long: drop it up to its end */
    bool last_cr;
};

struct hmp {
    struct machine *m;
    struct hmp_spec spec;
    int listen_fd;
    int wake[2];             /* written by hmp_close: the thread ends */
    int tty[2];              /* keyboard bytes diverted to the monitor (-monitor stdio) */
    struct client *clients[MAX_CLIENTS];
    pthread_t thread;
    bool started;
    bool created_path;       /* we made the unix socket: remove it at the end */
};

/* ---- -monitor SPEC ---- */

static bool parse_options(char *opts, struct hmp_spec *out, const char *spec, char *err, size_t errlen)
{
    for (char *save, *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
        if (!strcmp(o, "server") || !strcmp(o, "server=on"))
            out->server = true;
        else if (!strcmp(o, "server=off"))
            out->server = false;
        else if (!strcmp(o, "nowait") || !strcmp(o, "wait=off"))
            out->wait = false;
        else if (!strcmp(o, "wait") || !strcmp(o, "wait=on"))
            out->wait = true;
        else {
            snprintf(err, errlen, "%s: unknown option '%s' (server, nowait, server=on|off, wait=on|off)", spec, o);
            return false;
        }
    }
    return true;
}

bool hmp_parse_spec(const char *spec, struct hmp_spec *out, char *err, size_t errlen)
{
    *out = (struct hmp_spec){ .wait = true };
    if (!strcmp(spec, "stdio")) {
        out->kind = HMP_STDIO;
        return true;
    }
    char buf[512];
    if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf)) {
        snprintf(err, errlen, "%.64s...: too long", spec);
        return false;
    }
    char *comma = strchr(buf, ',');
    if (comma)
        *comma++ = 0;
    if (!strncmp(buf, "unix:", 5)) {
        out->kind = HMP_UNIX;
        if (!buf[5] || strlen(buf + 5) >= sizeof(out->path)) {
            snprintf(err, errlen, "%s: a unix socket path of 1..%zu characters is needed", spec, sizeof(out->path) - 1);
            return false;
        }
        strcpy(out->path, buf + 5);
    } else if (!strncmp(buf, "tcp:", 4)) {
        out->kind = HMP_TCP;
        char *colon = strrchr(buf + 4, ':');
        if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) || atoi(colon + 1) > 65535) {
            snprintf(err, errlen, "%s: expected tcp:[HOST]:PORT", spec);
            return false;
        }
        *colon = 0;
        const char *host = buf + 4;
        /* [::1]:PORT is how an IPv6 address is written. */
        size_t hl = strlen(host);
        if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
            buf[4 + hl - 1] = 0;
            host++;
        }
        if (strlen(host) >= sizeof(out->host)) {
            snprintf(err, errlen, "%.64s...: host name too long", spec);
            return false;
        }
        snprintf(out->host, sizeof(out->host), "%.255s", *host ? host : "127.0.0.1");
        snprintf(out->port, sizeof(out->port), "%s", colon + 1);
    } else {
        snprintf(err, errlen, "%s: unknown monitor device (stdio, unix:PATH[,server,nowait], "
                 "tcp:[HOST]:PORT[,server,nowait])", spec);
        return false;
    }
    return !comma || parse_options(comma, out, spec, err, errlen);
}

/* ---- output ---- */

static void client_write(struct client *c, const char *p, size_t len)
{
    while (len) {
        ssize_t n = c->is_socket ? send(c->fd_out, p, len, MSG_NOSIGNAL) : write(c->fd_out, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pfd = { c->fd_out, POLLOUT, 0 };
            poll(&pfd, 1, 100);
            continue;
        }
        if (n <= 0)
            return;    /* the client went away; its read side will tell us */
        p += n;
        len -= (size_t)n;
    }
}

static void client_puts(struct client *c, const char *s)
{
    client_write(c, s, strlen(s));
}

/* ---- running a line ---- */

struct job {
    const char *line;
    FILE *out;
    bool ended;              /* the command ended the run (quit) */
};

static void run_job(struct machine *m, void *arg)
{
    struct job *j = arg;
    hmp_execute(m, j->line, j->out);
    j->ended = m->stop;
}

/* Runs one line; false when the machine's run has ended. */
static bool run_line(struct hmp *h, struct client *c, const char *line)
{
    if (!line[strspn(line, " \t")]) {
        client_puts(c, PROMPT);
        return true;
    }
    char *text = NULL;
    size_t len = 0;
    struct job j = { .line = line, .out = open_memstream(&text, &len) };
    if (!j.out)
        return true;
    bool ran = machine_call(h->m, run_job, &j);
    fclose(j.out);
    if (!ran) {
        free(text);
        client_puts(c, "the machine has stopped\n");
        return false;
    }
    client_write(c, text, len);
    free(text);
    if (!j.ended)
        client_puts(c, PROMPT);
    return !j.ended;
}

/* Typed on the terminal in raw mode: the console echoes and edits. */
static void echo_byte(struct client *c, unsigned char ch)
{
    if (!c->echo)
        return;
    if (ch == 0x7f || ch == 0x08)
        client_puts(c, "\b \b");
    else if (ch == '\r' || ch == '\n')
        client_puts(c, "\n");
    else if (ch >= 32)
        client_write(c, (const char *)&ch, 1);
}

/* Feeds bytes; false when the run has ended. */
static bool client_feed(struct hmp *h, struct client *c, const unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = buf[i];
        if (ch == 0) {            /* the terminal was switched to the monitor */
            client_puts(c, "\n" PROMPT);
            continue;
        }
        bool was_cr = c->last_cr;
        c->last_cr = ch == '\r';
        if (ch == '\n' && was_cr)
            continue;             /* CR LF is one end of line */
        echo_byte(c, ch);
        if (ch == '\r' || ch == '\n') {
            c->line[c->len] = 0;
            bool overflow = c->overflow;
            c->len = 0;
            c->overflow = false;
            if (overflow)
                client_puts(c, "line too long (at most 4095 characters); ignored\n" PROMPT);
            else if (!run_line(h, c, c->line))
                return false;
        } else if ((ch == 0x7f || ch == 0x08) && c->echo) {
            if (c->len)
                c->len--;
        } else if (c->len + 1 < sizeof(c->line)) {
            c->line[c->len++] = (char)ch;
        } else {
            c->overflow = true;
        }
    }
    return true;
}

/* ---- clients ---- */

static struct client *add_client(struct hmp *h, int fd_in, int fd_out, bool is_socket, bool echo)
{
    for (int k = 0; k < MAX_CLIENTS; k++)
        if (!h->clients[k]) {
            struct client *c = xcalloc(1, sizeof(*c));
            *c = (struct client){ .fd_in = fd_in, .fd_out = fd_out, .is_socket = is_socket, .echo = echo };
            h->clients[k] = c;
            return c;
        }
    return NULL;
}

static void drop_client(struct hmp *h, int k)
{
    struct client *c = h->clients[k];
    if (c->is_socket)
        close(c->fd_in);
    free(c);
    h->clients[k] = NULL;
}

static void accept_client(struct hmp *h)
{
    int fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct client *c = add_client(h, fd, fd, true, false);
    if (!c) {
        static const char full[] = "too many monitor connections (at most 8)\n";
        send(fd, full, sizeof(full) - 1, MSG_NOSIGNAL);
        close(fd);
        return;
    }
    client_puts(c, BANNER PROMPT);
}

/* Reads what a client sent; false when the run has ended. */
static bool serve_client(struct hmp *h, int k)
{
    struct client *c = h->clients[k];
    unsigned char buf[1024];
    ssize_t n = read(c->fd_in, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0) {
        drop_client(h, k);
        return true;
    }
    return client_feed(h, c, buf, (size_t)n);
}

static void *console_thread(void *arg)
{
    struct hmp *h = arg;
    for (;;) {
        struct pollfd pfd[2 + MAX_CLIENTS];
        int who[2 + MAX_CLIENTS];
        int n = 0;
        pfd[n++] = (struct pollfd){ h->wake[0], POLLIN, 0 };
        if (h->listen_fd >= 0)
            pfd[n++] = (struct pollfd){ h->listen_fd, POLLIN, 0 };
        int first_client = n;
        for (int k = 0; k < MAX_CLIENTS; k++)
            if (h->clients[k]) {
                who[n] = k;
                pfd[n++] = (struct pollfd){ h->clients[k]->fd_in, POLLIN, 0 };
            }
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[0].revents)
            break;
        if (h->listen_fd >= 0 && pfd[1].revents)
            accept_client(h);
        for (int i = first_client; i < n; i++)
            if (pfd[i].revents && h->clients[who[i]] && !serve_client(h, who[i]))
                return NULL;
    }
    return NULL;
}

/* ---- sockets ---- */

static int listen_unix(struct hmp *h, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h->spec.path);
    struct stat st;
    if (lstat(h->spec.path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "unix:%s: the file exists and is not a socket", h->spec.path);
            return -1;
        }
        unlink(h->spec.path);     /* a socket left by an earlier run, as QEMU does */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
        snprintf(err, errlen, "unix:%s: %s", h->spec.path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    h->created_path = true;
    return fd;
}

static int connect_unix(struct hmp *h, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h->spec.path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        snprintf(err, errlen, "unix:%s: %s", h->spec.path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int open_tcp(struct hmp *h, bool server, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = server ? AI_PASSIVE : 0 }, *res;
    int rc = getaddrinfo(h->spec.host, h->spec.port, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "tcp:%s:%s: %s", h->spec.host, h->spec.port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (server ? bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 8) < 0
                   : connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "tcp:%s:%s: %s", h->spec.host, h->spec.port, strerror(saved));
    return fd;
}

/* ---- the terminal ---- */

static void tty_bytes(void *opaque, const unsigned char *buf, int len)
{
    struct hmp *h = opaque;
    /* An empty call: the terminal was switched to us; a NUL shows the prompt. */
    const unsigned char nul = 0;
    if (write(h->tty[1], len ? buf : &nul, len ? (size_t)len : 1) < 0) {
        /* a full pipe: the console is busy; what is typed meanwhile is dropped */
    }
}

static bool open_stdio(struct hmp *h, bool serial_on_stdio, char *err, size_t errlen)
{
    if (pipe2(h->tty, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "stdio: %s", strerror(errno));
        return false;
    }
    fcntl(h->tty[1], F_SETFL, O_NONBLOCK);
    /* Shared with a serial port the terminal is in raw mode, and we echo. */
    struct client *c = add_client(h, h->tty[0], STDOUT_FILENO, false, serial_on_stdio && isatty(STDIN_FILENO));
    chardev_set_stdin_divert(tty_bytes, h, serial_on_stdio);
    if (!serial_on_stdio)
        client_puts(c, BANNER PROMPT);
    return true;
}

static bool open_socket(struct hmp *h, char *err, size_t errlen)
{
    bool unix_sock = h->spec.kind == HMP_UNIX;
    if (!h->spec.server) {
        int fd = unix_sock ? connect_unix(h, err, errlen) : open_tcp(h, false, err, errlen);
        if (fd < 0)
            return false;
        client_puts(add_client(h, fd, fd, true, false), BANNER PROMPT);
        return true;
    }
    h->listen_fd = unix_sock ? listen_unix(h, err, errlen) : open_tcp(h, true, err, errlen);
    if (h->listen_fd < 0)
        return false;
    if (h->spec.wait) {
        /* QEMU's default for a server: the guest starts once the first client is there. */
        fprintf(stderr, "retrovisor: -monitor: waiting for a connection on %s%s%s%s\n",
                unix_sock ? "unix:" : "tcp:", unix_sock ? h->spec.path : h->spec.host, unix_sock ? "" : ":",
                unix_sock ? "" : h->spec.port);
        accept_client(h);
    }
    return true;
}

struct hmp *hmp_open(struct machine *m, const char *spec, bool serial_on_stdio, char *err, size_t errlen)
{
    struct hmp *h = xcalloc(1, sizeof(*h));
    h->m = m;
    h->listen_fd = -1;
    h->wake[0] = h->wake[1] = h->tty[0] = h->tty[1] = -1;
    char why[512];
    bool ok = hmp_parse_spec(spec, &h->spec, why, sizeof(why)) && pipe2(h->wake, O_CLOEXEC) == 0 &&
              (h->spec.kind == HMP_STDIO ? open_stdio(h, serial_on_stdio, why, sizeof(why))
                                         : open_socket(h, why, sizeof(why)));
    if (ok && pthread_create(&h->thread, NULL, console_thread, h) == 0)
        h->started = true;
    else if (ok)
        snprintf(why, sizeof(why), "%s: cannot start the console thread", spec);
    if (!h->started) {
        snprintf(err, errlen, "-monitor %s", why);
        hmp_close(h);
        return NULL;
    }
    return h;
}

void hmp_close(struct hmp *h)
{
    if (!h)
        return;
    if (h->started) {
        if (write(h->wake[1], "x", 1) < 0) {
            /* the pipe is ours and empty: this cannot fail */
        }
        pthread_join(h->thread, NULL);
    }
    if (h->tty[0] >= 0)
        chardev_set_stdin_divert(NULL, NULL, false);
    for (int k = 0; k < MAX_CLIENTS; k++)
        if (h->clients[k])
            drop_client(h, k);
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    if (h->created_path)
        unlink(h->spec.path);
    for (int k = 0; k < 2; k++) {
        if (h->wake[k] >= 0)
            close(h->wake[k]);
        if (h->tty[k] >= 0)
            close(h->tty[k]);
    }
    free(h);
}
