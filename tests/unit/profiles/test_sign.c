/*
 * CMS signing: a throwaway CA, intermediate and signing certificate made with the openssl
 * command-line tool; `openssl cms -verify` must accept what profile_sign() produces and give
 * back the exact profile; profile_unwrap() verifies, reports the signer and refuses tampering
 * and untrusted signers.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "common/crypto.h"
#include "common/xmalloc.h"
#include "support/support.h"
#include "tp.h"

static char *g_dir;

static void make_pki(void)
{
    g_dir = tu_tmpdir();
    char *out = NULL;
    int rc = tu_sh(
        &out,
        "cd '%s' && exec 2>&1 && "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
        "  -subj '/CN=Test Root CA' && "
        "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n' "
        "  > ca.ext && "
        "openssl req -newkey rsa:2048 -nodes -keyout int.key -out int.csr -subj '/CN=Test Int' && "
        "openssl x509 -req -in int.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "  -extfile ca.ext -out int.pem && "
        "openssl req -newkey rsa:2048 -nodes -keyout signer.key -out signer.csr "
        "  -subj '/O=Example/CN=Profile Signer' && "
        "openssl x509 -req -in signer.csr -CA int.pem -CAkey int.key -CAcreateserial -days 2 "
        "  -out signer.pem && cat signer.pem int.pem > chain.pem && "
        "printf 'extendedKeyUsage=serverAuth\\n' > tls.ext && "
        "openssl req -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj '/CN=mdm.example' "
        "&& "
        "openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "  -extfile tls.ext -out tls.pem && "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 "
        "  -subj '/CN=Other Root'",
        g_dir);
    cr_assert_eq(rc, 0, "openssl failed:\n%s", out);
    free(out);
}

static void drop_pki(void)
{
    tu_rmtree(g_dir);
    free(g_dir);
}

static char *path(const char *name)
{
    return xasprintf("%s/%s", g_dir, name);
}

static struct profile_signer *load_signer(void)
{
    char *c = path("chain.pem"), *k = path("signer.key");
    struct profile_signer *s = NULL;
    struct scepter_error err;
    cr_assert_eq(profile_signer_load(c, k, NULL, &s, &err), 0, "%s", err.msg);
    free(c);
    free(k);
    return s;
}

static char *sample_profile(size_t *len)
{
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    json_t *j = tp_base();
    cr_assert_eq(tp_parse(j, &p, &pr), 0);
    char *xml = tp_render(&p, NULL, len);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
    return xml;
}

static X509_STORE *store_of(const char *file)
{
    char *f = path(file);
    struct scepter_error err;
    X509 *c = crypto_cert_load(f, &err);
    cr_assert_not_null(c, "%s", err.msg);
    X509_STORE *st = X509_STORE_new();
    X509_STORE_add_cert(st, c);
    X509_free(c);
    free(f);
    return st;
}

TestSuite(sign, .init = make_pki, .fini = drop_pki);

Test(sign, openssl_cms_verify_accepts_the_signed_profile)
{
    size_t len, slen;
    char *xml = sample_profile(&len);
    struct profile_signer *s = load_signer();
    unsigned char *der = NULL;
    struct scepter_error err;

    cr_assert_eq(profile_sign(s, xml, len, &der, &slen, &err), 0, "%s", err.msg);
    char *signed_path = path("policy.mobileconfig"), *content_path = path("content.xml");
    tu_write(signed_path, der, slen);
    char *out = NULL;
    int rc = tu_sh(&out,
                   "openssl cms -verify -inform DER -binary -in '%s' -CAfile '%s/ca.pem' "
                   "-out '%s' 2>&1",
                   signed_path, g_dir, content_path);
    cr_assert_eq(rc, 0, "openssl cms -verify refused it:\n%s", out);
    cr_assert(strstr(out, "Verification successful") != NULL, "%s", out);
    free(out);
    size_t clen;
    unsigned char *content = tu_read(content_path, &clen);
    cr_assert_eq(clen, len);
    cr_assert_eq(memcmp(content, xml, len), 0, "signed content differs from the profile");
    /* the signer and its intermediate are embedded; the content is attached */
    rc = tu_sh(&out, "openssl cms -cmsout -print -inform DER -in '%s' 2>&1", signed_path);
    cr_assert_eq(rc, 0);
    cr_assert(strstr(out, "Profile Signer") != NULL);
    cr_assert(strstr(out, "Test Int") != NULL);
    cr_assert(strstr(out, "eContent: <ABSENT>") == NULL, "content must be attached");
    free(out);
    /* signed by a CA the verifier does not trust: refused */
    rc = tu_sh(&out,
               "openssl cms -verify -inform DER -binary -in '%s' -CAfile '%s/other.pem' "
               "-out /dev/null 2>&1",
               signed_path, g_dir);
    cr_assert_neq(rc, 0, "%s", out);
    free(out);
    free(content);
    free(signed_path);
    free(content_path);
    free(der);
    free(xml);
    profile_signer_free(s);
    profile_signer_free(NULL);
}

Test(sign, unwrap_verifies_and_returns_plist_and_signer)
{
    size_t len, slen, plen;
    char *xml = sample_profile(&len);
    struct profile_signer *s = load_signer();
    unsigned char *der = NULL, *plist = NULL;
    struct scepter_error err;
    X509 *signer = NULL;

    cr_assert_eq(profile_sign(s, xml, len, &der, &slen, &err), 0);
    X509_STORE *trust = store_of("ca.pem");
    cr_assert_eq(profile_unwrap(der, slen, trust, &plist, &plen, &signer, &err), 0, "%s", err.msg);
    cr_assert_eq(plen, len);
    cr_assert_eq(memcmp(plist, xml, len), 0);
    cr_assert_not_null(signer);
    char *subj = crypto_cert_subject(signer);
    cr_assert(strstr(subj, "Profile Signer") != NULL, "%s", subj);
    free(subj);
    X509_free(signer);
    free(plist);
    /* every rendered profile parses back after unwrapping */
    cr_assert_eq(profile_unwrap(der, slen, NULL, &plist, &plen, NULL, &err), 0);
    plist_free(tp_plist((const char *)plist, plen));
    free(plist);

    /* untrusted signer */
    X509_STORE *other = store_of("other.pem");
    cr_assert_eq(profile_unwrap(der, slen, other, &plist, &plen, &signer, &err), SCEPTER_ECRYPTO);
    cr_assert_null(plist);
    cr_assert_null(signer);
    X509_STORE_free(other);

    /* tampered content: flip a byte inside the embedded XML */
    unsigned char *bad = xmemdup(der, slen);
    unsigned char *hit = memmem(bad, slen, "Corp Wi-Fi", 10);
    cr_assert_not_null(hit);
    hit[0] = 'K';
    cr_assert_eq(profile_unwrap(bad, slen, NULL, &plist, &plen, &signer, &err), SCEPTER_ECRYPTO);
    cr_assert(strstr(err.msg, "signature") != NULL, "%s", err.msg);
    cr_assert_eq(profile_unwrap(bad, slen, trust, &plist, &plen, &signer, &err), SCEPTER_ECRYPTO);
    free(bad);

    /* plain plists pass through unsigned; garbage is refused */
    cr_assert_eq(profile_unwrap(xml, len, trust, &plist, &plen, &signer, &err), 0);
    cr_assert_null(signer);
    cr_assert_eq(plen, len);
    free(plist);
    cr_assert_eq(profile_unwrap("garbage!", 8, NULL, &plist, &plen, &signer, &err), SCEPTER_EINVAL);
    cr_assert_eq(profile_unwrap(der, slen / 2, NULL, &plist, &plen, &signer, &err), SCEPTER_EINVAL);
    cr_assert_eq(profile_unwrap("", 0, NULL, &plist, &plen, &signer, &err), SCEPTER_EINVAL);
    X509_STORE_free(trust);
    free(der);
    free(xml);
    profile_signer_free(s);
}

Test(sign, signer_refuses_a_key_that_does_not_match)
{
    char *c = path("signer.pem"), *k = path("other.key"), *missing = path("nope.pem");
    struct profile_signer *s = NULL;
    struct scepter_error err;

    cr_assert_eq(profile_signer_load(c, k, NULL, &s, &err), SCEPTER_ECRYPTO);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, "does not match") != NULL, "%s", err.msg);
    cr_assert_neq(profile_signer_load(missing, k, NULL, &s, &err), 0);
    cr_assert_null(s);
    free(c);
    free(k);
    free(missing);
}

Test(sign, enrollment_profile_signs_too)
{
    struct profile_signer *s = load_signer();
    struct profile_enroll_opts o = {
        .server_url = "https://mdm.example.com/mdm",
        .topic = "com.apple.mgmt.External.11111111-2222-3333-4444-555555555555",
        .scep_url = "https://mdm.example.com/scep",
    };
    char *xml = NULL;
    size_t len, slen, plen;
    unsigned char *der = NULL, *plist = NULL;
    struct scepter_error err;

    cr_assert_eq(profile_enroll_render(&o, &xml, &len, &err), 0, "%s", err.msg);
    cr_assert_eq(profile_sign(s, xml, len, &der, &slen, &err), 0);
    X509_STORE *trust = store_of("ca.pem");
    cr_assert_eq(profile_unwrap(der, slen, trust, &plist, &plen, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(plen, len);
    X509_STORE_free(trust);
    free(plist);
    free(der);
    free(xml);
    profile_signer_free(s);
}

Test(sign, damaged_signed_profiles_never_yield_other_content)
{
    size_t len, slen;
    char *xml = sample_profile(&len);
    struct profile_signer *s = load_signer();
    unsigned char *der = NULL;
    struct scepter_error err;
    uint64_t state = 0x243f6a8885a308d3ull;

    cr_assert_eq(profile_sign(s, xml, len, &der, &slen, &err), 0);
    X509_STORE *trust = store_of("ca.pem");
    for (int iter = 0; iter < 300; iter++) {
        unsigned char *bad = xmemdup(der, slen), *plist = NULL;
        size_t plen = 0, blen = slen;
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if (iter % 3 == 2)
            blen = (size_t)(state % slen); /* truncated */
        else
            bad[state % slen] ^= (unsigned char)(1u << (state >> 40) % 8);
        int rc = profile_unwrap(bad, blen, iter % 2 ? trust : NULL, &plist, &plen, NULL, &err);
        if (rc == 0) {
            /* a flip outside what the signature covers (e.g. an unused certificate field) */
            cr_assert_eq(plen, len);
            cr_assert_eq(memcmp(plist, xml, len), 0, "altered content passed verification");
        } else {
            cr_assert_null(plist);
            cr_assert(rc == SCEPTER_EINVAL || rc == SCEPTER_ECRYPTO, "rc %d", rc);
        }
        free(plist);
        free(bad);
    }
    X509_STORE_free(trust);
    free(der);
    free(xml);
    profile_signer_free(s);
}

Test(sign, tls_certificate_as_signer_needs_purpose_any)
{
    char *c = path("tls.pem"), *k = path("tls.key");
    struct profile_signer *s = NULL;
    struct scepter_error err;
    size_t len, slen, plen;
    unsigned char *der = NULL, *plist = NULL;
    char *xml = sample_profile(&len);

    cr_assert_eq(profile_signer_load(c, k, NULL, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(profile_sign(s, xml, len, &der, &slen, &err), 0, "%s", err.msg);
    X509_STORE *trust = store_of("ca.pem");
    /* serverAuth only: not an S/MIME signer by default ... */
    cr_assert_eq(profile_unwrap(der, slen, trust, &plist, &plen, NULL, &err), SCEPTER_ECRYPTO);
    /* ... but accepted when the trust store allows any purpose, as devices do */
    X509_STORE_set_purpose(trust, X509_PURPOSE_ANY);
    cr_assert_eq(profile_unwrap(der, slen, trust, &plist, &plen, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(plen, len);
    free(plist);
    X509_STORE_free(trust);
    free(der);
    free(xml);
    free(c);
    free(k);
    profile_signer_free(s);
}
