/*
 * Configuration profiles as a device reads them: an XML or binary plist, or the same wrapped
 * in a CMS SignedData (what a server's signing step produces).  A signed profile is verified
 * before anything in it is believed.  Validation follows Apple's schema (TopLevel.yaml,
 * CommonPayloadKeys.yaml, com.apple.mdm.yaml): required keys with the right types, unique
 * payload identifiers and UUIDs, an MDM payload whose IdentityCertificateUUID names an
 * identity payload of the same profile, and every PayloadCertificateUUID (Wi-Fi, Ethernet
 * 802.1X, VPN) naming a certificate payload of the same profile.
 */
#include "sim.h"

#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>

#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"

#define SIM_PROFILE_MAX (4 * 1024 * 1024)

struct sim_profile {
    plist_t root;
    const char *identifier;
    const char *uuid;
    bool is_signed;
    STACK_OF(X509) *signers;
    struct sim_payload *payloads;
    size_t npayloads;
};

static int unwrap_cms(const void *data, size_t len, X509_STORE *trust, unsigned char **content,
                      size_t *clen, STACK_OF(X509) **signers, struct scepter_error *err)
{
    BIO *in = BIO_new_mem_buf(data, (int)len), *out = BIO_new(BIO_s_mem());
    CMS_ContentInfo *cms = NULL;
    char *p;
    long n;
    int rc = 0;
    unsigned flags = CMS_BINARY;

    *content = NULL;
    cms = d2i_CMS_bio(in, NULL);
    if (cms == NULL) {
        rc = scepter_err(err, SCEPTER_EINVAL, "profile",
                         "profile: neither a plist nor a CMS signed message");
        ERR_clear_error();
        goto out;
    }
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        rc = scepter_err(err, SCEPTER_EINVAL, "profile",
                         "profile: CMS content is not SignedData (encrypted profiles are not "
                         "supported by the simulator)");
        goto out;
    }
    if (trust == NULL)
        flags |= CMS_NO_SIGNER_CERT_VERIFY;
    if (CMS_verify(cms, NULL, trust, NULL, out, flags) != 1) {
        rc = scepter_err(err, SCEPTER_ECRYPTO, "profile", "profile: the signature does not verify");
        scepter_err_openssl(err);
        goto out;
    }
    *signers = CMS_get0_signers(cms);
    if (*signers) {
        STACK_OF(X509) *copy = sk_X509_new_null();
        for (int i = 0; i < sk_X509_num(*signers); i++) {
            X509 *c = sk_X509_value(*signers, i);
            X509_up_ref(c);
            sk_X509_push(copy, c);
        }
        sk_X509_free(*signers);
        *signers = copy;
    }
    n = BIO_get_mem_data(out, &p);
    *content = (unsigned char *)xmemdup0(p, (size_t)n);
    *clen = (size_t)n;
out:
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    BIO_free(out);
    return rc;
}

/* PayloadVersion: an integer; an integral <real> (seen in the wild) is read as one too. */
static int get_version(plist_t d, uint64_t *out, struct scepter_error *err)
{
    plist_t n = plist_dict_get_item(d, "PayloadVersion");

    if (n && plist_get_node_type(n) == PLIST_REAL) {
        double v = 0;
        plist_get_real_val(n, &v);
        if (v >= 0 && v < 1e9 && v == (double)(uint64_t)v) {
            *out = (uint64_t)v;
            return 0;
        }
    }
    return plistx_get_uint(d, "PayloadVersion", true, out, err);
}

static int check_payload(plist_t d, size_t i, struct sim_payload *pl, struct scepter_error *err)
{
    char field[128];
    int rc;
    struct scepter_error e2;

    snprintf(field, sizeof(field), "PayloadContent[%zu]", i);
    if (plist_get_node_type(d) != PLIST_DICT)
        return scepter_err(err, SCEPTER_EINVAL, field, "%s: expected dict, got %s", field,
                           plistx_type_name(plist_get_node_type(d)));
    if ((rc = plistx_get_string(d, "PayloadType", true, &pl->type, &e2)) != 0 ||
        (rc = plistx_get_string(d, "PayloadIdentifier", true, &pl->identifier, &e2)) != 0 ||
        (rc = plistx_get_string(d, "PayloadUUID", true, &pl->uuid, &e2)) != 0 ||
        (rc = get_version(d, &pl->version, &e2)) != 0 ||
        (rc = plistx_get_string(d, "PayloadDisplayName", false, &pl->display_name, &e2)) < 0) {
        snprintf(field, sizeof(field), "PayloadContent[%zu].%s", i, e2.field);
        return scepter_err(err, SCEPTER_EINVAL, field, "PayloadContent[%zu].%s", i, e2.msg);
    }
    if (str_empty(pl->identifier) || str_empty(pl->uuid))
        return scepter_err(err, SCEPTER_EINVAL, field,
                           "%s: PayloadIdentifier and PayloadUUID "
                           "must not be empty",
                           field);
    if (pl->version != 1)
        return scepter_err(err, SCEPTER_EINVAL, field, "%s.PayloadVersion: %llu is not 1", field,
                           (unsigned long long)pl->version);
    pl->dict = d;
    return 0;
}

/* Payload types that hold a certificate or an identity another payload can name. */
static bool is_cert_payload(const char *type)
{
    static const char *const types[] = {"com.apple.security.scep",
                                        "com.apple.security.pkcs12",
                                        "com.apple.security.acme",
                                        "com.apple.security.root",
                                        "com.apple.security.pkcs1",
                                        "com.apple.security.pem",
                                        NULL};
    for (size_t i = 0; types[i]; i++)
        if (strcmp(type, types[i]) == 0)
            return true;
    return false;
}

/*
 * A payload that uses a certificate (Wi-Fi, Ethernet 802.1X, VPN...) names it by
 * PayloadCertificateUUID, at the top of the payload or in its VPN sub-dictionary, and the
 * certificate must be a payload of the same profile: a device refuses the profile otherwise.
 */
static int check_certificate_refs(const struct sim_profile *p, struct scepter_error *err)
{
    static const char *const where[] = {"", "IKEv2", "IPSec", "VPN", NULL};

    for (size_t i = 0; i < p->npayloads; i++) {
        for (size_t w = 0; where[w]; w++) {
            plist_t d = where[w][0] ? plist_dict_get_item(p->payloads[i].dict, where[w])
                                    : p->payloads[i].dict;
            plist_t ref = d && plist_get_node_type(d) == PLIST_DICT
                              ? plist_dict_get_item(d, "PayloadCertificateUUID")
                              : NULL;
            char field[96];
            const char *uuid;
            bool found = false;

            if (ref == NULL)
                continue;
            snprintf(field, sizeof(field), "PayloadContent[%zu].%s%sPayloadCertificateUUID", i,
                     where[w], where[w][0] ? "." : "");
            if (plist_get_node_type(ref) != PLIST_STRING)
                return scepter_err(err, SCEPTER_EINVAL, field, "%s: expected a string", field);
            uuid = plist_get_string_ptr(ref, NULL);
            for (size_t j = 0; j < p->npayloads && !found; j++)
                found = j != i && strcasecmp(p->payloads[j].uuid, uuid) == 0 &&
                        is_cert_payload(p->payloads[j].type);
            if (!found)
                return scepter_err(err, SCEPTER_EINVAL, field,
                                   "%s: \"%.64s\" names no certificate payload of the profile",
                                   field, uuid);
        }
    }
    return 0;
}

int sim_profile_parse(const void *data, size_t len, X509_STORE *trust, struct sim_profile **out,
                      struct scepter_error *err)
{
    struct sim_profile *p = NULL;
    unsigned char *content = NULL;
    size_t clen = 0;
    const unsigned char *b = data;
    const char *ptype;
    uint64_t version;
    plist_t arr;
    struct scepter_error e2;
    int rc;

    *out = NULL;
    if (len == 0)
        return scepter_err(err, SCEPTER_EINVAL, "profile", "profile: empty");
    if (len > SIM_PROFILE_MAX)
        return scepter_err(err, SCEPTER_ETOOBIG, "profile", "profile: larger than %d bytes",
                           SIM_PROFILE_MAX);
    p = xcalloc(1, sizeof(*p));
    if (b[0] == 0x30) { /* DER SEQUENCE: a CMS ContentInfo */
        rc = unwrap_cms(data, len, trust, &content, &clen, &p->signers, err);
        if (rc != 0)
            goto out;
        p->is_signed = true;
        data = content;
        len = clen;
    }
    rc = plistx_parse_dict(data, len, &p->root, &e2);
    if (rc != 0) {
        rc = scepter_err(err, rc, "profile", "profile: %s", e2.msg);
        goto out;
    }
    if ((rc = plistx_get_string(p->root, "PayloadType", true, &ptype, err)) != 0 ||
        (rc = get_version(p->root, &version, err)) != 0 ||
        (rc = plistx_get_string(p->root, "PayloadIdentifier", true, &p->identifier, err)) != 0 ||
        (rc = plistx_get_string(p->root, "PayloadUUID", true, &p->uuid, err)) != 0)
        goto out;
    if (strcmp(ptype, "Configuration") != 0) {
        rc = scepter_err(err, SCEPTER_EINVAL, "PayloadType",
                         "PayloadType: \"%s\" is not \"Configuration\"", ptype);
        goto out;
    }
    if (version != 1) {
        rc = scepter_err(err, SCEPTER_EINVAL, "PayloadVersion", "PayloadVersion: %llu is not 1",
                         (unsigned long long)version);
        goto out;
    }
    if (str_empty(p->identifier) || str_empty(p->uuid)) {
        rc = scepter_err(err, SCEPTER_EINVAL,
                         str_empty(p->identifier) ? "PayloadIdentifier" : "PayloadUUID",
                         "%s: must not be empty",
                         str_empty(p->identifier) ? "PayloadIdentifier" : "PayloadUUID");
        goto out;
    }
    if (plist_dict_get_item(p->root, "EncryptedPayloadContent")) {
        rc = scepter_err(err, SCEPTER_EINVAL, "EncryptedPayloadContent",
                         "EncryptedPayloadContent: encrypted profiles are not supported by the "
                         "simulator");
        goto out;
    }
    if ((rc = plistx_get_array(p->root, "PayloadContent", true, &arr, err)) != 0)
        goto out;
    p->npayloads = plist_array_get_size(arr);
    p->payloads = xcalloc(p->npayloads ? p->npayloads : 1, sizeof(*p->payloads));
    for (size_t i = 0; i < p->npayloads; i++) {
        rc = check_payload(plist_array_get_item(arr, (uint32_t)i), i, &p->payloads[i], err);
        if (rc != 0)
            goto out;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->payloads[j].identifier, p->payloads[i].identifier) == 0 ||
                strcasecmp(p->payloads[j].uuid, p->payloads[i].uuid) == 0) {
                rc = scepter_err(err, SCEPTER_EINVAL, "PayloadContent",
                                 "PayloadContent[%zu]: PayloadIdentifier or PayloadUUID repeats "
                                 "PayloadContent[%zu]",
                                 i, j);
                goto out;
            }
        }
    }
    if ((rc = check_certificate_refs(p, err)) != 0)
        goto out;
    *out = p;
    p = NULL;
out:
    free(content);
    sim_profile_free(p);
    return rc;
}

void sim_profile_free(struct sim_profile *p)
{
    if (p == NULL)
        return;
    if (p->root)
        plist_free(p->root);
    sk_X509_pop_free(p->signers, X509_free);
    free(p->payloads);
    free(p);
}

const char *sim_profile_identifier(const struct sim_profile *p)
{
    return p->identifier;
}

const char *sim_profile_uuid(const struct sim_profile *p)
{
    return p->uuid;
}

plist_t sim_profile_root(const struct sim_profile *p)
{
    return p->root;
}

bool sim_profile_is_signed(const struct sim_profile *p)
{
    return p->is_signed;
}

STACK_OF(X509) *sim_profile_signers(const struct sim_profile *p)
{
    return p->signers;
}

size_t sim_profile_payload_count(const struct sim_profile *p)
{
    return p->npayloads;
}

const struct sim_payload *sim_profile_payload(const struct sim_profile *p, size_t i)
{
    return i < p->npayloads ? &p->payloads[i] : NULL;
}

const struct sim_payload *sim_profile_find(const struct sim_profile *p, const char *type,
                                           const char *uuid)
{
    for (size_t i = 0; i < p->npayloads; i++) {
        if (type && strcmp(p->payloads[i].type, type) != 0)
            continue;
        if (uuid && strcasecmp(p->payloads[i].uuid, uuid) != 0)
            continue;
        return &p->payloads[i];
    }
    return NULL;
}

void sim_mdm_settings_clear(struct sim_mdm_settings *s)
{
    if (s == NULL)
        return;
    free(s->server_url);
    free(s->checkin_url);
    free(s->topic);
    free(s->identity_uuid);
    memset(s, 0, sizeof(*s));
}

int sim_mdm_settings_read(const struct sim_profile *p, struct sim_mdm_settings *out,
                          struct scepter_error *err)
{
    const struct sim_payload *mdm = sim_profile_find(p, "com.apple.mdm", NULL);
    const struct sim_payload *id;
    const char *server = NULL, *checkin = NULL, *topic = NULL, *idu = NULL;
    uint64_t rights = 8191;
    int rc;

    memset(out, 0, sizeof(*out));
    if (mdm == NULL)
        return scepter_err(err, SCEPTER_ENOTFOUND, "PayloadContent",
                           "PayloadContent: the profile has no com.apple.mdm payload");
    if ((rc = plistx_get_string(mdm->dict, "ServerURL", true, &server, err)) != 0 ||
        (rc = plistx_get_string(mdm->dict, "CheckInURL", false, &checkin, err)) < 0 ||
        (rc = plistx_get_string(mdm->dict, "Topic", true, &topic, err)) != 0 ||
        (rc = plistx_get_string(mdm->dict, "IdentityCertificateUUID", true, &idu, err)) != 0 ||
        (rc = plistx_get_bool(mdm->dict, "SignMessage", false, &out->sign_message, err)) < 0 ||
        (rc = plistx_get_bool(mdm->dict, "CheckOutWhenRemoved", false, &out->checkout_when_removed,
                              err)) < 0 ||
        (rc = plistx_get_uint(mdm->dict, "AccessRights", false, &rights, err)) < 0)
        return rc;
    if (!str_has_prefix(server, "https://"))
        return scepter_err(err, SCEPTER_EINVAL, "ServerURL",
                           "ServerURL: \"%s\" does not start with https://", server);
    if (checkin && !str_has_prefix(checkin, "https://"))
        return scepter_err(err, SCEPTER_EINVAL, "CheckInURL",
                           "CheckInURL: \"%s\" does not start with https://", checkin);
    if (!str_has_prefix(topic, "com.apple.mgmt."))
        return scepter_err(err, SCEPTER_EINVAL, "Topic",
                           "Topic: \"%s\" does not start with com.apple.mgmt.", topic);
    if (rights == 0 || rights > 8191 || ((rights & 2) && !(rights & 1)) ||
        ((rights & 128) && !(rights & 64)))
        return scepter_err(err, SCEPTER_EINVAL, "AccessRights",
                           "AccessRights: %llu is not a valid combination (1..8191; 2 needs 1, "
                           "128 needs 64)",
                           (unsigned long long)rights);
    id = sim_profile_find(p, NULL, idu);
    if (id == NULL || (strcmp(id->type, "com.apple.security.scep") != 0 &&
                       strcmp(id->type, "com.apple.security.pkcs12") != 0))
        return scepter_err(err, SCEPTER_EINVAL, "IdentityCertificateUUID",
                           "IdentityCertificateUUID: %s names no SCEP or PKCS#12 payload in the "
                           "profile",
                           idu);
    out->server_url = xstrdup(server);
    out->checkin_url = xstrdup(checkin ? checkin : server);
    out->topic = xstrdup(topic);
    out->identity_uuid = xstrdup(idu);
    out->access_rights = rights;
    return 0;
}
