/*
 * The built-in SCEP CA over HTTP, on both stores, with SCEP clients no one here wrote:
 * Debian's `scepclient` (micromdm/scep) and certmonger (its daemon and `scep-submit`).  Each
 * enrolls and gets a certificate that verifies against the CA; a wrong challenge gets
 * FAILURE/badRequest; a one-time challenge works once; a renewal signed with the current
 * certificate works; a revoked certificate is in the CRL, cannot renew, and is refused as a
 * device identity.  Bad input (garbage, truncated, wrong content type, a 1024-bit key, a CSR
 * whose signature does not match, oversized) gets a SCEP FAILURE or a 4xx, and nothing is
 * issued or stored.  Named CAs and the development CA generated on first start.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/plistx.h"
#include "profiles/profiles.h"
#include "common/xmalloc.h"
#include "harness.h"
#include "scepc.h"
#include "support/support.h"

#define STATIC_CHALLENGE "static-Challenge-0123"

struct fix {
    struct h_server s;
    char *work; /* client files and the CA */
};

/* A CA made by `scepter ca init` in dir/name. */
static void ca_init(const char *dir, const char *name)
{
    char *bin = tu_binary_path("mdm/scepter"), *out = NULL;
    int rc = tu_sh(&out, "%s ca init --out %s/%s --bits 2048 --cn 'Test %s CA' 2>&1", bin, dir,
                   name, name);
    cr_assert_eq(rc, 0, "scepter ca init: %s", out);
    free(out);
    free(bin);
}

static void start(struct fix *f, const char *extra)
{
    char *conf;

    f->work = tu_tmpdir();
    ca_init(f->work, "ca");
    /* The SCEP CA is also the device CA: its certificates are device identities. */
    conf = xasprintf("scep_ca_cert_file = %s/ca/ca.pem\nscep_ca_key_file = %s/ca/ca.key\n"
                     "device_ca_file = %s/ca/ca.pem\ndevice_ca_key_file =\n%s",
                     f->work, f->work, f->work, extra ? extra : "");
    struct h_opts o = {.plain_http = true, .extra = conf};
    h_start(&f->s, &o);
    free(conf);
}

static void stop(struct fix *f)
{
    h_stop(&f->s);
    tu_rmtree(f->work);
    free(f->work);
}

/* scepclient against path, in the directory work/name (it keeps key.pem, cert.pem and, as
 * scepclient does, csr.pem and self.pem in its working directory).  Its exit code; *out its
 * output. */
static int scepclient(struct fix *f, const char *path, const char *name, const char *challenge,
                      int bits, char **out)
{
    return tu_sh(out,
                 "mkdir -p %s/%s && cd %s/%s && timeout 60 scepclient -server-url "
                 "http://127.0.0.1:%d%s -private-key key.pem -certificate cert.pem -keySize %d "
                 "-cn %s %s%s 2>&1",
                 f->work, name, f->work, name, f->s.http_port, path, bits, name,
                 challenge ? "-challenge " : "", challenge ? challenge : "");
}

/* `openssl verify` of work/name/cert.pem against the CA (with a CRL file when crl != NULL). */
static int verify(struct fix *f, const char *ca_pem, const char *name, const char *crl, char **out)
{
    return tu_sh(out, "cd %s && openssl verify -CAfile %s %s%s %s/cert.pem 2>&1", f->work, ca_pem,
                 crl ? "-crl_check -CRLfile " : "", crl ? crl : "", name);
}

static json_t *certificates(struct fix *f, const char *ca)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/ca/%s/certificates", ca);
    cr_assert_eq(h_api(&f->s, "GET", path, NULL, &j), 200, "%s", h_json(j));
    free(path);
    json_t *arr = json_object_get(j, "certificates");
    json_incref(arr);
    json_decref(j);
    return arr;
}

static char *one_time_challenge(struct fix *f, const char *ca, const char *udid)
{
    json_t *j = NULL;
    char *path = xasprintf("/v1/ca/%s/challenges", ca);
    char *body = xasprintf("{\"udid\":\"%s\",\"expires\":\"1h\"}", udid);
    cr_assert_eq(h_api(&f->s, "POST", path, body, &j), 201, "%s", h_json(j));
    char *ch = xstrdup(json_string_value(json_object_get(j, "challenge")));
    json_decref(j);
    free(path);
    free(body);
    return ch;
}

static int http_get(struct fix *f, const char *path, struct tu_http_resp *r)
{
    return tu_http(f->s.http_port, false, NULL, NULL, "GET", path, NULL, NULL, 0, r);
}

static int http_post(struct fix *f, const char *path, const char *ctype, const void *body,
                     size_t len, struct tu_http_resp *r)
{
    char *h = ctype ? xasprintf("Content-Type: %s\r\n", ctype) : NULL;
    int rc = tu_http(f->s.http_port, false, NULL, NULL, "POST", path, h, body, len, r);
    free(h);
    return rc;
}

/* work/name/cert.pem and key.pem as an identity. */
static struct tu_cert identity(struct fix *f, const char *name)
{
    struct tu_cert id;
    char *cp = xasprintf("%s/%s/cert.pem", f->work, name),
         *kp = xasprintf("%s/%s/key.pem", f->work, name);
    FILE *fp = fopen(cp, "r");
    cr_assert_not_null(fp);
    id.cert = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    fp = fopen(kp, "r");
    cr_assert_not_null(fp);
    id.key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    cr_assert(id.cert && id.key);
    free(cp);
    free(kp);
    return id;
}

TestSuite(scep_ca, .timeout = 300);

Test(scep_ca, scepclient_enrolls_renews_and_a_revoked_certificate_is_in_the_crl)
{
    struct fix f;
    struct tu_http_resp r;
    char *out = NULL, *serial1, *crl_path;
    json_t *list, *j = NULL;

    start(&f, "scep_challenge = " STATIC_CHALLENGE "\n");
    cr_assert_eq(http_get(&f, "/scep?operation=GetCACaps", &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr((const char *)r.body, "SCEPStandard"));
    cr_assert_not_null(strstr((const char *)r.body, "Renewal"));
    tu_http_resp_free(&r);

    /* Enrollment with the static challenge. */
    cr_assert_eq(scepclient(&f, "/scep", "dev1", STATIC_CHALLENGE, 2048, &out), 0, "%s", out);
    free(out);
    cr_assert_eq(verify(&f, "ca/ca.pem", "dev1", NULL, &out), 0, "%s", out);
    free(out);
    list = certificates(&f, "default");
    cr_assert_eq(json_array_size(list), 1, "%s", h_json(list));
    json_t *c1 = json_array_get(list, 0);
    cr_assert_str_eq(json_string_value(json_object_get(c1, "kind")), "PKCSReq");
    cr_assert_not_null(strstr(json_string_value(json_object_get(c1, "subject")), "CN=dev1"));
    serial1 = xstrdup(json_string_value(json_object_get(c1, "serial")));
    json_decref(list);
    cr_assert_eq(tu_sh(NULL, "cd %s && cp -r dev1 old1", f.work), 0);
    struct tu_cert id = identity(&f, "old1");
    char *auth = h_plist("MessageType", "Authenticate", "Topic", f.s.topic, "UDID", "SCEP-DEV-1",
                         "ProductName", "MacBookPro18,3", NULL);
    struct tu_http_resp ar;
    cr_assert_eq(h_checkin(&f.s, &id, auth, &ar), 0);
    cr_assert_eq(ar.status, 200, "the issued certificate is a device identity");
    tu_http_resp_free(&ar);

    /* Renewal: scepclient signs a RenewalReq with its current certificate. */
    cr_assert_eq(scepclient(&f, "/scep", "dev1", NULL, 2048, &out), 0, "%s", out);
    free(out);
    cr_assert_eq(tu_sh(NULL, "cd %s && ! cmp -s dev1/cert.pem old1/cert.pem", f.work), 0,
                 "the renewal returned the same certificate");
    cr_assert_eq(verify(&f, "ca/ca.pem", "dev1", NULL, &out), 0, "%s", out);
    free(out);
    list = certificates(&f, "default");
    cr_assert_eq(json_array_size(list), 2, "%s", h_json(list));
    json_t *c2 = json_array_get(list, 0);
    cr_assert_str_eq(json_string_value(json_object_get(c2, "kind")), "RenewalReq");
    cr_assert_str_eq(json_string_value(json_object_get(c2, "renewed_from")), serial1);
    json_decref(list);

    /* Revocation: listed in the CRL, refused for renewal. */
    char *path = xasprintf("/v1/ca/default/certificates/%s/revoke", serial1);
    cr_assert_eq(h_api(&f.s, "POST", path, NULL, &j), 200, "%s", h_json(j));
    cr_assert(json_is_false(json_object_get(j, "already_revoked")));
    json_decref(j);
    cr_assert_eq(h_api(&f.s, "POST", path, NULL, &j), 200);
    cr_assert(json_is_true(json_object_get(j, "already_revoked")));
    json_decref(j);
    free(path);
    cr_assert_eq(h_api(&f.s, "POST", "/v1/ca/default/certificates/ABCDEF/revoke", NULL, &j), 404);
    json_decref(j);
    cr_assert_eq(h_api(&f.s, "POST", "/v1/ca/default/certificates/not-hex/revoke", NULL, &j), 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "serial");
    json_decref(j);
    cr_assert_eq(h_api(&f.s, "GET", "/v1/ca/nope/certificates", NULL, &j), 404);
    json_decref(j);

    /* ... and no longer a device identity. */
    cr_assert_eq(h_checkin(&f.s, &id, auth, &ar), 0);
    cr_assert_eq(ar.status, 403, "a revoked certificate is refused as a device identity");
    tu_http_resp_free(&ar);
    free(auth);
    X509_free(id.cert);
    EVP_PKEY_free(id.key);

    cr_assert_eq(http_get(&f, "/scep/default/crl", &r), 0);
    cr_assert_eq(r.status, 200);
    crl_path = xasprintf("%s/crl.der", f.work);
    tu_write(crl_path, r.body, r.body_len);
    tu_http_resp_free(&r);
    cr_assert_eq(tu_sh(&out,
                       "cd %s && openssl crl -inform der -in crl.der -out crl.pem 2>&1 && "
                       "openssl crl -in crl.pem -noout -text | grep -c 'Serial Number: %s'",
                       f.work, serial1),
                 0, "%s", out);
    free(out);
    cr_assert_neq(verify(&f, "ca/ca.pem", "old1", "crl.pem", &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "revoked"), "%s", out);
    free(out);
    cr_assert_eq(verify(&f, "ca/ca.pem", "dev1", "crl.pem", &out), 0, "%s", out);
    free(out);
    /* The certificate names the CRL's URL. */
    cr_assert_eq(tu_sh(&out,
                       "cd %s && openssl x509 -in dev1/cert.pem -noout -ext crlDistributionPoints",
                       f.work),
                 0);
    cr_assert_not_null(strstr(out, "/scep/default/crl"), "%s", out);
    free(out);

    /* The revoked certificate cannot renew. */
    cr_assert_neq(scepclient(&f, "/scep", "old1", NULL, 2048, &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "badCertI"), "%s", out); /* scepclient prints badCertID */
    free(out);
    list = certificates(&f, "default");
    cr_assert_eq(json_array_size(list), 2);
    json_decref(list);
    free(crl_path);
    free(serial1);
    stop(&f);
}

Test(scep_ca, wrong_challenge_and_weak_key_are_refused_and_nothing_is_stored)
{
    struct fix f;
    char *out = NULL;
    json_t *list;

    start(&f, "scep_challenge = " STATIC_CHALLENGE "\n");
    cr_assert_neq(scepclient(&f, "/scep", "w1", "not-the-challenge", 2048, &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "badRequest"), "%s", out);
    free(out);
    cr_assert_neq(scepclient(&f, "/scep", "w2", NULL, 2048, &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "badRequest"), "%s", out);
    free(out);
    cr_assert_neq(scepclient(&f, "/scep", "w3", STATIC_CHALLENGE, 1024, &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "badRequest"), "%s", out);
    free(out);
    cr_assert_eq(tu_sh(NULL, "cd %s && test ! -e w1/cert.pem && test ! -e w3/cert.pem", f.work), 0);
    list = certificates(&f, "default");
    cr_assert_eq(json_array_size(list), 0, "%s", h_json(list));
    json_decref(list);
    stop(&f);
}

Test(scep_ca, a_one_time_challenge_enrolls_once)
{
    struct fix f;
    char *out = NULL, *ch;
    json_t *list, *j = NULL;

    start(&f, NULL); /* no static challenge: one-time challenges only */
    ch = one_time_challenge(&f, "default", "UDID-ONCE-1");
    cr_assert_eq(strlen(ch), 32);
    cr_assert_eq(scepclient(&f, "/scep", "o1", ch, 2048, &out), 0, "%s", out);
    free(out);
    cr_assert_eq(verify(&f, "ca/ca.pem", "o1", NULL, &out), 0, "%s", out);
    free(out);
    cr_assert_neq(scepclient(&f, "/scep", "o2", ch, 2048, &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "badRequest"), "%s", out);
    free(out);
    list = certificates(&f, "default");
    cr_assert_eq(json_array_size(list), 1, "%s", h_json(list));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "udid")),
                     "UDID-ONCE-1");
    json_decref(list);

    cr_assert_eq(h_api(&f.s, "POST", "/v1/ca/default/challenges",
                       "{\"udid\":\"U\",\"expires\":\"forever\"}", &j),
                 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "expires");
    json_decref(j);
    cr_assert_eq(h_api(&f.s, "POST", "/v1/ca/default/challenges", "{\"expires\":\"1h\"}", &j), 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "udid");
    json_decref(j);
    cr_assert_eq(h_api(&f.s, "POST", "/v1/ca/default/challenges",
                       "{\"udid\":\"U\",\"expires\":\"90d\"}", &j),
                 400);
    json_decref(j);
    cr_assert_eq(h_api(&f.s, "POST", "/v1/ca/other/challenges", "{\"udid\":\"U\"}", &j), 404);
    json_decref(j);
    free(ch);
    stop(&f);
}

static X509 *load_pem(const char *path)
{
    FILE *fp = fopen(path, "r");
    cr_assert_not_null(fp, "%s", path);
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    cr_assert_not_null(x);
    return x;
}

Test(scep_ca, bad_input_gets_a_failure_or_4xx_and_nothing_is_stored)
{
    struct fix f;
    struct tu_http_resp r;
    struct scepc_reply rep;
    json_t *list;

    start(&f, "scep_challenge = " STATIC_CHALLENGE "\n");
    char *ca_path = xasprintf("%s/ca/ca.pem", f.work);
    X509 *ca = load_pem(ca_path);
    EVP_PKEY *key = scepc_rsa(2048);
    X509 *self = scepc_self_signed(key, "bad");
    struct scepc_opts o = {.key = key,
                           .cn = "bad",
                           .challenge = STATIC_CHALLENGE,
                           .signer_cert = self,
                           .signer_key = key,
                           .recipient = ca,
                           .bad_csr_signature = true};
    size_t len;
    unsigned char *msg = scepc_build(&o, &len);
    const char *op = "/scep?operation=PKIOperation";

    /* A CSR whose signature does not match: FAILURE badMessageCheck. */
    cr_assert_eq(http_post(&f, op, "application/x-pki-message", msg, len, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(scepc_parse_reply(r.body, r.body_len, ca, key, self, &rep), 0);
    cr_assert_eq(rep.status, 2);
    cr_assert_eq(rep.fail_info, 1);
    tu_http_resp_free(&r);
    /* Truncated and garbage: 400. */
    cr_assert_eq(http_post(&f, op, "application/x-pki-message", msg, len / 2, &r), 0);
    cr_assert_eq(r.status, 400);
    tu_http_resp_free(&r);
    cr_assert_eq(http_post(&f, op, "application/x-pki-message", "garbage!", 8, &r), 0);
    cr_assert_eq(r.status, 400);
    tu_http_resp_free(&r);
    cr_assert_eq(http_get(&f, "/scep?operation=PKIOperation&message=%%%%%%", &r), 0);
    cr_assert_eq(r.status, 400);
    tu_http_resp_free(&r);
    /* Wrong content type: 415. */
    cr_assert_eq(http_post(&f, op, "application/json", msg, len, &r), 0);
    cr_assert_eq(r.status, 415);
    tu_http_resp_free(&r);
    /* Oversized: 413. */
    unsigned char *big = xcalloc(1, 65 * 1024);
    cr_assert_eq(http_post(&f, op, "application/x-pki-message", big, 65 * 1024, &r), 0);
    cr_assert_eq(r.status, 413);
    tu_http_resp_free(&r);
    free(big);
    /* Unknown operation, unknown CA, missing operation, CRL by POST. */
    cr_assert_eq(http_get(&f, "/scep?operation=GetNextCACert", &r), 0);
    cr_assert_eq(r.status, 400);
    tu_http_resp_free(&r);
    cr_assert_eq(http_get(&f, "/scep/nope?operation=GetCACaps", &r), 0);
    cr_assert_eq(r.status, 404);
    tu_http_resp_free(&r);
    cr_assert_eq(http_get(&f, "/scep", &r), 0);
    cr_assert_eq(r.status, 400);
    tu_http_resp_free(&r);
    cr_assert_eq(http_post(&f, "/scep/default/crl", NULL, "x", 1, &r), 0);
    cr_assert_eq(r.status, 405);
    tu_http_resp_free(&r);

    /* The same request, well formed, over GET: it enrolls (so the refusals above were the
     * input's fault). */
    o.bad_csr_signature = false;
    free(msg);
    msg = scepc_build(&o, &len);
    {
        /* base64 with '+' and '/' escaped, as clients do. */
        static const char tbl[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        struct buf q = BUF_INIT;
        buf_puts(&q, "/scep?operation=PKIOperation&message=");
        for (size_t i = 0; i < len; i += 3) {
            unsigned v = (unsigned)msg[i] << 16 | (i + 1 < len ? (unsigned)msg[i + 1] << 8 : 0) |
                         (i + 2 < len ? msg[i + 2] : 0);
            for (int k = 0; k < 4; k++) {
                char ch = (k < 2 || i + (size_t)k - 1 < len) ? tbl[(v >> (18 - 6 * k)) & 63] : '=';
                if (ch == '+')
                    buf_puts(&q, "%2B");
                else if (ch == '/')
                    buf_puts(&q, "%2F");
                else if (ch == '=')
                    buf_puts(&q, "%3D");
                else
                    buf_putc(&q, ch);
            }
        }
        cr_assert_eq(http_get(&f, q.data, &r), 0);
        buf_free(&q);
    }
    cr_assert_eq(r.status, 200);
    cr_assert_eq(scepc_parse_reply(r.body, r.body_len, ca, key, self, &rep), 0);
    cr_assert_eq(rep.status, 0, "fail_info %d", rep.fail_info);
    cr_assert_not_null(rep.cert);
    X509_free(rep.cert);
    tu_http_resp_free(&r);
    list = certificates(&f, "default");
    cr_assert_eq(json_array_size(list), 1, "only the good request is recorded: %s", h_json(list));
    json_decref(list);

    free(msg);
    X509_free(self);
    X509_free(ca);
    EVP_PKEY_free(key);
    free(ca_path);
    stop(&f);
}

Test(scep_ca, named_cas_and_the_generated_development_ca)
{
    struct h_server s;
    struct tu_http_resp r;
    char *work = tu_tmpdir(), *conf, *out = NULL;
    json_t *j = NULL;

    ca_init(work, "lab");
    conf = xasprintf("scep_ca_generate = true\nscep_ca_dir = %s/gen/ca\nscep_cas = lab=%s/lab\n"
                     "scep_challenge = " STATIC_CHALLENGE "\n",
                     work, work);
    struct h_opts o = {.plain_http = true, .extra = conf};
    h_start(&s, &o);
    cr_assert_eq(tu_sh(NULL,
                       "test -s %s/gen/ca/ca.pem && test -s %s/gen/ca/ca.key && "
                       "test \"$(stat -c %%a %s/gen/ca/ca.key)\" = 600",
                       work, work, work),
                 0, "the development CA was not generated");
    cr_assert_eq(h_api(&s, "GET", "/v1/ca", NULL, &j), 200);
    json_t *cas = json_object_get(j, "cas");
    cr_assert_eq(json_array_size(cas), 2, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(cas, 0), "name")), "default");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(cas, 1), "name")), "lab");
    cr_assert_eq(
        strlen(json_string_value(json_object_get(json_array_get(cas, 1), "ca_fingerprint_sha256"))),
        64);
    json_decref(j);

    cr_assert_eq(tu_http(s.http_port, false, NULL, NULL, "GET", "/scep/lab?operation=GetCACert",
                         NULL, NULL, 0, &r),
                 0);
    cr_assert_eq(r.status, 200);
    const unsigned char *p = r.body;
    X509 *x = d2i_X509(NULL, &p, (long)r.body_len);
    cr_assert_not_null(x);
    char *subj = X509_NAME_oneline(X509_get_subject_name(x), NULL, 0);
    cr_assert_not_null(strstr(subj, "Test lab CA"), "%s", subj);
    OPENSSL_free(subj);
    X509_free(x);
    tu_http_resp_free(&r);

    /* scepclient enrolls with the lab CA: verifies against lab, not against the default. */
    cr_assert_eq(tu_sh(&out,
                       "mkdir -p %s/l && cd %s/l && timeout 60 scepclient -server-url "
                       "http://127.0.0.1:%d/scep/lab -private-key key.pem -certificate cert.pem "
                       "-cn labdev -challenge %s 2>&1",
                       work, work, s.http_port, STATIC_CHALLENGE),
                 0, "%s", out);
    free(out);
    cr_assert_eq(tu_sh(&out, "cd %s && openssl verify -CAfile lab/ca.pem l/cert.pem 2>&1", work), 0,
                 "%s", out);
    free(out);
    cr_assert_neq(
        tu_sh(&out, "cd %s && openssl verify -CAfile gen/ca/ca.pem l/cert.pem 2>&1", work), 0);
    free(out);
    cr_assert_eq(h_api(&s, "GET", "/v1/ca/lab/certificates", NULL, &j), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "certificates")), 1);
    json_decref(j);
    cr_assert_eq(h_api(&s, "GET", "/v1/ca/default/certificates", NULL, &j), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "certificates")), 0);
    json_decref(j);
    h_stop(&s);
    tu_rmtree(work);
    free(work);
    free(conf);
}

Test(scep_ca, certmonger_enrolls)
{
    struct fix f;
    char *out = NULL, nick[64];
    json_t *list;

    cr_assert_eq(tu_sh(NULL, "command -v certmonger && command -v getcert && "
                             "command -v dbus-run-session"),
                 0, "certmonger is missing: scripts/deps.sh test installs it");
    start(&f, "scep_challenge = " STATIC_CHALLENGE "\n");
    snprintf(nick, sizeof(nick), "scepter-test-%d", (int)getpid());
    char *script = xasprintf(
        "set -u\n"
        "mkdir -p %s/cm\n"
        "certmonger -s -n > %s/cm/certmonger.log 2>&1 &\n"
        "CM=$!\n"
        "for i in $(seq 1 50); do getcert list-cas -s >/dev/null 2>&1 && break; sleep 0.2; done\n"
        "getcert add-scep-ca -s -c %s -u http://127.0.0.1:%d/scep -N %s/ca/ca.pem\n"
        "getcert request -s -c %s -I %s-req -f %s/cm/cert.pem -k %s/cm/key.pem -L %s -N CN=cmdev "
        "-w -v\n"
        "rc=$?\n"
        "getcert stop-tracking -s -i %s-req >/dev/null 2>&1\n"
        "getcert remove-ca -s -c %s >/dev/null 2>&1\n"
        "kill $CM; wait $CM 2>/dev/null\n"
        "exit $rc\n",
        f.work, f.work, nick, f.s.http_port, f.work, nick, nick, f.work, f.work, STATIC_CHALLENGE,
        nick, nick);
    char *path = xasprintf("%s/cm.sh", f.work);
    tu_write(path, script, strlen(script));
    int rc = tu_sh(&out, "timeout 120 dbus-run-session -- sh %s 2>&1", path);
    cr_assert_eq(rc, 0, "certmonger: %s", out);
    free(out);
    cr_assert_eq(verify(&f, "ca/ca.pem", "cm", NULL, &out), 0, "%s", out);
    free(out);
    list = certificates(&f, "default");
    cr_assert_eq(json_array_size(list), 1, "%s", h_json(list));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "subject")),
                     "CN=cmdev");
    json_decref(list);

    /* certmonger's SCEP helper by itself: capabilities and the CA certificate. */
    cr_assert_eq(tu_sh(&out, "%s -u http://127.0.0.1:%d/scep -c 2>&1",
                       access("/usr/libexec/certmonger/scep-submit", X_OK) == 0
                           ? "/usr/libexec/certmonger/scep-submit"
                           : "/usr/lib/certmonger/scep-submit",
                       f.s.http_port),
                 0, "%s", out);
    cr_assert_not_null(strstr(out, "SCEPStandard"), "%s", out);
    free(out);
    free(script);
    free(path);
    stop(&f);
}

Test(scep_ca, a_policy_uses_scepters_ca)
{
    struct fix f;
    json_t *j = NULL, *cas = NULL;

    start(&f, "scep_challenge = " STATIC_CHALLENGE "\n");
    cr_assert_eq(h_api(&f.s, "GET", "/v1/ca", NULL, &cas), 200);
    const char *fp = json_string_value(
        json_object_get(json_array_get(json_object_get(cas, "cas"), 0), "ca_fingerprint_sha256"));
    cr_assert_not_null(fp);

    cr_assert_eq(h_api(&f.s, "POST", "/v1/policies",
                       "{\"name\":\"Scepter CA\",\"platform\":\"macos\",\"scep\":{\"scepter_ca\":"
                       "\"default\",\"subject\":\"/O=Example/CN=%SerialNumber%/\",\"key_size\":"
                       "2048}}",
                       &j),
                 201, "%s", h_json(j));
    json_t *scep = json_object_get(j, "scep");
    char *want_url = xasprintf("https://127.0.0.1:%d/scep", f.s.port);
    cr_assert_str_eq(json_string_value(json_object_get(scep, "url")), want_url, "%s", h_json(j));
    cr_assert_str_eq(json_string_value(json_object_get(scep, "fingerprint")), fp);
    /* No challenge is stored: every device's profile gets a one-time challenge of its own. */
    cr_assert_null(json_object_get(scep, "challenge"), "%s", h_json(j));
    cr_assert_null(json_object_get(scep, "scepter_ca"));
    free(want_url);
    json_decref(j);

    cr_assert_eq(h_api(&f.s, "POST", "/v1/policies",
                       "{\"name\":\"X\",\"platform\":\"macos\",\"scep\":{\"scepter_ca\":\"nope\"}}",
                       &j),
                 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "scep.scepter_ca");
    json_decref(j);
    cr_assert_eq(h_api(&f.s, "POST", "/v1/policies",
                       "{\"name\":\"X\",\"platform\":\"macos\",\"scep\":{\"scepter_ca\":"
                       "\"default\",\"url\":\"http://elsewhere/scep\"}}",
                       &j),
                 400);
    cr_assert_str_eq(json_string_value(json_object_get(j, "field")), "scep.url");
    json_decref(j);
    json_decref(cas);
    stop(&f);
}

/* ---------------------------------------------------------------------------------------- */
/* One-time challenges in policy profiles                                                    */

/* A device identity from the CA under test (scepclient with a one-time challenge), enrolled
 * as udid with product. */
static struct tu_cert enrolled_device(struct fix *f, const char *udid, const char *product)
{
    char *out = NULL, *ch = one_time_challenge(f, "default", udid);
    cr_assert_eq(scepclient(f, "/scep", udid, ch, 2048, &out), 0, "%s", out);
    free(out);
    free(ch);
    struct tu_cert id = identity(f, udid);
    h_enroll(&f->s, &id, udid, product);
    return id;
}

/* The device's next command (Idle), parsed; NULL when there is none. */
static plist_t next_command(struct fix *f, const struct tu_cert *id, const char *udid)
{
    struct tu_http_resp r;
    struct scepter_error err;
    char *body = h_plist("Status", "Idle", "UDID", udid, NULL);
    plist_t d = NULL;

    cr_assert_eq(h_connect(&f->s, id, body, &r), 0);
    cr_assert_eq(r.status, 200, "%s: %d %s", udid, r.status, r.body);
    free(body);
    if (r.body_len > 0)
        cr_assert_eq(plistx_parse_dict(r.body, r.body_len, &d, &err), 0, "%s", err.msg);
    tu_http_resp_free(&r);
    return d;
}

/* Acknowledge a command. */
static void ack(struct fix *f, const struct tu_cert *id, const char *udid, plist_t cmd)
{
    struct tu_http_resp r;
    const char *uuid = NULL;
    cr_assert_eq(plistx_get_string(cmd, "CommandUUID", true, &uuid, NULL), 0);
    char *body = h_plist("Status", "Acknowledged", "UDID", udid, "CommandUUID", uuid, NULL);
    cr_assert_eq(h_connect(&f->s, id, body, &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    free(body);
}

/* The SCEP payload's content of an InstallProfile command (a copy: plist_free). */
static plist_t scep_content(plist_t cmd)
{
    plist_t c = NULL, prof = NULL, content = NULL, out = NULL;
    const unsigned char *payload;
    unsigned char *inner = NULL;
    size_t len, ilen;
    struct scepter_error err;

    cr_assert_eq(plistx_get_dict(cmd, "Command", true, &c, &err), 0);
    cr_assert_eq(plistx_get_data(c, "Payload", true, &payload, &len, &err), 0);
    cr_assert_eq(profile_unwrap(payload, len, NULL, &inner, &ilen, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(plistx_parse_dict(inner, ilen, &prof, &err), 0, "%s", err.msg);
    free(inner);
    cr_assert_eq(plistx_get_array(prof, "PayloadContent", true, &content, &err), 0);
    for (uint32_t i = 0; i < plist_array_get_size(content) && out == NULL; i++) {
        plist_t pl = plist_array_get_item(content, i);
        const char *type = NULL;
        if (plistx_get_string(pl, "PayloadType", true, &type, &err) == 0 &&
            strcmp(type, "com.apple.security.scep") == 0)
            out = plist_copy(plist_dict_get_item(pl, "PayloadContent"));
    }
    plist_free(prof);
    cr_assert_not_null(out, "no SCEP payload in the profile");
    return out;
}

static char *challenge_of(plist_t scep)
{
    const char *ch = NULL;
    cr_assert_eq(plistx_get_string(scep, "Challenge", true, &ch, NULL), 0,
                 "the profile carries a challenge");
    return xstrdup(ch);
}

/* PKCSReq to /scep for cn (+ DNS name) with challenge: the reply (rep->cert set on SUCCESS). */
static void pkcsreq(struct fix *f, X509 *ca, const char *cn, const char *dns, const char *challenge,
                    struct scepc_reply *rep)
{
    struct tu_http_resp r;
    EVP_PKEY *key = scepc_rsa(2048);
    X509 *self = scepc_self_signed(key, cn);
    struct scepc_opts o = {.key = key,
                           .cn = cn,
                           .san_dns = dns,
                           .challenge = challenge,
                           .signer_cert = self,
                           .signer_key = key,
                           .recipient = ca};
    size_t len;
    unsigned char *msg = scepc_build(&o, &len);

    cr_assert_eq(
        http_post(f, "/scep?operation=PKIOperation", "application/x-pki-message", msg, len, &r), 0);
    cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
    cr_assert_eq(scepc_parse_reply(r.body, r.body_len, ca, key, self, rep), 0);
    tu_http_resp_free(&r);
    free(msg);
    X509_free(self);
    EVP_PKEY_free(key);
}

Test(scep_ca, policy_profiles_carry_one_time_challenges_bound_to_their_device)
{
    struct fix f;
    struct scepc_reply rep;
    json_t *j = NULL, *list;
    char *out = NULL;

    start(&f, NULL); /* no static challenge: only what Scepter hands out */
    char *ca_path = xasprintf("%s/ca/ca.pem", f.work);
    X509 *ca = load_pem(ca_path);
    unsigned char md[32];
    unsigned int mdlen = 0;
    X509_digest(ca, EVP_sha256(), md, &mdlen);

    struct tu_cert a = enrolled_device(&f, "UDID-A", "iPhone14,2");
    struct tu_cert b = enrolled_device(&f, "UDID-B", "iPhone14,2");
    const char *policy = "{\"name\":\"Bound\",\"platform\":\"ios\",\"scep\":{\"scepter_ca\":"
                         "\"default\",\"subject\":\"/CN=%UDID%\",\"key_size\":2048,"
                         "\"subject_alt_name\":{\"dns_name\":\"%UDID%.devices.example.com\"}},"
                         "\"targets\":{\"devices\":[\"UDID-A\",\"UDID-B\"]}}";
    cr_assert_eq(h_api(&f.s, "POST", "/v1/policies", policy, &j), 201, "%s", h_json(j));
    cr_assert_eq(json_integer_value(json_object_get(j, "queued_installs")), 2, "%s", h_json(j));
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);

    plist_t ca_cmd = next_command(&f, &a, "UDID-A"), cb_cmd = next_command(&f, &b, "UDID-B");
    cr_assert(ca_cmd && cb_cmd);
    plist_t sa = scep_content(ca_cmd), sb = scep_content(cb_cmd);
    char *cha = challenge_of(sa), *chb = challenge_of(sb);
    cr_assert_eq(strlen(cha), 32);
    cr_assert_str_neq(cha, chb, "each device's profile has its own challenge");
    /* URL and CAFingerprint: Scepter's CA. */
    const char *url = NULL;
    const unsigned char *fp = NULL;
    size_t fplen = 0;
    cr_assert_eq(plistx_get_string(sa, "URL", true, &url, NULL), 0);
    char *want_url = xasprintf("https://127.0.0.1:%d/scep", f.s.port);
    cr_assert_str_eq(url, want_url);
    cr_assert_eq(plistx_get_data(sa, "CAFingerprint", true, &fp, &fplen, NULL), 0);
    cr_assert(fplen == 32 && memcmp(fp, md, 32) == 0, "CAFingerprint is the CA's SHA-256");

    /* Device B's request with A's challenge: refused, and A's challenge still works. */
    pkcsreq(&f, ca, "UDID-B", "UDID-B.devices.example.com", cha, &rep);
    cr_assert_eq(rep.status, 2, "a challenge rendered for A issues nothing to B");
    cr_assert_eq(rep.fail_info, 2, "badRequest");
    /* Nor for A's subject with other names. */
    pkcsreq(&f, ca, "UDID-A", "evil.example.com", cha, &rep);
    cr_assert_eq(rep.status, 2);
    cr_assert_eq(h_api(&f.s, "GET", "/v1/ca/default/certificates", NULL, &j), 200);
    cr_assert_eq(json_array_size(json_object_get(j, "certificates")), 2, "only the two identities");
    json_decref(j);
    cr_assert_eq(tu_sh(&out, "grep -c 'issued for the profile of device UDID-A' %s", f.s.log_file),
                 0, "the log says why");
    free(out);

    pkcsreq(&f, ca, "UDID-A", "UDID-A.devices.example.com", cha, &rep);
    cr_assert_eq(rep.status, 0, "A's own request with A's challenge");
    cr_assert_not_null(rep.cert);
    X509_free(rep.cert);
    pkcsreq(&f, ca, "UDID-A", "UDID-A.devices.example.com", cha, &rep);
    cr_assert_eq(rep.status, 2, "single use");
    pkcsreq(&f, ca, "UDID-B", "UDID-B.devices.example.com", chb, &rep);
    cr_assert_eq(rep.status, 0);
    X509_free(rep.cert);
    list = certificates(&f, "default");
    cr_assert_eq(json_array_size(list), 4, "%s", h_json(list));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "udid")), "UDID-B");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 1), "udid")), "UDID-A");
    cr_assert_not_null(strstr(json_string_value(json_object_get(json_array_get(list, 1), "sans")),
                              "DNS:UDID-A.devices.example.com"),
                       "%s", h_json(list));
    json_decref(list);

    /* Rendering again (the policy updated) hands out a fresh challenge. */
    ack(&f, &a, "UDID-A", ca_cmd);
    char *path = xasprintf("/v1/policies/%lld", (long long)id);
    cr_assert_eq(h_api(&f.s, "PUT", path, policy, &j), 200, "%s", h_json(j));
    json_decref(j);
    plist_t again = next_command(&f, &a, "UDID-A");
    cr_assert_not_null(again);
    plist_t sa2 = scep_content(again);
    char *cha2 = challenge_of(sa2);
    cr_assert_str_neq(cha2, cha, "a re-rendered profile gets a new challenge");
    pkcsreq(&f, ca, "UDID-A", "UDID-A.devices.example.com", cha2, &rep);
    cr_assert_eq(rep.status, 0);
    X509_free(rep.cert);

    plist_free(sa2);
    plist_free(again);
    free(cha2);
    free(path);
    free(want_url);
    free(cha);
    free(chb);
    plist_free(sa);
    plist_free(sb);
    plist_free(ca_cmd);
    plist_free(cb_cmd);
    X509_free(a.cert);
    EVP_PKEY_free(a.key);
    X509_free(b.cert);
    EVP_PKEY_free(b.key);
    X509_free(ca);
    free(ca_path);
    stop(&f);
}

/* Several DNS names in the policy (an array): the profile asks for all of them, each with the
 * device's value, and the one-time challenge issues only a certificate with all, in order. */
Test(scep_ca, several_subject_alt_names_are_bound_to_the_challenge)
{
    struct fix f;
    struct scepc_reply rep;
    json_t *j = NULL;

    start(&f, NULL);
    char *ca_path = xasprintf("%s/ca/ca.pem", f.work);
    X509 *ca = load_pem(ca_path);
    struct tu_cert a = enrolled_device(&f, "UDID-S", "iPhone14,2");
    const char *policy =
        "{\"name\":\"Two names\",\"platform\":\"ios\",\"scep\":{\"scepter_ca\":"
        "\"default\",\"subject\":\"/CN=%UDID%\",\"key_size\":2048,"
        "\"subject_alt_name\":{\"dns_name\":[\"%UDID%.devices.example.com\","
        "\"%SerialNumber%.serials.example.com\"]}},\"targets\":{\"devices\":[\"UDID-S\"]}}";
    cr_assert_eq(h_api(&f.s, "POST", "/v1/policies", policy, &j), 201, "%s", h_json(j));
    json_decref(j);
    plist_t cmd = next_command(&f, &a, "UDID-S");
    cr_assert_not_null(cmd);
    plist_t sc = scep_content(cmd);
    plist_t dns = plist_dict_get_item(plist_dict_get_item(sc, "SubjectAltName"), "dNSName");
    cr_assert_eq(plist_get_node_type(dns), PLIST_ARRAY, "several names: an array");
    cr_assert_eq(plist_array_get_size(dns), 2);
    cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(dns, 0), NULL),
                     "UDID-S.devices.example.com");
    char *ch = challenge_of(sc);

    /* only one of the two names: refused (and the challenge is not used up) */
    pkcsreq(&f, ca, "UDID-S", "UDID-S.devices.example.com", ch, &rep);
    cr_assert_eq(rep.status, 2, "a request without the second name is refused");
    /* both, in the profile's order (scepc: "a,DNS:b" is two DNS names) */
    pkcsreq(&f, ca, "UDID-S", "UDID-S.devices.example.com,DNS:SN-TEST.serials.example.com", ch,
            &rep);
    cr_assert_eq(rep.status, 0, "both names: issued");
    X509_free(rep.cert);

    free(ch);
    plist_free(sc);
    plist_free(cmd);
    X509_free(a.cert);
    EVP_PKEY_free(a.key);
    X509_free(ca);
    free(ca_path);
    stop(&f);
}

Test(scep_ca, the_crl_is_signed_again_only_when_revocations_change)
{
    struct fix f;
    struct tu_http_resp r1, r2, r3;
    char *out = NULL;

    start(&f, "scep_challenge = " STATIC_CHALLENGE "\n");
    cr_assert_eq(scepclient(&f, "/scep", "c1", STATIC_CHALLENGE, 2048, &out), 0, "%s", out);
    free(out);
    cr_assert_eq(http_get(&f, "/scep/default/crl", &r1), 0);
    cr_assert_eq(r1.status, 200);
    usleep(1100 * 1000); /* a CRL signed now would have another thisUpdate */
    cr_assert_eq(http_get(&f, "/scep/default/crl", &r2), 0);
    cr_assert(r1.body_len == r2.body_len && memcmp(r1.body, r2.body, r1.body_len) == 0,
              "the same CRL while nothing was revoked");
    json_t *list = certificates(&f, "default"), *j = NULL;
    char *path = xasprintf("/v1/ca/default/certificates/%s/revoke",
                           json_string_value(json_object_get(json_array_get(list, 0), "serial")));
    cr_assert_eq(h_api(&f.s, "POST", path, NULL, &j), 200, "%s", h_json(j));
    json_decref(j);
    cr_assert_eq(http_get(&f, "/scep/default/crl", &r3), 0);
    cr_assert_eq(r3.status, 200);
    cr_assert(r3.body_len != r1.body_len || memcmp(r1.body, r3.body, r1.body_len) != 0,
              "a revocation makes a new CRL at once");
    char *crl_path = xasprintf("%s/crl.der", f.work);
    tu_write(crl_path, r3.body, r3.body_len);
    cr_assert_eq(tu_sh(&out,
                       "cd %s && openssl crl -inform der -in crl.der -noout -text | grep -c "
                       "'Serial Number: %s'",
                       f.work,
                       json_string_value(json_object_get(json_array_get(list, 0), "serial"))),
                 0, "%s", out);
    free(out);
    free(crl_path);
    free(path);
    json_decref(list);
    tu_http_resp_free(&r1);
    tu_http_resp_free(&r2);
    tu_http_resp_free(&r3);
    stop(&f);
}

Test(scep_ca, pkioperation_is_rate_limited_per_address)
{
    struct fix f;
    struct tu_http_resp r;
    const char *op = "/scep?operation=PKIOperation";

    start(&f, "scep_rate_limit = 3\n");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(http_post(&f, op, "application/x-pki-message", "garbage!", 8, &r), 0);
        cr_assert_eq(r.status, 400, "request %d is read", i);
        tu_http_resp_free(&r);
    }
    cr_assert_eq(http_post(&f, op, "application/x-pki-message", "garbage!", 8, &r), 0);
    cr_assert_eq(r.status, 503, "the fourth in a minute is turned away");
    cr_assert_not_null(strcasestr(r.headers, "retry-after: 60"), "with Retry-After: %s", r.headers);
    tu_http_resp_free(&r);
    /* The cheap operations are not limited. */
    cr_assert_eq(http_get(&f, "/scep?operation=GetCACaps", &r), 0);
    cr_assert_eq(r.status, 200);
    tu_http_resp_free(&r);
    stop(&f);
}

Test(scep_ca, the_enrollment_profile_carries_a_one_time_challenge_bound_to_its_cn)
{
    struct fix f;
    struct tu_http_resp r;
    struct scepc_reply rep;
    struct scepter_error err;
    char *challenges[2], *cns[2];

    start(&f, "enroll_scep_ca = default\n");
    char *ca_path = xasprintf("%s/ca/ca.pem", f.work);
    X509 *ca = load_pem(ca_path);
    for (int i = 0; i < 2; i++) {
        plist_t prof = NULL, content = NULL, scep = NULL, subj = NULL;
        unsigned char *inner = NULL;
        size_t ilen = 0;
        const char *url = NULL, *ch = NULL, *cn = NULL;
        cr_assert_eq(http_get(&f, "/mdm/enroll", &r), 0);
        cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
        cr_assert_eq(profile_unwrap(r.body, r.body_len, NULL, &inner, &ilen, NULL, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(plistx_parse_dict(inner, ilen, &prof, &err), 0, "%s", err.msg);
        cr_assert_eq(plistx_get_array(prof, "PayloadContent", true, &content, &err), 0);
        for (uint32_t k = 0; k < plist_array_get_size(content) && scep == NULL; k++) {
            plist_t pl = plist_array_get_item(content, k);
            const char *type = NULL;
            if (plistx_get_string(pl, "PayloadType", true, &type, &err) == 0 &&
                strcmp(type, "com.apple.security.scep") == 0)
                scep = plist_dict_get_item(pl, "PayloadContent");
        }
        cr_assert_not_null(scep, "the enrollment profile has a SCEP payload");
        cr_assert_eq(plistx_get_string(scep, "URL", true, &url, &err), 0);
        char *want_url = xasprintf("https://127.0.0.1:%d/scep", f.s.port);
        cr_assert_str_eq(url, want_url);
        free(want_url);
        cr_assert_eq(plistx_get_string(scep, "Challenge", true, &ch, &err), 0);
        cr_assert_eq(strlen(ch), 32, "a one-time challenge: %s", ch);
        cr_assert_eq(plistx_get_array(scep, "Subject", true, &subj, &err), 0);
        /* [[["CN", value]]] */
        cn = plist_get_string_ptr(
            plist_array_get_item(plist_array_get_item(plist_array_get_item(subj, 0), 0), 1), NULL);
        cr_assert_not_null(cn);
        challenges[i] = xstrdup(ch);
        cns[i] = xstrdup(cn);
        plist_free(prof);
        free(inner);
        tu_http_resp_free(&r);
    }
    cr_assert_str_neq(challenges[0], challenges[1], "each download has its own challenge");

    /* The first profile's challenge with the second's CN: refused. */
    pkcsreq(&f, ca, cns[1], NULL, challenges[0], &rep);
    cr_assert_eq(rep.status, 2, "bound to the CN of its own profile");
    /* With its own CN: issued, recorded with that CN as the device. */
    pkcsreq(&f, ca, cns[0], NULL, challenges[0], &rep);
    cr_assert_eq(rep.status, 0);
    X509_free(rep.cert);
    pkcsreq(&f, ca, cns[0], NULL, challenges[0], &rep);
    cr_assert_eq(rep.status, 2, "single use");
    json_t *list = certificates(&f, "default");
    cr_assert_eq(json_array_size(list), 1, "%s", h_json(list));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "udid")), cns[0]);
    json_decref(list);
    for (int i = 0; i < 2; i++) {
        free(challenges[i]);
        free(cns[i]);
    }
    X509_free(ca);
    free(ca_path);
    stop(&f);
}
