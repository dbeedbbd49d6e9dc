/*
 * jansson wrappers with field-naming errors.
 */
#include "jsonx.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

json_t *jsonx_parse_object(const char *data, size_t len, struct scepter_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        scepter_err(err, SCEPTER_EINVAL, "body", "malformed JSON at line %d column %d: %s",
                    jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        scepter_err(err, SCEPTER_EINVAL, "body", "expected a JSON object");
        return NULL;
    }
    return root;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

int jsonx_only_keys(json_t *obj, const char *const *allowed, const char *prefix,
                    struct scepter_error *err)
{
    const char *key;
    json_t *v = NULL;

    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (!ok) {
            char field[64];
            snprintf(field, sizeof(field), "%s%s", prefix, key);
            return scepter_err(err, SCEPTER_EINVAL, field, "%s: unknown field", field);
        }
    }
    return 0;
}

static int lookup(json_t *obj, const char *key, const char *prefix, bool required, json_t **out,
                  struct scepter_error *err)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v)) {
        if (required) {
            char field[64];
            snprintf(field, sizeof(field), "%s%s", prefix, key);
            return scepter_err(err, SCEPTER_EINVAL, field, "%s: required", field);
        }
        return 1;
    }
    *out = v;
    return 0;
}

static int wrong_type(const char *key, const char *prefix, const char *want, const json_t *v,
                      struct scepter_error *err)
{
    char field[64];

    snprintf(field, sizeof(field), "%s%s", prefix, key);
    return scepter_err(err, SCEPTER_EINVAL, field, "%s: expected %s, got %s", field, want,
                       type_name(v));
}

int jsonx_get_string(json_t *obj, const char *key, const char *prefix, bool required,
                     const char **out, struct scepter_error *err)
{
    json_t *v = NULL;
    int rc = lookup(obj, key, prefix, required, &v, err);

    if (rc != 0)
        return rc;
    if (!json_is_string(v))
        return wrong_type(key, prefix, "string", v, err);
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        char field[64];
        snprintf(field, sizeof(field), "%s%s", prefix, key);
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: contains a NUL character", field);
    }
    *out = json_string_value(v);
    return 0;
}

int jsonx_get_int(json_t *obj, const char *key, const char *prefix, bool required, int64_t *out,
                  struct scepter_error *err)
{
    json_t *v = NULL;
    int rc = lookup(obj, key, prefix, required, &v, err);

    if (rc != 0)
        return rc;
    if (!json_is_integer(v))
        return wrong_type(key, prefix, "integer", v, err);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int jsonx_get_bool(json_t *obj, const char *key, const char *prefix, bool required, bool *out,
                   struct scepter_error *err)
{
    json_t *v = NULL;
    int rc = lookup(obj, key, prefix, required, &v, err);

    if (rc != 0)
        return rc;
    if (!json_is_boolean(v))
        return wrong_type(key, prefix, "boolean", v, err);
    *out = json_is_true(v);
    return 0;
}

int jsonx_get_object(json_t *obj, const char *key, const char *prefix, bool required, json_t **out,
                     struct scepter_error *err)
{
    json_t *v = NULL;
    int rc = lookup(obj, key, prefix, required, &v, err);

    if (rc != 0)
        return rc;
    if (!json_is_object(v))
        return wrong_type(key, prefix, "object", v, err);
    *out = v;
    return 0;
}

int jsonx_get_array(json_t *obj, const char *key, const char *prefix, bool required, json_t **out,
                    struct scepter_error *err)
{
    json_t *v = NULL;
    int rc = lookup(obj, key, prefix, required, &v, err);

    if (rc != 0)
        return rc;
    if (!json_is_array(v))
        return wrong_type(key, prefix, "array", v, err);
    *out = v;
    return 0;
}

char *jsonx_dump(const json_t *json)
{
    char *s = json_dumps(json, JSON_COMPACT | JSON_ENSURE_ASCII);
    char *copy;

    if (s == NULL)
        return xstrdup("null");
    copy = xstrdup(s);
    free(s);
    return copy;
}
