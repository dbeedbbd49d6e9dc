/*
 * The Mdm-Signature header a device sends when the MDM payload has SignMessage: base64 of a
 * detached CMS SignedData over the exact HTTP body bytes, signed with the device identity and
 * with the signer certificate embedded, so a server behind a TLS-terminating proxy can still
 * tell which identity sent the message.
 */
#include "sim.h"

#include <openssl/bio.h>
#include <openssl/cms.h>

#include "common/codec.h"

char *sim_mdm_signature(const void *body, size_t len, X509 *cert, EVP_PKEY *key,
                        struct scepter_error *err)
{
    BIO *in = BIO_new_mem_buf(len ? body : "", (int)len);
    CMS_ContentInfo *cms = NULL;
    unsigned char *der = NULL;
    char *b64 = NULL;
    int dlen;

    cms = CMS_sign(cert, key, NULL, in, CMS_DETACHED | CMS_BINARY | CMS_NOSMIMECAP);
    if (cms == NULL) {
        scepter_err(err, SCEPTER_ECRYPTO, "identity", "cannot sign the body with the identity");
        scepter_err_openssl(err);
        goto out;
    }
    dlen = i2d_CMS_ContentInfo(cms, &der);
    if (dlen <= 0) {
        scepter_err(err, SCEPTER_ECRYPTO, "identity", "cannot encode the signature");
        goto out;
    }
    b64 = base64_encode(der, (size_t)dlen);
out:
    OPENSSL_free(der);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return b64;
}
