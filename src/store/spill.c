/*
 * store/spill.c — the ledger's spill file. See spill.h.
 */
#include "store/spill.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/backend.h"
#include "util/alloc.h"

#define MAGIC "TLXSPIL1"
#define HEADER_SIZE 32
#define DEFAULT_MAX_BYTES (UINT64_C(1) << 30)
#define RESERVE_BYTES (UINT64_C(8) << 20) /* allocated at open: spilling works on a full disk */

typedef struct header {
    char magic[8];
    uint32_t record_size;
    uint32_t version;
    uint64_t done;  /* rows replayed */
    uint64_t total; /* rows appended (records beyond are not data) */
} header_t;
_Static_assert(sizeof(header_t) == HEADER_SIZE, "header layout");

struct telex_spill {
    int fd;
    char *path;
    uint64_t max_bytes;
    uint64_t reserve; /* bytes kept allocated */
    uint64_t total; /* records in the file */
    uint64_t done;  /* of which replayed */
};

#define REC sizeof(telex_usage_record_t)

static int sys_fail(telex_spill_t *s, const char *what, char *err, size_t errlen)
{
    int e = errno ? errno : EIO;
    telex_store_errf(err, errlen, "%s: %s: %s", s->path, what, strerror(e));
    return e == ENOSPC ? -ENOSPC : -EIO;
}

static int write_header(telex_spill_t *s, char *err, size_t errlen)
{
    header_t h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, MAGIC, 8);
    h.record_size = (uint32_t)REC;
    h.version = 2;
    h.done = s->done;
    h.total = s->total;
    if (pwrite(s->fd, &h, sizeof h, 0) != (ssize_t)sizeof h || fdatasync(s->fd) != 0)
        return sys_fail(s, "writing the header", err, errlen);
    return 0;
}

/* mkdir -p of path's parent (0700). */
static void make_parents(const char *path)
{
    char *dir = telex_xstrdup(path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(dir, 0700);
        *p = '/';
    }
    free(dir);
}

int telex_spill_open(telex_spill_t **out, const char *path, uint64_t max_bytes, char *err, size_t errlen)
{
    *out = NULL;
    telex_spill_t *s = telex_xcalloc(1, sizeof(*s));
    s->path = telex_xstrdup(path);
    s->max_bytes = max_bytes ? max_bytes : DEFAULT_MAX_BYTES;
    make_parents(path);
    int rc;
    s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        rc = sys_fail(s, "cannot open the ledger spill file", err, errlen);
        free(s->path);
        free(s);
        return rc;
    }
    if (flock(s->fd, LOCK_EX | LOCK_NB) != 0) {
        telex_store_errf(err, errlen,
                         "%s: the ledger spill file is in use by another telex process; give each process its own "
                         "store.spill_path",
                         path);
        rc = -EBUSY;
        goto fail;
    }
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        rc = sys_fail(s, "reading the ledger spill file", err, errlen);
        goto fail;
    }
    if (st.st_size < HEADER_SIZE) {
        /* new (or torn before its header was complete: nothing counted) */
        if (ftruncate(s->fd, 0) != 0) {
            rc = sys_fail(s, "preparing the ledger spill file", err, errlen);
            goto fail;
        }
        if ((rc = write_header(s, err, errlen)) < 0)
            goto fail;
    } else {
        header_t h;
        if (pread(s->fd, &h, sizeof h, 0) != (ssize_t)sizeof h) {
            rc = sys_fail(s, "reading the ledger spill file", err, errlen);
            goto fail;
        }
        if (memcmp(h.magic, MAGIC, 8) != 0) {
            telex_store_errf(err, errlen, "%s: not a telex ledger spill file; move it away or choose another "
                                          "store.spill_path",
                             path);
            rc = -EINVAL;
            goto fail;
        }
        if (h.record_size != REC || h.version != 2) {
            telex_store_errf(err, errlen,
                             "%s: the ledger spill file was written by a different telex build (records of %u "
                             "bytes, this one writes %zu); replay it with that build, or move it away",
                             path, h.record_size, REC);
            rc = -EINVAL;
            goto fail;
        }
        /* the header counts what was synced; a torn append after it is not data */
        uint64_t in_file = ((uint64_t)st.st_size - HEADER_SIZE) / REC;
        s->total = h.total <= in_file ? h.total : in_file;
        s->done = h.done <= s->total ? h.done : s->total;
    }
    /* Keep room allocated, so that rows can be spilled when the disk is full
     * (SQLite's disk, often the same one). Best effort. */
    s->reserve = s->max_bytes < RESERVE_BYTES ? s->max_bytes : RESERVE_BYTES;
    if (fstat(s->fd, &st) == 0 && (uint64_t)st.st_size < s->reserve)
        (void)!posix_fallocate(s->fd, 0, (off_t)s->reserve);
    *out = s;
    return 0;
fail:
    close(s->fd);
    free(s->path);
    free(s);
    return rc;
}

void telex_spill_close(telex_spill_t *s)
{
    if (s == NULL)
        return;
    close(s->fd); /* releases the lock */
    free(s->path);
    free(s);
}

const char *telex_spill_path(const telex_spill_t *s)
{
    return s->path;
}

uint64_t telex_spill_pending(const telex_spill_t *s)
{
    return s->total - s->done;
}

int telex_spill_append(telex_spill_t *s, const telex_usage_record_t *rows, size_t n, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    uint64_t end = HEADER_SIZE + s->total * REC;
    if (end + n * REC > s->max_bytes) {
        telex_store_errf(err, errlen, "%s: the ledger spill file is full (%llu bytes, store.spill_max_bytes)",
                         s->path, (unsigned long long)s->max_bytes);
        return -ENOSPC;
    }
    const char *p = (const char *)rows;
    size_t left = n * REC;
    off_t at = (off_t)end;
    while (left > 0) {
        ssize_t w = pwrite(s->fd, p, left, at);
        if (w <= 0) {
            return sys_fail(s, "writing ledger rows", err, errlen); /* not counted: the header is unchanged */
        }
        p += w;
        left -= (size_t)w;
        at += w;
    }
    if (fdatasync(s->fd) != 0)
        return sys_fail(s, "syncing ledger rows", err, errlen);
    /* the rows count once the header says so */
    s->total += n;
    int rc = write_header(s, err, errlen);
    if (rc < 0)
        s->total -= n;
    return rc;
}

size_t telex_spill_peek(telex_spill_t *s, telex_usage_record_t *out, size_t max, char *err, size_t errlen)
{
    uint64_t avail = s->total - s->done;
    size_t n = avail < max ? (size_t)avail : max;
    if (n == 0)
        return 0;
    ssize_t r = pread(s->fd, out, n * REC, (off_t)(HEADER_SIZE + s->done * REC));
    if (r != (ssize_t)(n * REC)) {
        sys_fail(s, "reading ledger rows", err, errlen);
        return 0;
    }
    return n;
}

int telex_spill_consume(telex_spill_t *s, size_t n, char *err, size_t errlen)
{
    s->done += n;
    if (s->done > s->total)
        s->done = s->total;
    if (s->done == s->total) {
        /* all replayed: empty again (one header write), the file back to
         * its reserve if it grew beyond */
        s->total = s->done = 0;
        int rc = write_header(s, err, errlen);
        struct stat st;
        if (rc == 0 && fstat(s->fd, &st) == 0 && (uint64_t)st.st_size > s->reserve)
            (void)!ftruncate(s->fd, (off_t)s->reserve);
        return rc;
    }
    return write_header(s, err, errlen);
}
