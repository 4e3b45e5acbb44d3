/*
 * gateway/secrets.c — masking secrets in provider text. See secrets.h.
 */
#include "gateway/secrets.h"
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

#define KEY_SHAPED_MIN 16 /* key characters after "sk-" for a token to look like a key */

static int key_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static size_t mask_literal(char *text, size_t len, const char *secret)
{
    size_t n = secret != NULL ? strlen(secret) : 0, masked = 0;
    if (n < 8) /* too short to search for without masking ordinary words */
        return 0;
    char *p = text, *end = text + len;
    while ((size_t)(end - p) >= n && (p = memmem(p, (size_t)(end - p), secret, n)) != NULL) {
        memset(p, '*', n);
        p += n;
        masked++;
    }
    return masked;
}

/* "sk-" followed by KEY_SHAPED_MIN or more key characters, not inside a
 * longer word: the rest after "sk-" is masked. */
static size_t mask_key_shaped(char *text, size_t len)
{
    size_t masked = 0;
    for (size_t i = 0; i + 3 + KEY_SHAPED_MIN <= len; i++) {
        if (text[i] != 's' || text[i + 1] != 'k' || text[i + 2] != '-' ||
            (i > 0 && key_char((unsigned char)text[i - 1])))
            continue;
        size_t j = i + 3;
        while (j < len && key_char((unsigned char)text[j]))
            j++;
        if (j - (i + 3) >= KEY_SHAPED_MIN) {
            memset(text + i + 3, '*', j - (i + 3));
            masked++;
        }
        i = j - 1;
    }
    return masked;
}

size_t telex_secrets_mask(const telex_config_t *cfg, char *text, size_t len)
{
    size_t masked = 0;
    for (size_t i = 0; cfg != NULL && i < cfg->n_providers; i++)
        masked += mask_literal(text, len, cfg->providers[i].api_key);
    return masked + mask_key_shaped(text, len);
}

char *telex_secrets_masked_copy(const telex_config_t *cfg, const char *text, size_t len)
{
    char *copy = telex_xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    telex_secrets_mask(cfg, copy, len);
    return copy;
}

int telex_provider_refused_credentials(int status)
{
    return status == 401 || status == 403;
}
