/*
 * gateway/endpoints.c — the HTTP handlers of the services (the admin API,
 * GET /v1/usage, GET /metrics, GET /v1/presets). See endpoints.h.
 *
 * Each checks the caller on the event loop (a hash compare), copies what
 * its store work needs into a job and runs it on libuv's thread pool
 * (off_loop.h); the answer is sent back on the request's loop.
 */
#include "gateway/endpoints.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "gateway/admin.h"
#include "gateway/auth.h"
#include "gateway/keyset.h"
#include "gateway/metrics.h"
#include "gateway/presets.h"
#include "gateway/usage.h"
#include "http/respond.h"
#include "store/ledger.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/json_dump.h"

/* Lets GET and HEAD through; anything else gets 405 with `Allow: GET` and
 * msg. Returns true when it answered. */
static bool refused_unless_get(h2o_req_t *req, const char *msg)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        return false;
    telex_add_header(req, "allow", "GET");
    telex_respond_error(req, 405, "invalid_request_error", "method_not_allowed", NULL, "%s", msg);
    return true;
}

/* Queues the job's store work (off_loop.h). When it cannot be queued, frees
 * the job and answers 500 "could not queue <what>". */
static int defer(h2o_req_t *req, void *job, void (*work)(void *job), void (*respond)(h2o_req_t *req, void *job),
                 void (*free_job)(void *job), const char *what)
{
    if (telex_off_loop(req, job, work, respond, free_job) == 0)
        return TELEX_DEFERRED;
    free_job(job);
    telex_respond_error(req, 500, "server_error", NULL, NULL, "could not queue %s", what);
    return TELEX_HANDLED;
}

/* ---- /admin ------------------------------------------------------------------------ */

typedef struct admin_job {
    telex_services_t *svc;
    char method[16];
    char *path;
    char *body;
    size_t body_len;
    int status;
    json_t *out;
    const char *allow;
    telex_api_error_t e;
} admin_job_t;

static void admin_work(void *p)
{
    admin_job_t *j = p;
    j->status = telex_admin_execute(j->svc, j->method, j->path, j->body, j->body_len, &j->out, &j->e, &j->allow);
}

static void admin_respond(h2o_req_t *req, void *p)
{
    admin_job_t *j = p;
    if (j->out == NULL) {
        if (j->allow != NULL)
            telex_add_header(req, "allow", j->allow);
        telex_api_error_respond(req, &j->e);
        return;
    }
    /* admin.c and admin_presets.c build j->out with jansson's checked constructors only: it dumps */
    char *text = json_dumps(j->out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    telex_respond(req, j->status, "application/json", text, strlen(text));
    memset(text, 0, strlen(text)); /* may hold a new key */
    free(text);
}

static void admin_free(void *p)
{
    admin_job_t *j = p;
    json_decref(j->out);
    free(j->path);
    free(j->body);
    free(j);
}

int telex_endpoint_admin(telex_services_t *svc, h2o_req_t *req)
{
    if (telex_services_config(svc)->auth.admin_token == NULL) {
        telex_respond_error(req, 403, "invalid_request_error", "admin_disabled", NULL,
                            "The admin API is off: set auth.admin_token_env (or TELEX_ADMIN_TOKEN) to enable it.");
        return TELEX_HANDLED;
    }
    h2o_iovec_t authz = telex_req_header(req, "authorization");
    if (!telex_auth_is_admin(svc, authz.base, authz.len)) {
        telex_respond_error(req, 401, "invalid_request_error", "invalid_admin_token", NULL,
                            "The admin API needs `Authorization: Bearer <admin token>`.");
        return TELEX_HANDLED;
    }
    admin_job_t *j = telex_xcalloc(1, sizeof(*j));
    size_t mlen = req->method.len < sizeof j->method ? req->method.len : sizeof j->method - 1;
    j->svc = svc;
    memcpy(j->method, req->method.base, mlen);
    j->path = telex_xstrndup(req->path_normalized.base, req->path_normalized.len);
    j->body_len = req->entity.len;
    j->body = telex_xmalloc(req->entity.len + 1);
    if (req->entity.len)
        memcpy(j->body, req->entity.base, req->entity.len);
    return defer(req, j, admin_work, admin_respond, admin_free, "the admin call");
}

/* ---- GET /v1/usage -------------------------------------------------------------------- */

typedef struct usage_job {
    telex_store_t *store;
    telex_usage_query_t q;
    telex_usage_row_t *rows;
    size_t n;
    int truncated;
    int rc;
    char err[256];
} usage_job_t;

static void usage_work(void *p)
{
    usage_job_t *j = p;
    j->rc = telex_store_usage(j->store, &j->q, &j->rows, &j->n, &j->truncated, j->err, sizeof j->err);
}

static void usage_respond(h2o_req_t *req, void *p)
{
    usage_job_t *j = p;
    if (j->rc < 0) {
        telex_respond_error(req, j->rc == -EBUSY ? 503 : 500, "server_error", "store_unavailable", NULL,
                            "The usage ledger cannot be read right now; retry shortly.");
        return;
    }
    json_t *body = telex_usage_to_json(&j->q, j->rows, j->n, j->truncated);
    char *text = body != NULL ? telex_json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))
                              : NULL;
    json_decref(body);
    if (text == NULL) { /* telex_usage_to_json: a cost that is not a finite number */
        telex_respond_error(req, 500, "server_error", NULL, NULL,
                            "The usage cannot be shown: the ledger holds a cost that is not a finite number.");
        return;
    }
    telex_respond(req, 200, "application/json", text, strlen(text));
    free(text);
}

static void usage_free(void *p)
{
    usage_job_t *j = p;
    free(j->rows);
    free(j);
}

int telex_endpoint_usage(telex_services_t *svc, h2o_req_t *req)
{
    telex_api_error_t e;
    if (refused_unless_get(req, "Use GET on /v1/usage."))
        return TELEX_HANDLED;
    h2o_iovec_t authz = telex_req_header(req, "authorization");
    int64_t scope = -1; /* admin: everything */
    if (!telex_auth_is_admin(svc, authz.base, authz.len)) {
        telex_grant_t grant;
        if (telex_auth_authenticate(svc, authz.base, authz.len, &grant, &e) != 0) {
            telex_api_error_respond(req, &e);
            return TELEX_HANDLED;
        }
        scope = grant.key_id; /* 0 = anonymous */
    }
    usage_job_t *j = telex_xcalloc(1, sizeof(*j));
    j->store = telex_services_store(svc);
    const char *qs = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : "";
    size_t qlen = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
    if (telex_usage_parse_query(qs, qlen, telex_store_now_ms(), &j->q, &e) != 0) {
        free(j);
        telex_api_error_respond(req, &e);
        return TELEX_HANDLED;
    }
    if (scope >= 0) {
        if (j->q.key_id >= 0 && j->q.key_id != scope) {
            free(j);
            telex_respond_error(req, 403, "invalid_request_error", "forbidden", "key",
                                "An API key may only read its own usage; the admin token reads every key's.");
            return TELEX_HANDLED;
        }
        j->q.key_id = scope;
    }
    return defer(req, j, usage_work, usage_respond, usage_free, "the usage query");
}

/* ---- GET /metrics ------------------------------------------------------------------ */

typedef struct metrics_job {
    telex_metrics_t *metrics;
    telex_ledger_t *ledger; /* NULL without the ledger thread */
    telex_keyset_t *keyset;
    telex_buf_t buf;
    int rc;
} metrics_job_t;

static void metrics_work(void *p)
{
    metrics_job_t *j = p;
    j->rc = telex_metrics_render(j->metrics, &j->buf);
    telex_ledger_stats_t st;
    if (j->ledger != NULL)
        telex_ledger_stats(j->ledger, &st);
    if (telex_metrics_render_services(&j->buf, j->ledger != NULL ? &st : NULL, telex_keyset_active(j->keyset)) != 0)
        j->rc = -1;
}

static void metrics_respond(h2o_req_t *req, void *p)
{
    metrics_job_t *j = p;
    if (j->rc != 0) {
        telex_respond_error(req, 500, "server_error", NULL, NULL, "the metrics do not fit in memory");
        return;
    }
    telex_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", j->buf.data ? j->buf.data : "",
                  j->buf.len);
}

static void metrics_free(void *p)
{
    metrics_job_t *j = p;
    telex_buf_free(&j->buf);
    free(j);
}

int telex_endpoint_metrics(telex_services_t *svc, h2o_req_t *req)
{
    if (refused_unless_get(req, "Use GET on /metrics."))
        return TELEX_HANDLED;
    const telex_config_t *cfg = telex_services_config(svc);
    if (cfg->metrics.require_admin || !telex_services_anonymous_allowed(svc)) {
        /* with keys, the gateway's traffic is no one else's business */
        h2o_iovec_t authz = telex_req_header(req, "authorization");
        size_t tlen = 0;
        const char *token = telex_auth_bearer(authz.base, authz.len, &tlen);
        bool scraper = cfg->metrics.token != NULL && token != NULL && tlen == strlen(cfg->metrics.token) &&
                       CRYPTO_memcmp(token, cfg->metrics.token, tlen) == 0;
        if (!scraper && !telex_auth_is_admin(svc, authz.base, authz.len)) {
            telex_respond_error(req, 401, "invalid_request_error", "invalid_admin_token", NULL,
                                "GET /metrics needs the admin token or metrics.token while keys exist (or with "
                                "metrics.require_admin): send `Authorization: Bearer <token>`.");
            return TELEX_HANDLED;
        }
    }
    metrics_job_t *j = telex_xcalloc(1, sizeof(*j));
    j->metrics = telex_services_metrics(svc);
    j->ledger = telex_services_ledger(svc);
    j->keyset = telex_services_keyset(svc);
    j->buf.limit = 64u << 20;
    return defer(req, j, metrics_work, metrics_respond, metrics_free, "the metrics");
}

/* ---- GET /v1/presets ------------------------------------------------------------------- */

int telex_endpoint_presets(telex_services_t *svc, h2o_req_t *req)
{
    if (refused_unless_get(req, "Use GET on /v1/presets (POST /v1/presets/{name} runs one)."))
        return TELEX_HANDLED;
    /* while keys exist, the list is for callers with a key (or the admin token) */
    h2o_iovec_t authz = telex_req_header(req, "authorization");
    telex_grant_t grant;
    telex_api_error_t e;
    if (!telex_auth_is_admin(svc, authz.base, authz.len) &&
        telex_auth_authenticate(svc, authz.base, authz.len, &grant, &e) != 0) {
        telex_api_error_respond(req, &e);
        return TELEX_HANDLED;
    }
    json_t *list = telex_presets_list(telex_services_presets(svc)); /* never NULL, checked strings only */
    char *text = telex_json_dumps(list, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(list);
    telex_respond(req, 200, "application/json", text, strlen(text));
    free(text);
    return TELEX_HANDLED;
}
