/*
 * config/preset_rules.c — the checks a preset passes wherever it comes
 * from (config_presets.c, gateway/presets_store.c). See preset_rules.h.
 */
#include "config/preset_rules.h"

#include <stdio.h>
#include <string.h>

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool telex_preset_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > TELEX_PRESET_RULES_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

bool telex_preset_var_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > TELEX_PRESET_RULES_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum(s[i]) && s[i] != '_')
            return false;
    return true;
}

telex_template_problem_t telex_preset_template_problem(const char *t, const char **at)
{
    for (const char *p = strstr(t, "{{"); p; p = strstr(p, "{{")) {
        const char *close = strstr(p + 2, "}}");
        if (!close) {
            *at = p;
            return TELEX_TEMPLATE_UNTERMINATED;
        }
        const char *a = p + 2, *b = close;
        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        if (!telex_preset_var_name_valid(a, (size_t)(b - a))) {
            *at = p;
            return TELEX_TEMPLATE_BAD_NAME;
        }
        p = close + 2;
    }
    return TELEX_TEMPLATE_OK;
}

const char *telex_preset_parameter_problem(const char *name, const json_t *v, char *buf, size_t len)
{
    static const struct {
        const char *name;
        int integer;
        double min, max;
    } nums[] = {{"max_tokens", 1, 1, 1e9},       {"max_completion_tokens", 1, 1, 1e9},
                {"n", 1, 1, 128},                {"temperature", 0, 0, 2},
                {"top_p", 0, 0, 1},              {"presence_penalty", 0, -2, 2},
                {"frequency_penalty", 0, -2, 2}, {"seed", 1, -9.2e18, 9.2e18}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (strcmp(nums[i].name, name) != 0)
            continue;
        if (nums[i].integer ? !json_is_integer(v) : !json_is_number(v))
            return nums[i].integer ? "expected an integer" : "expected a number";
        double x = json_number_value(v);
        if (x < nums[i].min || x > nums[i].max) {
            snprintf(buf, len, "must be from %g to %g", nums[i].min, nums[i].max);
            return buf;
        }
    }
    if (!strcmp(name, "stream") && !json_is_boolean(v))
        return "expected true or false";
    return NULL;
}
