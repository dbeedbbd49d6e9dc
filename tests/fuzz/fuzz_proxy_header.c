/*
 * Fuzz target: the trusted proxy's certificate header (mdm/identity.c) — the RFC 9440
 * Client-Cert byte sequence and its Client-Cert-Chain list, or nginx's URL-escaped PEM, then
 * the chain to the device CA.  The first byte picks how the rest is used:
 *   0: the rest is the header value, and after a newline the Client-Cert-Chain value;
 *   1: the rest (two bytes of offset, then bytes) is spliced into the device certificate's DER,
 *      sent as ":base64:" with the CA as its chain;
 *   2: the same splice, sent as URL-escaped PEM.
 * Bit 0x80 of the first byte says the header came twice (which must be refused); bit 0x40, that
 * the request has the worker's identity cache, as the server's requests do (decoded
 * certificates and verified chains found again by their hash).  Nothing may
 * crash, leak or read out of bounds, and whatever is accepted must be the device certificate.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "common/buf.h"
#include "common/codec.h"
#include "common/xmalloc.h"
#include "fuzz_pki.h"
#include "mdm/mdm_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER "X-Client-Cert"

struct headers {
    char *cert, *chain;
    int count;
};

static struct fuzz_pki pki;
static unsigned char *dev_der, *ca_der;
static size_t dev_len, ca_len;
static int64_t now;
static struct mdm_idcache cache;

static const char *header(const void *arg, const char *name)
{
    const struct headers *h = arg;
    return strcmp(name, HEADER) == 0                ? h->cert
           : strcmp(name, "Client-Cert-Chain") == 0 ? h->chain
                                                    : NULL;
}

static int header_count(const void *arg, const char *name)
{
    const struct headers *h = arg;
    return strcmp(name, HEADER) == 0 ? h->count : 1;
}

static char *sf_binary(const unsigned char *der, size_t len)
{
    char *b64 = base64_encode(der, len), *s = xasprintf(":%s:", b64);
    free(b64);
    return s;
}

/* PEM with every byte nginx would escape as %XX. */
static char *escaped_pem(const unsigned char *der, size_t len)
{
    char *b64 = base64_encode(der, len);
    struct buf out = BUF_INIT;
    size_t n = strlen(b64);

    buf_printf(&out, "-----BEGIN%%20CERTIFICATE-----%%0A");
    for (size_t i = 0; i < n; i += 64) {
        for (size_t j = i; j < n && j < i + 64; j++) {
            if (b64[j] == '+' || b64[j] == '/' || b64[j] == '=')
                buf_printf(&out, "%%%02X", (unsigned char)b64[j]);
            else
                buf_append(&out, b64 + j, 1);
        }
        buf_printf(&out, "%%0A");
    }
    buf_printf(&out, "-----END%%20CERTIFICATE-----%%0A");
    free(b64);
    return buf_steal(&out, NULL);
}

static void init(void)
{
    fuzz_pki_init(&pki);
    dev_der = fuzz_pki_der(pki.dev, &dev_len);
    ca_der = fuzz_pki_der(pki.ca, &ca_len);
    now = (int64_t)time(NULL);
    cache.cert_budget = 2097152; /* the server's default identity_cache_bytes */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct headers h = {NULL, NULL, 1};

    if (dev_der == NULL)
        init();
    if (size == 0)
        return 0;
    h.count = (data[0] & 0x80) ? 2 : 1;
    switch (data[0] & 0x3f) {
    case 0: {
        const uint8_t *nl = memchr(data + 1, '\n', size - 1);
        size_t n = nl ? (size_t)(nl - data - 1) : size - 1;
        h.cert = xstrndup((const char *)data + 1, n);
        if (nl)
            h.chain = xstrndup((const char *)nl + 1, size - 1 - n - 1);
        break;
    }
    case 1:
    case 2: {
        size_t off = size >= 3 ? ((size_t)data[1] << 8 | data[2]) % dev_len : 0;
        size_t n = size >= 3 ? size - 3 : 0;
        size_t len = off + n > dev_len ? off + n : dev_len;
        unsigned char *m = xmalloc(len);
        memcpy(m, dev_der, dev_len);
        if (n)
            memcpy(m + off, data + 3, n);
        if ((data[0] & 0x3f) == 1) {
            h.cert = sf_binary(m, len);
            h.chain = sf_binary(ca_der, ca_len);
        } else {
            h.cert = escaped_pem(m, len);
        }
        free(m);
        break;
    }
    default:
        return 0;
    }

    struct mdm_identity_cfg cfg = {MDM_ID_HEADER, pki.store, HEADER, "192.0.2.1,127.0.0.1"};
    struct mdm_request req;
    struct mdm_identity id;
    struct scepter_error err;

    memset(&req, 0, sizeof(req));
    req.header = header;
    req.header_arg = &h;
    req.header_count = header_count;
    req.peer_addr = "127.0.0.1";
    req.idcache = (data[0] & 0x40) ? &cache : NULL;
    if (mdm_identity_get(&cfg, &req, now, &id, &err) == 0) {
        if (h.count != 1 || !fuzz_pki_is_device(&pki, id.cert) || strcmp(id.source, "header") != 0)
            abort(); /* a duplicated header, or someone else's certificate, accepted */
        mdm_identity_clear(&id);
    }
    free(h.cert);
    free(h.chain);
    return 0;
}
