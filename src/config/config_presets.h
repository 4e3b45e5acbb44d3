/*
 * config/config_presets.h — internal to src/config: reading telex.yaml's
 * presets: list (config_presets.c) for config_yaml.c.
 */
#ifndef TELEX_CONFIG_PRESETS_H
#define TELEX_CONFIG_PRESETS_H

#include "config/config_read.h"

/* v (present, not null) must be a list of presets; sets cfg->presets and
 * cfg->n_presets. Returns 0, -EINVAL or -ENOMEM with the message written. */
int cy_parse_presets(ctx_t *c, const yaml_node_t *v);

#endif
