/*
 * tests/unit/test_cluster_url.c — cluster mode's Redis URL: every accepted
 * shape (host, port, credentials, database, IPv6) and every refusal with
 * its reason (rediss:// and why, other schemes, bad ports, bad escapes);
 * a password never appears in a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/redis_url.h"

static void test_accepted(void **state)
{
    (void)state;
    telex_redis_url_t u;
    char err[400];
    assert_int_equal(telex_redis_url_parse("redis://127.0.0.1:6380", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "");
    assert_int_equal(u.db, 0);
    assert_int_equal(telex_redis_url_parse("redis://cache.internal", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "cache.internal");
    assert_int_equal(u.port, 6379);
    assert_int_equal(telex_redis_url_parse("redis://telex:s%40cret@10.0.0.5:7000/3", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "telex");
    assert_string_equal(u.password, "s@cret");
    assert_string_equal(u.host, "10.0.0.5");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 3);
    assert_int_equal(telex_redis_url_parse("redis://:onlypass@h:1/", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "onlypass");
    assert_int_equal(u.db, 0);
    assert_int_equal(telex_redis_url_parse("redis://[::1]:6390/1", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 1);
}

static void refused(const char *url, const char *why)
{
    telex_redis_url_t u;
    char err[400] = "";
    if (telex_redis_url_parse(url, &u, err, sizeof err) == 0)
        fail_msg("%s was accepted", url);
    if (strstr(err, why) == NULL)
        fail_msg("%s: \"%s\" does not say \"%s\"", url, err, why);
    if (strstr(err, "hunter2") != NULL)
        fail_msg("%s: the message quotes the password", url);
}

static void test_refused(void **state)
{
    (void)state;
    refused("rediss://127.0.0.1:6380", "hiredis 0.14.1 is built without TLS");
    refused("http://127.0.0.1:6379", "expected redis://");
    refused("127.0.0.1:6379", "expected redis://");
    refused("redis://", "no host");
    refused("redis://:6379", "no host");
    refused("redis://h:0", "port must be a number from 1 to 65535");
    refused("redis://h:65536", "port must be a number from 1 to 65535");
    refused("redis://h:12ab", "port must be a number from 1 to 65535");
    refused("redis://h:", "an empty port");
    refused("redis://h:1/x", "database number");
    refused("redis://h:1/99999999", "database number");
    refused("redis://userhunter2@h:1", "user:password");
    refused("redis://u:hunter2%zz@h:1", "bad %-escape");
    refused("redis://u:@h:1", "an empty password");
    refused("redis://[::1:6379", "closing ]");
    refused("redis://h st:1", "a character a host name cannot");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
