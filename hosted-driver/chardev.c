/*
 * Character backends (see chardev.h).
 *
 * Terminal state is the one unavoidable global: there is one controlling
 * terminal, and it must be restored from atexit and signal handlers that
 * have no other way to find it.
 *
 * Ctrl-A escapes are honoured on stdin whether or not it is a terminal, so
 * scripts can end a run by piping "\001x" (as with QEMU's -nographic).
 * Keyboard input goes to the first stdio chardev that has a receiver; with
 * none, it is read (so the escapes work) and dropped.
 */
#define _GNU_SOURCE
#include "hosted-driver/chardev.h"
#include "hosted-driver/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

enum cd_kind { CD_STDIO, CD_FILE, CD_NULL };

/* Bytes read from the host but not yet accepted by the front end. */
#define INBUF 256
/* Bytes the guest wrote, not yet handed to the host: a write() per byte
 * costs several microseconds, and a booting kernel logs tens of KiB. */
#define OUTBUF 4096

struct chardev {
    enum cd_kind kind;
    int fd_out;
    chardev_can_receive_fn can;
    chardev_receive_fn rx;
    void *opaque;
    unsigned char in[INBUF];
    int in_head, in_len;
    unsigned char out[OUTBUF];
    size_t out_len;
    struct chardev *next;
};

static struct chardev *all_devs;
static struct chardev *stdin_owner(void);
static void terminal_signals(bool on);

/* stdin state shared by every stdio chardev. */
static bool stdin_eof;
static bool escape_pending;

static bool term_raw;
static struct termios term_saved;
static bool handlers_installed;

void chardev_restore_terminal(void)
{
    if (term_raw) {
        tcsetattr(STDIN_FILENO, TCSANOW, &term_saved);
        term_raw = false;
    }
}

static void fatal_signal(int sig)
{
    /* tcsetattr is async-signal-safe; restore, then die of the same signal
     * so the parent sees the real cause. */
    chardev_restore_terminal();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void terminal_raw_mode(void)
{
    if (term_raw || !isatty(STDIN_FILENO))
        return;
    if (tcgetattr(STDIN_FILENO, &term_saved) < 0)
        return;
    struct termios t = term_saved;
    /* Like cfmakeraw, but keep output post-processing so host-side messages
     * printed with "\n" still start at column 0, and keep ISIG until a
     * guest device takes the input (see chardev_set_handlers). */
    t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN);
    t.c_cflag &= ~(CSIZE | PARENB);
    t.c_cflag |= CS8;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &t) < 0)
        return;
    term_raw = true;
    if (!handlers_installed) {
        handlers_installed = true;
        atexit(chardev_restore_terminal);
        int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
            struct sigaction sa, old;
            memset(&sa, 0, sizeof(sa));
            sa.sa_handler = fatal_signal;
            sigemptyset(&sa.sa_mask);
            /* Leave alone signals someone already chose to handle/ignore. */
            if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
                sigaction(sigs[i], &sa, NULL);
        }
    }
}

struct chardev *chardev_open(const char *spec, char *err, size_t errlen)
{
    struct chardev *cd;
    if (!spec)
        spec = "";
    if (!strcmp(spec, "stdio")) {
        cd = xcalloc(1, sizeof(*cd));
        cd->kind = CD_STDIO;
        cd->fd_out = STDOUT_FILENO;
        terminal_raw_mode();
    } else if (!strncmp(spec, "file:", 5)) {
        const char *path = spec + 5;
        if (!*path) {
            snprintf(err, errlen, "%s: missing file name", spec);
            return NULL;
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (fd < 0) {
            snprintf(err, errlen, "%s: %s", spec, strerror(errno));
            return NULL;
        }
        cd = xcalloc(1, sizeof(*cd));
        cd->kind = CD_FILE;
        cd->fd_out = fd;
    } else if (!strcmp(spec, "none") || !strcmp(spec, "null")) {
        cd = xcalloc(1, sizeof(*cd));
        cd->kind = CD_NULL;
        cd->fd_out = -1;
    } else {
        snprintf(err, errlen, "%s: unknown character device (valid: stdio, file:PATH, none, null)", spec);
        return NULL;
    }
    cd->next = all_devs;
    all_devs = cd;
    return cd;
}

void chardev_close(struct chardev *cd)
{
    if (!cd)
        return;
    for (struct chardev **pp = &all_devs; *pp; pp = &(*pp)->next) {
        if (*pp == cd) {
            *pp = cd->next;
            break;
        }
    }
    chardev_flush(cd);
    if (cd->kind == CD_FILE)
        close(cd->fd_out);
    bool other_stdio = false;
    for (struct chardev *c = all_devs; c; c = c->next)
        other_stdio |= c->kind == CD_STDIO;
    if (cd->kind == CD_STDIO && !other_stdio)
        chardev_restore_terminal();
    else if (cd->kind == CD_STDIO)
        terminal_signals(stdin_owner() == NULL);
    free(cd);
}

static void write_all(int fd, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            /* Someone made the descriptor non-blocking; wait rather than drop. */
            struct pollfd pfd = { fd, POLLOUT, 0 };
            poll(&pfd, 1, 100);
        } else {
            return;   /* closed pipe, full disk: the guest cannot be told; drop */
        }
    }
}

void chardev_flush(struct chardev *cd)
{
    if (cd && cd->out_len) {
        write_all(cd->fd_out, cd->out, cd->out_len);
        cd->out_len = 0;
    }
}

void chardev_write(struct chardev *cd, const void *buf, size_t len)
{
    if (!cd || cd->fd_out < 0 || !len)
        return;
    if (cd->out_len + len > OUTBUF) {
        chardev_flush(cd);
        if (len > OUTBUF) {
            write_all(cd->fd_out, buf, len);
            return;
        }
    }
    memcpy(cd->out + cd->out_len, buf, len);
    cd->out_len += len;
}

/* Once the guest reads the terminal, Ctrl-C and Ctrl-Z belong to it (Ctrl-A X
 * still quits); a terminal that only shows output keeps them for the user. */
static void terminal_signals(bool on)
{
    struct termios t;
    if (!term_raw || tcgetattr(STDIN_FILENO, &t) < 0)
        return;
    if (on)
        t.c_lflag |= ISIG;
    else
        t.c_lflag &= ~ISIG;
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
}

void chardev_set_handlers(struct chardev *cd, chardev_can_receive_fn can, chardev_receive_fn rx, void *opaque)
{
    cd->can = can;
    cd->rx = rx;
    cd->opaque = opaque;
    if (cd->kind == CD_STDIO)
        terminal_signals(stdin_owner() == NULL);
}

/* The stdio chardev that receives keyboard input: the first one with a
 * receiver (only one can sensibly own the terminal). */
static struct chardev *stdin_owner(void)
{
    for (struct chardev *c = all_devs; c; c = c->next)
        if (c->kind == CD_STDIO && c->rx)
            return c;
    return NULL;
}

static bool any_stdio(void)
{
    for (struct chardev *c = all_devs; c; c = c->next)
        if (c->kind == CD_STDIO)
            return true;
    return false;
}

static void push_in(struct chardev *cd, unsigned char ch)
{
    if (!cd || cd->in_len >= INBUF)
        return;
    cd->in[(cd->in_head + cd->in_len) % INBUF] = ch;
    cd->in_len++;
}

static struct escape {
    char key;
    void (*fn)(void *opaque);
    void *opaque;
    const char *help;
} escapes[8];

void chardev_add_escape(char key, void (*fn)(void *opaque), void *opaque, const char *help)
{
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++)
        if (!escapes[i].fn) {
            escapes[i] = (struct escape){ key, fn, opaque, help };
            return;
        }
}

void chardev_remove_escapes(void *opaque)
{
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++)
        if (escapes[i].opaque == opaque)
            escapes[i] = (struct escape){ 0 };
}

/* Runs the added escape for ch; false when there is none. */
static bool run_escape(unsigned char ch)
{
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++)
        if (escapes[i].fn && tolower((unsigned char)escapes[i].key) == tolower(ch)) {
            escapes[i].fn(escapes[i].opaque);
            return true;
        }
    return false;
}

static struct {
    void (*fn)(void *opaque, const unsigned char *buf, int len);
    void *opaque;
    bool toggle;      /* Ctrl-A C switches between the serial port and the monitor */
    bool on;
} divert;

void chardev_set_stdin_divert(void (*fn)(void *opaque, const unsigned char *buf, int len), void *opaque,
                              bool toggle)
{
    divert.fn = fn;
    divert.opaque = opaque;
    divert.toggle = toggle;
    divert.on = fn && !toggle;
}

bool chardev_stdin_diverted(void)
{
    return divert.fn && divert.on;
}

/* A keyboard byte for whoever has the terminal now: the monitor or the guest. */
static void stdin_byte(struct chardev *owner, unsigned char ch)
{
    if (chardev_stdin_diverted())
        divert.fn(divert.opaque, &ch, 1);
    else
        push_in(owner, ch);
}

static void toggle_divert(void)
{
    if (!divert.fn || !divert.toggle)
        return;
    divert.on = !divert.on;
    /* The monitor prints its prompt itself; the switch back says so, as QEMU's mux does not. */
    if (divert.on)
        divert.fn(divert.opaque, (const unsigned char *)"", 0);
}

static void print_help(void)
{
    static const char help[] =
        "\r\n"
        "C-a h    print this help\r\n"
        "C-a x    exit retrovisor\r\n"
        "C-a a    send C-a to the guest\r\n";
    static const char mux[] = "C-a c    switch between the serial console and the monitor\r\n";
    write_all(STDERR_FILENO, (const unsigned char *)help, sizeof(help) - 1);
    if (divert.fn && divert.toggle)
        write_all(STDERR_FILENO, (const unsigned char *)mux, sizeof(mux) - 1);
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++)
        if (escapes[i].fn && escapes[i].help) {
            write_all(STDERR_FILENO, (const unsigned char *)escapes[i].help, strlen(escapes[i].help));
            write_all(STDERR_FILENO, (const unsigned char *)"\r\n", 2);
        }
}

/* Returns true when the user asked to quit. */
static bool read_stdin(struct chardev *owner)
{
    if (stdin_eof)
        return false;
    /* Only take as much from the host as we can buffer, so nothing typed is
     * lost while the guest is slow to drain its receive FIFO. */
    int room = owner ? INBUF - owner->in_len : INBUF;
    if (room <= 0)
        return false;
    struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };
    if (poll(&pfd, 1, 0) <= 0)
        return false;
    if (pfd.revents & POLLNVAL) {   /* stdin closed by whoever started us */
        stdin_eof = true;
        return false;
    }
    if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
        return false;
    unsigned char buf[INBUF];
    ssize_t n = read(STDIN_FILENO, buf, (size_t)room);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        stdin_eof = true;
        return false;
    }
    for (ssize_t i = 0; i < n; i++) {
        unsigned char ch = buf[i];
        if (escape_pending) {
            escape_pending = false;
            switch (ch) {
            case 'x': case 'X':
                return true;
            case 'h': case 'H': case '?':
                print_help();
                break;
            case 'a': case 'A': case 0x01:
                stdin_byte(owner, 0x01);
                break;
            case 'c': case 'C':
                if (divert.fn && divert.toggle)
                    toggle_divert();
                else
                    run_escape(ch);
                break;
            default:
                run_escape(ch);   /* an unknown escape is swallowed */
                break;
            }
        } else if (ch == 0x01) {
            escape_pending = true;
        } else {
            stdin_byte(owner, ch);
        }
    }
    return false;
}

static void deliver(struct chardev *cd)
{
    while (cd->in_len && cd->rx) {
        int n = cd->can ? cd->can(cd->opaque) : cd->in_len;
        if (n <= 0)
            return;
        if (n > cd->in_len)
            n = cd->in_len;
        /* Hand over the contiguous part of the ring. */
        if (n > INBUF - cd->in_head)
            n = INBUF - cd->in_head;
        cd->rx(cd->opaque, &cd->in[cd->in_head], n);
        cd->in_head = (cd->in_head + n) % INBUF;
        cd->in_len -= n;
    }
}

bool chardev_poll_all(void)
{
    bool quit = false;
    if (any_stdio() || divert.fn) {
        struct chardev *owner = stdin_owner();
        quit = read_stdin(owner);
    }
    for (struct chardev *c = all_devs; c; c = c->next) {
        chardev_flush(c);
        if (c->in_len)
            deliver(c);
    }
    return quit;
}
