/*
 * GET /mdm/enroll: the enrollment profile.
 *
 * It carries, in install order, the root CA of the TLS certificate when it is not publicly
 * trusted (tls_ca_file), the device identity, and the com.apple.mdm payload (ServerURL,
 * CheckInURL, the push Topic, SignMessage, CheckOutWhenRemoved, AccessRights 8191,
 * per-user connections).  The identity is either
 *   - a SCEP payload pointing at any SCEP CA (enroll_scep_url / enroll_scep_challenge), as
 *     Apple recommends: the key is created on the device; or
 *   - a PKCS#12 identity Scepter issues from its device CA (device_ca_key_file), a fresh key
 *     and certificate per download.
 * The profile is CMS-signed when a signing identity is configured.
 *
 * A profile that carries a credential (a PKCS#12 identity, or a SCEP challenge) is a key to
 * enroll a device: it is served only with enroll_secret (?secret=, compared in constant time)
 * or an operator's enrollment token (?token=, enroll_tokens = true, counted per use), unless
 * the configuration says enroll_open = true (cfg_validate refuses to start otherwise).
 * Identities are issued from a pool of keys generated on a background thread (RSA-2048 takes
 * 100-300 ms, which must not stall a worker's event loop), and downloads are rate-limited per
 * client address.  The pool fills in the background from the start (a pool of 256 made
 * synchronously would hold a restart for 25-75 s); a download that finds it empty makes its
 * key itself, at most ENROLL_ONDEMAND_MAX at a time across the workers, and beyond that is
 * answered 503 with Retry-After.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/codec.h"
#include "common/log.h"
#include "common/str.h"
#include "common/uuid.h"
#include "common/xmalloc.h"
#include "mdm/metrics_int.h"
#include "mdm/scep_int.h"
#include "profiles/profiles.h"

/* Constant-time comparison of two NUL-terminated strings. */
static bool secret_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) != NULL) {
        X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The key pool and the per-address limit                                                    */

#define GUARD_SLOTS 1024 /* client addresses remembered by the rate limit */
/* Downloads generating their own key at once when the pool is empty: each holds its worker's
 * event loop for the generation, so only a few may. */
#define ENROLL_ONDEMAND_MAX 2

struct mdm_enroll_guard {
    pthread_mutex_t lock;
    pthread_cond_t want; /* the pool has room, or stop */
    EVP_PKEY **keys;     /* ready keys (a stack) */
    size_t nkeys, cap;
    unsigned ondemand; /* downloads generating their own key right now */
    bool running, stop;
    pthread_t thread;
    int64_t per_minute; /* downloads per client address per minute; 0 = no limit */
    struct {
        char addr[48];
        int64_t at;     /* last request (seconds) */
        int64_t credit; /* 60 per request allowed now */
    } slot[GUARD_SLOTS];
};

struct mdm_enroll_guard *mdm_enroll_guard_new(const struct cfg *cfg)
{
    struct mdm_enroll_guard *g = xcalloc(1, sizeof(*g));

    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->want, NULL);
    g->cap = (size_t)cfg->enroll_key_pool;
    g->keys = xcalloc(g->cap ? g->cap : 1, sizeof(EVP_PKEY *));
    g->per_minute = cfg->enroll_rate_limit;
    return g;
}

static void *keygen_main(void *arg)
{
    struct mdm_enroll_guard *g = arg;

    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        if (g->nkeys >= g->cap) {
            pthread_cond_wait(&g->want, &g->lock);
            continue;
        }
        pthread_mutex_unlock(&g->lock);
        EVP_PKEY *k = EVP_RSA_gen(2048);
        pthread_mutex_lock(&g->lock);
        if (k == NULL) {
            log_warnx("enroll: RSA key generation failed");
            break;
        }
        g->keys[g->nkeys++] = k;
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

/* True when /mdm/enroll under conf hands out PKCS#12 identities (the keys the pool makes):
 * the device CA's key is there and neither a SCEP CA (Scepter's own, or enroll_scep_url)
 * takes precedence — in the order mdm_enroll_profile chooses. */
bool mdm_enroll_uses_keys(const struct mdm_conf *conf)
{
    const struct cfg *cfg = conf->cfg;

    return conf->device_ca_key != NULL && str_empty(cfg->enroll_scep_ca) &&
           str_empty(cfg->enroll_scep_url);
}

void mdm_enroll_guard_start(struct mdm_enroll_guard *g, const struct mdm_conf *conf)
{
    /* Keys nobody can use are not made: an RSA-2048 key is 100-300 ms of a core. */
    if (g == NULL || g->cap == 0 || conf == NULL || !mdm_enroll_uses_keys(conf))
        return;
    pthread_mutex_lock(&g->lock);
    if (g->running || g->stop) {
        pthread_mutex_unlock(&g->lock);
        return;
    }
    /* Not filled here: the listeners open at once and the first downloads generate their
     * keys themselves (bounded) until the thread has some ready. */
    g->running = pthread_create(&g->thread, NULL, keygen_main, g) == 0;
    pthread_mutex_unlock(&g->lock);
}

size_t mdm_enroll_guard_ready(struct mdm_enroll_guard *g)
{
    size_t n;

    if (g == NULL)
        return 0;
    pthread_mutex_lock(&g->lock);
    n = g->nkeys;
    pthread_mutex_unlock(&g->lock);
    return n;
}

void mdm_enroll_guard_free(struct mdm_enroll_guard *g)
{
    if (g == NULL)
        return;
    bool running;
    pthread_mutex_lock(&g->lock);
    running = g->running;
    g->stop = true; /* no start after this */
    pthread_cond_signal(&g->want);
    pthread_mutex_unlock(&g->lock);
    if (running)
        pthread_join(g->thread, NULL);
    for (size_t i = 0; i < g->nkeys; i++)
        EVP_PKEY_free(g->keys[i]);
    free(g->keys);
    pthread_cond_destroy(&g->want);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* A pre-generated key (the caller's); when the pool is empty, one generated here if fewer
 * than ENROLL_ONDEMAND_MAX downloads are doing so, else NULL (the caller answers 503).
 * Without a pool (unit tests, enroll_key_pool = 0) the key is always generated here; a pool
 * whose thread is not running (yet) serves on demand only. */
static EVP_PKEY *guard_take_key(struct mdm_enroll_guard *g)
{
    EVP_PKEY *k = NULL;
    bool generate = false;

    if (g == NULL || g->cap == 0)
        return EVP_RSA_gen(2048);
    pthread_mutex_lock(&g->lock);
    if (g->nkeys > 0)
        k = g->keys[--g->nkeys];
    else if (g->ondemand < ENROLL_ONDEMAND_MAX)
        generate = true, g->ondemand++;
    pthread_cond_signal(&g->want);
    pthread_mutex_unlock(&g->lock);
    if (generate) {
        k = EVP_RSA_gen(2048);
        pthread_mutex_lock(&g->lock);
        g->ondemand--;
        pthread_mutex_unlock(&g->lock);
    }
    return k;
}

/*
 * Count a request from addr; false when it is over the limit.  A token bucket per address:
 * per_minute requests at once, refilled at per_minute a minute (credit in 1/60 of a request,
 * so whole seconds suffice), so the limit holds across minute boundaries.
 */
static bool guard_admit(struct mdm_enroll_guard *g, const char *addr, int64_t now)
{
    uint64_t h = 1469598103934665603ULL;
    int64_t cap;
    bool ok = true;
    size_t i;

    if (g == NULL || g->per_minute <= 0 || addr == NULL)
        return true;
    cap = g->per_minute * 60;
    for (const char *p = addr; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    i = (size_t)(h % GUARD_SLOTS);
    pthread_mutex_lock(&g->lock);
    /* A slot holds one address; a colliding address starts afresh, which can only let a
     * client through early, never lock one out. */
    if (strcmp(g->slot[i].addr, addr) != 0) {
        str_copy(g->slot[i].addr, sizeof(g->slot[i].addr), addr);
        g->slot[i].credit = cap;
    } else {
        int64_t refill = (now - g->slot[i].at) * g->per_minute;
        g->slot[i].credit = refill > cap - g->slot[i].credit ? cap : g->slot[i].credit + refill;
    }
    g->slot[i].at = now;
    if (g->slot[i].credit < 60)
        ok = false;
    else
        g->slot[i].credit -= 60;
    pthread_mutex_unlock(&g->lock);
    return ok;
}

/* ---------------------------------------------------------------------------------------- */
/* Issuing                                                                                   */

/*
 * A device identity from the device CA for key (taken): CN = a new UUID, valid for
 * enroll_identity_days, packed as PKCS#12 (3DES, which every Apple OS opens) with a random
 * password.  *p12 and *password are the caller's.
 */
int mdm_issue_pkcs12(const struct mdm_conf *conf, EVP_PKEY *key, int64_t now, unsigned char **p12,
                     size_t *p12_len, char **password, char *cert_hash, int64_t *not_after,
                     struct scepter_error *err)
{
    X509 *cert = NULL;
    PKCS12 *pk = NULL;
    BIGNUM *bn = NULL;
    unsigned char serial[16], pw[12], *der = NULL;
    char cn[UUID_STR_LEN];
    time_t t = (time_t)now;
    int len, rc;

    *p12 = NULL;
    *password = NULL;
    if (key == NULL) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "device key generation failed");
        goto out;
    }
    cert = X509_new();
    X509_set_version(cert, 2);
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    X509_time_adj_ex(X509_getm_notBefore(cert), 0, -300, &t);
    X509_time_adj_ex(X509_getm_notAfter(cert), (int)conf->cfg->enroll_identity_days, 0, &t);
    X509_set_pubkey(cert, key);
    uuid_new(cn);
    X509_NAME_add_entry_by_NID(X509_get_subject_name(cert), NID_organizationName, MBSTRING_UTF8,
                               (const unsigned char *)conf->cfg->org_name, -1, -1, 0);
    X509_NAME_add_entry_by_NID(X509_get_subject_name(cert), NID_commonName, MBSTRING_UTF8,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(conf->device_ca_cert));
    add_ext(cert, conf->device_ca_cert, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert, conf->device_ca_cert, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    add_ext(cert, conf->device_ca_cert, NID_ext_key_usage, "clientAuth");
    add_ext(cert, conf->device_ca_cert, NID_authority_key_identifier, "keyid:always");
    if (X509_sign(cert, conf->device_ca_key, EVP_sha256()) <= 0) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, "device_ca_key_file",
                         "signing the device certificate failed");
        goto out;
    }
    if (cert_hash)
        crypto_cert_sha256_hex(cert, cert_hash);
    if (not_after)
        *not_after = now + conf->cfg->enroll_identity_days * 86400;
    RAND_bytes(pw, sizeof(pw));
    *password = hex_encode(pw, sizeof(pw), false);
    pk = PKCS12_create(*password, "Scepter device identity", key, cert, NULL,
                       NID_pbe_WithSHA1And3_Key_TripleDES_CBC,
                       NID_pbe_WithSHA1And3_Key_TripleDES_CBC, 2048, 1, 0);
    if (pk == NULL || (len = i2d_PKCS12(pk, &der)) <= 0) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, NULL, "packing the PKCS#12 identity failed");
        goto out;
    }
    *p12 = xmemdup(der, (size_t)len);
    *p12_len = (size_t)len;
    rc = 0;
out:
    if (rc != 0) {
        scepter_err_openssl(err);
        free(*password);
        *password = NULL;
    }
    OPENSSL_free(der);
    PKCS12_free(pk);
    BN_free(bn);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

/*
 * May this request have the profile?  true, or false with the reply set: the secret or a
 * token is required when the profile carries a credential (or a secret is set at all).
 */
static bool enroll_admitted(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                            struct mdm_reply *reply)
{
    const struct cfg *cfg = ctx->cfg;
    bool gated = !str_empty(cfg->enroll_secret) ||
                 (cfg_enroll_hands_out_credentials(cfg) && !cfg->enroll_open);
    char *secret = NULL, *token = NULL;
    struct scepter_error err;
    bool ok = false;

    if (!gated)
        return true;
    if (!str_empty(cfg->enroll_secret) &&
        (secret = mdm_query_param(req->query, "secret")) != NULL &&
        secret_eq(secret, cfg->enroll_secret)) {
        ok = true;
    } else if (cfg->enroll_tokens && (token = mdm_query_param(req->query, "token")) != NULL) {
        unsigned char md[CRYPTO_SHA256_LEN];
        char hex[CRYPTO_SHA256_HEX_LEN];
        int rc;

        /* Tokens are looked up by their SHA-256: the comparison never touches the token. */
        crypto_sha256(token, strlen(token), md);
        hex_encode_to(md, sizeof(md), hex, false);
        rc = store_enroll_token_use(ctx->store, hex, now, &err);
        if (rc == 0)
            ok = true;
        else if (rc != SCEPTER_EFORBIDDEN) {
            mdm_reply_error(reply, 503, "enroll: token check: %s", err.msg);
            goto out;
        }
    }
    if (!ok)
        mdm_reply_error(reply, 403, "enroll: a valid %s is required",
                        !str_empty(cfg->enroll_secret) && cfg->enroll_tokens ? "?secret= or ?token="
                        : cfg->enroll_tokens                                 ? "?token="
                                                                             : "?secret=");
out:
    free(secret);
    free(token);
    return ok;
}

int mdm_enroll_profile(struct mdm_ctx *ctx, int64_t now, const char *device_id, struct buf *out,
                       char *issued_hash, int64_t *issued_not_after, struct scepter_error *err)
{
    struct mdm_server *srv = ctx->srv;
    const struct mdm_conf *conf = ctx->conf;
    const struct cfg *cfg = ctx->cfg;
    struct profile_enroll_opts o;
    char topic[256], cn[UUID_STR_LEN];
    char *server_url = NULL, *checkin_url = NULL, *xml = NULL, *p12_password = NULL;
    char *scep_url = NULL, challenge[STORE_SCEP_CHALLENGE_LEN] = "";
    unsigned char *p12 = NULL, *signed_der = NULL;
    size_t xml_len = 0, p12_len = 0, signed_len = 0;
    int rc;

    if (issued_hash)
        issued_hash[0] = '\0';
    if (issued_not_after)
        *issued_not_after = 0;
    mdm_server_topic(srv, topic, sizeof(topic));
    if (*topic == '\0') {
        rc = scepter_err(err, SCEPTER_EUNAVAIL, NULL,
                         "no push topic yet: load a push certificate (apns_cert_file, or "
                         "scepterctl pushcert upload) or set push_topic");
        goto out;
    }
    memset(&o, 0, sizeof(o));
    server_url = xasprintf("%s/mdm/connect", cfg->public_url);
    checkin_url = xasprintf("%s/mdm/checkin", cfg->public_url);
    o.identifier = NULL;
    o.organization = cfg->org_name;
    o.display_name = NULL;
    o.server_url = server_url;
    o.checkin_url = checkin_url;
    o.topic = topic;
    o.cap_bootstrap_token = true;
    o.cap_token = mdm_get_token_verifiable(conf);
    o.root_cert = conf->tls_ca_der;
    o.root_cert_len = conf->tls_ca_der_len;
    if (!str_empty(cfg->enroll_scep_ca)) {
        /* Scepter's own CA: a one-time challenge of this profile's own, which issues only the
         * certificate this profile asks for (CN = cn), to the device when it is known (a
         * renewal: the certificate's serial then ties it to the device). */
        const struct scep_ca *ca = mdm_scep_find(conf, cfg->enroll_scep_ca);
        char *expect;
        if (ca == NULL) {
            rc = scepter_err(err, SCEPTER_EUNAVAIL, "enroll_scep_ca",
                             "enroll_scep_ca: no built-in CA named '%.80s'", cfg->enroll_scep_ca);
            goto out;
        }
        uuid_new(cn);
        expect = xasprintf("subject.CN=%s", cn);
        rc = store_scep_challenge_create_bound(
            ctx->store, scep_ca_name(ca), device_id ? device_id : cn, expect,
            now + cfg->scep_profile_challenge_hours * 3600, now, challenge, err);
        free(expect);
        if (rc != 0)
            goto out;
        scep_url = mdm_scep_ca_url(cfg, scep_ca_name(ca));
        o.scep_url = scep_url;
        o.scep_challenge = challenge;
        o.scep_name = scep_ca_name(ca);
        o.scep_key_size = cfg->enroll_key_size;
        o.scep_common_name = cn;
    } else if (!str_empty(cfg->enroll_scep_url)) {
        o.scep_url = cfg->enroll_scep_url;
        o.scep_challenge =
            str_empty(cfg->enroll_scep_challenge) ? NULL : cfg->enroll_scep_challenge;
        o.scep_name = str_empty(cfg->enroll_scep_name) ? NULL : cfg->enroll_scep_name;
        o.scep_key_size = cfg->enroll_key_size;
        /* A unique CN per download: CAs that refuse duplicate subjects stay happy, and iOS,
         * which resolves no variables, gets a meaningful name. */
        uuid_new(cn);
        o.scep_common_name = cn;
    } else if (conf->device_ca_key != NULL) {
        EVP_PKEY *key;
        if ((key = guard_take_key(srv->enroll_guard)) == NULL) {
            rc = scepter_err(err, SCEPTER_EUNAVAIL, NULL,
                             "no device key ready yet (the key pool refills)");
            goto out;
        }
        if ((rc = mdm_issue_pkcs12(conf, key, now, &p12, &p12_len, &p12_password, issued_hash,
                                   issued_not_after, err)) != 0)
            goto out;
        o.pkcs12 = p12;
        o.pkcs12_len = p12_len;
        o.pkcs12_password = p12_password;
    } else {
        rc = scepter_err(err, SCEPTER_EUNAVAIL, NULL,
                         "no device identity source: set enroll_scep_url (a SCEP CA) or "
                         "device_ca_key_file");
        goto out;
    }
    if ((rc = profile_enroll_render(&o, &xml, &xml_len, err)) != 0)
        goto out;
    if (conf->signer != NULL) {
        if ((rc = profile_sign(conf->signer, xml, xml_len, &signed_der, &signed_len, err)) != 0)
            goto out;
        buf_append(out, signed_der, signed_len);
    } else {
        buf_append(out, xml, xml_len);
    }
    rc = 0;
out:
    if (p12) {
        OPENSSL_cleanse(p12, p12_len);
        free(p12);
    }
    free(p12_password);
    free(signed_der);
    free(xml);
    free(server_url);
    free(checkin_url);
    free(scep_url);
    OPENSSL_cleanse(challenge, sizeof(challenge));
    return rc;
}

void mdm_enroll_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                       struct mdm_reply *reply)
{
    struct mdm_server *srv = ctx->srv;
    const struct cfg *cfg = ctx->cfg;
    struct scepter_error err;
    int rc;

    reply->event = "enroll";
    if (req->method != MDM_GET && req->method != MDM_HEAD) {
        mdm_reply_error(reply, 405, "enroll: GET only");
        mdm_reply_header(reply, "Allow", "GET");
        return;
    }
    /* Before the secret or token check: it also slows down guessing them. */
    if (!guard_admit(srv->enroll_guard, req->peer_addr, now)) {
        mdm_reply_error(reply, 429, "enroll: more than %lld requests a minute from %s",
                        (long long)cfg->enroll_rate_limit, req->peer_addr);
        mdm_reply_header(reply, "Retry-After", "60");
        mdm_metrics_security(srv, MDM_SEC_ENROLL_LIMITED);
        return;
    }
    if (!enroll_admitted(ctx, req, now, reply)) {
        mdm_metrics_security(srv, MDM_SEC_ENROLL_REFUSED);
        return;
    }
    buf_reset(&reply->body);
    rc = mdm_enroll_profile(ctx, now, NULL, &reply->body, NULL, NULL, &err);
    if (rc != 0) {
        buf_reset(&reply->body);
        mdm_reply_error(reply, rc == SCEPTER_EUNAVAIL ? 503 : 500, "enroll: %s", err.msg);
        if (strstr(err.msg, "key pool") != NULL)
            mdm_reply_header(reply, "Retry-After", "2");
        return;
    }
    reply->status = 200;
    reply->content_type = "application/x-apple-aspen-config";
    mdm_reply_header(reply, "Content-Disposition", "attachment; filename=\"enroll.mobileconfig\"");
    log_kv(LOG_LVL_INFO, "enroll_profile", "req", req->id, "peer", req->peer_addr, "identity",
           !str_empty(cfg->enroll_scep_ca) || !str_empty(cfg->enroll_scep_url) ? "scep" : "pkcs12",
           "signed", ctx->conf->signer ? "yes" : "no", NULL);
}
