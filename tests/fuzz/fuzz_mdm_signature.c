/*
 * Fuzz target: the Mdm-Signature header (mdm/identity.c) — base64, the DER walk that takes the
 * certificates out of the CMS (the worker cache's fast path), the CMS parse, the detached
 * signature over the body, the signer and its chain to the device CA.  The first byte picks
 * how the rest is used:
 *   0: the rest is the CMS DER (the header is its base64);
 *   1: the rest (two bytes of offset, then bytes) is spliced into a valid signature of this
 *      process's device, so the checks after parsing are reached;
 *   2: the rest is the header text itself.
 * Bit 0x80 of the first byte turns the worker's certificate cache on.  Nothing may crash,
 * leak or read out of bounds, and whatever is accepted must be the device's own certificate:
 * no input may pass a signature off as another signer's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "common/codec.h"
#include "common/xmalloc.h"
#include "fuzz_pki.h"
#include "mdm/mdm_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char body[] = "<?xml version=\"1.0\"?><plist><dict><key>MessageType</key>"
                           "<string>Authenticate</string></dict></plist>";
static struct fuzz_pki pki;
static unsigned char *valid;
static size_t valid_len;
static int64_t now;
static struct mdm_idcache cache;

static const char *header(const void *arg, const char *name)
{
    return strcmp(name, "Mdm-Signature") == 0 ? arg : NULL;
}

static void init(void)
{
    fuzz_pki_init(&pki);
    /* the server's default identity_cache_bytes: decoded certificates are kept and found
     * again (with 0, the fast path would decode every one, as no server does) */
    cache.cert_budget = 2097152;
    valid = fuzz_pki_sign(&pki, body, sizeof(body) - 1, &valid_len);
    now = (int64_t)time(NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value;

    if (valid == NULL)
        init();
    if (size == 0)
        return 0;
    switch (data[0] & 0x7f) {
    case 0:
        value = base64_encode(data + 1, size - 1);
        break;
    case 1: {
        size_t off = size >= 3 ? ((size_t)data[1] << 8 | data[2]) % valid_len : 0;
        size_t n = size >= 3 ? size - 3 : 0;
        size_t len = off + n > valid_len ? off + n : valid_len;
        unsigned char *m = xmalloc(len);
        memcpy(m, valid, valid_len);
        if (n)
            memcpy(m + off, data + 3, n);
        value = base64_encode(m, len);
        free(m);
        break;
    }
    case 2:
        value = xstrndup((const char *)data + 1, size - 1);
        break;
    default:
        return 0;
    }

    struct mdm_identity_cfg cfg = {MDM_ID_SIGNATURE, pki.store, NULL, NULL};
    struct mdm_request req;
    struct mdm_identity id;
    struct scepter_error err;

    memset(&req, 0, sizeof(req));
    req.body = (const unsigned char *)body;
    req.body_len = sizeof(body) - 1;
    req.header = header;
    req.header_arg = value;
    req.peer_addr = "127.0.0.1";
    req.idcache = (data[0] & 0x80) ? &cache : NULL;
    if (mdm_identity_get(&cfg, &req, now, &id, &err) == 0) {
        if (!fuzz_pki_is_device(&pki, id.cert) || strcmp(id.source, "signature") != 0)
            abort(); /* accepted someone else's certificate */
        mdm_identity_clear(&id);
    }
    free(value);
    return 0;
}
