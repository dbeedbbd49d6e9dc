/*
 * libplist wrappers with error reporting.
 */
#include "plistx.h"

#include <stdlib.h>
#include <string.h>

#include "plistscan.h"
#include "xmalloc.h"

const char *plistx_type_name(plist_type t)
{
    switch (t) {
    case PLIST_BOOLEAN:
        return "boolean";
    case PLIST_UINT:
        return "integer";
    case PLIST_REAL:
        return "real";
    case PLIST_STRING:
        return "string";
    case PLIST_ARRAY:
        return "array";
    case PLIST_DICT:
        return "dict";
    case PLIST_DATE:
        return "date";
    case PLIST_DATA:
        return "data";
    case PLIST_KEY:
        return "key";
    case PLIST_UID:
        return "uid";
    default:
        return "none";
    }
}

int plistx_parse_dict(const void *data, size_t len, plist_t *out, struct scepter_error *err)
{
    plist_t p = NULL;
    const char *s = data;

    *out = NULL;
    if (len == 0)
        return scepter_err(err, SCEPTER_EINVAL, "body", "empty body: expected a plist");
    if (len > UINT32_MAX)
        return scepter_err(err, SCEPTER_ETOOBIG, "body", "plist too large");
    /* libplist recurses and expands shared objects: bound the input before it sees it. */
    if (plistscan_check(data, len, NULL, err) != 0)
        return SCEPTER_EINVAL;
    if (plist_is_binary(s, (uint32_t)len)) {
        plist_from_bin(s, (uint32_t)len, &p);
    } else {
        /* libplist reads up to len; make sure the XML is a plist and not some other text. */
        if (memmem(s, len, "<plist", 6) == NULL)
            return scepter_err(err, SCEPTER_EINVAL, "body", "body is not a plist");
        plist_from_xml(s, (uint32_t)len, &p);
    }
    if (p == NULL)
        return scepter_err(err, SCEPTER_EINVAL, "body", "malformed or truncated plist");
    if (plist_get_node_type(p) != PLIST_DICT) {
        plist_type t = plist_get_node_type(p);
        plist_free(p);
        return scepter_err(err, SCEPTER_EINVAL, "body", "plist root is %s, expected dict",
                           plistx_type_name(t));
    }
    *out = p;
    return 0;
}

static int lookup(plist_t dict, const char *key, bool required, plist_type want, plist_t *node,
                  struct scepter_error *err)
{
    plist_t n = dict ? plist_dict_get_item(dict, key) : NULL;

    if (n == NULL) {
        if (required)
            return scepter_err(err, SCEPTER_EINVAL, key, "%s: required key is missing", key);
        return 1;
    }
    if (plist_get_node_type(n) != want)
        return scepter_err(err, SCEPTER_EINVAL, key, "%s: expected %s, got %s", key,
                           plistx_type_name(want), plistx_type_name(plist_get_node_type(n)));
    *node = n;
    return 0;
}

int plistx_get_string(plist_t dict, const char *key, bool required, const char **out,
                      struct scepter_error *err)
{
    plist_t n;
    int rc = lookup(dict, key, required, PLIST_STRING, &n, err);

    if (rc == 0)
        *out = plist_get_string_ptr(n, NULL);
    return rc;
}

int plistx_get_data(plist_t dict, const char *key, bool required, const unsigned char **out,
                    size_t *len, struct scepter_error *err)
{
    plist_t n;
    uint64_t l = 0;
    int rc = lookup(dict, key, required, PLIST_DATA, &n, err);

    if (rc == 0) {
        *out = (const unsigned char *)plist_get_data_ptr(n, &l);
        *len = (size_t)l;
    }
    return rc;
}

int plistx_get_bool(plist_t dict, const char *key, bool required, bool *out,
                    struct scepter_error *err)
{
    plist_t n;
    int rc = lookup(dict, key, required, PLIST_BOOLEAN, &n, err);

    if (rc == 0) {
        uint8_t v = 0;
        plist_get_bool_val(n, &v);
        *out = v != 0;
    }
    return rc;
}

int plistx_get_uint(plist_t dict, const char *key, bool required, uint64_t *out,
                    struct scepter_error *err)
{
    plist_t n;
    int rc = lookup(dict, key, required, PLIST_UINT, &n, err);

    if (rc == 0)
        plist_get_uint_val(n, out);
    return rc;
}

int plistx_get_dict(plist_t dict, const char *key, bool required, plist_t *out,
                    struct scepter_error *err)
{
    return lookup(dict, key, required, PLIST_DICT, out, err);
}

int plistx_get_array(plist_t dict, const char *key, bool required, plist_t *out,
                     struct scepter_error *err)
{
    return lookup(dict, key, required, PLIST_ARRAY, out, err);
}

char *plistx_to_xml(plist_t plist, size_t *len)
{
    char *xml = NULL, *copy;
    uint32_t l = 0;

    plist_to_xml(plist, &xml, &l);
    if (xml == NULL)
        return NULL;
    copy = xmemdup0(xml, l);
    plist_to_xml_free(xml);
    if (len)
        *len = l;
    return copy;
}

void plistx_set_string(plist_t dict, const char *key, const char *val)
{
    plist_dict_set_item(dict, key, plist_new_string(val));
}

void plistx_set_bool(plist_t dict, const char *key, bool val)
{
    plist_dict_set_item(dict, key, plist_new_bool(val ? 1 : 0));
}

void plistx_set_uint(plist_t dict, const char *key, uint64_t val)
{
    plist_dict_set_item(dict, key, plist_new_uint(val));
}

void plistx_set_data(plist_t dict, const char *key, const void *data, size_t len)
{
    plist_dict_set_item(dict, key, plist_new_data(data, len));
}
