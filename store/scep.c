/*
 * store/scep.c — what the built-in SCEP CA remembers: every certificate it issued (for the
 * API, renewals and the CRL) and the one-time challenges it hands out (single use, expiring,
 * bound to a device; only their SHA-256 is kept).
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/str.h"
#include "common/xmalloc.h"

#define MAX_NAME_LEN   64
#define MAX_ID_LEN     256
#define MAX_SERIAL_LEN 48
#define MAX_TEXT_LEN   4096
#define LIST_MAX       10000
#define MAX_EXPECT_LEN 16384

void store_scep_cert_clear(struct store_scep_cert *c)
{
    if (c == NULL)
        return;
    free(c->ca);
    free(c->serial);
    free(c->subject);
    free(c->sans);
    free(c->device_id);
    free(c->cert_sha256);
    free(c->kind);
    free(c->renewed_from);
    memset(c, 0, sizeof(*c));
}

void store_scep_certs_free(struct store_scep_cert *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_scep_cert_clear(&v[i]);
    free(v);
}

static void challenge_hash(const char *challenge, char out[CRYPTO_SHA256_HEX_LEN])
{
    unsigned char md[CRYPTO_SHA256_LEN];

    crypto_sha256(challenge, strlen(challenge), md);
    hex_encode_to(md, sizeof(md), out, false);
}

#define CERT_COLS                                                                                  \
    "ca, serial, subject, sans, device_id, cert_sha256, kind, renewed_from, not_before,"           \
    " not_after, issued_at, revoked_at"

static void cert_from_row(const struct dbres *r, struct store_scep_cert *c)
{
    c->ca = db_strdup(r, 0);
    c->serial = db_strdup(r, 1);
    c->subject = db_strdup(r, 2);
    c->sans = db_strdup(r, 3);
    c->device_id = db_strdup(r, 4);
    c->cert_sha256 = db_strdup(r, 5);
    c->kind = db_strdup(r, 6);
    c->renewed_from = db_strdup(r, 7);
    c->not_before = db_int(r, 8);
    c->not_after = db_int(r, 9);
    c->issued_at = db_int(r, 10);
    c->revoked_at = db_int(r, 11);
}

/* ---------------------------------------------------------------------------------------- */
/* Issued certificates                                                                       */

static const struct store_sql SQL_CHALLENGE_USE = {
    "scep_challenge_use",
    "UPDATE scep_challenges SET used_at = $3"
    " WHERE hash = $1 AND ca = $2 AND used_at = 0 AND expires > $3 RETURNING device_id",
    NULL, NULL};
static const struct store_sql SQL_CERT_INSERT = {
    "scep_cert_insert",
    "INSERT INTO scep_certs (" CERT_COLS ")"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0) ON CONFLICT DO NOTHING",
    NULL, NULL};

static int cert_add(struct store *s, const struct store_scep_cert *c, const char *hash, int64_t now,
                    char **device_id, struct scepter_error *err)
{
    char *dev = NULL;
    int64_t changes = 0;
    struct dbres r;
    int rc;

    if ((rc = db_begin(s, err)) != 0)
        return rc;
    if (hash) {
        struct dbv p[] = {P_TEXT(hash), P_TEXT(c->ca), P_INT(now)};
        rc = db_query(s, &SQL_CHALLENGE_USE, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            dev = db_strdup(&r, 0);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_EFORBIDDEN, "challenge",
                             "challenge: unknown, expired, for another CA or already used");
        }
        db_res_clear(&r);
        if (rc != 0)
            goto out;
    }
    {
        const char *device = dev ? dev : c->device_id;
        struct dbv p[] = {P_TEXT(c->ca),
                          P_TEXT(c->serial),
                          P_TEXT(c->subject),
                          P_TEXT(c->sans ? c->sans : ""),
                          P_TEXT(device),
                          P_TEXT(c->cert_sha256),
                          P_TEXT(c->kind),
                          P_TEXT(c->renewed_from),
                          P_INT(c->not_before),
                          P_INT(c->not_after),
                          P_INT(now)};
        if ((rc = db_exec(s, &SQL_CERT_INSERT, p, ARRAY_LEN(p), &changes, err)) != 0)
            goto out;
        if (changes == 0) {
            rc = scepter_err(err, SCEPTER_ECONFLICT, "serial", "CA %s already issued serial %s",
                             c->ca, c->serial);
            goto out;
        }
    }
    if ((rc = db_commit(s, err)) != 0)
        goto out_nrb;
    if (device_id)
        *device_id = dev;
    else
        free(dev);
    return 0;
out:
    db_rollback(s);
out_nrb:
    free(dev);
    return rc;
}

int store_scep_cert_add(struct store *s, const struct store_scep_cert *c, const char *challenge,
                        int64_t now, char **device_id, struct scepter_error *err)
{
    char hash[CRYPTO_SHA256_HEX_LEN];
    int rc;

    if (device_id)
        *device_id = NULL;
    if ((rc = store_check_str(c->ca, MAX_NAME_LEN, "ca", err)) != 0 ||
        (rc = store_check_str(c->serial, MAX_SERIAL_LEN, "serial", err)) != 0 ||
        (rc = store_check_str(c->subject, MAX_TEXT_LEN, "subject", err)) != 0 ||
        (rc = store_check_str(c->cert_sha256, 64, "cert_sha256", err)) != 0 ||
        (rc = store_check_str(c->kind, 32, "kind", err)) != 0)
        return rc;
    if (c->sans && strlen(c->sans) > MAX_TEXT_LEN)
        return scepter_err(err, SCEPTER_EINVAL, "sans", "sans: at most %d bytes", MAX_TEXT_LEN);
    if (c->device_id && (rc = store_check_str(c->device_id, MAX_ID_LEN, "udid", err)) != 0)
        return rc;
    if (challenge) {
        if (*challenge == '\0')
            return scepter_err(err, SCEPTER_EFORBIDDEN, "challenge", "challenge: empty");
        challenge_hash(challenge, hash);
    }
    STORE_CALL(s, rc, err)
    rc = cert_add(s, c, challenge ? hash : NULL, now, device_id, err);
    return rc;
}

static const struct store_sql SQL_CERT_GET = {
    "scep_cert_get", "SELECT " CERT_COLS " FROM scep_certs WHERE ca = $1 AND serial = $2", NULL,
    NULL};

int store_scep_cert_get(struct store *s, const char *ca, const char *serial,
                        struct store_scep_cert *out, struct scepter_error *err)
{
    struct dbres r;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = store_check_str(ca, MAX_NAME_LEN, "ca", err)) != 0 ||
        (rc = store_check_str(serial, MAX_SERIAL_LEN, "serial", err)) != 0)
        return rc;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(ca), P_TEXT(serial)};
        store_scep_cert_clear(out);
        rc = db_query(s, &SQL_CERT_GET, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            cert_from_row(&r, out);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_ENOTFOUND, "serial", "CA %s issued no serial %s", ca,
                             serial);
        }
        db_res_clear(&r);
    }
    if (rc != 0)
        store_scep_cert_clear(out);
    return rc;
}

static const struct store_sql SQL_CERTS_LIST = {
    "scep_certs_list", NULL,
    /* Newest first; certificates of one second in the order they were issued. */
    "SELECT " CERT_COLS " FROM scep_certs WHERE ca = $1 AND ($2 = 0 OR revoked_at > 0)"
    " ORDER BY issued_at DESC, seq DESC LIMIT $3",
    "SELECT " CERT_COLS " FROM scep_certs WHERE ca = $1 AND ($2 = 0 OR revoked_at > 0)"
    " ORDER BY issued_at DESC, rowid DESC LIMIT $3"};

int store_scep_certs_list(struct store *s, const char *ca, bool revoked_only, size_t limit,
                          struct store_scep_cert **out, size_t *n, struct scepter_error *err)
{
    struct dbres r;
    size_t cap = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = store_check_str(ca, MAX_NAME_LEN, "ca", err)) != 0)
        return rc;
    /* The revoked ones feed the CRL: all of them.  Listings are capped. */
    if (revoked_only && limit == 0)
        limit = (size_t)INT64_MAX;
    else if (limit == 0 || limit > LIST_MAX)
        limit = LIST_MAX;
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(ca), P_INT(revoked_only ? 1 : 0), P_INT(limit)};
        store_scep_certs_free(*out, *n);
        *out = NULL;
        *n = cap = 0;
        rc = db_query(s, &SQL_CERTS_LIST, p, ARRAY_LEN(p), &r, err);
        while (rc == 0 && (rc = db_next(&r, err)) == 1) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                *out = xreallocarray(*out, cap, sizeof(**out));
            }
            memset(&(*out)[*n], 0, sizeof(**out));
            cert_from_row(&r, &(*out)[(*n)++]);
            rc = 0;
        }
        db_res_clear(&r);
    }
    if (rc != 0) {
        store_scep_certs_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static const struct store_sql SQL_CERT_REVOKE = {
    "scep_cert_revoke",
    "UPDATE scep_certs SET revoked_at = $3 WHERE ca = $1 AND serial = $2 AND revoked_at = 0", NULL,
    NULL};
static const struct store_sql SQL_CERT_EXISTS = {
    "scep_cert_exists", "SELECT 1 FROM scep_certs WHERE ca = $1 AND serial = $2", NULL, NULL};

int store_scep_cert_revoke(struct store *s, const char *ca, const char *serial, int64_t now,
                           struct scepter_error *err)
{
    int64_t changes = 0;
    struct dbres r;
    int rc;

    if ((rc = store_check_str(ca, MAX_NAME_LEN, "ca", err)) != 0 ||
        (rc = store_check_str(serial, MAX_SERIAL_LEN, "serial", err)) != 0)
        return rc;
    if (now <= 0)
        return scepter_err(err, SCEPTER_EINVAL, "now", "revocation time must be positive");
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(ca), P_TEXT(serial), P_INT(now)};
        rc = db_exec(s, &SQL_CERT_REVOKE, p, ARRAY_LEN(p), &changes, err);
        if (rc == 0 && changes == 0) {
            rc = db_query(s, &SQL_CERT_EXISTS, p, 2, &r, err);
            if (rc == 0 && (rc = db_next(&r, err)) == 1)
                rc = 1;
            else if (rc == 0)
                rc = scepter_err(err, SCEPTER_ENOTFOUND, "serial", "CA %s issued no serial %s", ca,
                                 serial);
            db_res_clear(&r);
        }
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* One-time challenges                                                                       */

static const struct store_sql SQL_CHALLENGE_INSERT = {
    "scep_challenge_insert",
    "INSERT INTO scep_challenges (hash, ca, device_id, expires, created, expect)"
    " VALUES ($1, $2, $3, $4, $5, $6)",
    NULL, NULL};
/* Used and expired challenges are worth nothing: drop them as new ones are made. */
static const struct store_sql SQL_CHALLENGE_PURGE = {
    "scep_challenge_purge", "DELETE FROM scep_challenges WHERE expires <= $1", NULL, NULL};

int store_scep_challenge_create(struct store *s, const char *ca, const char *device_id,
                                int64_t expires, int64_t now, char out[STORE_SCEP_CHALLENGE_LEN],
                                struct scepter_error *err)
{
    return store_scep_challenge_create_bound(s, ca, device_id, NULL, expires, now, out, err);
}

int store_scep_challenge_create_bound(struct store *s, const char *ca, const char *device_id,
                                      const char *expect, int64_t expires, int64_t now,
                                      char out[STORE_SCEP_CHALLENGE_LEN], struct scepter_error *err)
{
    unsigned char raw[16];
    char hash[CRYPTO_SHA256_HEX_LEN];
    int rc;

    out[0] = '\0';
    if ((rc = store_check_str(ca, MAX_NAME_LEN, "ca", err)) != 0 ||
        (rc = store_check_str(device_id, MAX_ID_LEN, "udid", err)) != 0)
        return rc;
    if (expect && strlen(expect) > MAX_EXPECT_LEN)
        return scepter_err(err, SCEPTER_EINVAL, "expect",
                           "expect: the subject and names a challenge is bound to take at most %d "
                           "bytes",
                           MAX_EXPECT_LEN);
    if (expires <= now)
        return scepter_err(err, SCEPTER_EINVAL, "expires", "expires: must be in the future");
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return scepter_err(err, SCEPTER_EINTERNAL, NULL, "no random bytes for a challenge");
    hex_encode_to(raw, sizeof(raw), out, false);
    OPENSSL_cleanse(raw, sizeof(raw));
    challenge_hash(out, hash);
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(hash),   P_TEXT(ca), P_TEXT(device_id),
                          P_INT(expires), P_INT(now), P_TEXT(expect)};
        struct dbv q[] = {P_INT(now)};
        rc = db_exec(s, &SQL_CHALLENGE_PURGE, q, ARRAY_LEN(q), NULL, err);
        if (rc == 0)
            rc = db_exec(s, &SQL_CHALLENGE_INSERT, p, ARRAY_LEN(p), NULL, err);
    }
    if (rc != 0)
        OPENSSL_cleanse(out, STORE_SCEP_CHALLENGE_LEN);
    return rc;
}

static const struct store_sql SQL_CHALLENGE_PEEK = {
    "scep_challenge_peek",
    "SELECT device_id, expect FROM scep_challenges"
    " WHERE hash = $1 AND ca = $2 AND used_at = 0 AND expires > $3",
    NULL, NULL};

int store_scep_challenge_peek(struct store *s, const char *ca, const char *challenge, int64_t now,
                              char **device_id, char **expect, struct scepter_error *err)
{
    char hash[CRYPTO_SHA256_HEX_LEN];
    struct dbres r;
    int rc;

    *device_id = NULL;
    *expect = NULL;
    if ((rc = store_check_str(ca, MAX_NAME_LEN, "ca", err)) != 0)
        return rc;
    if (challenge == NULL || *challenge == '\0')
        return scepter_err(err, SCEPTER_EFORBIDDEN, "challenge", "challenge: empty");
    challenge_hash(challenge, hash);
    STORE_CALL(s, rc, err)
    {
        struct dbv p[] = {P_TEXT(hash), P_TEXT(ca), P_INT(now)};
        free(*device_id);
        free(*expect);
        *device_id = *expect = NULL;
        rc = db_query(s, &SQL_CHALLENGE_PEEK, p, ARRAY_LEN(p), &r, err);
        if (rc == 0 && (rc = db_next(&r, err)) == 1) {
            *device_id = db_strdup(&r, 0);
            *expect = db_strdup(&r, 1);
            rc = 0;
        } else if (rc == 0) {
            rc = scepter_err(err, SCEPTER_EFORBIDDEN, "challenge",
                             "challenge: unknown, expired, for another CA or already used");
        }
        db_res_clear(&r);
    }
    if (rc != 0) {
        free(*device_id);
        free(*expect);
        *device_id = *expect = NULL;
    }
    return rc;
}
