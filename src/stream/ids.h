/*
 * stream/ids.h — stream ids, SSE event ids and resume tokens.
 *
 * A stream id is "st_" + 22 base64url characters (128 random bits from the
 * kernel), so ids cannot be guessed or enumerated. An event id is
 * "<stream id>.<n>", so Last-Event-ID alone names both the stream and the
 * position. A resume token is HMAC-SHA256(secret, stream id) in base64url:
 * whoever holds it may attach to that stream (EventSource cannot send an
 * Authorization header). The secret is TELEX_RESUME_SECRET when set (so
 * several gateways share tokens), else 32 random bytes per process.
 */
#ifndef TELEX_STREAM_IDS_H
#define TELEX_STREAM_IDS_H

#include <stddef.h>
#include <stdint.h>

#define TELEX_STREAM_ID_LEN 25 /* "st_" + 22 */
#define TELEX_RESUME_TOKEN_LEN 43

/* Call once before threads start (a later call, in tests, changes the
 * secret every thread's next token uses). Returns 0, or -1 if there is no
 * randomness or TELEX_RESUME_SECRET cannot be hashed. */
int telex_ids_init(void);

/* Writes a new id and its NUL into out[TELEX_STREAM_ID_LEN + 1]. */
int telex_stream_id_new(char *out);

/* Is s (len bytes) shaped like a stream id? */
int telex_stream_id_valid(const char *s, size_t len);

/* Parses "<stream id>.<n>" (n decimal, may be 0). Returns 0 or -1. */
int telex_event_id_parse(const char *s, size_t len, char *stream_id_out, uint64_t *seq);

/* Token for a stream id, NUL-terminated, into out[TELEX_RESUME_TOKEN_LEN + 1].
 * Returns 0, or -1 when OpenSSL cannot compute the HMAC; out is then "" (a
 * token no check accepts). Any thread: each keeps its own keyed HMAC
 * context, freed when the thread ends. */
int telex_resume_token(const char *stream_id, char *out);
/* Constant-time check of a presented token. */
int telex_resume_token_valid(const char *stream_id, const char *token, size_t len);

#endif
