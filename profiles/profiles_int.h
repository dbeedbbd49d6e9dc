/*
 * profiles/profiles_int.h — private to profiles/: the pieces the policy parser, the template
 * builder and the enrollment renderer share (subject parsing into RDNs, variable scanning and
 * templating, payload-building helpers, text checks).  Not for other modules.
 */
#ifndef SCEPTER_PROFILES_PROFILES_INT_H
#define SCEPTER_PROFILES_PROFILES_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <plist/plist.h>

#include "common/buf.h"
#include "profiles/profiles.h"

/* The byte that brackets a variable marker in template XML: "\x7f<index>\x7f".  Policy text
 * and device values never contain it (control characters are refused). */
#define PV_MARK '\x7f'

/* Which device fact a server-substituted variable reads. */
enum pv_fact {
    PV_FACT_NONE = 0, /* resolved by the Mac only */
    PV_FACT_UDID,
    PV_FACT_SERIAL,
    PV_FACT_NAME,
    PV_FACT_MODEL,
    PV_FACT_PRODUCT,
    PV_FACT_OS,
    PV_FACT_PLATFORM,
};

/* Parallel to profile_variables(): what the server reads for variable i. */
struct pv_entry {
    enum pv_fact fact;     /* what the server fills in (when it does) */
    const char *fact_name; /* "serial_number", ... for error messages */
};

/* The variable table entry at index i (i < n of profile_variables()). */
const struct pv_entry *pv_entry(size_t i);
/* The device's value for a fact, or NULL. */
const char *pv_fact_value(const struct profile_device *d, enum pv_fact f);

/*
 * Check the %Name% tokens of s for a policy on platform: unknown names and (on iOS) Apple names
 * nothing can resolve are added to pr as errors naming field.  Returns the number of problems.
 */
size_t pv_check(const char *s, enum profile_platform platform, const char *field,
                struct profile_problems *pr);
/*
 * Append s to out with every token the server substitutes on platform replaced by a marker
 * (PV_MARK index PV_MARK); *used gets bit index set.  Tokens left for the device stay text.
 */
void pv_templatize(const char *s, enum profile_platform platform, struct buf *out, uint64_t *used);

/* One attribute of a subject: name (upper-case short name or OID) and value. */
struct subj_attr {
    char *name;
    char *value;
};
/* Parse a statement into attrs (caller frees with subj_free). */
int subj_parse(const char *stmt, const char *field, struct subj_attr **out, size_t *n,
               struct scepter_error *err);
void subj_free(struct subj_attr *a, size_t n);

/* Text checks.  has_ctl: a C0 control character or DEL (tab/newline allowed if allow_ws). */
bool txt_has_ctl(const char *s, bool allow_ws);
/* Valid UTF-8 without surrogates and without U+FFFE/U+FFFF (not characters in XML 1.0). */
bool txt_valid_utf8(const char *s, size_t len);

/* Problems: add a message verbatim (it already names the field). */
void pp_add_raw(struct profile_problems *pr, bool warning, const char *field, const char *msg);
/* Append the problems of src that dst does not already hold (same field and message). */
void pp_merge(struct profile_problems *dst, const struct profile_problems *src);
/* Is there already a problem recorded for field (or a sub-field of it)? */
bool pp_has_field(const struct profile_problems *pr, const char *field);

/* Build the common keys of a payload dict. */
void pl_payload_common(plist_t d, const char *type, const char *identifier, const char *uuid,
                       const char *display_name, const char *organization);
/* Check a reverse-DNS identifier (letters, digits, '.', '-', '_'; 1..200 bytes). */
bool pl_identifier_ok(const char *s);
/* A display name for a certificate: its CN, else the one-line subject (caller frees). */
char *pl_cert_display_name(const unsigned char *der, size_t len);

/* ---------------------------------------------------------------------------------------- */
/* Shared by the policy parser, the template builder and linked.c                            */

/* Add an error unless the field already has one (from the JSON layer). */
#define PP_ERR(pr, field, ...)                                                                     \
    do {                                                                                           \
        if (!pp_has_field((pr), (field)))                                                          \
            profile_problems_add((pr), false, (field), __VA_ARGS__);                               \
    } while (0)

/* Length, UTF-8 and control-character checks of an optional text field (NULL passes). */
void pl_check_text(struct profile_problems *pr, const char *field, const char *s, size_t max,
                   bool allow_ws);
/* A string field of obj; "" counts as unset for optional ones.  A copy or NULL. */
char *pl_get_str(json_t *obj, const char *key, const char *prefix, bool required,
                 struct profile_problems *pr);
/* A boolean field of obj into *out (left alone when absent). */
void pl_get_bool(json_t *obj, const char *key, const char *prefix, bool *out,
                 struct profile_problems *pr);
/* Refuse the keys of obj not in allowed (NULL-terminated), naming "<prefix><key>". */
void pl_unknown_keys(json_t *obj, const char *const *allowed, const char *prefix,
                     struct profile_problems *pr);

/*
 * A string list field: a JSON string (one entry; "" = none) or an array of strings (errors
 * name "<prefix><key>[i]"), at most max entries.  *out is replaced.
 */
void pl_get_strlist(json_t *obj, const char *key, const char *prefix, size_t max,
                    struct profile_strlist *out, struct profile_problems *pr);
void pl_strlist_clear(struct profile_strlist *l);
void pl_strlist_copy(struct profile_strlist *dst, const struct profile_strlist *src);
/* One entry as a JSON string, several as an array (what pl_get_strlist reads back). */
json_t *pl_strlist_json(const struct profile_strlist *l);
/* Always an array. */
json_t *pl_strlist_json_array(const struct profile_strlist *l);

/* A string value with the server-side variables of platform replaced by template markers. */
plist_t pl_tmpl_string(const char *s, enum profile_platform plat, uint64_t *used);

/* Linked payloads (linked.c). */
void pl_linked_clear(struct profile_linked *l);
void pl_linked_copy(struct profile_linked *dst, const struct profile_linked *src);
/* Read the "linked" object of the operator JSON (absent: nothing linked). */
void pl_linked_parse(json_t *root, struct profile_linked *l, struct profile_problems *pr);
/* The rules, with the policy's platform and keychain; errors name "linked.<kind>.<field>". */
void pl_linked_check(const struct profile_policy *p, struct profile_problems *pr);
/* The "linked" JSON object, or NULL when nothing is linked. */
json_t *pl_linked_json(const struct profile_linked *l);
/*
 * Append the linked payloads to content (a PayloadContent array), each naming scep_uuid as
 * its certificate; identifiers "<ident>.wifi", "<ident>.ethernet", "<ident>.vpn".
 */
void pl_linked_render(const struct profile_policy *p, plist_t content, const char *ident,
                      const char *scep_uuid, const char *org, uint64_t *used);

#endif
