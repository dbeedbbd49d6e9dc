/*
 * Enrollment-profile parsing (the nanomdm fixture, CMS-signed copies, bad profiles) and the
 * Mdm-Signature header (verified with CMS_verify, detached, over the exact body).
 */
#include <criterion/criterion.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "support/support.h"
#include "tests/sim/sim_test_util.h"

#define NANOMDM "profiles/enroll.mobileconfig"

Test(profile, parses_nanomdm_enrollment_profile)
{
    size_t len;
    unsigned char *data = tu_read_data(NANOMDM, &len);
    struct sim_profile *p;
    struct sim_mdm_settings m;
    struct sim_scep_request req;
    struct scepter_error err;
    const struct sim_payload *scep;

    cr_assert_eq(sim_profile_parse(data, len, NULL, &p, &err), 0, "%s", err.msg);
    cr_assert_str_eq(sim_profile_identifier(p), "com.github.micromdm.nanomdm");
    cr_assert_eq(sim_profile_payload_count(p), 2);
    cr_assert_not(sim_profile_is_signed(p));
    cr_assert_eq(sim_mdm_settings_read(p, &m, &err), 0, "%s", err.msg);
    cr_assert_str_eq(m.server_url, "https://mdm.example.org/mdm");
    cr_assert_str_eq(m.checkin_url, "https://mdm.example.org/mdm"); /* falls back */
    cr_assert(m.sign_message);
    cr_assert(m.checkout_when_removed);
    cr_assert_eq(m.access_rights, 8191);
    cr_assert_str_eq(m.identity_uuid, "CB90E976-AD44-4B69-8108-8095E6260978");
    scep = sim_profile_find(p, "com.apple.security.scep", m.identity_uuid);
    cr_assert_not_null(scep);
    cr_assert_eq(
        sim_scep_request_from_plist(plist_dict_get_item(scep->dict, "PayloadContent"), &req, &err),
        0, "%s", err.msg);
    cr_assert_eq(req.keysize, 2048);
    cr_assert_eq(req.key_usage, 5);
    cr_assert_str_eq(req.challenge, "SCEP-CHALLENGE-HERE");
    cr_assert_str_eq(req.url, "https://mdm.example.org/scep");
    sim_scep_request_clear(&req);
    sim_mdm_settings_clear(&m);
    sim_profile_free(p);
    free(data);
}

Test(profile, signed_profile_verifies_and_tampering_is_refused)
{
    size_t len, slen;
    unsigned char *data = tu_read_data(NANOMDM, &len), *signed_der;
    struct sim_profile *p;
    struct scepter_error err;
    X509 *cert, *other;
    EVP_PKEY *key, *okey;
    X509_STORE *trust;

    ts_identity("Scepter Profile Signing", &cert, &key);
    signed_der = ts_cms_sign(data, len, cert, key, &slen);
    cr_assert_eq(sim_profile_parse(signed_der, slen, NULL, &p, &err), 0, "%s", err.msg);
    cr_assert(sim_profile_is_signed(p));
    cr_assert_eq(sk_X509_num(sim_profile_signers(p)), 1);
    cr_assert_eq(X509_cmp(sk_X509_value(sim_profile_signers(p), 0), cert), 0);
    cr_assert_str_eq(sim_profile_identifier(p), "com.github.micromdm.nanomdm");
    sim_profile_free(p);

    /* Trusted signer: the chain check passes; another trust anchor: refused. */
    trust = X509_STORE_new();
    X509_STORE_add_cert(trust, cert);
    cr_assert_eq(sim_profile_parse(signed_der, slen, trust, &p, &err), 0, "%s", err.msg);
    sim_profile_free(p);
    X509_STORE_free(trust);
    ts_identity("Someone Else", &other, &okey);
    trust = X509_STORE_new();
    X509_STORE_add_cert(trust, other);
    cr_assert_eq(sim_profile_parse(signed_der, slen, trust, &p, &err), SCEPTER_ECRYPTO);
    X509_STORE_free(trust);

    /* Change one byte of the signed content (inside the plist text). */
    {
        unsigned char *hit = memmem(signed_der, slen, "mdm.example.org", 15);
        cr_assert_not_null(hit);
        hit[0] = 'M';
    }
    cr_assert_eq(sim_profile_parse(signed_der, slen, NULL, &p, &err), SCEPTER_ECRYPTO);
    cr_assert(strstr(err.msg, "signature") != NULL, "%s", err.msg);
    free(signed_der);
    X509_free(cert);
    X509_free(other);
    EVP_PKEY_free(key);
    EVP_PKEY_free(okey);
    free(data);
}

static int parse_plist(plist_t root, struct scepter_error *err)
{
    size_t len;
    char *xml = ts_xml(root, &len);
    struct sim_profile *p = NULL;
    int rc = sim_profile_parse(xml, len, NULL, &p, err);

    free(xml);
    sim_profile_free(p);
    plist_free(root);
    return rc;
}

Test(profile, bad_profiles_name_the_field)
{
    struct scepter_error err;
    plist_t pls, root;

    root = ts_profile("a.b", "U1", plist_new_array());
    plistx_set_string(root, "PayloadType", "Profile");
    cr_assert_eq(parse_plist(root, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "PayloadType");

    root = ts_profile("a.b", "U1", plist_new_array());
    plist_dict_remove_item(root, "PayloadUUID");
    cr_assert_eq(parse_plist(root, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "PayloadUUID");

    pls = plist_new_array();
    plist_array_append_item(pls, ts_payload("com.apple.security.root", "x.1", "SAME"));
    plist_array_append_item(pls, ts_payload("com.apple.security.root", "x.2", "SAME"));
    cr_assert_eq(parse_plist(ts_profile("a.b", "U1", pls), &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "repeats") != NULL, "%s", err.msg);

    pls = plist_new_array();
    root = ts_payload("com.apple.security.root", "x.1", "P1");
    plist_dict_remove_item(root, "PayloadIdentifier");
    plist_array_append_item(pls, root);
    cr_assert_eq(parse_plist(ts_profile("a.b", "U1", pls), &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "PayloadContent[0].PayloadIdentifier");

    cr_assert_eq(sim_profile_parse("not a profile", 13, NULL, (struct sim_profile **)&root, &err),
                 SCEPTER_EINVAL);
}

Test(profile, mdm_payload_must_name_an_identity_payload)
{
    size_t len;
    unsigned char *data = tu_read_data(NANOMDM, &len);
    char *xml, *hit;
    struct sim_profile *p;
    struct sim_mdm_settings m;
    struct scepter_error err;

    xml = xmemdup0(data, len);
    hit = strstr(xml, "<string>CB90E976-AD44-4B69-8108-8095E6260978</string>\n\t\t\t<key>"
                      "PayloadIdentifier</key>\n\t\t\t<string>com.github.micromdm.nanomdm.mdm");
    if (hit == NULL) {
        /* The IdentityCertificateUUID occurrence is the second one. */
        hit = strstr(xml, "IdentityCertificateUUID");
        cr_assert_not_null(hit);
        hit = strstr(hit, "CB90");
    }
    cr_assert_not_null(hit);
    memcpy(strstr(hit, "CB90"), "DEAD", 4);
    cr_assert_eq(sim_profile_parse(xml, len, NULL, &p, &err), 0, "%s", err.msg);
    cr_assert_eq(sim_mdm_settings_read(p, &m, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "IdentityCertificateUUID");
    sim_profile_free(p);
    free(xml);
    free(data);
}

Test(profile, micromdm_scep_test_profile_parses)
{
    size_t len;
    unsigned char *data = tu_read_data("scep-ca/sceptest.mobileconfig", &len);
    struct sim_profile *p;
    struct scepter_error err;

    cr_assert_eq(sim_profile_parse(data, len, NULL, &p, &err), 0, "%s", err.msg);
    cr_assert_not_null(sim_profile_find(p, "com.apple.security.scep", NULL));
    sim_profile_free(p);
    free(data);
}

Test(sign, mdm_signature_verifies_detached_over_the_exact_body)
{
    X509 *cert;
    EVP_PKEY *key;
    struct scepter_error err;
    const char body[] = "<?xml version=\"1.0\"?><plist><dict><key>MessageType</key>"
                        "<string>Authenticate</string></dict></plist>\n";
    char *sig, *tampered;
    unsigned char *der;
    size_t dlen;
    const unsigned char *p;
    CMS_ContentInfo *cms;
    BIO *content;
    STACK_OF(X509) *signers;

    ts_identity("66ADE930-5FDF-5EC4-8429-15640684C489", &cert, &key);
    sig = sim_mdm_signature(body, strlen(body), cert, key, &err);
    cr_assert_not_null(sig, "%s", err.msg);
    cr_assert_eq(base64_decode(sig, strlen(sig), false, &der, &dlen), 0);
    p = der;
    cms = d2i_CMS_ContentInfo(NULL, &p, (long)dlen);
    cr_assert_not_null(cms);
    cr_assert(CMS_is_detached(cms));
    content = BIO_new_mem_buf(body, (int)strlen(body));
    cr_assert_eq(CMS_verify(cms, NULL, NULL, content, NULL,
                            CMS_DETACHED | CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY),
                 1);
    BIO_free(content);
    signers = CMS_get0_signers(cms);
    cr_assert_eq(sk_X509_num(signers), 1);
    cr_assert_eq(X509_cmp(sk_X509_value(signers, 0), cert), 0, "signer cert is embedded");
    sk_X509_free(signers);
    /* One byte different: the signature no longer verifies. */
    tampered = xstrdup(body);
    tampered[10] = 'X';
    content = BIO_new_mem_buf(tampered, (int)strlen(tampered));
    cr_assert_neq(CMS_verify(cms, NULL, NULL, content, NULL,
                             CMS_DETACHED | CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY),
                  1);
    BIO_free(content);
    free(tampered);
    CMS_ContentInfo_free(cms);
    free(der);
    free(sig);
    X509_free(cert);
    EVP_PKEY_free(key);
}
