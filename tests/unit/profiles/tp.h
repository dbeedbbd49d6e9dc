/*
 * Helpers shared by the profiles tests: a valid policy as JSON to start from, setting and
 * removing fields by dotted path, and assertions on the problem list.
 */
#ifndef SCEPTER_TESTS_PROFILES_TP_H
#define SCEPTER_TESTS_PROFILES_TP_H

#include <jansson.h>
#include <plist/plist.h>

#include "profiles/profiles.h"

#define TP_UDID "0000FE00-1A2B3C4D5E6F7081"

/* The DER of the SCEP test CA (scep-ca/ca.crt is PEM); frees. */
unsigned char *tp_ca_der(size_t *len);
/* A valid macOS policy (key_size 2048, one device and one group targeted). */
json_t *tp_base(void);
/* Set (steals v) or, with v NULL, remove the field at a dotted path ("scep.key_size"). */
void tp_set(json_t *root, const char *path, json_t *v);
/* Parse root into *p (caller clears both p and pr); returns the parser's code. */
int tp_parse(json_t *root, struct profile_policy *p, struct profile_problems *pr);
/* The first problem naming field, or NULL. */
const struct profile_problem *tp_find(const struct profile_problems *pr, const char *field);
/*
 * Parse root (decref'd here), assert it is refused, and that an error names field with a
 * message containing reason.
 */
void tp_expect_error(json_t *root, const char *field, const char *reason);
/* Parse root (decref'd here) and assert it is accepted. */
void tp_expect_ok(json_t *root);
/* Parse an XML plist (asserts), caller plist_free()s. */
plist_t tp_plist(const char *xml, size_t len);
/* tp_plist, and assert libplist writes exactly the same bytes back. */
plist_t tp_round_trip(const char *xml, size_t len);
/* The string at a key of a dict (asserts presence and type); borrowed. */
const char *tp_str(plist_t dict, const char *key);
uint64_t tp_uint(plist_t dict, const char *key);
/* The SCEP payload's PayloadContent of a rendered policy profile. */
plist_t tp_scep_content(plist_t profile);
/* Render a policy with no device (asserts success); caller frees. */
char *tp_render(const struct profile_policy *p, const struct profile_device *dev, size_t *len);
/* Deep equality of two plists. */
int tp_plist_equal(plist_t a, plist_t b);

#endif
