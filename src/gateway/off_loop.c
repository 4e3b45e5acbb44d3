/*
 * gateway/off_loop.c — store work for a request on libuv's thread pool,
 * answered back on the request's loop. See off_loop.h.
 */
#include "gateway/off_loop.h"

#include <stdlib.h>

#include <uv.h>

#include "gateway/access_log.h"
#include "gateway/services.h"
#include "http/respond.h"
#include "util/alloc.h"

static void (*answered_hook)(h2o_req_t *req, void *arg);
static void *answered_arg;

void telex_off_loop_set_answered_hook(void (*hook)(h2o_req_t *req, void *arg), void *arg)
{
    answered_hook = hook;
    answered_arg = arg;
}

typedef struct off_loop {
    uv_work_t work;
    h2o_req_t *req;          /* NULL once h2o disposed of the request */
    struct off_loop **link;  /* in the request's pool; cleared when done */
    void *job;
    void (*fn)(void *job);
    void (*respond)(h2o_req_t *req, void *job);
    void (*free_job)(void *job);
} off_loop_t;

static void on_req_disposed(void *p)
{
    off_loop_t *o = *(off_loop_t **)p;
    if (o != NULL)
        o->req = NULL;
}

static void work_cb(uv_work_t *w)
{
    off_loop_t *o = w->data;
    o->fn(o->job);
    telex_services_job_end();
}

static void after_work_cb(uv_work_t *w, int status)
{
    off_loop_t *o = w->data;
    if (o->req != NULL) {
        *o->link = NULL;
        h2o_req_t *req = o->req;
        o->req = NULL;
        if (status == 0)
            o->respond(req, o->job);
        else
            telex_respond_error(req, 503, "server_error", "shutting_down", NULL, "The request was cancelled.");
        if (answered_hook != NULL)
            answered_hook(req, answered_arg);
        else
            telex_access_log(req, NULL, uv_hrtime());
    }
    o->free_job(o->job);
    free(o);
}

int telex_off_loop(h2o_req_t *req, void *job, void (*work)(void *job), void (*respond)(h2o_req_t *req, void *job),
                   void (*free_job)(void *job))
{
    off_loop_t *o = telex_xcalloc(1, sizeof(*o));
    off_loop_t **link = h2o_mem_alloc_shared(&req->pool, sizeof(*link), on_req_disposed);
    *link = o;
    o->req = req;
    o->link = link;
    o->job = job;
    o->fn = work;
    o->respond = respond;
    o->free_job = free_job;
    o->work.data = o;
    telex_services_job_begin();
    if (uv_queue_work(req->conn->ctx->loop, &o->work, work_cb, after_work_cb) != 0) {
        telex_services_job_end();
        *link = NULL;
        free(o);
        return -1;
    }
    return 0;
}
