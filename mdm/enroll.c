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
 * The profile is CMS-signed when a signing identity is configured, and the URL can be gated by
 * a secret (enroll_secret: /mdm/enroll?secret=...).
 */
#include <string.h>

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
#include "mdm/mdm_int.h"
#include "profiles/profiles.h"

/* Constant-time comparison of two NUL-terminated strings. */
static bool secret_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

static char *query_param(const char *query, const char *name)
{
    struct evkeyvalq params;
    char *v = NULL;

    if (query == NULL)
        return NULL;
    if (evhttp_parse_query_str(query, &params) == 0) {
        const char *s = evhttp_find_header(&params, name);
        if (s)
            v = xstrdup(s);
    }
    evhttp_clear_headers(&params);
    return v;
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

/*
 * A fresh device identity from the device CA: RSA 2048 key, CN = a new UUID, valid for
 * enroll_identity_days, packed as PKCS#12 (3DES, which every Apple OS opens) with a random
 * password.  *p12 and *password are the caller's.
 */
int mdm_issue_pkcs12(struct mdm_server *srv, int64_t now, unsigned char **p12, size_t *p12_len,
                     char **password, struct scepter_error *err)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    PKCS12 *pk = NULL;
    BIGNUM *bn = NULL;
    unsigned char serial[16], pw[12], *der = NULL;
    char cn[UUID_STR_LEN];
    time_t t = (time_t)now;
    int len, rc;

    *p12 = NULL;
    *password = NULL;
    if ((key = EVP_RSA_gen(2048)) == NULL) {
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
    X509_time_adj_ex(X509_getm_notAfter(cert), (int)srv->cfg->enroll_identity_days, 0, &t);
    X509_set_pubkey(cert, key);
    uuid_new(cn);
    X509_NAME_add_entry_by_NID(X509_get_subject_name(cert), NID_organizationName, MBSTRING_UTF8,
                               (const unsigned char *)srv->cfg->org_name, -1, -1, 0);
    X509_NAME_add_entry_by_NID(X509_get_subject_name(cert), NID_commonName, MBSTRING_UTF8,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(srv->device_ca_cert));
    add_ext(cert, srv->device_ca_cert, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert, srv->device_ca_cert, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    add_ext(cert, srv->device_ca_cert, NID_ext_key_usage, "clientAuth");
    add_ext(cert, srv->device_ca_cert, NID_authority_key_identifier, "keyid:always");
    if (X509_sign(cert, srv->device_ca_key, EVP_sha256()) <= 0) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, "device_ca_key_file",
                         "signing the device certificate failed");
        goto out;
    }
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

void mdm_enroll_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                       struct mdm_reply *reply)
{
    struct mdm_server *srv = ctx->srv;
    const struct cfg *cfg = ctx->cfg;
    struct profile_enroll_opts o;
    struct profile_signer *signer = NULL;
    struct scepter_error err;
    char topic[256], cn[UUID_STR_LEN];
    char *server_url = NULL, *checkin_url = NULL, *xml = NULL, *secret = NULL, *p12_password = NULL;
    unsigned char *p12 = NULL, *signed_der = NULL;
    size_t xml_len = 0, p12_len = 0, signed_len = 0;

    reply->event = "enroll";
    if (req->method != MDM_GET && req->method != MDM_HEAD) {
        mdm_reply_error(reply, 405, "enroll: GET only");
        mdm_reply_header(reply, "Allow", "GET");
        return;
    }
    if (!str_empty(cfg->enroll_secret)) {
        secret = query_param(req->query, "secret");
        if (secret == NULL || !secret_eq(secret, cfg->enroll_secret)) {
            mdm_reply_error(reply, 403, "enroll: a valid ?secret= is required");
            goto out;
        }
    }
    mdm_server_topic(srv, topic, sizeof(topic));
    if (*topic == '\0') {
        mdm_reply_error(reply, 503,
                        "enroll: no push topic yet: load a push certificate (apns_cert_file, or "
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
    o.cap_token =
        srv->signing_key != NULL && EVP_PKEY_get_base_id(srv->signing_key) == EVP_PKEY_RSA;
    o.root_cert = srv->tls_ca_der;
    o.root_cert_len = srv->tls_ca_der_len;
    if (!str_empty(cfg->enroll_scep_url)) {
        o.scep_url = cfg->enroll_scep_url;
        o.scep_challenge =
            str_empty(cfg->enroll_scep_challenge) ? NULL : cfg->enroll_scep_challenge;
        o.scep_name = str_empty(cfg->enroll_scep_name) ? NULL : cfg->enroll_scep_name;
        o.scep_key_size = cfg->enroll_key_size;
        /* A unique CN per download: CAs that refuse duplicate subjects stay happy, and iOS,
         * which resolves no variables, gets a meaningful name. */
        uuid_new(cn);
        o.scep_common_name = cn;
    } else if (srv->device_ca_key != NULL) {
        if (mdm_issue_pkcs12(srv, now, &p12, &p12_len, &p12_password, &err) != 0) {
            mdm_reply_error(reply, 500, "enroll: %s", err.msg);
            goto out;
        }
        o.pkcs12 = p12;
        o.pkcs12_len = p12_len;
        o.pkcs12_password = p12_password;
    } else {
        mdm_reply_error(reply, 503,
                        "enroll: no device identity source: set enroll_scep_url (a SCEP CA) or "
                        "device_ca_key_file");
        goto out;
    }
    if (profile_enroll_render(&o, &xml, &xml_len, &err) != 0) {
        mdm_reply_error(reply, 500, "enroll: %s", err.msg);
        goto out;
    }
    reply->status = 200;
    reply->content_type = "application/x-apple-aspen-config";
    mdm_reply_header(reply, "Content-Disposition", "attachment; filename=\"enroll.mobileconfig\"");
    if (srv->signing_cert != NULL) {
        if (profile_signer_new(srv->signing_cert, srv->signing_key, srv->signing_chain, &signer,
                               &err) != 0 ||
            profile_sign(signer, xml, xml_len, &signed_der, &signed_len, &err) != 0) {
            mdm_reply_error(reply, 500, "enroll: signing: %s", err.msg);
            goto out;
        }
        buf_append(&reply->body, signed_der, signed_len);
    } else {
        buf_append(&reply->body, xml, xml_len);
    }
    log_kv(LOG_LVL_INFO, "enroll_profile", "req", req->id, "peer", req->peer_addr, "identity",
           o.scep_url ? "scep" : "pkcs12", "signed", signed_der ? "yes" : "no", NULL);
out:
    profile_signer_free(signer);
    if (p12) {
        OPENSSL_cleanse(p12, p12_len);
        free(p12);
    }
    free(p12_password);
    free(signed_der);
    free(xml);
    free(server_url);
    free(checkin_url);
    free(secret);
}
