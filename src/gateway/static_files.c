/*
 * gateway/static_files.c — serves web/ (compiled into the binary by
 * cmake/embed_web.cmake): GET / is index.html, GET /telex.js the client.
 *
 * The client is also served as /telex.mjs (and its types as /telex.d.mts):
 * the same bytes under a name Node reads as an ES module whatever the
 * importing project's package.json says ("type": "commonjs" makes a .js
 * file CommonJS, where telex.js's `export` is a syntax error). One source,
 * web/telex.js; the alias is a name, not a copy.
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
    if (strcmp(dot, ".ts") == 0 || strcmp(dot, ".mts") == 0)
        return "text/plain; charset=utf-8";
    if (strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    if (strcmp(dot, ".png") == 0)
        return "image/png";
    return "application/octet-stream";
}

/* Other names of embedded files: {name served, file it serves}. */
static const char *const aliases[][2] = {
    {"/telex.mjs", "/telex.js"},
    {"/telex.d.mts", "/telex.d.ts"},
};

int telex_static_handle(h2o_req_t *req)
{
    h2o_iovec_t path = req->path_normalized;
    const char *type_of = NULL; /* the name asked for decides the Content-Type */
    if (path.len == 1 && path.base[0] == '/')
        path = h2o_iovec_init(H2O_STRLIT("/index.html"));
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (h2o_memis(path.base, path.len, aliases[i][0], strlen(aliases[i][0]))) {
            type_of = aliases[i][0];
            path = h2o_iovec_init(aliases[i][1], strlen(aliases[i][1]));
            break;
        }
    }
    for (const telex_web_asset_t *a = telex_web_assets; a->path != NULL; a++) {
        if (strlen(a->path) != path.len || memcmp(a->path, path.base, path.len) != 0)
            continue;
        req->res.status = 200;
        req->res.reason = "OK";
        telex_add_header(req, "content-type", content_type(type_of != NULL ? type_of : a->path));
        telex_add_header(req, "cache-control", "no-cache");
        telex_add_header(req, "x-content-type-options", "nosniff");
        h2o_send_inline(req, a->bytes, a->len);
        return 0;
    }
    return -1;
}
