/*
 * strerror.c — human-readable text for libtelex's TELEX_SSE_* error codes.
 *
 * Contract: telex_sse_strerror never returns NULL; the strings are static and
 * say what went wrong in words a user of the library can act on.
 */
#include "telex/sse.h"

const char *telex_sse_strerror(int err) {
    switch (err) {
    case TELEX_SSE_OK: return "success";
    case TELEX_SSE_ENOMEM: return "out of memory";
    case TELEX_SSE_ETOOBIG: return "event or line exceeds the maximum event size";
    case TELEX_SSE_ESTOPPED: return "stopped by a callback";
    case TELEX_SSE_EINVAL: return "invalid argument (CR, LF or NUL in an event type or id?)";
    case TELEX_SSE_ENOSPC: return "output buffer too small";
    case TELEX_SSE_EFIELD: return "a line that is not an event-stream field, comment or blank line (strict mode)";
    default: return "unknown SSE error";
    }
}
