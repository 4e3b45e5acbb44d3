/*
 * tests/unit/test_money.c — dollar amounts keep their meaning at every size:
 * six significant digits, at least two decimals, no trailing zeros beyond.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/money.h"

static void test_amounts(void **state)
{
    (void)state;
    static const struct {
        double usd;
        const char *text;
    } cases[] = {
        {0, "0.00"},
        {-0.0, "0.00"},
        {20, "20.00"},
        {5, "5.00"},
        {0.01, "0.01"},
        {0.5, "0.50"},
        {12.3456, "12.3456"},
        {1234.5678, "1234.57"},
        {1e9, "1000000000.00"},
        {0.00005, "0.00005"},
        {0.000012, "0.000012"},
        {0.000062, "0.000062"},
        {0.0000123456789, "0.0000123457"},
        {0.00009999999, "0.0001"},
        {1e-12, "0.000000000001"},
        {1e-20, "0.00"}, /* below 15 decimals: rounds to zero */
        {-0.25, "-0.25"},
        {-0.00005, "-0.00005"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[TELEX_USD_LEN];
        const char *got = telex_format_usd(out, sizeof out, cases[i].usd);
        if (got != out || strcmp(out, cases[i].text) != 0)
            fail_msg("%.17g: want %s, got %s", cases[i].usd, cases[i].text, out);
    }
}

static void test_odd_values_and_small_buffers(void **state)
{
    (void)state;
    char out[TELEX_USD_LEN];
    assert_string_equal(telex_format_usd(out, sizeof out, NAN), "nan");
    assert_string_equal(telex_format_usd(out, sizeof out, INFINITY), "inf");
    assert_string_equal(telex_format_usd(out, sizeof out, 1e300), "1e+300");
    assert_string_equal(telex_format_usd(out, 4, 0.5), "0.5"); /* cut, still terminated */
    char one[1] = {'x'};
    assert_string_equal(telex_format_usd(one, 1, 12.5), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amounts),
        cmocka_unit_test(test_odd_values_and_small_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
