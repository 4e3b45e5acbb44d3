/*
 * gateway/apierror.c — see apierror.h.
 */
#include "gateway/apierror.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "http/respond.h"
#include "util/utf8.h"

int telex_api_error_set(telex_api_error_t *e, int status, const char *type, const char *code, const char *param,
                        const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    e->code = code;
    e->param = param;
    e->retry_after = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return status;
}

char *telex_api_error_json(const telex_api_error_t *e)
{
    json_t *err = json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", e->message, "type",
                            e->type ? e->type : "server_error", "param",
                            e->param ? json_string(e->param) : json_null(), "code",
                            e->code ? json_string(e->code) : json_null());
    char *text = err ? json_dumps(err, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(err);
    return text;
}

void telex_api_error_respond(h2o_req_t *req, const telex_api_error_t *e)
{
    if (e->retry_after > 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%u", e->retry_after);
        telex_add_header(req, "retry-after", ra);
    }
    telex_respond_error(req, e->status ? e->status : 500, e->type ? e->type : "server_error", e->code, e->param,
                        "%s", e->message);
}

const char *telex_api_safe_text(char *buf, size_t cap, const char *s, size_t len)
{
    size_t o = 0, i = 0;
    if (cap == 0)
        return buf;
    while (i < len) {
        const unsigned char *p = (const unsigned char *)s + i;
        size_t n = p[0] < 0x80 ? 1 : telex_utf8_seq_len(p, p + (len - i));
        size_t out = n ? n : 1;
        if (o + out + 4 > cap) {
            if (cap >= 4) {
                while (o + 4 > cap)
                    o--;
                memcpy(buf + o, "...", 3);
                o += 3;
            }
            break;
        }
        if (n == 0 || (n == 1 && (p[0] < 0x20 || p[0] == 0x7f)))
            buf[o++] = '?';
        else {
            memcpy(buf + o, p, n);
            o += n;
        }
        i += out;
    }
    buf[o] = '\0';
    return buf;
}
