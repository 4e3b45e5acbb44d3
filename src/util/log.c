/*
 * util/log.c — JSON log lines on stderr, written by a thread of their own
 * so that logging never blocks the caller. See log.h.
 */
#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"

static int quiet_info(const char *level)
{
    static int quiet = -1;
    if (quiet < 0) {
        const char *v = getenv("TELEX_LOG");
        quiet = v != NULL && strcmp(v, "quiet") == 0;
    }
    return quiet && strcmp(level, "info") == 0;
}

int telex_log_wants(const char *level)
{
    return !quiet_info(level);
}

static size_t format_time(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    return n + (size_t)snprintf(buf + n, len - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

/* Lines go through a queue to one writer thread: a gateway whose stderr is
 * not drained (a full pipe) must not freeze the event loop that logs. The
 * queue holds at most QUEUE_BYTES; a line that does not fit is dropped and
 * counted, and the writer reports the count in a "log lines dropped" line
 * once stderr takes bytes again. At exit the queue is flushed for at most
 * FLUSH_MS. Without the thread (it could not start) lines are written
 * directly, as before. */
#define QUEUE_BYTES (1u << 20)
#define FLUSH_MS 2000

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qwork = PTHREAD_COND_INITIALIZER; /* lines or a drop count to write */
static pthread_cond_t qidle = PTHREAD_COND_INITIALIZER; /* everything written */
static char *ring;
static size_t ring_head, ring_used; /* bytes of whole lines waiting, from ring_head */
static int writing;                 /* the writer is in write(2) */
static uint64_t dropped_total, dropped_unreported;
static pthread_once_t writer_once = PTHREAD_ONCE_INIT;
static int have_writer;

static void write_direct(const char *line, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        line += n;
        len -= (size_t)n;
    }
}

static void *writer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&qlock);
    for (;;) {
        while (ring_used == 0 && dropped_unreported == 0)
            pthread_cond_wait(&qwork, &qlock);
        if (ring_used > 0) {
            /* The bytes from ring_head are whole lines; nobody writes them
             * while we do (appends go to the free part). */
            size_t first = QUEUE_BYTES - ring_head < ring_used ? QUEUE_BYTES - ring_head : ring_used;
            struct iovec v[2] = {{ring + ring_head, first}, {ring, ring_used - first}};
            writing = 1;
            pthread_mutex_unlock(&qlock);
            ssize_t n = writev(STDERR_FILENO, v, v[1].iov_len > 0 ? 2 : 1);
            pthread_mutex_lock(&qlock);
            writing = 0;
            if (n < 0 && errno != EINTR && errno != EAGAIN)
                n = (ssize_t)ring_used; /* stderr is gone: nothing will ever be written */
            if (n > 0) {
                ring_head = (ring_head + (size_t)n) % QUEUE_BYTES;
                ring_used -= (size_t)n;
            }
        } else {
            uint64_t d = dropped_unreported;
            dropped_unreported = 0;
            char line[256], when[40];
            format_time(when, sizeof(when));
            int len = snprintf(line, sizeof(line),
                               "{\"time\":\"%s\",\"level\":\"warn\",\"msg\":\"log lines dropped: stderr was "
                               "not being read\",\"dropped\":%" PRIu64 ",\"dropped_total\":%" PRIu64 "}\n",
                               when, d, dropped_total);
            writing = 1;
            pthread_mutex_unlock(&qlock);
            write_direct(line, (size_t)len);
            pthread_mutex_lock(&qlock);
            writing = 0;
        }
        if (ring_used == 0 && dropped_unreported == 0)
            pthread_cond_broadcast(&qidle);
    }
    return NULL;
}

/* Waits (FLUSH_MS at most) until every queued line is written. */
static void flush_at_exit(void)
{
    telex_log_flush(FLUSH_MS);
}

static void writer_start(void)
{
    ring = telex_xmalloc(QUEUE_BYTES);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* the writer must not take the process's signals (SIGINT, SIGTERM, SIGPIPE...) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    have_writer = pthread_create(&t, &attr, writer_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (!have_writer) {
        free(ring);
        ring = NULL;
        return;
    }
    atexit(flush_at_exit);
}

static void write_line(const char *line, size_t len)
{
    pthread_once(&writer_once, writer_start);
    if (!have_writer) {
        write_direct(line, len);
        return;
    }
    pthread_mutex_lock(&qlock);
    if (len > QUEUE_BYTES - ring_used) {
        dropped_total++;
        dropped_unreported++;
    } else {
        size_t tail = (ring_head + ring_used) % QUEUE_BYTES;
        size_t first = QUEUE_BYTES - tail < len ? QUEUE_BYTES - tail : len;
        memcpy(ring + tail, line, first);
        memcpy(ring, line + first, len - first);
        ring_used += len;
    }
    pthread_cond_signal(&qwork);
    pthread_mutex_unlock(&qlock);
}

int telex_log_flush(int timeout_ms)
{
    if (!have_writer)
        return 0;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&qlock);
    int rc = 0;
    while ((ring_used > 0 || dropped_unreported > 0 || writing) && rc == 0)
        rc = pthread_cond_timedwait(&qidle, &qlock, &until);
    int left = ring_used > 0 || dropped_unreported > 0 || writing;
    pthread_mutex_unlock(&qlock);
    return left ? -1 : 0;
}

uint64_t telex_log_dropped(void)
{
    pthread_mutex_lock(&qlock);
    uint64_t d = dropped_total;
    pthread_mutex_unlock(&qlock);
    return d;
}

void telex_log_event(const char *level, const char *msg, const char *fields, ...)
{
    if (quiet_info(level))
        return;
    char line[2048];
    char when[40];
    format_time(when, sizeof(when));
    json_t *m = json_string(msg);
    char *quoted = m ? json_dumps(m, JSON_ENCODE_ANY) : NULL;
    json_decref(m);
    int n = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":%s", when, level,
                     quoted ? quoted : "\"?\"");
    free(quoted);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    if (fields != NULL && fields[0] != '\0') {
        line[n++] = ',';
        va_list ap;
        va_start(ap, fields);
        int m2 = vsnprintf(line + n, sizeof(line) - (size_t)n - 3, fields, ap);
        va_end(ap);
        if (m2 < 0 || (size_t)m2 >= sizeof(line) - (size_t)n - 3)
            return;
        n += m2;
    }
    line[n++] = '}';
    line[n++] = '\n';
    write_line(line, (size_t)n);
}

void telex_log_json(json_t *obj)
{
    if (obj == NULL)
        return;
    const char *level = json_string_value(json_object_get(obj, "level"));
    if (level != NULL && quiet_info(level)) {
        json_decref(obj);
        return;
    }
    char when[40];
    format_time(when, sizeof(when));
    json_object_set_new(obj, "time", json_string(when));
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(obj);
    if (text == NULL)
        return;
    size_t len = strlen(text);
    char *line = telex_xrealloc(text, len + 2);
    line[len] = '\n';
    write_line(line, len + 1);
    free(line);
}
