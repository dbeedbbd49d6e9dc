/*
 * Fuzz target: a SCEP PKIOperation message, as /scep receives it.  The bytes go through the
 * whole parser (CMS SignedData, the SCEP attributes, the signature, the envelope, the CSR and
 * its checks) and, when they pass, issuance and the CertRep; a FAILURE reply is built when
 * the parser says one is due.  Random bytes rarely get past the signature, so each input is
 * also spliced into a valid PKCSReq encrypted to this process's CA (first two bytes: the
 * offset; the rest overwrites the message from there), which reaches the decryption, the CSR
 * and the checks after it.  Nothing here may crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "scep/scep.h"
#include "scepc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct scep_ca *ca;
static unsigned char *valid;
static size_t valid_len;
static int64_t now;

/* A CA of this process (made in a temporary directory, then removed) and a valid PKCSReq. */
static void init(void)
{
    struct scepter_error err;
    char dir[] = "/tmp/fuzz-scep-XXXXXX";
    char *cert, *key;

    now = (int64_t)time(NULL);
    if (mkdtemp(dir) == NULL)
        abort();
    cert = xasprintf("%s/ca.pem", dir);
    key = xasprintf("%s/ca.key", dir);
    struct scep_ca_files f = {.cert_file = cert, .key_file = key};
    if (scep_ca_generate(dir, "Fuzz CA", 2048, now, &err) != 0 ||
        scep_ca_load("default", &f, NULL, "", &ca, &err) != 0) {
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
    sink += one(data, size);
    if (size >= 2) {
        size_t off = ((size_t)data[0] << 8 | data[1]) % valid_len;
        size_t n = size - 2;
        unsigned char *m = xmemdup(valid, valid_len);
        if (n > valid_len - off)
            n = valid_len - off;
        memcpy(m + off, data + 2, n);
        /* Also as a prefix: the message cut where the input ends. */
        sink += one(m, valid_len);
        sink += one(m, off + n);
        free(m);
    }
    return sink == 12345 ? 1 : 0;
}
