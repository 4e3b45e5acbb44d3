/*
 * gateway/secrets.h — keeping the gateway's secrets out of what reaches a
 * client.
 *
 * A provider's error body or message is relayed to the client that caused
 * it (a bad parameter is the client's to fix), but some providers echo the
 * API key they were given ("Incorrect API key provided: sk-…"). Before any
 * provider text leaves telex, every configured provider key in it, and
 * every token shaped like an API key (`sk-` and 16 or more key characters),
 * is masked with '*' of the same length, in place: JSON stays valid and
 * sizes do not change. And a provider that refuses telex's own credentials
 * (401, 403) is the operator's problem, not the client's: the client gets
 * 502 provider_auth_failed, the detail goes to the log.
 */
#ifndef TELEX_GATEWAY_SECRETS_H
#define TELEX_GATEWAY_SECRETS_H

#include <stddef.h>

#include "config/config.h"

/* Masks secrets in text[0..len) (see above). Returns how many were masked. */
size_t telex_secrets_mask(const telex_config_t *cfg, char *text, size_t len);

/* A malloc'ed, masked, NUL-terminated copy of text[0..len); never NULL. */
char *telex_secrets_masked_copy(const telex_config_t *cfg, const char *text, size_t len);

/* Did the provider refuse the gateway's credentials (HTTP 401 or 403)? */
int telex_provider_refused_credentials(int status);

#endif
