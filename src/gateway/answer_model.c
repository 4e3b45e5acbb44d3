/*
 * gateway/answer_model.c — shared readings of the chat chunk. See
 * answer_model.h.
 */
#include "gateway/answer_model.h"
#include "util/alloc.h"
#include "util/json_dump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *telex_answer_choice0(json_t *chunk)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(chunk, "choices"), i, c)
    {
        json_t *idx = json_object_get(c, "index");
        if (idx == NULL || (json_is_integer(idx) && json_integer_value(idx) == 0))
            return c;
    }
    return NULL;
}

json_t *telex_answer_reasoning(json_t *delta)
{
    json_t *r = json_object_get(delta, "reasoning_content");
    if (!json_is_string(r))
        r = json_object_get(delta, "reasoning");
    return json_is_string(r) ? r : NULL;
}

json_t *telex_answer_completion_as_chunk(json_t *completion)
{
    json_t *choice = json_array_get(json_object_get(completion, "choices"), 0);
    json_t *message = json_deep_copy(json_object_get(choice, "message"));
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(message, "tool_calls"), i, c)
    {
        if (json_object_get(c, "index") == NULL)
            json_object_set_new(c, "index", json_integer((json_int_t)i));
    }
    return json_pack("{s:[{s:i,s:o,s:O}]}", "choices", "index", 0, "delta", message ? message : json_object(),
                     "finish_reason", json_object_get(choice, "finish_reason"));
}

char *telex_answer_joined_text(json_t *parts)
{
    if (json_is_string(parts))
        return telex_xstrdup(json_string_value(parts));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return NULL;
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p)
    {
        const char *t = json_string_value(json_object_get(p, "text"));
        if (t != NULL)
            fputs(t, f);
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

void telex_ignored_add(char *list, size_t cap, const char *name)
{
    size_t n = strlen(list), len = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += len)
        if ((p == list || p[-1] == ' ') && (p[len] == ',' || p[len] == '\0'))
            return;
    if (n + len + 3 >= cap)
        return;
    if (n > 0) {
        memcpy(list + n, ", ", 2);
        n += 2;
    }
    memcpy(list + n, name, len + 1);
}

size_t telex_answer_put_uint(char *dst, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (size_t i = 0; i < n; i++)
        dst[i] = digits[n - 1 - i];
    return n;
}

size_t telex_answer_put_string(char *dst, const char *s, size_t n)
{
    size_t pos = 0;
    dst[0] = '"';
    size_t w = n != 0 ? telex_json_escape(dst + 1, s, n, &pos, n, 0) : 0;
    if (w == TELEX_JSON_ESCAPE_BAD_UTF8)
        return SIZE_MAX;
    dst[1 + w] = '"';
    return w + 2;
}
