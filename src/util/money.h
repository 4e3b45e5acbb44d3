/*
 * util/money.h — US dollar amounts as people read them.
 *
 * A fixed "%.4f" turns every budget below $0.00005 into "$0.0000" (a 402
 * said "it spent $0.0000 of $0.0000"). telex_format_usd keeps six
 * significant digits, at least two decimals, and no trailing zeros beyond
 * them: 20 → "20.00", 12.3456 → "12.3456", 0.00005 → "0.00005",
 * 0.0000123456789 → "0.0000123457", 1234.5678 → "1234.57", 0 → "0.00".
 */
#ifndef TELEX_UTIL_MONEY_H
#define TELEX_UTIL_MONEY_H

#include <stddef.h>

/* Writes the amount (no "$") into out, always NUL-terminated; returns out.
 * Negative amounts get a "-"; NaN and infinities print as "nan" / "inf". */
const char *telex_format_usd(char *out, size_t outlen, double usd);

/* Enough room for any amount telex_format_usd writes. */
#define TELEX_USD_LEN 48

#endif
