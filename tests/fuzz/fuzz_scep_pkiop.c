/*
 * Fuzz target: a SCEP PKIOperation message, as /scep receives it.  The bytes go through the
 * whole parser (CMS SignedData, the SCEP attributes, the signature, the envelope, the CSR and
 * its checks) and, when they pass, issuance and the CertRep; a FAILURE reply is built when
 * the parser says one is due.  Random bytes rarely get past the signature, so an input may
 * instead be spliced into a valid PKCSReq encrypted to this process's CA (first two bytes: the
 * offset; the rest overwrites the message from there), which reaches the decryption, the CSR
 * and the checks after it.  Nothing here may crash, leak or read out of bounds.
 *
 * One message per input, chosen by the first byte modulo 3: 0 the input itself (a DER message
 * starts with 0x30, so the seeds and a real request are taken as they are), 1 the valid
 * request with the splice, 2 the same cut where the input ends.  Each parse decodes the
 * message's certificates, which with OpenSSL 3.0's key decoders costs most of an execution:
 * one parse per input instead of all three makes an execution about three times cheaper and
 * leaves every message shape reachable.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/xmalloc.h"
#include "scep/scep.h"
#include "scepc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct scep_ca *ca;
static unsigned char *valid;
static size_t valid_len;
static int64_t now;

static void need(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_scep_pkiop: %s failed\n", what);
        abort();
    }
}

static void add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
    need((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) != NULL, "CA extension");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

/*
 * The CA of this process, as scep_ca_generate makes one (same extensions) but with a 1024-bit
 * RSA key: every input that passes the signature check costs three private-key operations
 * (the envelope's decryption, the certificate's and the CertRep's signatures), which with a
 * 2048-bit key took most of the time of an execution.  The parser's code paths do not depend
 * on the CA's key size (the request's own key still has to pass the 2048-bit minimum).
 * scep_ca_generate refuses keys under 2048 bits, so the CA is written here and loaded with
 * scep_ca_load, from a temporary directory removed at once.
 */
static void ca_make(const char *cert_path, const char *key_path)
{
    EVP_PKEY *key = EVP_RSA_gen(1024);
    X509 *cert = X509_new();
    time_t t = (time_t)now;
    FILE *f;

    need(key != NULL && cert != NULL, "CA key");
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_time_adj_ex(X509_getm_notBefore(cert), 0, -300, &t);
    X509_time_adj_ex(X509_getm_notAfter(cert), 3650, 0, &t);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_NID(X509_get_subject_name(cert), NID_commonName, MBSTRING_UTF8,
                               (const unsigned char *)"Fuzz CA", -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    add_ext(cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_ext(cert, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature,keyEncipherment");
    add_ext(cert, NID_subject_key_identifier, "hash");
    need(X509_sign(cert, key, EVP_sha256()) > 0, "CA signature");
    need((f = fopen(cert_path, "w")) != NULL && PEM_write_X509(f, cert) == 1 && fclose(f) == 0,
         "writing the CA certificate");
    need((f = fopen(key_path, "w")) != NULL &&
             PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1 && fclose(f) == 0,
         "writing the CA key");
    X509_free(cert);
    EVP_PKEY_free(key);
}

/* The CA (above) and a valid PKCSReq to it. */
static void init(void)
{
    struct scepter_error err;
    char dir[] = "/tmp/fuzz-scep-XXXXXX";
    char *cert, *key;

    now = (int64_t)time(NULL);
    need(mkdtemp(dir) != NULL, "mkdtemp");
    cert = xasprintf("%s/ca.pem", dir);
    key = xasprintf("%s/ca.key", dir);
    ca_make(cert, key);
    struct scep_ca_files f = {.cert_file = cert, .key_file = key};
    if (scep_ca_load("default", &f, NULL, "", &ca, &err) != 0) {
        fprintf(stderr, "fuzz_scep_pkiop: %s\n", err.msg);
        abort();
    }
    unlink(cert);
    unlink(key);
    rmdir(dir);
    free(cert);
    free(key);

    EVP_PKEY *k = scepc_rsa(2048);
    X509 *self = scepc_self_signed(k, "fuzz");
    struct scepc_opts o = {.key = k,
                           .cn = "fuzz",
                           .challenge = "fuzz-challenge",
                           .san_dns = "fuzz.example.com",
                           .signer_cert = self,
                           .signer_key = k,
                           .recipient = scep_ca_cert(ca)};
    valid = scepc_build(&o, &valid_len);
    X509_free(self);
    EVP_PKEY_free(k);
    if (valid == NULL)
        abort();
}

static int one(const unsigned char *msg, size_t len)
{
    struct scep_request sr;
    struct scepter_error err;
    enum scep_fail_info fail;
    unsigned char *der = NULL;
    size_t dlen = 0;
    X509 *cert = NULL;
    int sink = 0;

    if (scep_request_parse(ca, msg, len, now, &sr, &fail, &err) == 0) {
        sink += scep_challenge_equal(sr.challenge, "fuzz-challenge");
        if (scep_ca_issue(ca, &sr, now, &cert, &err) == 0) {
            struct scep_cert_info info;
            scep_cert_info(cert, &info);
            sink += (int)strlen(info.sans);
            scep_cert_info_clear(&info);
            sink += scep_reply_success(ca, &sr, cert, &der, &dlen, &err);
            X509_free(cert);
        }
    } else if (fail != SCEP_FAIL_NONE) {
        sink += scep_reply_failure(ca, &sr, fail, &der, &dlen, &err);
    }
    free(der);
    scep_request_clear(&sr);
    return sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sink = 0;

    if (ca == NULL)
        init();
    if (size < 2 || data[0] % 3 == 0) {
        sink += one(data, size);
    } else {
        size_t off = ((size_t)data[0] << 8 | data[1]) % valid_len;
        size_t n = size - 2;
        unsigned char *m = xmemdup(valid, valid_len);
        if (n > valid_len - off)
            n = valid_len - off;
        memcpy(m + off, data + 2, n);
        /* 1: the whole message with the splice; 2: the message cut where the input ends. */
        sink += one(m, data[0] % 3 == 1 ? valid_len : off + n);
        free(m);
    }
    return sink == 12345 ? 1 : 0;
}
