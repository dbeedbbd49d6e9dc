/*
 * Device identity: mTLS, Mdm-Signature and proxy-header certificates, verified against the
 * device CA, with every refusal a device or an attacker could provoke.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/x509_vfy.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "mdm/mdm_int.h"
#include "support/pki.h"

struct hdrs {
    const char *names[4];
    const char *values[4];
};

static const char *hdr_fn(const void *arg, const char *name)
{
    const struct hdrs *h = arg;
    for (int i = 0; i < 4 && h->names[i]; i++)
        if (strcasecmp(h->names[i], name) == 0)
            return h->values[i];
    return NULL;
}

static struct tu_cert ca, other_ca, dev, foreign, expired;
static X509_STORE *store;

static void setup(void)
{
    struct tu_cert_opts o = {.cn = "Device CA", .not_after = 86400 * 3650L};
    ca = tu_ca_new(&o);
    o.cn = "Other CA";
    other_ca = tu_ca_new(&o);
    struct tu_cert_opts d = {.cn = "66ADE930-5FDF-5EC4-8429-15640684C489", .not_after = 86400};
    dev = tu_cert_issue(&ca, &d);
    foreign = tu_cert_issue(&other_ca, &d);
    d.not_before = -7200;
    d.not_after = -3600;
    expired = tu_cert_issue(&ca, &d);
    store = X509_STORE_new();
    X509_STORE_add_cert(store, ca.cert);
    X509_STORE_set_purpose(store, X509_PURPOSE_ANY);
}

static void teardown(void)
{
    X509_STORE_free(store);
    tu_cert_free(&ca);
    tu_cert_free(&other_ca);
    tu_cert_free(&dev);
    tu_cert_free(&foreign);
    tu_cert_free(&expired);
}

TestSuite(identity, .init = setup, .fini = teardown);

static struct mdm_request req_with(const char *body, struct hdrs *h)
{
    struct mdm_request r;
    memset(&r, 0, sizeof(r));
    r.method = MDM_PUT;
    r.path = "/mdm/checkin";
    r.body = (const unsigned char *)body;
    r.body_len = strlen(body);
    r.header = hdr_fn;
    r.header_arg = h;
    r.peer_addr = "127.0.0.1";
    return r;
}

static struct mdm_identity_cfg cfg_for(unsigned accepted)
{
    struct mdm_identity_cfg c = {accepted, store, "Client-Cert", "127.0.0.1,::1"};
    return c;
}

Test(identity, mtls_certificate_from_the_device_ca)
{
    struct hdrs h = {{NULL}, {NULL}};
    struct mdm_request r = req_with("<plist/>", &h);
    struct mdm_identity_cfg c = cfg_for(MDM_ID_MTLS);
    struct mdm_identity id;
    struct scepter_error err;
    char want[CRYPTO_SHA256_HEX_LEN];

    r.peer_cert = dev.cert;
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), 0, "%s", err.msg);
    crypto_cert_sha256_hex(dev.cert, want);
    cr_assert_str_eq(id.hash, want);
    cr_assert_str_eq(id.source, "mtls");
    mdm_identity_clear(&id);
}

Test(identity, verified_certificate_cache_never_admits_another_certificate)
{
    static struct mdm_idcache cache;
    struct hdrs h = {{NULL}, {NULL}};
    struct mdm_request r = req_with("<plist/>", &h);
    struct mdm_identity_cfg c = cfg_for(MDM_ID_MTLS);
    struct mdm_identity id;
    struct scepter_error err;

    memset(&cache, 0, sizeof(cache));
    r.idcache = &cache;
    r.peer_cert = dev.cert;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), 0, "%s", err.msg);
        mdm_identity_clear(&id);
    }
    r.peer_cert = foreign.cert; /* same subject, another CA */
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    r.peer_cert = expired.cert;
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    /* a cached certificate past its notAfter is verified again, and refused */
    r.peer_cert = dev.cert;
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL) + 2 * 86400, &id, &err), SCEPTER_EFORBIDDEN);
}

Test(identity, refuses_foreign_ca_expired_and_missing)
{
    struct hdrs h = {{NULL}, {NULL}};
    struct mdm_request r = req_with("<plist/>", &h);
    struct mdm_identity_cfg c = cfg_for(MDM_ID_MTLS);
    struct mdm_identity id;
    struct scepter_error err;

    r.peer_cert = foreign.cert;
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    cr_assert(strstr(err.msg, "does not verify against the device CA") != NULL, "%s", err.msg);
    r.peer_cert = expired.cert;
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    cr_assert(strstr(err.msg, "expired") != NULL, "%s", err.msg);
    r.peer_cert = NULL;
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    cr_assert(strstr(err.msg, "no device identity") != NULL, "%s", err.msg);
    /* mTLS not accepted: a client certificate alone is not enough */
    c = cfg_for(MDM_ID_SIGNATURE);
    r.peer_cert = dev.cert;
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
}

Test(identity, mdm_signature_over_the_exact_body)
{
    const char *body = "<?xml version=\"1.0\"?><plist><dict><key>MessageType</key>"
                       "<string>Authenticate</string></dict></plist>";
    char *sig = tu_mdm_signature(&dev, body, strlen(body));
    struct hdrs h = {{"Mdm-Signature"}, {sig}};
    struct mdm_request r = req_with(body, &h);
    struct mdm_identity_cfg c = cfg_for(MDM_ID_SIGNATURE | MDM_ID_MTLS);
    struct mdm_identity id;
    struct scepter_error err;
    char want[CRYPTO_SHA256_HEX_LEN];

    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), 0, "%s", err.msg);
    crypto_cert_sha256_hex(dev.cert, want);
    cr_assert_str_eq(id.hash, want);
    cr_assert_str_eq(id.source, "signature");
    mdm_identity_clear(&id);

    /* one byte changed: refused */
    char *tampered = xstrdup(body);
    tampered[strlen(tampered) - 10] ^= 1;
    r = req_with(tampered, &h);
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    cr_assert(strstr(err.msg, "does not match the body") != NULL, "%s", err.msg);
    /* with a client certificate, the TLS connection is the identity (the signature exists to
     * cross proxies, which drop client certificates) */
    r.peer_cert = dev.cert;
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), 0, "%s", err.msg);
    cr_assert_str_eq(id.source, "mtls");
    mdm_identity_clear(&id);
    free(tampered);

    /* garbage */
    h.values[0] = "%%%not base64";
    r = req_with(body, &h);
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    h.values[0] = "aGVsbG8=";
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    cr_assert(strstr(err.msg, "not a CMS") != NULL, "%s", err.msg);
    free(sig);

    /* signed by a device of another CA */
    sig = tu_mdm_signature(&foreign, body, strlen(body));
    h.values[0] = sig;
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    cr_assert(strstr(err.msg, "does not verify") != NULL, "%s", err.msg);
    free(sig);
}

Test(identity, mdm_signature_fast_path_with_the_certificate_cache)
{
    static struct mdm_idcache cache;
    const char *body = "<?xml version=\"1.0\"?><plist><dict><key>Status</key>"
                       "<string>Idle</string></dict></plist>";
    char *sig = tu_mdm_signature(&dev, body, strlen(body));
    struct hdrs h = {{"Mdm-Signature"}, {sig}};
    struct mdm_request r = req_with(body, &h);
    struct mdm_identity_cfg c = cfg_for(MDM_ID_SIGNATURE);
    struct mdm_identity id;
    struct scepter_error err;
    char want[CRYPTO_SHA256_HEX_LEN];

    memset(&cache, 0, sizeof(cache));
    r.idcache = &cache;
    crypto_cert_sha256_hex(dev.cert, want);
    for (int i = 0; i < 3; i++) { /* the second and third decode nothing */
        cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), 0, "%s", err.msg);
        cr_assert_str_eq(id.hash, want);
        mdm_identity_clear(&id);
    }
    /* a changed body, a signature from another CA's device: refused, cache or not */
    char *tampered = xstrdup(body);
    tampered[20] ^= 1;
    r = req_with(tampered, &h);
    r.idcache = &cache;
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    cr_assert(strstr(err.msg, "does not match the body") != NULL, "%s", err.msg);
    char *fsig = tu_mdm_signature(&foreign, body, strlen(body));
    h.values[0] = fsig;
    r = req_with(body, &h);
    r.idcache = &cache;
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    cr_assert(strstr(err.msg, "does not verify") != NULL, "%s", err.msg);
    /* the signature of one device with the certificate of another substituted: refused */
    unsigned char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    cr_assert_eq(base64_decode(sig, strlen(sig), false, &a, &alen), 0);
    cr_assert_eq(base64_decode(fsig, strlen(fsig), false, &b, &blen), 0);
    /* certificates differ but have the same length here (same key type, same names) */
    unsigned char *dder = NULL, *fder = NULL;
    int dl = i2d_X509(dev.cert, &dder), fl = i2d_X509(foreign.cert, &fder);
    unsigned char *at = memmem(a, alen, dder, (size_t)dl);
    if (at && dl == fl) {
        memcpy(at, fder, (size_t)fl);
        char *swapped = base64_encode(a, alen);
        h.values[0] = swapped;
        r = req_with(body, &h);
        r.idcache = &cache;
        cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
        free(swapped);
    }
    OPENSSL_free(dder);
    OPENSSL_free(fder);
    free(a);
    free(b);
    mdm_idcache_clear(&cache);
    free(tampered);
    free(fsig);
    free(sig);
}

Test(identity, proxy_header_rfc9440_and_nginx_from_trusted_proxies_only)
{
    unsigned char *der = NULL;
    int len = i2d_X509(dev.cert, &der);
    char *b64 = base64_encode(der, (size_t)len);
    char *sf = xasprintf(":%s:", b64);
    struct hdrs h = {{"Client-Cert"}, {sf}};
    struct mdm_request r = req_with("<plist/>", &h);
    struct mdm_identity_cfg c = cfg_for(MDM_ID_HEADER);
    struct mdm_identity id;
    struct scepter_error err;

    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), 0, "%s", err.msg);
    cr_assert_str_eq(id.source, "header");
    mdm_identity_clear(&id);

    r.peer_addr = "10.1.2.3";
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    cr_assert(strstr(err.msg, "trusted_proxy_addrs") != NULL, "%s", err.msg);

    /* nginx $ssl_client_escaped_cert: URL-escaped PEM */
    char *pem = tu_cert_pem(&dev);
    struct buf esc = BUF_INIT;
    for (const char *p = pem; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))
            buf_putc(&esc, *p);
        else
            buf_printf(&esc, "%%%02X", (unsigned char)*p);
    }
    h.values[0] = esc.data;
    r.peer_addr = "::1";
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), 0, "%s", err.msg);
    mdm_identity_clear(&id);
    h.values[0] = "garbage";
    cr_assert_eq(mdm_identity_get(&c, &r, time(NULL), &id, &err), SCEPTER_EFORBIDDEN);
    buf_free(&esc);
    free(pem);
    free(sf);
    free(b64);
    OPENSSL_free(der);
}

Test(ids, device_user_shared_ipad_and_user_enrollment)
{
    struct mdm_ids ids;
    struct scepter_error err;
    plist_t d = plist_new_dict();

    plistx_set_string(d, "UDID", "ABC-1");
    cr_assert_eq(mdm_ids_from_plist(d, &ids, &err), 0);
    cr_assert_str_eq(ids.enrollment_id, "ABC-1");
    cr_assert_eq(ids.type, STORE_ENROLL_DEVICE);
    plistx_set_string(d, "UserID", "1234-USER");
    cr_assert_eq(mdm_ids_from_plist(d, &ids, &err), 0);
    cr_assert_str_eq(ids.enrollment_id, "ABC-1:1234-USER");
    cr_assert_eq(ids.type, STORE_ENROLL_USER);
    plistx_set_string(d, "UserID", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF");
    cr_assert_eq(mdm_ids_from_plist(d, &ids, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "UserShortName");
    plistx_set_string(d, "UserShortName", "jane@example.com");
    cr_assert_eq(mdm_ids_from_plist(d, &ids, &err), 0);
    cr_assert_str_eq(ids.enrollment_id, "ABC-1:jane@example.com");
    cr_assert_eq(ids.type, STORE_ENROLL_SHARED_IPAD_USER);
    plist_free(d);

    d = plist_new_dict();
    plistx_set_string(d, "EnrollmentID", "E-99");
    plistx_set_string(d, "EnrollmentUserID", "U-1");
    cr_assert_eq(mdm_ids_from_plist(d, &ids, &err), 0);
    cr_assert_str_eq(ids.device_id, "E-99");
    cr_assert_str_eq(ids.enrollment_id, "E-99:U-1");
    cr_assert_eq(ids.type, STORE_ENROLL_USER_ENROLLMENT_USER);
    plist_free(d);

    d = plist_new_dict();
    cr_assert_eq(mdm_ids_from_plist(d, &ids, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "UDID or EnrollmentID") != NULL);
    plistx_set_string(d, "UDID", "bad:id");
    cr_assert_eq(mdm_ids_from_plist(d, &ids, &err), SCEPTER_EINVAL);
    plistx_set_string(d, "UDID", "");
    cr_assert_eq(mdm_ids_from_plist(d, &ids, &err), SCEPTER_EINVAL);
    plist_dict_set_item(d, "UDID", plist_new_uint(5));
    cr_assert_eq(mdm_ids_from_plist(d, &ids, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "expected string") != NULL, "%s", err.msg);
    plist_free(d);
}

Test(connect, error_chain_to_json)
{
    const char *xml =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><dict>"
        "<key>Status</key><string>Error</string><key>ErrorChain</key><array><dict>"
        "<key>ErrorCode</key><integer>4001</integer><key>ErrorDomain</key>"
        "<string>MCProfileErrorDomain</string><key>LocalizedDescription</key>"
        "<string>The SCEP server returned an invalid response.</string></dict></array>"
        "</dict></plist>";
    plist_t d = NULL;
    struct scepter_error err;
    cr_assert_eq(plistx_parse_dict(xml, strlen(xml), &d, &err), 0);
    char *json = mdm_error_chain_json(d, &err);
    cr_assert_not_null(json);
    cr_assert_str_eq(json, "[{\"ErrorCode\":4001,\"ErrorDomain\":\"MCProfileErrorDomain\","
                           "\"LocalizedDescription\":\"The SCEP server returned an invalid "
                           "response.\"}]");
    free(json);
    plist_free(d);
}

Test(http, content_type_matching)
{
    cr_assert(
        mdm_content_type_is("application/x-apple-aspen-mdm", "application/x-apple-aspen-mdm"));
    cr_assert(mdm_content_type_is("Application/X-Apple-Aspen-MDM; charset=utf-8",
                                  "application/x-apple-aspen-mdm"));
    cr_assert_not(mdm_content_type_is("application/x-apple-aspen-mdm-checkin",
                                      "application/x-apple-aspen-mdm"));
    cr_assert_not(mdm_content_type_is(NULL, "application/x-apple-aspen-mdm"));
    cr_assert_not(mdm_content_type_is("text/plain", "application/x-apple-aspen-mdm"));
}
