/*
 * util/log.c — JSON log lines on stderr. See log.h.
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

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

static void write_line(const char *line, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, line, len);
        if (n <= 0)
            return;
        line += n;
        len -= (size_t)n;
    }
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
    char *line = realloc(text, len + 2);
    if (line == NULL) {
        free(text);
        return;
    }
    line[len] = '\n';
    write_line(line, len + 1);
    free(line);
}
