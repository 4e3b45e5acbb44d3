/*
 * util/money.c — US dollar amounts with enough digits to mean something
 * (see money.h).
 */
#include "util/money.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SIGNIFICANT 6
#define MIN_DECIMALS 2
#define MAX_DECIMALS 15

const char *telex_format_usd(char *out, size_t outlen, double usd)
{
    if (outlen == 0)
        return out;
    if (!isfinite(usd) || fabs(usd) >= 1e15) {
        snprintf(out, outlen, "%g", usd);
        return out;
    }
    int decimals = MIN_DECIMALS;
    if (usd != 0) {
        int magnitude = (int)floor(log10(fabs(usd))); /* 0.00005 → -5, 20 → 1 */
        decimals = SIGNIFICANT - 1 - magnitude;
        if (decimals < MIN_DECIMALS)
            decimals = MIN_DECIMALS;
        if (decimals > MAX_DECIMALS)
            decimals = MAX_DECIMALS;
    }
    int n = snprintf(out, outlen, "%.*f", decimals, usd);
    if (n < 0 || (size_t)n >= outlen)
        return out;
    /* Trailing zeros beyond the first two decimals say nothing. */
    char *dot = strchr(out, '.');
    if (dot != NULL) {
        char *end = out + n;
        while (end > dot + 1 + MIN_DECIMALS && end[-1] == '0')
            *--end = '\0';
    }
    if (strcmp(out, "-0.00") == 0)
        memmove(out, out + 1, 5);
    return out;
}
