/*
 * upstream/provider.c — picks the adapter for a provider kind: openai.c for
 * openai and azure (same protocol, another URL and key header), demo.c for
 * demo, anthropic.c for anthropic.
 */
#include "upstream/provider.h"

telex_upstream_t *telex_upstream_start(const telex_upstream_env_t *env, const telex_provider_t *provider,
                                       json_t *body, int stream, const telex_upstream_sink_t *sink, void *user)
{
    const telex_provider_ops_t *ops = NULL;
    switch (provider->kind) {
    case TELEX_PROVIDER_OPENAI:
    case TELEX_PROVIDER_AZURE:
        ops = &telex_openai_ops;
        break;
    case TELEX_PROVIDER_DEMO:
        ops = &telex_demo_ops;
        break;
    case TELEX_PROVIDER_ANTHROPIC:
        ops = &telex_anthropic_ops;
        break;
    default:
        return NULL;
    }
    return ops->start(env, provider, body, stream, sink, user);
}

const char *telex_upstream_failure_name(telex_upstream_failure_kind_t kind)
{
    switch (kind) {
    case TELEX_UPSTREAM_CONNECT:
        return "connect";
    case TELEX_UPSTREAM_TIMEOUT:
        return "timeout";
    case TELEX_UPSTREAM_STATUS:
        return "status";
    case TELEX_UPSTREAM_PROTOCOL:
        return "protocol";
    case TELEX_UPSTREAM_BAD_JSON:
        return "bad_json";
    case TELEX_UPSTREAM_CUT:
        return "cut";
    case TELEX_UPSTREAM_ERROR_EVENT:
        return "error_event";
    }
    return "unknown";
}
