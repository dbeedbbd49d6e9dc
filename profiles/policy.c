/*
 * The SCEP Profiles policy model: parsing the operator JSON into the canonical form, the
 * validation rules of the admin guide (each problem named by its dotted field path, all of them
 * listed), the conversions done for the user (fingerprint forms, key usage names, root
 * certificate encodings) and the way back to JSON for API responses.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/jsonx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "profiles/profiles_int.h"

#define MAX_NAME      255
#define MAX_NOTES     8192
#define MAX_CHALLENGE 1024
#define MAX_URL       2048
#define MAX_TEXT      1024 /* subject, SAN values */
#define MAX_DEVICE_ID 64
#define MAX_DEVICES   200000
#define MAX_GROUPS    10000
#define MAX_SANS      32 /* values per subjectAltName kind */

void pl_strlist_clear(struct profile_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void pl_strlist_copy(struct profile_strlist *dst, const struct profile_strlist *src)
{
    dst->n = src->n;
    dst->v = src->n ? xcalloc(src->n, sizeof(*dst->v)) : NULL;
    for (size_t i = 0; i < src->n; i++)
        dst->v[i] = xstrdup(src->v[i]);
}

json_t *pl_strlist_json_array(const struct profile_strlist *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(a, json_string(l->v[i]));
    return a;
}

json_t *pl_strlist_json(const struct profile_strlist *l)
{
    return l->n == 1 ? json_string(l->v[0]) : pl_strlist_json_array(l);
}

const char *profile_platform_name(enum profile_platform p)
{
    switch (p) {
    case PROFILE_PLATFORM_MACOS:
        return "macos";
    case PROFILE_PLATFORM_IOS:
        return "ios";
    default:
        return "";
    }
}

enum profile_platform profile_platform_parse(const char *s)
{
    if (s && strcmp(s, "macos") == 0)
        return PROFILE_PLATFORM_MACOS;
    if (s && strcmp(s, "ios") == 0)
        return PROFILE_PLATFORM_IOS;
    return PROFILE_PLATFORM_NONE;
}

void profile_policy_init(struct profile_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->key_size = PROFILE_DEFAULT_KEY_SIZE;
    p->retries = PROFILE_DEFAULT_RETRIES;
    p->retry_delay = PROFILE_DEFAULT_RETRY_DELAY;
    p->key_extractable = false;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void profile_policy_clear(struct profile_policy *p)
{
    if (p == NULL)
        return;
    free(p->name);
    free(p->notes);
    free(p->scep_url);
    free(p->scep_name);
    free(p->scep_challenge);
    free(p->scep_fingerprint);
    free(p->scep_subject);
    free(p->root_cert);
    pl_strlist_clear(&p->san_dns);
    pl_strlist_clear(&p->san_ntpn);
    pl_strlist_clear(&p->san_rfc822);
    pl_strlist_clear(&p->san_uri);
    pl_linked_clear(&p->linked);
    free_list(p->target_devices, p->n_target_devices);
    free_list(p->target_groups, p->n_target_groups);
    profile_policy_init(p);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static char **dup_list(char *const *v, size_t n)
{
    char **out = n ? xcalloc(n, sizeof(*out)) : NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

void profile_policy_copy(struct profile_policy *dst, const struct profile_policy *src)
{
    *dst = *src;
    dst->name = dup_or_null(src->name);
    dst->notes = dup_or_null(src->notes);
    dst->scep_url = dup_or_null(src->scep_url);
    dst->scep_name = dup_or_null(src->scep_name);
    dst->scep_challenge = dup_or_null(src->scep_challenge);
    dst->scep_fingerprint = dup_or_null(src->scep_fingerprint);
    dst->scep_subject = dup_or_null(src->scep_subject);
    dst->root_cert = src->root_cert ? xmemdup(src->root_cert, src->root_cert_len) : NULL;
    pl_strlist_copy(&dst->san_dns, &src->san_dns);
    pl_strlist_copy(&dst->san_ntpn, &src->san_ntpn);
    pl_strlist_copy(&dst->san_rfc822, &src->san_rfc822);
    pl_strlist_copy(&dst->san_uri, &src->san_uri);
    pl_linked_copy(&dst->linked, &src->linked);
    dst->target_devices = dup_list(src->target_devices, src->n_target_devices);
    dst->target_groups = dup_list(src->target_groups, src->n_target_groups);
}

/* ---------------------------------------------------------------------------------------- */
/* Fingerprint                                                                              */

static bool is_delim(char c)
{
    return c == ':' || c == ' ' || c == '-' || c == '\t';
}

int profile_fingerprint_parse(const char *text, const char *field, unsigned char out[32],
                              size_t *outlen, struct scepter_error *err)
{
    const char *f = field ? field : "fingerprint";
    char hex[129];
    size_t nhex = 0, ndelim = 0, len;
    bool hexform = true;
    unsigned char *bytes = NULL;
    size_t blen = 0;
    int rc = 0;

    *outlen = 0;
    while (*text && isspace((unsigned char)*text))
        text++;
    len = strlen(text);
    while (len && isspace((unsigned char)text[len - 1]))
        len--;
    if (len == 0)
        return scepter_err(err, SCEPTER_EINVAL, f, "%s: empty", f);
    if (len > 256)
        return scepter_err(err, SCEPTER_EINVAL, f,
                           "%s: %zu characters; a SHA-1 or SHA-256 fingerprint is far shorter", f,
                           len);
    for (size_t i = 0; i < len; i++) {
        if (isxdigit((unsigned char)text[i])) {
            if (nhex < sizeof(hex) - 1)
                hex[nhex] = (char)tolower((unsigned char)text[i]);
            nhex++;
        } else if (is_delim(text[i])) {
            ndelim++;
        } else {
            hexform = false;
        }
    }
    if (hexform && (nhex == 40 || nhex == 64)) {
        if (hex_decode(hex, nhex, &bytes, &blen) != 0) {
            rc = scepter_err(err, SCEPTER_EINVAL, f, "%s: malformed hex", f);
            goto out;
        }
    } else if (hexform && ndelim > 0) {
        rc = scepter_err(err, SCEPTER_EINVAL, f,
                         "%s: %zu hex digits; a SHA-1 fingerprint has 40 and a SHA-256 "
                         "fingerprint 64",
                         f, nhex);
        goto out;
    } else {
        /* Base64, as `xxd -r -p | base64` prints it (unpadded accepted too). */
        if (base64_decode(text, len, true, &bytes, &blen) != 0) {
            if (hexform)
                rc = scepter_err(err, SCEPTER_EINVAL, f,
                                 "%s: %zu hex digits; a SHA-1 fingerprint has 40 and a "
                                 "SHA-256 fingerprint 64",
                                 f, nhex);
            else
                rc = scepter_err(err, SCEPTER_EINVAL, f,
                                 "%s: neither hex (e.g. 11:22:33:...) nor base64", f);
            goto out;
        }
        if (blen != 20 && blen != 32) {
            if (hexform)
                rc = scepter_err(err, SCEPTER_EINVAL, f,
                                 "%s: %zu hex digits; a SHA-1 fingerprint has 40 and a "
                                 "SHA-256 fingerprint 64",
                                 f, nhex);
            else
                rc = scepter_err(err, SCEPTER_EINVAL, f,
                                 "%s: base64 decodes to %zu bytes; a SHA-1 fingerprint is 20 "
                                 "bytes and a SHA-256 fingerprint 32",
                                 f, blen);
            goto out;
        }
    }
    memcpy(out, bytes, blen);
    *outlen = blen;
out:
    free(bytes);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Validation of the canonical form                                                         */

#define ERR PP_ERR

static size_t count_dups(char *const *v, size_t n, size_t *dup);

void pl_check_text(struct profile_problems *pr, const char *field, const char *s, size_t max,
                   bool allow_ws)
{
    size_t len;

    if (s == NULL)
        return;
    len = strlen(s);
    if (len > max)
        ERR(pr, field, "%zu bytes; at most %zu", len, max);
    else if (!txt_valid_utf8(s, len))
        ERR(pr, field, "not valid UTF-8");
    else if (txt_has_ctl(s, allow_ws))
        ERR(pr, field,
            allow_ws ? "contains a control character"
                     : "contains a control character (line breaks and tabs too)");
}

static void check_text(struct profile_problems *pr, const char *field, const char *s, size_t max,
                       bool allow_ws)
{
    pl_check_text(pr, field, s, max, allow_ws);
}

static void check_url(struct profile_problems *pr, const char *url)
{
    const char *f = "scep.url", *host;

    if (url == NULL || url[0] == '\0') {
        ERR(pr, f,
            "required: the SCEP server's URL, e.g. http://scep-server/cgi-bin/pkiclient.exe");
        return;
    }
    check_text(pr, f, url, MAX_URL, false);
    if (strncasecmp(url, "http://", 7) == 0)
        host = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        host = url + 8;
    else {
        ERR(pr, f, "must start with http:// or https://");
        return;
    }
    if (*host == '\0' || *host == '/' || *host == ':' || *host == '?' || *host == '#')
        ERR(pr, f, "has no host name");
    for (const char *p = url; *p; p++)
        if (*p == ' ') {
            ERR(pr, f, "contains a space (percent-encode it as %%20)");
            break;
        }
}

static void check_san_value(struct profile_problems *pr, enum profile_platform plat,
                            const char *kind, const char *field, const char *v)
{
    if (v == NULL)
        return;
    if (v[0] == '\0') {
        ERR(pr, field, "empty; leave the field out instead");
        return;
    }
    check_text(pr, field, v, MAX_TEXT, false);
    if (!pp_has_field(pr, field))
        pv_check(v, plat, field, pr);
    if (pp_has_field(pr, field))
        return;
    if (strcmp(kind, "rfc822_name") == 0) {
        const char *at = strchr(v, '@');
        if (at == NULL || at == v || at[1] == '\0')
            ERR(pr, field, "an RFC 822 name is an email address (local@domain)");
    } else if (strcmp(kind, "uri") == 0) {
        const char *c = strchr(v, ':');
        bool ok = c != NULL && c != v && isalpha((unsigned char)v[0]);
        for (const char *p = v; ok && p < c; p++)
            ok = isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.';
        if (!ok)
            ERR(pr, field, "a URI starts with a scheme, e.g. https://ca.example.com/");
    } else if (strcmp(kind, "dns_name") == 0) {
        if (strpbrk(v, " /@") != NULL)
            ERR(pr, field, "a DNS name has no spaces, '/' or '@'");
    }
}

/* Every value of one subjectAltName kind: "<kind>" for a single value, "<kind>[i]" for lists. */
static void check_san(struct profile_problems *pr, enum profile_platform plat, const char *kind,
                      const struct profile_strlist *l)
{
    char field[64];
    size_t dup = 0;

    snprintf(field, sizeof(field), "scep.subject_alt_name.%s", kind);
    if (l->n > MAX_SANS) {
        ERR(pr, field, "%zu values; at most %d", l->n, MAX_SANS);
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (l->n > 1)
            snprintf(field, sizeof(field), "scep.subject_alt_name.%s[%zu]", kind, i);
        check_san_value(pr, plat, kind, field, l->v[i]);
    }
    if (count_dups(l->v, l->n, &dup) > 0) {
        snprintf(field, sizeof(field), "scep.subject_alt_name.%s[%zu]", kind, dup);
        ERR(pr, field, "repeats an earlier value");
    }
}

static bool device_id_ok(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > MAX_DEVICE_ID)
        return false;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.' || *p == ':'))
            return false;
    return true;
}

static int cmp_idx(const void *a, const void *b, void *arg)
{
    char *const *v = arg;
    return strcmp(v[*(const size_t *)a], v[*(const size_t *)b]);
}

/* Number of entries equal to an earlier one; first duplicate's index in *dup. */
static size_t count_dups(char *const *v, size_t n, size_t *dup)
{
    size_t *idx, ndup = 0;

    if (n < 2)
        return 0;
    idx = xcalloc(n, sizeof(*idx));
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof(*idx), cmp_idx, (void *)v);
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[idx[i]], v[idx[i - 1]]) == 0) {
            size_t later = idx[i] > idx[i - 1] ? idx[i] : idx[i - 1];
            if (ndup == 0 || later < *dup)
                *dup = later;
            ndup++;
        }
    free(idx);
    return ndup;
}

static void check_targets(const struct profile_policy *p, struct profile_problems *pr)
{
    size_t dup = 0, nd;

    if (p->n_target_devices > MAX_DEVICES)
        ERR(pr, "targets.devices", "%zu devices; at most %d (use device groups)",
            p->n_target_devices, MAX_DEVICES);
    if (p->n_target_groups > MAX_GROUPS)
        ERR(pr, "targets.device_groups", "%zu groups; at most %d", p->n_target_groups, MAX_GROUPS);
    for (size_t i = 0; i < p->n_target_devices; i++) {
        if (!device_id_ok(p->target_devices[i])) {
            char f[64];
            snprintf(f, sizeof(f), "targets.devices[%zu]", i);
            ERR(pr, f,
                "\"%.64s\" is not a device id (UDID: letters, digits and '-', at most %d "
                "characters)",
                p->target_devices[i], MAX_DEVICE_ID);
        }
    }
    for (size_t i = 0; i < p->n_target_groups; i++) {
        char f[64];
        snprintf(f, sizeof(f), "targets.device_groups[%zu]", i);
        if (str_empty(p->target_groups[i]))
            ERR(pr, f, "empty group name");
        else
            check_text(pr, f, p->target_groups[i], MAX_NAME, false);
    }
    if ((nd = count_dups(p->target_devices, p->n_target_devices, &dup)) > 0) {
        char f[64];
        snprintf(f, sizeof(f), "targets.devices[%zu]", dup);
        profile_problems_add(pr, true, f,
                             "%zu duplicate device id(s); each device gets the "
                             "profile once",
                             nd);
    }
    if ((nd = count_dups(p->target_groups, p->n_target_groups, &dup)) > 0) {
        char f[64];
        snprintf(f, sizeof(f), "targets.device_groups[%zu]", dup);
        profile_problems_add(pr, true, f, "%zu duplicate group name(s)", nd);
    }
    if (p->n_target_devices == 0 && p->n_target_groups == 0)
        profile_problems_add(pr, true, "targets",
                             "no device or device group: the policy is saved but takes no "
                             "effect until it targets one");
}

static void check_root_cert(const struct profile_policy *p, struct profile_problems *pr)
{
    const char *f = "scep.root_certificate";
    struct scepter_error err;
    X509 *cert;

    if (p->root_cert == NULL)
        return;
    if (p->root_cert_len >= PROFILE_MAX_ROOT_CERT) {
        ERR(pr, f, "%zu bytes; the file must be smaller than 1 MB", p->root_cert_len);
        return;
    }
    cert = crypto_cert_parse(p->root_cert, p->root_cert_len, f, &err);
    if (cert == NULL) {
        if (!pp_has_field(pr, f))
            pp_add_raw(pr, false, f, err.msg);
        return;
    }
    if (X509_check_ca(cert) == 0)
        profile_problems_add(pr, true, f,
                             "not a CA certificate (no basicConstraints CA:TRUE); devices "
                             "will add it to their trusted anchors anyway");
    X509_free(cert);
}

int profile_policy_check(const struct profile_policy *p, struct profile_problems *pr)
{
    size_t before = pr->n_errors;
    enum profile_platform plat = p->platform;

    if (p->name == NULL || str_empty(p->name)) {
        ERR(pr, "name", "required");
    } else {
        bool blank = true;
        for (const char *c = p->name; *c && blank; c++)
            blank = isspace((unsigned char)*c) != 0;
        if (blank)
            ERR(pr, "name", "must not be blank");
        check_text(pr, "name", p->name, MAX_NAME, false);
    }
    if (plat != PROFILE_PLATFORM_MACOS && plat != PROFILE_PLATFORM_IOS)
        ERR(pr, "platform", "must be \"macos\" or \"ios\" (iOS covers iPhone and iPad)");
    check_text(pr, "notes", p->notes, MAX_NOTES, true);
    if (p->expires_in < 0 || p->expires_in > PROFILE_MAX_EXPIRES_IN)
        profile_problems_add(pr, false, "expires_in",
                             "%lld is not between 1 second and 365 days (0: no expiry)",
                             (long long)p->expires_in);

    check_url(pr, p->scep_url);
    check_text(pr, "scep.name", p->scep_name, MAX_NAME, false);
    check_text(pr, "scep.challenge", p->scep_challenge, MAX_CHALLENGE, false);
    if (p->scep_fingerprint) {
        size_t l = strlen(p->scep_fingerprint);
        bool ok = l == 40 || l == 64;
        for (size_t i = 0; ok && i < l; i++)
            ok = isxdigit((unsigned char)p->scep_fingerprint[i]) &&
                 !isupper((unsigned char)p->scep_fingerprint[i]);
        if (!ok)
            ERR(pr, "scep.fingerprint", "stored form must be 40 or 64 lower-case hex digits");
    }
    if (p->scep_subject) {
        struct subj_attr *a = NULL;
        size_t n = 0;
        struct scepter_error err;
        check_text(pr, "scep.subject", p->scep_subject, MAX_TEXT, false);
        if (!pp_has_field(pr, "scep.subject")) {
            if (subj_parse(p->scep_subject, "scep.subject", &a, &n, &err) != 0)
                pp_add_raw(pr, false, "scep.subject", err.msg);
            else
                for (size_t i = 0; i < n; i++)
                    pv_check(a[i].value, plat, "scep.subject", pr);
            subj_free(a, n);
        }
    }
    if (p->key_size != 1024 && p->key_size != 2048 && p->key_size != 4096)
        ERR(pr, "scep.key_size", "%lld is not one of 1024, 2048, 4096", (long long)p->key_size);
    else if (p->key_size == 1024)
        profile_problems_add(pr, true, "scep.key_size",
                             "1024-bit RSA keys are weak; use 2048 or 4096 unless the CA "
                             "requires 1024");
    if (p->retries < 0 || p->retries > PROFILE_MAX_RETRIES)
        ERR(pr, "scep.retries", "%lld is out of range 0..%d", (long long)p->retries,
            PROFILE_MAX_RETRIES);
    if (p->retry_delay < 0 || p->retry_delay > PROFILE_MAX_RETRY_DELAY)
        ERR(pr, "scep.retry_delay", "%lld seconds is out of range 0..%d", (long long)p->retry_delay,
            PROFILE_MAX_RETRY_DELAY);
    if (p->key_usage & ~(int64_t)(PROFILE_KEY_USAGE_SIGNING | PROFILE_KEY_USAGE_ENCRYPTION))
        ERR(pr, "scep.key_usage",
            "bitmask %lld has bits other than 1 (signing) and 4 "
            "(encryption)",
            (long long)p->key_usage);
    check_root_cert(p, pr);
    check_san(pr, plat, "dns_name", &p->san_dns);
    check_san(pr, plat, "nt_principal_name", &p->san_ntpn);
    check_san(pr, plat, "rfc822_name", &p->san_rfc822);
    check_san(pr, plat, "uri", &p->san_uri);
    if (p->allow_all_apps_access && plat == PROFILE_PLATFORM_IOS)
        ERR(pr, "scep.allow_all_apps_access",
            "macOS only (AllowAllAppsAccess); on iOS and iPadOS a SCEP identity is reachable "
            "only by the payloads of its profile");
    if (p->keychain == PROFILE_KEYCHAIN_USER && plat == PROFILE_PLATFORM_IOS)
        ERR(pr, "scep.keychain",
            "\"user\" is macOS only (a user's login keychain, PayloadScope User); iOS and "
            "iPadOS have one keychain: use \"device\"");
    pl_linked_check(p, pr);
    check_targets(p, pr);
    return pr->n_errors > before ? SCEPTER_EINVAL : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON in                                                                                  */

static const char *const g_top_keys[] = {"name",    "platform", "notes",      "type", "scep",
                                         "targets", "linked",   "expires_in", "ddm",  NULL};
static const char *const g_scep_keys[] = {"url",
                                          "name",
                                          "challenge",
                                          "fingerprint",
                                          "key_size",
                                          "subject",
                                          "retries",
                                          "retry_delay",
                                          "key_extractable",
                                          "key_usage",
                                          "root_certificate",
                                          "subject_alt_name",
                                          "allow_all_apps_access",
                                          "keychain",
                                          NULL};
static const char *const g_san_keys[] = {"dns_name", "nt_principal_name", "rfc822_name", "uri",
                                         NULL};
static const char *const g_target_keys[] = {"devices", "device_groups", NULL};

void pl_unknown_keys(json_t *obj, const char *const *allowed, const char *prefix,
                     struct profile_problems *pr)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (!ok) {
            char field[64];
            snprintf(field, sizeof(field), "%s%s", prefix, key);
            profile_problems_add(pr, false, field, "unknown field");
        }
    }
}

static void unknown_keys(json_t *obj, const char *const *allowed, const char *prefix,
                         struct profile_problems *pr)
{
    pl_unknown_keys(obj, allowed, prefix, pr);
}

void pl_get_bool(json_t *obj, const char *key, const char *prefix, bool *out,
                 struct profile_problems *pr)
{
    struct scepter_error err;

    if (jsonx_get_bool(obj, key, prefix, false, out, &err) < 0)
        pp_add_raw(pr, false, err.field, err.msg);
}

void pl_get_strlist(json_t *obj, const char *key, const char *prefix, size_t max,
                    struct profile_strlist *out, struct profile_problems *pr)
{
    json_t *v = json_object_get(obj, key), *e;
    char f[64];
    size_t i;

    pl_strlist_clear(out);
    snprintf(f, sizeof(f), "%s%s", prefix, key);
    if (v == NULL || json_is_null(v))
        return;
    if (json_is_string(v)) {
        if (strlen(json_string_value(v)) != json_string_length(v))
            profile_problems_add(pr, false, f, "contains a NUL character");
        else if (json_string_length(v) > 0) {
            out->v = xcalloc(1, sizeof(*out->v));
            out->v[out->n++] = xstrdup(json_string_value(v));
        }
        return;
    }
    if (!json_is_array(v)) {
        profile_problems_add(pr, false, f, "expected a string or an array of strings");
        return;
    }
    if (json_array_size(v) > max) {
        profile_problems_add(pr, false, f, "%zu values; at most %zu", json_array_size(v), max);
        return;
    }
    out->v = json_array_size(v) ? xcalloc(json_array_size(v), sizeof(*out->v)) : NULL;
    json_array_foreach(v, i, e)
    {
        snprintf(f, sizeof(f), "%s%s[%zu]", prefix, key, i);
        if (!json_is_string(e))
            profile_problems_add(pr, false, f, "expected a string");
        else if (strlen(json_string_value(e)) != json_string_length(e))
            profile_problems_add(pr, false, f, "contains a NUL character");
        else if (json_string_length(e) == 0)
            profile_problems_add(pr, false, f, "empty; leave the value out instead");
        else
            out->v[out->n++] = xstrdup(json_string_value(e));
    }
}

char *pl_get_str(json_t *obj, const char *key, const char *prefix, bool required,
                 struct profile_problems *pr)
{
    const char *s = NULL;
    struct scepter_error err;
    int rc = jsonx_get_string(obj, key, prefix, required, &s, &err);

    if (rc < 0) {
        pp_add_raw(pr, false, err.field, err.msg);
        return NULL;
    }
    if (rc == 1 || (!required && s[0] == '\0'))
        return NULL;
    return xstrdup(s);
}

/* A string field; "" counts as unset for optional ones.  Returns a copy or NULL. */
static char *get_str(json_t *obj, const char *key, const char *prefix, bool required,
                     struct profile_problems *pr)
{
    return pl_get_str(obj, key, prefix, required, pr);
}

static void get_int(json_t *obj, const char *key, const char *prefix, int64_t *out,
                    struct profile_problems *pr)
{
    struct scepter_error err;

    if (jsonx_get_int(obj, key, prefix, false, out, &err) < 0)
        pp_add_raw(pr, false, err.field, err.msg);
}

static void get_str_list(json_t *obj, const char *key, const char *prefix, char ***out, size_t *n,
                         struct profile_problems *pr)
{
    json_t *arr = NULL, *v;
    struct scepter_error err;
    size_t i;

    if (jsonx_get_array(obj, key, prefix, false, &arr, &err) < 0) {
        pp_add_raw(pr, false, err.field, err.msg);
        return;
    }
    if (arr == NULL)
        return;
    if (json_array_size(arr) > MAX_DEVICES) {
        char f[64];
        snprintf(f, sizeof(f), "%s%s", prefix, key);
        profile_problems_add(pr, false, f, "%zu entries; at most %d", json_array_size(arr),
                             MAX_DEVICES);
        return;
    }
    *out = json_array_size(arr) ? xcalloc(json_array_size(arr), sizeof(char *)) : NULL;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
            char f[64];
            snprintf(f, sizeof(f), "%s%s[%zu]", prefix, key, i);
            profile_problems_add(
                pr, false, f, json_is_string(v) ? "contains a NUL character" : "expected a string");
            continue;
        }
        (*out)[(*n)++] = xstrdup(json_string_value(v));
    }
}

static void parse_key_usage(json_t *scep, struct profile_policy *p, struct profile_problems *pr)
{
    json_t *arr = NULL, *v;
    struct scepter_error err;
    size_t i;

    if (jsonx_get_array(scep, "key_usage", "scep.", false, &arr, &err) < 0) {
        pp_add_raw(pr, false, err.field, err.msg);
        return;
    }
    p->key_usage = 0;
    json_array_foreach(arr, i, v)
    {
        char f[64];
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        snprintf(f, sizeof(f), "scep.key_usage[%zu]", i);
        if (s && strcmp(s, "signing") == 0)
            p->key_usage |= PROFILE_KEY_USAGE_SIGNING;
        else if (s && strcmp(s, "encryption") == 0)
            p->key_usage |= PROFILE_KEY_USAGE_ENCRYPTION;
        else if (s)
            profile_problems_add(pr, false, f, "\"%.40s\" is not \"signing\" or \"encryption\"", s);
        else
            profile_problems_add(pr, false, f, "expected \"signing\" or \"encryption\"");
    }
}

static void parse_fingerprint(json_t *scep, struct profile_policy *p, struct profile_problems *pr)
{
    char *text = get_str(scep, "fingerprint", "scep.", false, pr);
    unsigned char fp[32];
    size_t fplen = 0;
    struct scepter_error err;

    if (text == NULL)
        return;
    if (profile_fingerprint_parse(text, "scep.fingerprint", fp, &fplen, &err) != 0)
        pp_add_raw(pr, false, err.field, err.msg);
    else
        p->scep_fingerprint = hex_encode(fp, fplen, false);
    free(text);
}

X509 *profile_root_cert_read(const void *data, size_t len, const char *field,
                             struct scepter_error *err)
{
    X509 *cert;
    EVP_PKEY *key;
    const unsigned char *q = data;

    if (len >= PROFILE_MAX_ROOT_CERT) {
        scepter_err(err, SCEPTER_ETOOBIG, field,
                    "%s: %zu bytes; the file must be smaller than 1 MB", field, len);
        return NULL;
    }
    if ((cert = crypto_cert_parse(data, len, field, err)) != NULL)
        return cert;
    /* DER that is a private key (or a PKCS#12 bundle, which holds one) rather than a cert. */
    if ((key = d2i_AutoPrivateKey(NULL, &q, (long)len)) != NULL) {
        EVP_PKEY_free(key);
        scepter_err(err, SCEPTER_EINVAL, field,
                    "%s: contains a private key; upload the certificate only", field);
    } else {
        PKCS12 *p12;
        q = data;
        if ((p12 = d2i_PKCS12(NULL, &q, (long)len)) != NULL) {
            PKCS12_free(p12);
            scepter_err(err, SCEPTER_EINVAL, field,
                        "%s: a PKCS#12 bundle, which holds a private key; upload the "
                        "certificate only",
                        field);
        }
    }
    ERR_clear_error();
    return NULL;
}

static void parse_root_cert(json_t *scep, struct profile_policy *p, struct profile_problems *pr)
{
    const char *f = "scep.root_certificate";
    char *text = get_str(scep, "root_certificate", "scep.", false, pr);
    unsigned char *raw = NULL, *der = NULL;
    size_t rawlen = 0, derlen = 0;
    struct scepter_error err;
    X509 *cert = NULL;

    if (text == NULL)
        return;
    if (strlen(text) > (size_t)PROFILE_MAX_ROOT_CERT / 3 * 4 + 4096) {
        profile_problems_add(pr, false, f, "the file must be smaller than 1 MB");
        goto out;
    }
    if (strstr(text, "-----BEGIN") != NULL) {
        /* PEM pasted as text rather than base64 of the file. */
        raw = (unsigned char *)xstrdup(text);
        rawlen = strlen(text);
    } else if (base64_decode(text, strlen(text), true, &raw, &rawlen) != 0) {
        profile_problems_add(pr, false, f,
                             "not base64 (send the .cer/.crt file's bytes base64-encoded)");
        goto out;
    }
    if ((cert = profile_root_cert_read(raw, rawlen, f, &err)) == NULL) {
        pp_add_raw(pr, false, f, err.msg);
        goto out;
    }
    if ((der = crypto_cert_der(cert, &derlen)) == NULL) {
        profile_problems_add(pr, false, f, "cannot be encoded as DER");
        goto out;
    }
    p->root_cert = der;
    p->root_cert_len = derlen;
out:
    X509_free(cert);
    free(raw);
    free(text);
}

/* Read every field of the operator JSON into *p (initialised here), without the rules. */
static void parse_fields(json_t *root, struct profile_policy *p, struct profile_problems *pr)
{
    json_t *scep = NULL, *san = NULL, *targets = NULL;
    struct scepter_error err;
    char *platform = NULL, *type = NULL;

    profile_policy_init(p);
    if (!json_is_object(root)) {
        profile_problems_add(pr, false, "body", "expected a JSON object");
        return;
    }
    unknown_keys(root, g_top_keys, "", pr);
    p->name = get_str(root, "name", "", true, pr);
    p->notes = get_str(root, "notes", "", false, pr);
    get_int(root, "expires_in", "", &p->expires_in, pr);
    if (json_object_get(root, "ddm") != NULL && !json_is_null(json_object_get(root, "ddm"))) {
        struct scepter_error derr;
        if (jsonx_get_bool(root, "ddm", "", false, &p->ddm, &derr) < 0)
            profile_problems_add(pr, false, "ddm", "must be true or false");
    }
    if ((type = get_str(root, "type", "", false, pr)) != NULL && strcmp(type, "scep") != 0)
        profile_problems_add(pr, false, "type",
                             "\"%.40s\" is not \"scep\" (the only policy "
                             "type)",
                             type);
    if ((platform = get_str(root, "platform", "", true, pr)) != NULL) {
        p->platform = profile_platform_parse(platform);
        if (p->platform == PROFILE_PLATFORM_NONE)
            profile_problems_add(pr, false, "platform",
                                 "\"%.40s\" is not \"macos\" or \"ios\" (iOS covers iPhone "
                                 "and iPad)",
                                 platform);
    }
    if (jsonx_get_object(root, "scep", "", true, &scep, &err) < 0) {
        pp_add_raw(pr, false, err.field, err.msg);
    } else {
        unknown_keys(scep, g_scep_keys, "scep.", pr);
        p->scep_url = get_str(scep, "url", "scep.", true, pr);
        p->scep_name = get_str(scep, "name", "scep.", false, pr);
        p->scep_challenge = get_str(scep, "challenge", "scep.", false, pr);
        p->scep_subject = get_str(scep, "subject", "scep.", false, pr);
        parse_fingerprint(scep, p, pr);
        get_int(scep, "key_size", "scep.", &p->key_size, pr);
        get_int(scep, "retries", "scep.", &p->retries, pr);
        get_int(scep, "retry_delay", "scep.", &p->retry_delay, pr);
        if (jsonx_get_bool(scep, "key_extractable", "scep.", false, &p->key_extractable, &err) < 0)
            pp_add_raw(pr, false, err.field, err.msg);
        parse_key_usage(scep, p, pr);
        parse_root_cert(scep, p, pr);
        if (jsonx_get_object(scep, "subject_alt_name", "scep.", false, &san, &err) < 0) {
            pp_add_raw(pr, false, err.field, err.msg);
        } else if (san != NULL) {
            const char *pre = "scep.subject_alt_name.";
            unknown_keys(san, g_san_keys, pre, pr);
            pl_get_strlist(san, "dns_name", pre, MAX_SANS, &p->san_dns, pr);
            pl_get_strlist(san, "nt_principal_name", pre, MAX_SANS, &p->san_ntpn, pr);
            pl_get_strlist(san, "rfc822_name", pre, MAX_SANS, &p->san_rfc822, pr);
            pl_get_strlist(san, "uri", pre, MAX_SANS, &p->san_uri, pr);
        }
        pl_get_bool(scep, "allow_all_apps_access", "scep.", &p->allow_all_apps_access, pr);
        char *kc = get_str(scep, "keychain", "scep.", false, pr);
        if (kc && strcmp(kc, "user") == 0)
            p->keychain = PROFILE_KEYCHAIN_USER;
        else if (kc && strcmp(kc, "device") != 0)
            profile_problems_add(pr, false, "scep.keychain",
                                 "\"%.40s\" is not \"device\" (the System keychain) or \"user\" "
                                 "(the user's login keychain, macOS)",
                                 kc);
        free(kc);
    }
    pl_linked_parse(root, &p->linked, pr);
    if (jsonx_get_object(root, "targets", "", false, &targets, &err) < 0) {
        pp_add_raw(pr, false, err.field, err.msg);
    } else if (targets != NULL) {
        unknown_keys(targets, g_target_keys, "targets.", pr);
        get_str_list(targets, "devices", "targets.", &p->target_devices, &p->n_target_devices, pr);
        get_str_list(targets, "device_groups", "targets.", &p->target_groups, &p->n_target_groups,
                     pr);
    }
    free(platform);
    free(type);
}

int profile_policy_from_json_value(json_t *root, struct profile_policy *p,
                                   struct profile_problems *pr)
{
    size_t before = pr->n_errors;

    parse_fields(root, p, pr);
    if (!json_is_object(root))
        return SCEPTER_EINVAL;
    if (profile_policy_check(p, pr) != 0)
        return SCEPTER_EINVAL;
    return pr->n_errors > before ? SCEPTER_EINVAL : 0;
}

int profile_policy_from_document(const char *doc, struct profile_policy *out,
                                 struct scepter_error *err)
{
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct scepter_error perr;
    json_t *root;
    int rc = 0;

    profile_policy_init(out);
    if (doc == NULL)
        return scepter_err(err, SCEPTER_EINVAL, "document", "document: missing");
    root = jsonx_parse_object(doc, strlen(doc), &perr);
    if (root == NULL)
        return scepter_err(err, SCEPTER_EINVAL, "document", "document: %s", perr.msg);
    if (json_object_get(root, "targets") != NULL) {
        rc = scepter_err(err, SCEPTER_EINVAL, "document",
                         "document: holds targets, which the store keeps");
        goto out;
    }
    parse_fields(root, out, &pr);
    if (pr.n_errors) {
        const struct profile_problem *first = profile_problems_first_error(&pr);
        rc = scepter_err(err, SCEPTER_EINVAL, "document", "document: %s", first->msg);
    }
out:
    json_decref(root);
    profile_problems_clear(&pr);
    return rc;
}

int profile_policy_from_json(const char *text, size_t len, struct profile_policy *out,
                             struct profile_problems *pr)
{
    struct scepter_error err;
    json_t *root = jsonx_parse_object(text, len, &err);
    int rc;

    if (root == NULL) {
        profile_policy_init(out);
        profile_problems_add(pr, false, "body", "%s", err.msg);
        return SCEPTER_EINVAL;
    }
    rc = profile_policy_from_json_value(root, out, pr);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON out                                                                                 */

static void set_opt(json_t *o, const char *key, const char *v)
{
    if (v != NULL)
        json_object_set_new(o, key, json_string(v));
}

static json_t *list_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

json_t *profile_policy_to_json(const struct profile_policy *p, unsigned flags)
{
    json_t *root = json_object(), *scep = json_object(), *ku = json_array(), *t = json_object();

    json_object_set_new(root, "type", json_string("scep"));
    set_opt(root, "name", p->name);
    json_object_set_new(root, "platform", json_string(profile_platform_name(p->platform)));
    set_opt(root, "notes", p->notes);
    if (p->expires_in)
        json_object_set_new(root, "expires_in", json_integer(p->expires_in));
    if (p->ddm)
        json_object_set_new(root, "ddm", json_true());
    set_opt(scep, "url", p->scep_url);
    set_opt(scep, "name", p->scep_name);
    if (p->scep_challenge)
        json_object_set_new(
            scep, "challenge",
            json_string((flags & PROFILE_JSON_MASK_CHALLENGE) ? "********" : p->scep_challenge));
    set_opt(scep, "fingerprint", p->scep_fingerprint);
    json_object_set_new(scep, "key_size", json_integer(p->key_size));
    set_opt(scep, "subject", p->scep_subject);
    json_object_set_new(scep, "retries", json_integer(p->retries));
    json_object_set_new(scep, "retry_delay", json_integer(p->retry_delay));
    json_object_set_new(scep, "key_extractable", json_boolean(p->key_extractable));
    if (p->key_usage & PROFILE_KEY_USAGE_SIGNING)
        json_array_append_new(ku, json_string("signing"));
    if (p->key_usage & PROFILE_KEY_USAGE_ENCRYPTION)
        json_array_append_new(ku, json_string("encryption"));
    json_object_set_new(scep, "key_usage", ku);
    if (p->root_cert) {
        char *b64 = base64_encode(p->root_cert, p->root_cert_len);
        json_object_set_new(scep, "root_certificate", json_string(b64));
        free(b64);
    }
    if (p->san_dns.n || p->san_ntpn.n || p->san_rfc822.n || p->san_uri.n) {
        json_t *san = json_object();
        if (p->san_dns.n)
            json_object_set_new(san, "dns_name", pl_strlist_json(&p->san_dns));
        if (p->san_ntpn.n)
            json_object_set_new(san, "nt_principal_name", pl_strlist_json(&p->san_ntpn));
        if (p->san_rfc822.n)
            json_object_set_new(san, "rfc822_name", pl_strlist_json(&p->san_rfc822));
        if (p->san_uri.n)
            json_object_set_new(san, "uri", pl_strlist_json(&p->san_uri));
        json_object_set_new(scep, "subject_alt_name", san);
    }
    /* Written only when set: documents of earlier versions stay byte-identical. */
    if (p->allow_all_apps_access)
        json_object_set_new(scep, "allow_all_apps_access", json_true());
    if (p->keychain == PROFILE_KEYCHAIN_USER)
        json_object_set_new(scep, "keychain", json_string("user"));
    json_object_set_new(root, "scep", scep);
    json_t *linked = pl_linked_json(&p->linked);
    if (linked)
        json_object_set_new(root, "linked", linked);
    json_object_set_new(t, "devices", list_json(p->target_devices, p->n_target_devices));
    json_object_set_new(t, "device_groups", list_json(p->target_groups, p->n_target_groups));
    json_object_set_new(root, "targets", t);
    return root;
}

char *profile_policy_document(const struct profile_policy *p)
{
    json_t *j = profile_policy_to_json(p, 0);
    char *doc;

    json_object_del(j, "targets");
    doc = jsonx_dump(j);
    json_decref(j);
    return doc;
}

/* ---------------------------------------------------------------------------------------- */
/* Devices, identifiers                                                                     */

int profile_device_from_json(json_t *root, struct profile_device *out, struct scepter_error *err)
{
    static const char *const keys[] = {"udid",         "serial_number", "device_name", "model",
                                       "product_name", "os_version",    "platform",    NULL};
    const char **dst[] = {&out->udid,         &out->serial_number, &out->device_name, &out->model,
                          &out->product_name, &out->os_version,    &out->platform};
    int rc;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(root))
        return scepter_err(err, SCEPTER_EINVAL, "device", "device: expected a JSON object");
    if ((rc = jsonx_only_keys(root, keys, "", err)) != 0)
        return rc;
    for (size_t i = 0; keys[i]; i++)
        if ((rc = jsonx_get_string(root, keys[i], "", false, dst[i], err)) < 0)
            return rc;
    return 0;
}

char *profile_default_identifier(const struct profile_policy *p, const char *prefix)
{
    struct buf b = BUF_INIT;
    bool dash = false;

    buf_printf(&b, "%s.policy.%s.", prefix ? prefix : "com.scepter",
               p->platform ? profile_platform_name(p->platform) : "any");
    for (const unsigned char *c = (const unsigned char *)(p->name ? p->name : ""); *c; c++) {
        if (isalnum(*c)) {
            if (dash && b.data[b.len - 1] != '.')
                buf_putc(&b, '-');
            buf_putc(&b, (char)tolower(*c));
            dash = false;
        } else {
            dash = true;
        }
    }
    if (b.data[b.len - 1] == '.')
        buf_puts(&b, "policy");
    /* Names that differ only in characters the slug drops (non-ASCII, punctuation) must not
     * share an identifier: add a short hash of the whole name then. */
    for (const unsigned char *c = (const unsigned char *)(p->name ? p->name : ""); *c; c++) {
        if (*c >= 0x80 || !(isalnum(*c) || *c == ' ' || *c == '-' || *c == '_' || *c == '.')) {
            unsigned char sum[CRYPTO_SHA256_LEN];
            char hex[9];
            crypto_sha256(p->name, strlen(p->name), sum);
            hex_encode_to(sum, 4, hex, false);
            buf_printf(&b, "-%s", hex);
            break;
        }
    }
    return buf_steal(&b, NULL);
}
