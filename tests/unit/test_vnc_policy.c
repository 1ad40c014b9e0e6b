/*
 * ui/vnc_policy.c: the verdict on a VNC client's first bytes (WebSocket
 * upgrades and their Origin) and the back-off after wrong passwords.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ui/vnc_policy.h"

static const char *const loop_hosts[] = { "127.0.0.1", "localhost", NULL };
static const struct vnc_origins same_origin = { NULL, 0, loop_hosts, 3, 5967 };

static enum vnc_verdict judge(const char *req, bool websocket, const struct vnc_origins *allow,
                              const char **reply, char *origin)
{
    char why[160];
    return vnc_judge_preamble(req, strlen(req), websocket, allow, reply, why, sizeof(why), origin, 128);
}

static const char *request(const char *origin_line)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             "GET /websockify HTTP/1.1\r\nHost: 127.0.0.1:5967\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             origin_line);
    return buf;
}

static void origins_same_host_and_port(void **state)
{
    static const char *ok[] = { "http://127.0.0.1:5967", "https://localhost:5967", "HTTP://LOCALHOST:5967",
                                "http://localhost:5967/" };
    static const char *bad[] = { "http://evil.example", "http://127.0.0.1", "http://127.0.0.1:5968",
                                 "http://127.0.0.1:59670", "ftp://127.0.0.1:5967", "http://localhost.evil:5967",
                                 "http://127.0.0.1:5967.evil", "null", "", "http://[::1]:5967",
                                 "http://evil.example/http://127.0.0.1:5967" };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!vnc_origin_allowed(&same_origin, ok[i], strlen(ok[i])))
            fail_msg("%s refused", ok[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (vnc_origin_allowed(&same_origin, bad[i], strlen(bad[i])))
            fail_msg("%s allowed", bad[i]);

    static const char *const v6[] = { "::1", "localhost" };
    struct vnc_origins six = { NULL, 0, v6, 2, 5901 };
    assert_true(vnc_origin_allowed(&six, "http://[::1]:5901", 17));
    assert_false(vnc_origin_allowed(&six, "http://::1:5901", 15));

    static const char *const list[] = { "http://novnc.example:6080", "https://b.example/" };
    struct vnc_origins explicit_list = { list, 2, loop_hosts, 3, 5967 };
    assert_true(vnc_origin_allowed(&explicit_list, "http://novnc.example:6080", 25));
    assert_true(vnc_origin_allowed(&explicit_list, "https://b.example", 17));
    assert_false(vnc_origin_allowed(&explicit_list, "http://127.0.0.1:5967", 21));     /* replaced */
    assert_false(vnc_origin_allowed(&explicit_list, "http://novnc.example:6081", 25));
}

static void preamble_verdicts(void **state)
{
    const char *reply;
    char origin[128];
    /* websockets off: any upgrade is refused with 403 */
    assert_int_equal(judge(request("Origin: http://127.0.0.1:5967\r\n"), false, &same_origin, &reply, origin),
                     VNC_REFUSE);
    assert_non_null(reply);
    assert_non_null(strstr(reply, " 403 "));
    assert_int_equal(judge("GET ", false, &same_origin, &reply, origin), VNC_REFUSE);
    /* on: same origin passes, others are refused and named */
    assert_int_equal(judge(request("Origin: http://127.0.0.1:5967\r\n"), true, &same_origin, &reply, origin),
                     VNC_PASS);
    assert_int_equal(judge(request("Origin: http://evil.example\r\n"), true, &same_origin, &reply, origin),
                     VNC_REFUSE);
    assert_string_equal(origin, "http://evil.example");
    assert_non_null(strstr(reply, " 403 "));
    /* one bad Origin among good ones, old-style Sec-WebSocket-Origin, odd spacing */
    assert_int_equal(judge(request("Origin: http://localhost:5967\r\nOrigin: http://evil.example\r\n"), true,
                           &same_origin, &reply, origin), VNC_REFUSE);
    assert_int_equal(judge(request("Sec-WebSocket-Origin: http://evil.example\r\n"), true, &same_origin,
                           &reply, origin), VNC_REFUSE);
    assert_int_equal(judge(request("origin:\thttp://evil.example  \r\n"), true, &same_origin, &reply, origin),
                     VNC_REFUSE);
    assert_string_equal(origin, "http://evil.example");
    /* no Origin, or no Upgrade */
    assert_int_equal(judge(request(""), true, &same_origin, &reply, origin), VNC_REFUSE);
    assert_int_equal(judge("GET / HTTP/1.1\r\nOrigin: http://127.0.0.1:5967\r\n\r\n", true, &same_origin,
                           &reply, origin), VNC_REFUSE);
    assert_non_null(strstr(reply, " 400 "));
    /* incomplete: wait; anything but GET first: refused without a reply */
    assert_int_equal(judge("GE", true, &same_origin, &reply, origin), VNC_WAIT);
    assert_int_equal(judge("GET / HTTP/1.1\r\nOrigin: http://127.0.0.1:5967\r\n", true, &same_origin, &reply,
                           origin), VNC_WAIT);
    assert_int_equal(judge("RFB 003.008\n", true, &same_origin, &reply, origin), VNC_REFUSE);
    assert_null(reply);
    assert_int_equal(judge("\x16\x03\x01", true, &same_origin, &reply, origin), VNC_REFUSE);
    assert_int_equal(judge("POST / HTTP/1.1\r\n\r\n", true, &same_origin, &reply, origin), VNC_REFUSE);
    /* a head that never ends is refused once it is too large */
    static char huge[VNC_HTTP_HEAD_MAX + 10];
    memset(huge, 'a', sizeof(huge) - 1);
    memcpy(huge, "GET /", 5);
    assert_int_equal(judge(huge, true, &same_origin, &reply, origin), VNC_REFUSE);
    assert_non_null(strstr(reply, " 431 "));
    /* an embedded NUL */
    char nul[] = "GET / HTTP/1.1\r\nOrigin: http://127.0.0.1:5967\0\r\nUpgrade: websocket\r\n\r\n";
    char why[160];
    assert_int_equal(vnc_judge_preamble(nul, sizeof(nul) - 1, true, &same_origin, &reply, why, sizeof(why),
                                        origin, sizeof(origin)), VNC_REFUSE);
}

static void backoff_doubles_and_forgives(void **state)
{
    struct vnc_backoff *b = vnc_backoff_new();
    uint64_t t = 1000000;
    assert_int_equal(vnc_backoff_wait(b, "10.0.0.1", t), 0);
    uint64_t want = VNC_BACKOFF_FIRST_MS;
    for (int i = 0; i < 10; i++) {
        uint64_t d = vnc_backoff_failed(b, "10.0.0.1", t);
        assert_int_equal(d, want);
        assert_int_equal(vnc_backoff_wait(b, "10.0.0.1", t), d);
        assert_int_equal(vnc_backoff_wait(b, "10.0.0.1", t + d / 2), d - d / 2);
        assert_int_equal(vnc_backoff_wait(b, "10.0.0.2", t), 0);    /* per address */
        t += d;
        assert_int_equal(vnc_backoff_wait(b, "10.0.0.1", t), 0);
        want = want * 2 > VNC_BACKOFF_MAX_MS ? VNC_BACKOFF_MAX_MS : want * 2;
    }
    vnc_backoff_succeeded(b, "10.0.0.1");
    assert_int_equal(vnc_backoff_failed(b, "10.0.0.1", t), VNC_BACKOFF_FIRST_MS);
    /* long quiet: forgotten */
    t += VNC_BACKOFF_FORGET_MS + 1;
    assert_int_equal(vnc_backoff_failed(b, "10.0.0.1", t), VNC_BACKOFF_FIRST_MS);
    /* many addresses: the table stays bounded and keeps working */
    char a[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(a, sizeof(a), "10.1.%d.%d", i / 256, i % 256);
        vnc_backoff_failed(b, a, t + (uint64_t)i);
    }
    assert_true(vnc_backoff_wait(b, a, t + 999) > 0);
    vnc_backoff_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(origins_same_host_and_port),
        cmocka_unit_test(preamble_verdicts),
        cmocka_unit_test(backoff_doubles_and_forgives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
