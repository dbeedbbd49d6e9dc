/*
 * Fuzz target: what a device sends.  The body of a check-in or connect request goes through
 * the plist parser, the identifier rules, the typed lookups of every message and the
 * ErrorChain conversion; the bytes also go through the Mdm-Signature parser as a header.
 * Nothing here may crash, leak or read out of bounds, whatever the bytes.
 */
#include <stdint.h>
#include <string.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "mdm/mdm_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *signature_header(const void *arg, const char *name)
{
    return strcmp(name, "Mdm-Signature") == 0 ? arg : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sink = 0; /* results are not checked: only crashes matter */
    struct scepter_error err;
    plist_t d = NULL;

    if (plistx_parse_dict(data, size, &d, &err) == 0) {
        struct mdm_ids ids;
        const char *s = NULL;
        const unsigned char *bytes = NULL;
        size_t len = 0;
        bool b;
        uint64_t u;
        plist_t sub = NULL;
        sink += mdm_ids_from_plist(d, &ids, &err);
        sink += plistx_get_string(d, "MessageType", false, &s, &err);
        sink += plistx_get_string(d, "Status", false, &s, &err);
        sink += plistx_get_data(d, "Token", false, &bytes, &len, &err);
        sink += plistx_get_bool(d, "AwaitingConfiguration", false, &b, &err);
        sink += plistx_get_uint(d, "Keysize", false, &u, &err);
        sink += plistx_get_dict(d, "QueryResponses", false, &sub, &err);
        free(mdm_error_chain_json(d, &err));
        size_t xlen;
        free(plistx_to_xml(d, &xlen));
        plist_free(d);
    }
    /* the same bytes as an Mdm-Signature over an empty body */
    char *b64 = base64_encode(data, size);
    struct mdm_request req;
    struct mdm_identity_cfg cfg = {MDM_ID_SIGNATURE, NULL, NULL, NULL};
    struct mdm_identity id;
    static struct mdm_idcache cache; /* the fast path: certificates taken out of the CMS */
    memset(&req, 0, sizeof(req));
    req.idcache = (size & 1) ? &cache : NULL;
    req.header = signature_header;
    req.header_arg = b64;
    if (mdm_identity_get(&cfg, &req, 0, &id, &err) == 0)
        mdm_identity_clear(&id);
    free(b64);
    return sink & 0;
}
