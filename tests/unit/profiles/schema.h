/*
 * A checker that walks a rendered profile against Apple's YAML payload schemas
 * (../shared/apple-schemas/mdm/profiles/): key names, plist types, allowed values
 * (rangelist), formats (regular expressions), required keys, repetition counts and whether the
 * key exists on the target platform.  Test-only; libyaml reads the schemas.
 */
#ifndef SCEPTER_TESTS_PROFILES_SCHEMA_H
#define SCEPTER_TESTS_PROFILES_SCHEMA_H

#include <stddef.h>

#include <plist/plist.h>

#include "common/buf.h"

/*
 * Check a whole profile (a Configuration dict) against TopLevel.yaml and each payload against
 * CommonPayloadKeys.yaml plus its own <PayloadType>.yaml.  os is "macOS", "iOS" or NULL (no
 * platform check).  Every violation is appended to problems, one per line ("path: reason").
 * Returns the number of violations.
 */
size_t schema_check_profile(plist_t profile, const char *os, struct buf *problems);

/*
 * The schema default of a key of a payload type, as text ("1024", "true", "RSA"), or NULL.
 * path is the key path under payloadkeys, e.g. "PayloadContent.Keysize".  Caller frees.
 */
char *schema_default(const char *payload_type, const char *path);

#endif
