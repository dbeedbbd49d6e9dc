/*
 * Plist helpers on libplist: parse network input into a dict with a clear error, and read
 * typed values out of a dict, naming the key and the reason when a value is missing or has
 * the wrong type.  Values returned as `const` are borrowed from the plist.
 */
#ifndef SCEPTER_COMMON_PLISTX_H
#define SCEPTER_COMMON_PLISTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <plist/plist.h>

#include "attr.h"
#include "error.h"

/*
 * Parse an XML or binary plist whose root is a dict.  *out is the caller's to plist_free.
 * The bytes pass plistscan_check() (default limits: nesting, expanded nodes, binary offsets
 * and references) before libplist sees them.
 */
int plistx_parse_dict(const void *data, size_t len, plist_t *out, struct scepter_error *err) WUR;

/*
 * Typed lookups.  Return 0 when the key is present with the right type, 1 when it is absent
 * and !required (*out untouched), SCEPTER_EINVAL (err names the key) otherwise.
 */
int plistx_get_string(plist_t dict, const char *key, bool required, const char **out,
                      struct scepter_error *err) WUR;
int plistx_get_data(plist_t dict, const char *key, bool required, const unsigned char **out,
                    size_t *len, struct scepter_error *err) WUR;
int plistx_get_bool(plist_t dict, const char *key, bool required, bool *out,
                    struct scepter_error *err) WUR;
int plistx_get_uint(plist_t dict, const char *key, bool required, uint64_t *out,
                    struct scepter_error *err) WUR;
int plistx_get_dict(plist_t dict, const char *key, bool required, plist_t *out,
                    struct scepter_error *err) WUR;
int plistx_get_array(plist_t dict, const char *key, bool required, plist_t *out,
                     struct scepter_error *err) WUR;

/* Serialize to XML; the result is the caller's (free()). */
char *plistx_to_xml(plist_t plist, size_t *len);
/* Convenience setters that take ownership of nothing. */
void plistx_set_string(plist_t dict, const char *key, const char *val);
void plistx_set_bool(plist_t dict, const char *key, bool val);
void plistx_set_uint(plist_t dict, const char *key, uint64_t val);
void plistx_set_data(plist_t dict, const char *key, const void *data, size_t len);
const char *plistx_type_name(plist_type t);

#endif
