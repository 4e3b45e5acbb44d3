/*
 * cluster/redis_url.c — parsing redis:// URLs. See redis_url.h.
 */
#include "cluster/redis_url.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Decodes %XX escapes of [s, s + n) into out (cap bytes with the NUL). */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            char hex[3] = {s[i + 1], s[i + 2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end != '\0' || hex[0] == '\0' || hex[1] == '\0' || v == 0)
                return -1;
            ch = (char)v;
            i += 2;
        } else if ((unsigned char)ch < 0x21 || ch == 0x7f) {
            return -1;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

int telex_redis_url_parse(const char *url, telex_redis_url_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(url, "rediss://", 9) == 0)
        return fail(err, errlen,
                    "rediss:// (TLS) is not supported: Debian 12's hiredis 0.14.1 is built without TLS; "
                    "use redis:// on a private network or a local TLS tunnel (stunnel, spiped)");
    if (strncmp(url, "redis://", 8) != 0)
        return fail(err, errlen, "expected redis://[user:password@]host:port[/db], got a URL without redis://");
    const char *p = url + 8, *end = p + strlen(p);
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = NULL;
    for (const char *q = p; q < (slash ? slash : end); q++)
        if (*q == '@')
            auth_end = q; /* the last @ before the path: passwords may hold @ only escaped, but be lenient */
    if (auth_end != NULL) {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        if (colon == NULL)
            return fail(err, errlen, "the credentials before @ must be user:password or :password");
        if (decode(p, (size_t)(colon - p), out->user, sizeof out->user) != 0 ||
            decode(colon + 1, (size_t)(auth_end - colon - 1), out->password, sizeof out->password) != 0)
            return fail(err, errlen, "the user or password is too long or holds a bad %%-escape or a control character");
        if (out->password[0] == '\0')
            return fail(err, errlen, "an empty password: leave out the credentials instead");
        p = auth_end + 1;
    }
    const char *host_end = slash ? slash : end;
    const char *port_at = NULL;
    if (p < host_end && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(host_end - p));
        if (close == NULL)
            return fail(err, errlen, "an IPv6 address needs its closing ]");
        if ((size_t)(close - p - 1) >= sizeof out->host || close == p + 1)
            return fail(err, errlen, "the host is empty or too long");
        memcpy(out->host, p + 1, (size_t)(close - p - 1));
        if (close + 1 < host_end) {
            if (close[1] != ':')
                return fail(err, errlen, "expected :port after the IPv6 address");
            port_at = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(host_end - p));
        const char *hend = colon ? colon : host_end;
        if (hend == p)
            return fail(err, errlen, "no host: expected redis://host:port");
        if ((size_t)(hend - p) >= sizeof out->host)
            return fail(err, errlen, "the host is too long");
        for (const char *q = p; q < hend; q++)
            if ((unsigned char)*q < 0x21 || *q == 0x7f || *q == '%' || *q == '?' || *q == '#')
                return fail(err, errlen, "the host holds a character a host name cannot");
        memcpy(out->host, p, (size_t)(hend - p));
        if (colon)
            port_at = colon + 1;
    }
    if (port_at != NULL) {
        long v = 0;
        if (port_at == host_end)
            return fail(err, errlen, "an empty port");
        for (const char *q = port_at; q < host_end; q++) {
            if (*q < '0' || *q > '9' || v > 65535)
                return fail(err, errlen, "the port must be a number from 1 to 65535");
            v = v * 10 + (*q - '0');
        }
        if (v < 1 || v > 65535)
            return fail(err, errlen, "the port must be a number from 1 to 65535");
        out->port = (int)v;
    }
    if (slash != NULL && slash + 1 < end) {
        long v = 0;
        for (const char *q = slash + 1; q < end; q++) {
            if (*q < '0' || *q > '9' || v > 100000)
                return fail(err, errlen, "the path must be a database number (/0, /1 ...) and nothing else");
            v = v * 10 + (*q - '0');
        }
        if (v > 100000)
            return fail(err, errlen, "the database number is too large");
        out->db = (int)v;
    }
    return 0;
}
