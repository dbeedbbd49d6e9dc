/*
 * JSON helpers on jansson for the operator API and policy files: strict parsing, refusing
 * unknown keys, and typed lookups whose errors name the field by its dotted path
 * ("scep.key_size").  Borrowed values stay valid while the json_t lives.
 */
#ifndef SCEPTER_COMMON_JSONX_H
#define SCEPTER_COMMON_JSONX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "attr.h"
#include "error.h"

/* Parse text whose root must be an object; the result is the caller's (json_decref). */
json_t *jsonx_parse_object(const char *data, size_t len, struct scepter_error *err);

/*
 * Fail with the first key of obj not in allowed (NULL-terminated); prefix ("" or "scep.")
 * is prepended to the field name in the error.
 */
int jsonx_only_keys(json_t *obj, const char *const *allowed, const char *prefix,
                    struct scepter_error *err) WUR;

/*
 * Typed lookups: 0 when present with the right type, 1 when absent (or null) and optional,
 * SCEPTER_EINVAL with err naming "<prefix><key>" otherwise.
 */
int jsonx_get_string(json_t *obj, const char *key, const char *prefix, bool required,
                     const char **out, struct scepter_error *err) WUR;
int jsonx_get_int(json_t *obj, const char *key, const char *prefix, bool required, int64_t *out,
                  struct scepter_error *err) WUR;
int jsonx_get_bool(json_t *obj, const char *key, const char *prefix, bool required, bool *out,
                   struct scepter_error *err) WUR;
int jsonx_get_object(json_t *obj, const char *key, const char *prefix, bool required, json_t **out,
                     struct scepter_error *err) WUR;
int jsonx_get_array(json_t *obj, const char *key, const char *prefix, bool required, json_t **out,
                    struct scepter_error *err) WUR;

/* Compact serialization (caller frees). */
char *jsonx_dump(const json_t *json);

#endif
