/*
 * The SCEP client against a real scepserver (Debian's scep package, micromdm scep 2.1.0)
 * started by each test on an ephemeral loopback port: a successful enrollment whose issued
 * certificate carries the requested key size, subject and SubjectAltName; a wrong challenge, a
 * CAFingerprint mismatch and an unreachable URL, each failing with a reason; the same through
 * the device brain's InstallProfile (ErrorChain); and the message parsers on the fixtures.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <openssl/pem.h>

#include "common/crypto.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "support/support.h"
#include "tests/sim/sim_test_util.h"

static plist_t subject_plist(const char *org, const char *cn)
{
    plist_t s = plist_new_array(), rdn, pair;

    rdn = plist_new_array();
    pair = plist_new_array();
    plist_array_append_item(pair, plist_new_string("O"));
    plist_array_append_item(pair, plist_new_string(org));
    plist_array_append_item(rdn, pair);
    plist_array_append_item(s, rdn);
    rdn = plist_new_array();
    pair = plist_new_array();
    plist_array_append_item(pair, plist_new_string("CN"));
    plist_array_append_item(pair, plist_new_string(cn));
    plist_array_append_item(rdn, pair);
    plist_array_append_item(s, rdn);
    return s;
}

/* A SCEP PayloadContent dict. */
static plist_t scep_content(const char *url, const char *challenge, const char *cn, int keysize,
                            int usage)
{
    plist_t c = plist_new_dict(), san = plist_new_dict(), dns = plist_new_array();

    plistx_set_string(c, "URL", url);
    if (challenge)
        plistx_set_string(c, "Challenge", challenge);
    plist_dict_set_item(c, "Subject", subject_plist("Scepter Test", cn));
    plistx_set_uint(c, "Keysize", (uint64_t)keysize);
    plistx_set_string(c, "Key Type", "RSA");
    plistx_set_uint(c, "Key Usage", (uint64_t)usage);
    plist_array_append_item(dns, plist_new_string("dev.example.org"));
    plist_array_append_item(dns, plist_new_string("alt.example.org"));
    plist_dict_set_item(san, "dNSName", dns);
    plistx_set_string(san, "rfc822Name", "dev@example.org");
    plistx_set_string(san, "ntPrincipalName", "dev@EXAMPLE.ORG");
    plist_dict_set_item(c, "SubjectAltName", san);
    return c;
}

static void request(plist_t content, struct sim_scep_request *req)
{
    struct scepter_error err;

    cr_assert_eq(sim_scep_request_from_plist(content, req, &err), 0, "%s", err.msg);
    plist_free(content);
}

static struct sim_scep_opts opts(void)
{
    struct sim_scep_opts o;

    memset(&o, 0, sizeof(o));
    o.timeout_ms = 10000;
    o.delay_scale = 0;
    return o;
}

static bool san_has_dns(X509 *c, const char *name)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(c, NID_subject_alt_name, NULL, NULL);
    bool found = false;

    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS &&
            strcmp((const char *)ASN1_STRING_get0_data(g->d.dNSName), name) == 0)
            found = true;
    }
    GENERAL_NAMES_free(gens);
    return found;
}

Test(scep, enrolls_against_scepserver_with_requested_key_subject_and_san)
{
    struct scep_srv s;
    struct sim_scep_request req;
    struct sim_scep_result res;
    struct sim_scep_opts o = opts();
    struct scepter_error err;
    unsigned char fp[32];
    unsigned fpl = 0;
    char cn[256] = "";
    plist_t content;
    X509_STORE *st;
    X509_STORE_CTX *ctx;

    ts_scep_start(&s, "s3cret");
    content = scep_content(s.url, "s3cret", "device-ok-1", 2048, 5);
    cr_assert(X509_digest(s.ca, EVP_sha256(), fp, &fpl) == 1);
    plistx_set_data(content, "CAFingerprint", fp, fpl);
    request(content, &req);
    cr_assert_eq(sim_scep_enroll(&req, &o, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(res.failure, SIM_SCEP_OK);
    cr_assert_not_null(res.cert);
    /* Key generated on the device with the requested size, matching the issued cert. */
    cr_assert_eq(EVP_PKEY_get_bits(res.key), 2048);
    cr_assert(X509_check_private_key(res.cert, res.key) == 1);
    X509_NAME_get_text_by_NID(X509_get_subject_name(res.cert), NID_commonName, cn, sizeof(cn));
    cr_assert_str_eq(cn, "device-ok-1");
    cr_assert(san_has_dns(res.cert, "dev.example.org"));
    cr_assert(san_has_dns(res.cert, "alt.example.org"));
    /* Issued by the CA and chaining to it. */
    cr_assert_eq(X509_NAME_cmp(X509_get_issuer_name(res.cert), X509_get_subject_name(s.ca)), 0);
    st = X509_STORE_new();
    X509_STORE_add_cert(st, s.ca);
    ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, st, res.cert, NULL);
    cr_assert_eq(X509_verify_cert(ctx), 1, "issued certificate does not chain to the CA");
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    /* scepserver 2.1.0 always issues digitalSignature (it ignores the requested usage), so the
     * requested Key Usage is checked in the CSR test below. */
    cr_assert(X509_get_key_usage(res.cert) & KU_DIGITAL_SIGNATURE);
    sim_scep_result_clear(&res);
    sim_scep_request_clear(&req);
    ts_scep_stop(&s);
}

Test(scep, keysize_1024_and_sha1_fingerprint)
{
    struct scep_srv s;
    struct sim_scep_request req;
    struct sim_scep_result res;
    struct sim_scep_opts o = opts();
    struct scepter_error err;
    unsigned char fp[20];
    unsigned fpl = 0;
    plist_t content;

    ts_scep_start(&s, "s3cret");
    content = scep_content(s.url, "s3cret", "device-1024", 1024, 1);
    cr_assert(X509_digest(s.ca, EVP_sha1(), fp, &fpl) == 1);
    plistx_set_data(content, "CAFingerprint", fp, fpl);
    request(content, &req);
    cr_assert_eq(sim_scep_enroll(&req, &o, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(EVP_PKEY_get_bits(res.key), 1024);
    cr_assert_eq(EVP_PKEY_get_bits(X509_get0_pubkey(res.cert)), 1024);
    sim_scep_result_clear(&res);
    sim_scep_request_clear(&req);
    ts_scep_stop(&s);
}

Test(scep, wrong_challenge_is_rejected_with_reason)
{
    struct scep_srv s;
    struct sim_scep_request req;
    struct sim_scep_result res;
    struct sim_scep_opts o = opts();
    struct scepter_error err;

    ts_scep_start(&s, "s3cret");
    request(scep_content(s.url, "not-the-challenge", "device-bad-challenge", 1024, 5), &req);
    cr_assert_neq(sim_scep_enroll(&req, &o, &res, &err), 0);
    cr_assert_eq(res.failure, SIM_SCEP_REJECTED, "failure %d: %s", res.failure, err.msg);
    cr_assert_null(res.cert);
    cr_assert(strstr(err.msg, "rejected") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "challenge") != NULL, "%s", err.msg);
    sim_scep_result_clear(&res);
    sim_scep_request_clear(&req);
    ts_scep_stop(&s);
}

Test(scep, fingerprint_mismatch_fails_before_sending_the_request)
{
    struct scep_srv s;
    struct sim_scep_request req;
    struct sim_scep_result res;
    struct sim_scep_opts o = opts();
    struct scepter_error err;
    unsigned char fp[32];
    plist_t content;

    ts_scep_start(&s, "s3cret");
    memset(fp, 0x5a, sizeof(fp));
    content = scep_content(s.url, "s3cret", "device-fp", 1024, 5);
    plistx_set_data(content, "CAFingerprint", fp, sizeof(fp));
    request(content, &req);
    cr_assert_neq(sim_scep_enroll(&req, &o, &res, &err), 0);
    cr_assert_eq(res.failure, SIM_SCEP_FINGERPRINT);
    cr_assert_str_eq(err.field, "CAFingerprint");
    cr_assert(strstr(err.msg, "5a5a5a") != NULL, "%s", err.msg);
    sim_scep_result_clear(&res);
    sim_scep_request_clear(&req);
    ts_scep_stop(&s);
}

Test(scep, unreachable_url_fails_with_reason)
{
    struct sim_scep_request req;
    struct sim_scep_result res;
    struct sim_scep_opts o = opts();
    struct scepter_error err;
    char *url = xasprintf("http://127.0.0.1:%d/scep", ts_free_port());

    request(scep_content(url, "x", "device-unreachable", 1024, 5), &req);
    cr_assert_neq(sim_scep_enroll(&req, &o, &res, &err), 0);
    cr_assert_eq(res.failure, SIM_SCEP_UNREACHABLE);
    cr_assert(strstr(err.msg, "unreachable") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, url) != NULL, "%s", err.msg);
    sim_scep_result_clear(&res);
    sim_scep_request_clear(&req);
    free(url);
}

Test(scep, csr_carries_subject_san_key_usage_and_challenge_and_openssl_verifies_it)
{
    struct sim_scep_request req;
    struct scepter_error err;
    X509 *cert;
    EVP_PKEY *key;
    X509_REQ *csr;
    char *dir = tu_tmpdir(), *path = xasprintf("%s/csr.pem", dir), *out = NULL;
    FILE *f;

    request(scep_content("http://127.0.0.1:1/scep", "pa55", "csr-device", 2048, 5), &req);
    ts_identity("unused", &cert, &key);
    csr = sim_scep_make_csr(&req, key, &err);
    cr_assert_not_null(csr, "%s", err.msg);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    PEM_write_X509_REQ(f, csr);
    fclose(f);
    cr_assert_eq(tu_sh(&out, "openssl req -in '%s' -noout -verify -text 2>&1", path), 0, "%s", out);
    cr_assert(strstr(out, "verify OK") != NULL || strstr(out, "Certificate request self-signature "
                                                              "verify OK") != NULL,
              "%s", out);
    cr_assert(strstr(out, "CN = csr-device") != NULL, "%s", out);
    cr_assert(strstr(out, "DNS:dev.example.org") != NULL, "%s", out);
    cr_assert(strstr(out, "email:dev@example.org") != NULL, "%s", out);
    cr_assert(strstr(out, "Digital Signature, Key Encipherment") != NULL, "%s", out);
    cr_assert(strstr(out, "challengePassword") != NULL, "%s", out);
    cr_assert(strstr(out, "pa55") != NULL, "%s", out);
    free(out);
    X509_REQ_free(csr);
    X509_free(cert);
    EVP_PKEY_free(key);
    sim_scep_request_clear(&req);
    tu_rmtree(dir);
    free(dir);
    free(path);
}

Test(scep, payload_validation_names_the_field)
{
    struct sim_scep_request req;
    struct scepter_error err;
    plist_t c;
    unsigned char fp[7] = {0};

    c = scep_content("http://x/scep", "c", "d", 3072, 5);
    cr_assert_eq(sim_scep_request_from_plist(c, &req, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "Keysize");
    cr_assert(strstr(err.msg, "3072 is not one of 1024, 2048, 4096") != NULL, "%s", err.msg);
    plist_free(c);

    c = scep_content("http://x/scep", "c", "d", 2048, 3);
    cr_assert_eq(sim_scep_request_from_plist(c, &req, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "Key Usage");
    plist_free(c);

    c = scep_content("http://x/scep", "c", "d", 2048, 5);
    plistx_set_data(c, "CAFingerprint", fp, sizeof(fp));
    cr_assert_eq(sim_scep_request_from_plist(c, &req, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "CAFingerprint");
    plist_free(c);

    c = scep_content("ftp://x/scep", "c", "d", 2048, 5);
    cr_assert_eq(sim_scep_request_from_plist(c, &req, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "URL");
    plist_free(c);

    c = scep_content("http://x/scep", "c", "d", 2048, 5);
    plist_dict_set_item(c, "Subject", plist_new_string("CN=flat"));
    cr_assert_eq(sim_scep_request_from_plist(c, &req, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "Subject");
    plist_free(c);

    c = scep_content("http://x/scep", "c", "d", 2048, 5);
    plist_dict_remove_item(c, "URL");
    cr_assert_eq(sim_scep_request_from_plist(c, &req, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "URL");
    plist_free(c);
}

Test(scep, parses_micromdm_fixture_messages)
{
    size_t len;
    unsigned char *req = tu_read_data("scep/PKCSReq.der", &len);
    unsigned char *rep;
    struct sim_scep_msg m;
    struct scepter_error err;

    cr_assert_eq(sim_scep_msg_parse(req, len, NULL, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m.message_type, 19);
    cr_assert(strlen(m.transaction_id) > 0);
    cr_assert(m.has_sender_nonce);
    cr_assert(m.content_len > 0);
    sim_scep_msg_clear(&m);
    free(req);

    rep = tu_read_data("scep/CertRep.der", &len);
    cr_assert_eq(sim_scep_msg_parse(rep, len, NULL, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m.message_type, 3);
    cr_assert_eq(m.pki_status, 0);
    cr_assert(m.has_recipient_nonce);
    sim_scep_msg_clear(&m);
    /* A flipped byte in the signature fails verification. */
    rep[len - 1] ^= 0x01;
    cr_assert_neq(sim_scep_msg_parse(rep, len, NULL, &m, &err), 0);
    free(rep);
}

Test(scep, cacert_parsing_and_fingerprints)
{
    size_t len;
    unsigned char *pem = tu_read_data("scep-ca/ca.pem", &len);
    struct scepter_error err;
    X509 *ca = crypto_cert_parse(pem, len, "ca", &err), *enc, *sig, *which;
    unsigned char *der;
    size_t dlen;
    STACK_OF(X509) *certs;
    unsigned char fp[32];
    unsigned fpl;

    cr_assert_not_null(ca, "%s", err.msg);
    der = crypto_cert_der(ca, &dlen);
    certs = sim_scep_parse_cacert(der, dlen, &err);
    cr_assert_not_null(certs, "%s", err.msg);
    cr_assert_eq(sk_X509_num(certs), 1);
    cr_assert_eq(sim_scep_pick_certs(certs, &enc, &sig, &which, &err), 0);
    cr_assert_eq(X509_cmp(which, ca), 0);
    cr_assert_eq(enc, which);
    X509_digest(ca, EVP_sha256(), fp, &fpl);
    cr_assert(sim_scep_fingerprint_matches(certs, fp, 32));
    fp[0] ^= 1;
    cr_assert_not(sim_scep_fingerprint_matches(certs, fp, 32));
    cr_assert_null(sim_scep_parse_cacert("garbage", 7, &err));
    cr_assert_str_eq(err.field, "GetCACert");
    sk_X509_pop_free(certs, X509_free);
    OPENSSL_free(der);
    X509_free(ca);
    free(pem);
}

/* ---------------------------------------------------------------------------------------- */
/* The brain's InstallProfile with a SCEP payload, through the real server                   */

struct scep_env {
    struct sim_scep_opts o;
};

static int real_scep(void *arg, const struct sim_scep_request *req, struct sim_scep_result *res,
                     struct scepter_error *err)
{
    struct scep_env *e = arg;

    return sim_scep_enroll(req, &e->o, res, err);
}

static char *scep_profile_command(const char *url, const char *challenge, const char *cn, bool sign,
                                  X509 *root, size_t *len)
{
    plist_t payloads = plist_new_array(), scep, rp, prof, params;
    unsigned char *der, *data;
    size_t dlen, plen;
    char *xml, *cmd;

    scep = ts_payload("com.apple.security.scep", "org.example.scep",
                      "5C1A0B55-0000-4000-8000-0000000000A1");
    plist_dict_set_item(scep, "PayloadContent", scep_content(url, challenge, cn, 1024, 5));
    plist_array_append_item(payloads, scep);
    rp = ts_payload("com.apple.security.root", "org.example.root",
                    "5C1A0B55-0000-4000-8000-0000000000A2");
    der = crypto_cert_der(root, &dlen);
    plistx_set_data(rp, "PayloadContent", der, dlen);
    OPENSSL_free(der);
    plist_array_append_item(payloads, rp);
    prof = ts_profile("org.example.wifi-cert", "5C1A0B55-0000-4000-8000-0000000000A0", payloads);
    xml = ts_xml(prof, &plen);
    plist_free(prof);
    data = (unsigned char *)xml;
    if (sign) {
        X509 *c;
        EVP_PKEY *k;
        ts_identity("Profile Signer", &c, &k);
        data = ts_cms_sign(xml, plen, c, k, &plen);
        free(xml);
        X509_free(c);
        EVP_PKEY_free(k);
    }
    params = plist_new_dict();
    plistx_set_data(params, "Payload", data, plen);
    free(data);
    cmd = ts_command("CMD-SCEP-1", "InstallProfile", params, len);
    return cmd;
}

static void run_install(struct scep_srv *s, const char *challenge, bool sign, plist_t *result,
                        struct sim_brain_outcome *out, struct sim_device **dev)
{
    struct scep_env se;
    struct sim_brain_env env;
    size_t len;
    char *cmd;

    memset(&se, 0, sizeof(se));
    se.o = opts();
    memset(&env, 0, sizeof(env));
    env.scep = real_scep;
    env.scep_arg = &se;
    *dev = ts_enrolled_device(SIM_IPHONE, 8191);
    cmd = scep_profile_command(s->url, challenge, "brain-device", sign, s->ca, &len);
    sim_brain_handle(*dev, &env, cmd, len, result, out);
    free(cmd);
}

Test(scep, brain_installs_signed_scep_profile_and_lists_the_identity)
{
    struct scep_srv s;
    plist_t r, list;
    struct sim_brain_outcome out;
    struct sim_device *d;
    size_t before;

    ts_scep_start(&s, "s3cret");
    run_install(&s, "s3cret", true, &r, &out, &d);
    cr_assert_str_eq(out.status, "Acknowledged");
    cr_assert_str_eq(plist_get_string_ptr(plist_dict_get_item(r, "Status"), NULL), "Acknowledged");
    cr_assert_str_eq(plist_get_string_ptr(plist_dict_get_item(r, "CommandUUID"), NULL),
                     "CMD-SCEP-1");
    cr_assert(sim_device_has_profile(d, "org.example.wifi-cert"));
    plist_free(r);
    /* CertificateList: the enrollment identity, the root and the SCEP identity. */
    before = sim_device_cert_count(d);
    cr_assert_eq(before, 3);
    {
        size_t len;
        char *cmd = ts_command("CMD-CL", "CertificateList", NULL, &len);
        struct sim_brain_env env;
        int identities = 0;
        memset(&env, 0, sizeof(env));
        sim_brain_handle(d, &env, cmd, len, &r, &out);
        free(cmd);
        list = plist_dict_get_item(r, "CertificateList");
        cr_assert_eq(plist_array_get_size(list), 3);
        for (uint32_t i = 0; i < 3; i++) {
            plist_t e = plist_array_get_item(list, i);
            uint8_t b = 0;
            plist_get_bool_val(plist_dict_get_item(e, "IsIdentity"), &b);
            identities += b;
            if (strcmp(plist_get_string_ptr(plist_dict_get_item(e, "CommonName"), NULL),
                       "brain-device") == 0)
                cr_assert(b);
        }
        cr_assert_eq(identities, 2);
        plist_free(r);
    }
    sim_device_free(d);
    ts_scep_stop(&s);
}

static void assert_scep_error(plist_t r, const char *needle)
{
    plist_t chain = plist_dict_get_item(r, "ErrorChain"), top, cause;
    uint64_t code = 0;

    cr_assert_str_eq(plist_get_string_ptr(plist_dict_get_item(r, "Status"), NULL), "Error");
    cr_assert_not_null(chain);
    cr_assert_eq(plist_array_get_size(chain), 2);
    top = plist_array_get_item(chain, 0);
    cause = plist_array_get_item(chain, 1);
    cr_assert_eq(plist_get_node_type(plist_dict_get_item(top, "ErrorCode")), PLIST_UINT);
    plist_get_uint_val(plist_dict_get_item(top, "ErrorCode"), &code);
    cr_assert_eq(code, 4001);
    cr_assert_str_eq(plist_get_string_ptr(plist_dict_get_item(cause, "ErrorDomain"), NULL),
                     "MCSCEPErrorDomain");
    cr_assert(strstr(plist_get_string_ptr(plist_dict_get_item(cause, "USEnglishDescription"), NULL),
                     needle) != NULL,
              "%s", plist_get_string_ptr(plist_dict_get_item(cause, "USEnglishDescription"), NULL));
    cr_assert_not_null(plist_dict_get_item(cause, "LocalizedDescription"));
}

Test(scep, brain_wrong_challenge_gives_error_chain_and_installs_nothing)
{
    struct scep_srv s;
    plist_t r;
    struct sim_brain_outcome out;
    struct sim_device *d;

    ts_scep_start(&s, "s3cret");
    run_install(&s, "wrong", false, &r, &out, &d);
    cr_assert_str_eq(out.status, "Error");
    assert_scep_error(r, "challenge");
    cr_assert_not(sim_device_has_profile(d, "org.example.wifi-cert"));
    cr_assert_eq(sim_device_cert_count(d), 1); /* only the enrollment identity */
    plist_free(r);
    sim_device_free(d);
    ts_scep_stop(&s);
}

Test(scep, brain_unreachable_scep_url_gives_error_chain)
{
    struct scep_srv s;
    plist_t r;
    struct sim_brain_outcome out;
    struct sim_device *d;
    X509 *c;
    EVP_PKEY *k;

    memset(&s, 0, sizeof(s));
    s.url = xasprintf("http://127.0.0.1:%d/scep", ts_free_port());
    ts_identity("Some Root", &c, &k);
    s.ca = c;
    run_install(&s, "x", false, &r, &out, &d);
    assert_scep_error(r, "could not be reached");
    plist_free(r);
    sim_device_free(d);
    EVP_PKEY_free(k);
    X509_free(s.ca);
    free(s.url);
}
