/*
 * Device identity: which certificate a request comes with, and whether it chains to the
 * device CA.  Three sources, each enabled by the `identity` setting:
 *   mtls       the TLS client certificate (preferred: it authenticates the connection);
 *   signature  the Mdm-Signature header: base64 of a detached CMS SignedData over the exact
 *              body bytes, the signer certificate embedded (Apple's SignMessage), used when
 *              there is no client certificate (a proxy terminated TLS);
 *   header     a certificate a TLS-terminating proxy forwards (RFC 9440 Client-Cert as
 *              :base64-DER:, or URL-escaped PEM as nginx's $ssl_client_escaped_cert), only
 *              from the configured proxy addresses.
 * A source that is present but does not verify refuses the request; it never falls through to
 * a weaker one.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include "common/buf.h"
#include "common/codec.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "config/config.h"
#include "mdm/commands_int.h"
#include "mdm/mdm_int.h"
#include "mdm/metrics_int.h"

unsigned mdm_identity_parse(const char *list)
{
    unsigned bits = 0;

    if (cfg_list_has(list, "mtls"))
        bits |= MDM_ID_MTLS;
    if (cfg_list_has(list, "signature"))
        bits |= MDM_ID_SIGNATURE;
    if (cfg_list_has(list, "header"))
        bits |= MDM_ID_HEADER;
    return bits;
}

X509_STORE *mdm_ca_store_load(const char *path, struct scepter_error *err)
{
    STACK_OF(X509) *certs = crypto_certs_load(path, err);
    X509_STORE *store;

    if (certs == NULL)
        return NULL;
    store = X509_STORE_new();
    for (int i = 0; i < sk_X509_num(certs); i++)
        X509_STORE_add_cert(store, sk_X509_value(certs, i));
    sk_X509_pop_free(certs, X509_free);
    /* Device identities carry no particular extended key usage; an intermediate named in the
     * file is a trust anchor on its own (the issuing CA of a SCEP server, say). */
    X509_STORE_set_purpose(store, X509_PURPOSE_ANY);
    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    return store;
}

int mdm_ca_store_add_crls(X509_STORE *store, const char *path, struct scepter_error *err)
{
    BIO *bio = BIO_new_file(path, "r");
    X509_CRL *crl;
    int n = 0;

    if (bio == NULL) {
        ERR_clear_error();
        return scepter_err(err, SCEPTER_EIO, "device_ca_crl_file",
                           "device_ca_crl_file: cannot read %s", path);
    }
    while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_crl(store, crl);
        X509_CRL_free(crl);
        n++;
    }
    BIO_free(bio);
    ERR_clear_error();
    if (n == 0)
        return scepter_err(err, SCEPTER_ECRYPTO, "device_ca_crl_file",
                           "device_ca_crl_file: %s holds no PEM CRL", path);
    /* The leaf is checked against its issuer's CRL; a CA without a CRL in the file fails every
     * certificate it issued ("unable to get certificate CRL"), which is the safe side. */
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    return 0;
}

static int verify_chain(X509_STORE *store, X509 *cert, STACK_OF(X509) *untrusted, int64_t now,
                        const char *source, struct scepter_error *err)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc;

    if (store == NULL) {
        X509_STORE_CTX_free(ctx);
        return scepter_err(err, SCEPTER_EFORBIDDEN, NULL,
                           "no device CA configured (device_ca_file): cannot verify devices");
    }
    if (!X509_STORE_CTX_init(ctx, store, cert, untrusted)) {
        X509_STORE_CTX_free(ctx);
        ERR_clear_error();
        return scepter_err(err, SCEPTER_EINTERNAL, NULL, "X509_STORE_CTX_init failed");
    }
    X509_STORE_CTX_set_time(ctx, 0, (time_t)now);
    if (X509_verify_cert(ctx) == 1) {
        rc = 0;
    } else {
        int e = X509_STORE_CTX_get_error(ctx);
        rc = scepter_err(err, SCEPTER_EFORBIDDEN, NULL,
                         "%s certificate does not verify against the device CA: %s", source,
                         X509_verify_cert_error_string(e));
    }
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Mdm-Signature                                                                             */

/*
 * A DER element at *p (before end): its tag (one byte: low-tag-number form only), its value
 * and the whole element's extent.  Definite lengths only — an indefinite (BER) length, a long
 * tag or a length past end is -1, and the caller takes the general path.
 */
static int der_element(const unsigned char **p, const unsigned char *end, unsigned *tag,
                       const unsigned char **val, size_t *vlen)
{
    const unsigned char *q = *p;
    size_t len = 0;

    if (end - q < 2 || (q[0] & 0x1f) == 0x1f)
        return -1;
    *tag = q[0];
    if (q[1] < 0x80) {
        len = q[1];
        q += 2;
    } else {
        unsigned n = q[1] & 0x7f;
        if (n == 0 || n > 4 || (size_t)(end - q) < 2 + n)
            return -1; /* indefinite length, or absurd */
        for (unsigned i = 0; i < n; i++)
            len = len << 8 | q[2 + i];
        q += 2 + n;
    }
    if (len > (size_t)(end - q))
        return -1;
    *val = q;
    *vlen = len;
    *p = q + len;
    return 0;
}

/* Bytes of the long-form length of len (0: short form). */
static unsigned der_len_bytes(size_t len)
{
    return len < 0x80 ? 0 : len > 0xffffff ? 4 : len > 0xffff ? 3 : len > 0xff ? 2 : 1;
}

/* The size of a whole element with a one-byte tag and a value of len bytes. */
static size_t der_tlv_len(size_t len)
{
    return 2 + der_len_bytes(len) + len;
}

static void der_header(struct buf *out, unsigned tag, size_t len)
{
    unsigned char h[6];
    size_t n = 0;

    h[n++] = (unsigned char)tag;
    if (len < 0x80) {
        h[n++] = (unsigned char)len;
    } else {
        unsigned bytes = der_len_bytes(len);
        h[n++] = (unsigned char)(0x80 | bytes);
        for (unsigned i = bytes; i > 0; i--)
            h[n++] = (unsigned char)(len >> (8 * (i - 1)));
    }
    buf_append(out, h, n);
}

#define MAX_SIG_CERTS 8

/*
 * The Mdm-Signature without its certificates: OpenSSL 3.0 decodes every embedded certificate
 * (its public key through the provider decoders, ~0.5 ms) each time it parses the CMS, so the
 * certificates are taken out here — their DER slices go to cert[], the rest is rebuilt in out —
 * and decoded once per worker (mdm_certcache).  ContentInfo { OID, [0] SignedData { version,
 * digestAlgorithms, encapContentInfo, [0] certificates, [1] crls, signerInfos } }.
 * -1 for anything else; the caller then parses the original with OpenSSL.
 */
static int cms_split_certs(const unsigned char *der, size_t len, struct buf *out,
                           const unsigned char **cert, size_t *cert_len, size_t *ncert)
{
    const unsigned char *p = der, *end = der + len, *ci, *q, *qend, *sd, *e, *eend, *el;
    size_t cilen, oidlen, explen, sdlen, vlen;
    unsigned tag;
    struct buf body = BUF_INIT;
    const unsigned char *oid, *expl;

    *ncert = 0;
    if (der_element(&p, end, &tag, &ci, &cilen) != 0 || tag != 0x30 || p != end)
        return -1;
    q = ci;
    qend = ci + cilen;
    if (der_element(&q, qend, &tag, &oid, &oidlen) != 0 || tag != 0x06)
        return -1;
    const unsigned char *oid_start = ci;
    size_t oid_tlv = (size_t)(q - ci);
    if (der_element(&q, qend, &tag, &expl, &explen) != 0 || tag != 0xa0 || q != qend)
        return -1;
    e = expl;
    eend = expl + explen;
    if (der_element(&e, eend, &tag, &sd, &sdlen) != 0 || tag != 0x30 || e != eend)
        return -1;
    /* the SignedData's elements, all but the certificates */
    for (el = sd; el < sd + sdlen;) {
        const unsigned char *start = el, *v;
        if (der_element(&el, sd + sdlen, &tag, &v, &vlen) != 0)
            goto fail;
        if (tag != 0xa0) {
            buf_append(&body, start, (size_t)(el - start));
            continue;
        }
        for (const unsigned char *c = v; c < v + vlen;) {
            const unsigned char *cstart = c, *cv;
            size_t cl;
            if (der_element(&c, v + vlen, &tag, &cv, &cl) != 0 || tag != 0x30 ||
                *ncert == MAX_SIG_CERTS)
                goto fail;
            cert[*ncert] = cstart;
            cert_len[(*ncert)++] = (size_t)(c - cstart);
        }
    }
    /* ContentInfo { OID, [0] { SignedData } } around the shortened body */
    size_t sd_tlv = der_tlv_len(body.len), ex_tlv = der_tlv_len(sd_tlv);
    der_header(out, 0x30, oid_tlv + ex_tlv);
    buf_append(out, oid_start, oid_tlv);
    der_header(out, 0xa0, sd_tlv);
    der_header(out, 0x30, body.len);
    buf_append(out, body.data, body.len);
    buf_free(&body);
    return 0;
fail:
    buf_free(&body);
    *ncert = 0;
    return -1;
}

/*
 * A decoded certificate for these DER bytes (a new reference), from the worker's cache when
 * there is one: the bytes are hashed before anything is decoded, and md gets that SHA-256 —
 * the certificate's fingerprint, as X509_digest would compute it from the same encoding.
 */
static X509 *certcache_get(struct mdm_idcache *c, const unsigned char *der, size_t len,
                           unsigned char md[CRYPTO_SHA256_LEN])
{
    const unsigned char *p = der;
    size_t slot;
    X509 *x;

    crypto_sha256(der, len, md);
    memcpy(&slot, md, sizeof(slot));
    slot %= MDM_CERTCACHE_SLOTS;
    if (c && c->cert[slot].x && memcmp(c->cert[slot].sha256, md, CRYPTO_SHA256_LEN) == 0) {
        X509_up_ref(c->cert[slot].x);
        return c->cert[slot].x;
    }
    if ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len) {
        X509_free(x);
        ERR_clear_error();
        return NULL;
    }
    if (c == NULL)
        return x;
    X509_free(c->cert[slot].x);
    memcpy(c->cert[slot].sha256, md, CRYPTO_SHA256_LEN);
    c->cert[slot].x = x;
    X509_up_ref(x);
    return x;
}

void mdm_idcache_clear(struct mdm_idcache *c)
{
    for (size_t i = 0; c && i < MDM_CERTCACHE_SLOTS; i++) {
        X509_free(c->cert[i].x);
        c->cert[i].x = NULL;
    }
}

static int from_signature(const char *value, const struct mdm_request *req, X509 **cert,
                          STACK_OF(X509) **chain, unsigned char md[CRYPTO_SHA256_LEN],
                          bool *have_md, struct scepter_error *err)
{
    unsigned char slice_md[MAX_SIG_CERTS][CRYPTO_SHA256_LEN];
    unsigned char *der = NULL;
    size_t len = 0;
    CMS_ContentInfo *cms = NULL;
    BIO *content = NULL;
    STACK_OF(X509) *signers = NULL, *certs = NULL;
    struct buf stripped = BUF_INIT;
    const unsigned char *p, *slice[MAX_SIG_CERTS];
    size_t slice_len[MAX_SIG_CERTS], nslice = 0;
    int rc;

    if (base64_decode(value, strlen(value), false, &der, &len) != 0) {
        rc = scepter_err(err, SCEPTER_EFORBIDDEN, "Mdm-Signature", "Mdm-Signature: not base64");
        goto out;
    }
    if (req->idcache && cms_split_certs(der, len, &stripped, slice, slice_len, &nslice) == 0 &&
        nslice > 0) {
        certs = sk_X509_new_null();
        for (size_t i = 0; i < nslice; i++) {
            X509 *x = certcache_get(req->idcache, slice[i], slice_len[i], slice_md[i]);
            if (x == NULL) {
                rc = scepter_err(err, SCEPTER_EFORBIDDEN, "Mdm-Signature",
                                 "Mdm-Signature: an embedded certificate does not parse");
                goto out;
            }
            sk_X509_push(certs, x);
        }
        p = (const unsigned char *)stripped.data;
        cms = d2i_CMS_ContentInfo(NULL, &p, (long)stripped.len);
    } else {
        p = der;
        cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    }
    if (cms == NULL) {
        rc = scepter_err(err, SCEPTER_EFORBIDDEN, "Mdm-Signature",
                         "Mdm-Signature: not a CMS/PKCS#7 structure");
        goto out;
    }
    /* The body goes in behind a buffering filter, not as a bare memory BIO: OpenSSL 3.0's
     * CMS_verify copies a memory BIO's content into a BIO of its own and leaks that copy when
     * the SignedData names a digest algorithm it does not know — an unauthenticated request
     * could leak memory at will.  Given any other BIO, it reads ours and allocates nothing. */
    content = BIO_new(BIO_f_buffer());
    BIO_push(content,
             BIO_new_mem_buf(req->body ? (const void *)req->body : "", (int)req->body_len));
    if (!CMS_verify(cms, certs, NULL, content, NULL,
                    CMS_DETACHED | CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY)) {
        rc = scepter_err(err, SCEPTER_EFORBIDDEN, "Mdm-Signature",
                         "Mdm-Signature: the signature does not match the body");
        goto out;
    }
    signers = CMS_get0_signers(cms);
    if (signers == NULL || sk_X509_num(signers) != 1) {
        rc = scepter_err(err, SCEPTER_EFORBIDDEN, "Mdm-Signature",
                         "Mdm-Signature: expected exactly one signer certificate");
        goto out;
    }
    *cert = sk_X509_value(signers, 0);
    X509_up_ref(*cert);
    /* The signer is one of the embedded certificates: its fingerprint is already known. */
    for (int i = 0; certs && i < sk_X509_num(certs); i++) {
        if (sk_X509_value(certs, i) == *cert) {
            memcpy(md, slice_md[i], CRYPTO_SHA256_LEN);
            *have_md = true;
        }
    }
    if (certs) {
        *chain = certs;
        certs = NULL;
    } else {
        *chain = CMS_get1_certs(cms);
    }
    rc = 0;
out:
    sk_X509_free(signers);
    sk_X509_pop_free(certs, X509_free);
    BIO_free_all(content);
    CMS_ContentInfo_free(cms);
    buf_free(&stripped);
    free(der);
    ERR_clear_error();
    return rc;
}

/* Decode %XX escapes (nginx's $ssl_client_escaped_cert); the result is the caller's. */
static char *url_unescape(const char *s)
{
    size_t len = strlen(s), o = 0;
    char *out = xmalloc(len + 1);

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else if (s[i] == '+') {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* One RFC 8941 byte sequence ":base64:" into a certificate (through the worker's cache, c may
 * be NULL); md gets its SHA-256. */
static X509 *sf_binary_cert(struct mdm_idcache *c, const char *s, size_t len,
                            unsigned char md[CRYPTO_SHA256_LEN])
{
    unsigned char *der = NULL;
    size_t dlen = 0;
    X509 *cert = NULL;

    while (len && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    if (len < 2 || s[0] != ':' || s[len - 1] != ':')
        return NULL;
    if (base64_decode(s + 1, len - 2, true, &der, &dlen) != 0)
        return NULL;
    cert = certcache_get(c, der, dlen, md);
    free(der);
    return cert;
}

static int from_proxy_header(const struct mdm_identity_cfg *cfg, const struct mdm_request *req,
                             const char *value, X509 **cert, STACK_OF(X509) **chain,
                             unsigned char md[CRYPTO_SHA256_LEN], bool *have_md,
                             struct scepter_error *err)
{
    if (req->peer_addr == NULL ||
        !cfg_list_has(cfg->proxy_addrs ? cfg->proxy_addrs : "", req->peer_addr))
        return scepter_err(err, SCEPTER_EFORBIDDEN, cfg->proxy_header,
                           "%s header from %s, which is not in trusted_proxy_addrs",
                           cfg->proxy_header, req->peer_addr ? req->peer_addr : "?");
    if (value[0] == ':') {
        *cert = sf_binary_cert(req->idcache, value, strlen(value), md);
        *have_md = *cert != NULL;
        /* RFC 9440 Client-Cert-Chain: a list of byte sequences. */
        const char *chainv = mdm_header(req, "Client-Cert-Chain");
        if (*cert && chainv) {
            *chain = sk_X509_new_null();
            const char *p = chainv;
            while (*p) {
                const char *comma = strchr(p, ',');
                size_t n = comma ? (size_t)(comma - p) : strlen(p);
                unsigned char cmd[CRYPTO_SHA256_LEN];
                X509 *c = sf_binary_cert(NULL, p, n, cmd);
                if (c)
                    sk_X509_push(*chain, c);
                if (!comma)
                    break;
                p = comma + 1;
            }
        }
    } else {
        char *pem = url_unescape(value);
        BIO *bio = BIO_new_mem_buf(pem, -1);
        *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
        free(pem);
        ERR_clear_error();
    }
    if (*cert == NULL)
        return scepter_err(err, SCEPTER_EFORBIDDEN, cfg->proxy_header,
                           "%s: not a certificate (RFC 9440 :base64: or URL-escaped PEM)",
                           cfg->proxy_header);
    return 0;
}

static size_t idcache_slot(const unsigned char md[CRYPTO_SHA256_LEN])
{
    size_t h;
    memcpy(&h, md, sizeof(h));
    return h % MDM_IDCACHE_SLOTS;
}

/* Did this exact certificate chain to the device CA before, and is it still valid? */
static bool idcache_hit(const struct mdm_idcache *c, const unsigned char md[CRYPTO_SHA256_LEN],
                        int64_t now)
{
    if (c == NULL)
        return false;
    size_t s = idcache_slot(md);
    return c->slot[s].not_after > now && memcmp(c->slot[s].sha256, md, CRYPTO_SHA256_LEN) == 0;
}

static void idcache_put(struct mdm_idcache *c, const unsigned char md[CRYPTO_SHA256_LEN],
                        int64_t not_after)
{
    if (c == NULL)
        return;
    size_t s = idcache_slot(md);
    memcpy(c->slot[s].sha256, md, CRYPTO_SHA256_LEN);
    c->slot[s].not_after = not_after;
}

int mdm_identity_get(const struct mdm_identity_cfg *cfg, const struct mdm_request *req, int64_t now,
                     struct mdm_identity *out, struct scepter_error *err)
{
    X509 *cert = NULL;
    STACK_OF(X509) *chain = NULL;
    const char *source = NULL, *v;
    unsigned char md[CRYPTO_SHA256_LEN];
    bool have_md = false;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((cfg->accepted & MDM_ID_MTLS) && req->peer_cert != NULL) {
        source = "mtls";
        cert = req->peer_cert;
        X509_up_ref(cert);
    } else if ((cfg->accepted & MDM_ID_SIGNATURE) &&
               (v = mdm_header(req, "Mdm-Signature")) != NULL) {
        source = "signature";
        if ((rc = from_signature(v, req, &cert, &chain, md, &have_md, err)) != 0)
            goto out;
    } else if ((cfg->accepted & MDM_ID_HEADER) && cfg->proxy_header &&
               (v = mdm_header(req, cfg->proxy_header)) != NULL && *v) {
        source = "header";
        /* The proxy must overwrite the header: a second copy means a client's own header got
         * through next to the proxy's, and which one is genuine cannot be told. */
        if (req->header_count && req->header_count(req->header_arg, cfg->proxy_header) > 1) {
            rc = scepter_err(err, SCEPTER_EFORBIDDEN, cfg->proxy_header,
                             "%s: sent more than once; the proxy must overwrite it, not append",
                             cfg->proxy_header);
            goto out;
        }
        if ((rc = from_proxy_header(cfg, req, v, &cert, &chain, md, &have_md, err)) != 0)
            goto out;
    } else {
        rc = scepter_err(err, SCEPTER_EFORBIDDEN, NULL, "no device identity: expected %s%s%s",
                         (cfg->accepted & MDM_ID_SIGNATURE) ? "an Mdm-Signature header " : "",
                         (cfg->accepted & MDM_ID_MTLS) ? "a TLS client certificate " : "",
                         (cfg->accepted & MDM_ID_HEADER) ? "a proxy certificate header" : "");
        goto out;
    }
    if (!have_md) {
        unsigned int mdlen = sizeof(md);
        X509_digest(cert, EVP_sha256(), md, &mdlen);
    }
    if (!idcache_hit(req->idcache, md, now)) {
        if ((rc = verify_chain(cfg->device_ca, cert,
                               chain ? chain
                                     : (strcmp(source, "mtls") == 0 ? req->peer_chain : NULL),
                               now, source, err)) != 0)
            goto out;
        idcache_put(req->idcache, md, crypto_cert_not_after(cert));
    }
    out->cert = cert;
    cert = NULL;
    out->source = source;
    hex_encode_to(md, sizeof(md), out->hash, false);
    rc = 0;
out:
    X509_free(cert);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

void mdm_identity_clear(struct mdm_identity *id)
{
    if (id == NULL)
        return;
    X509_free(id->cert);
    memset(id, 0, sizeof(*id));
}

/* ---------------------------------------------------------------------------------------- */
/* Identity renewal                                                                          */

int64_t mdm_identity_not_after(X509 *cert)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (cert == NULL || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

int mdm_renewal_bind(struct mdm_ctx *ctx, const char *device_id, const char *cert_hash,
                     int64_t not_after, int64_t now, struct scepter_error *err)
{
    int64_t na = 0;
    int rc = store_renewal_bind(ctx->store, device_id, cert_hash, not_after, now, &na, err);

    if (rc != 0)
        return rc;
    char when[24];
    snprintf(when, sizeof(when), "%lld", (long long)na);
    log_kv(LOG_LVL_INFO, "identity_renewed", "device", device_id, "cert", cert_hash, "not_after",
           when, NULL);
    mdm_metrics_renewed(ctx->srv);
    mdm_security_event(ctx, MDM_SEC_RENEWED, "mdm.IdentityRenewed", device_id,
                       json_pack("{s:s,s:s,s:I}", "udid", device_id, "cert_sha256", cert_hash,
                                 "not_after", (json_int_t)na),
                       now);
    return 0;
}

void mdm_renewal_run(struct mdm_ctx *ctx, int64_t now)
{
    struct store_renewal_candidate *c = NULL;
    struct scepter_error err;
    size_t n = 0;
    int64_t days = ctx->cfg->identity_renew_days;

    if (days <= 0)
        return;
    if (store_renewal_candidates(ctx->store, now + days * 86400, 100, &c, &n, &err) != 0) {
        log_warnx("identity renewal: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct buf profile = BUF_INIT;
        struct mdm_command cmd;
        struct store_command sc;
        char hash[CRYPTO_SHA256_HEX_LEN];
        int64_t na = 0;
        const char *dev = c[i].device_id;

        if (mdm_enroll_profile(ctx, now, dev, &profile, hash, &na, &err) != 0) {
            log_kv(LOG_LVL_WARN, "identity_renewal", "device", dev, "msg", err.msg, NULL);
            buf_free(&profile);
            break; /* the next run tries again */
        }
        mdm_command_install_profile(profile.data, profile.len, NULL, &cmd);
        buf_free(&profile);
        memset(&sc, 0, sizeof(sc));
        str_copy(sc.uuid, sizeof(sc.uuid), cmd.uuid);
        sc.request_type = cmd.request_type;
        sc.plist = (const unsigned char *)cmd.plist.data;
        sc.plist_len = cmd.plist.len;
        if (store_renewal_begin(ctx->store, dev, &sc, hash[0] ? hash : NULL, na, now, &err) != 0) {
            log_kv(LOG_LVL_WARN, "identity_renewal", "device", dev, "msg", err.msg, NULL);
        } else {
            char when[24];
            snprintf(when, sizeof(when), "%lld", (long long)c[i].not_after);
            log_kv(LOG_LVL_INFO, "identity_renewal_queued", "device", dev, "command", cmd.uuid,
                   "expires", when, NULL);
            mdm_metrics_command(ctx->srv, MDM_CMD_QUEUED, "InstallProfile", 1);
            mdm_push_enrollments(ctx, &dev, 1);
        }
        mdm_command_clear(&cmd);
    }
    store_renewal_candidates_free(c, n);
}
