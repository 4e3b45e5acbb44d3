/*
 * gateway/static_files.c — serves web/ (compiled into the binary by
 * cmake/embed_web.cmake): GET / is index.html, GET /telex.js the client.
 */
#include <string.h>

#include "gateway/gateway.h"
#include "http/respond.h"

typedef struct {
    const char *path;
    const char *bytes;
    size_t len;
} telex_web_asset_t;

extern const telex_web_asset_t telex_web_assets[];

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot == NULL)
        return "application/octet-stream";
    if (strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (strcmp(dot, ".js") == 0 || strcmp(dot, ".mjs") == 0)
        return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (strcmp(dot, ".ts") == 0)
        return "text/plain; charset=utf-8";
    if (strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    if (strcmp(dot, ".png") == 0)
        return "image/png";
    return "application/octet-stream";
}

int telex_static_handle(h2o_req_t *req)
{
    h2o_iovec_t path = req->path_normalized;
    if (path.len == 1 && path.base[0] == '/')
        path = h2o_iovec_init(H2O_STRLIT("/index.html"));
    for (const telex_web_asset_t *a = telex_web_assets; a->path != NULL; a++) {
        if (strlen(a->path) != path.len || memcmp(a->path, path.base, path.len) != 0)
            continue;
        req->res.status = 200;
        req->res.reason = "OK";
        telex_add_header(req, "content-type", content_type(a->path));
        telex_add_header(req, "cache-control", "no-cache");
        telex_add_header(req, "x-content-type-options", "nosniff");
        h2o_send_inline(req, a->bytes, a->len);
        return 0;
    }
    return -1;
}
