/*
 * The device brain: one simulated device's state (facts, identity, push credentials, installed
 * profiles and certificates) and its answers to MDM commands, as Apple documents them
 * (the command schemas of github.com/apple/device-management, mdm/commands).  Given a command
 * body and the state, it produces the result plist and changes the state; it never touches a
 * socket.  The one outside effect, a SCEP enrollment for a SCEP payload, goes through env->scep.
 * Installation is all or nothing: the new profile is built aside and swapped in only when
 * every payload succeeded.
 *
 * ErrorChain codes and domains follow the shape real devices send (MCProfileErrorDomain,
 * MCInstallationErrorDomain, MCSCEPErrorDomain, MCMDMErrorDomain); Apple calls the numbers
 * diagnostic only, and the simulator's are chosen to be stable rather than copied.
 */
#include "sim_int.h"

#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"

/* Access rights (com.apple.mdm AccessRights bits). */
#define RIGHT_INSPECT_PROFILES 1
#define RIGHT_INSTALL_PROFILES 2
#define RIGHT_DEVICE_INFO      16
#define RIGHT_NETWORK_INFO     32

struct inst_cert {
    unsigned char *der;
    size_t len;
    char *cn;
    bool identity;
};

struct inst_payload {
    char *type, *identifier, *uuid, *display_name, *description, *organization;
    uint64_t version;
};

struct inst_profile {
    char *identifier, *uuid, *display_name, *organization, *description;
    uint64_t version;
    bool removal_disallowed, has_removal_passcode, is_mdm;
    struct inst_payload *payloads;
    size_t npayloads;
    struct inst_cert *signers; /* SignerCertificates (der only) */
    size_t nsigners;
    X509 *new_identity; /* while installing: the identity payload's certificate and key */
    EVP_PKEY *new_key;
    struct inst_cert *certs; /* certificates this profile installed */
    size_t ncerts;
};

struct sim_device {
    struct sim_facts facts;
    bool enrolled;
    bool locked;
    struct sim_mdm_settings mdm;
    X509 *identity;
    EVP_PKEY *key;
    unsigned char token[32];
    char push_magic[40];
    struct inst_profile *profiles;
    size_t nprofiles;
    struct sim_ddm *ddm; /* Declarative Device Management (ddm.c), or NULL */
};

/* ---------------------------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void cert_clear(struct inst_cert *c)
{
    free(c->der);
    free(c->cn);
}

static void profile_clear(struct inst_profile *p)
{
    free(p->identifier);
    free(p->uuid);
    free(p->display_name);
    free(p->organization);
    free(p->description);
    for (size_t i = 0; i < p->npayloads; i++) {
        struct inst_payload *pl = &p->payloads[i];
        free(pl->type);
        free(pl->identifier);
        free(pl->uuid);
        free(pl->display_name);
        free(pl->description);
        free(pl->organization);
    }
    free(p->payloads);
    for (size_t i = 0; i < p->nsigners; i++)
        cert_clear(&p->signers[i]);
    free(p->signers);
    for (size_t i = 0; i < p->ncerts; i++)
        cert_clear(&p->certs[i]);
    free(p->certs);
    X509_free(p->new_identity);
    EVP_PKEY_free(p->new_key);
    memset(p, 0, sizeof(*p));
}

struct sim_device *sim_device_new(const struct sim_facts *facts)
{
    struct sim_device *d = xcalloc(1, sizeof(*d));

    d->facts = *facts;
    return d;
}

struct sim_ddm *sim_device_ddm(struct sim_device *d)
{
    if (d->ddm == NULL)
        d->ddm = sim_ddm_new();
    return d->ddm;
}

void sim_device_free(struct sim_device *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nprofiles; i++)
        profile_clear(&d->profiles[i]);
    free(d->profiles);
    sim_ddm_free(d->ddm);
    sim_mdm_settings_clear(&d->mdm);
    X509_free(d->identity);
    EVP_PKEY_free(d->key);
    free(d);
}

const struct sim_facts *sim_device_facts(const struct sim_device *d)
{
    return &d->facts;
}

bool sim_device_enrolled(const struct sim_device *d)
{
    return d->enrolled;
}

const struct sim_mdm_settings *sim_device_mdm(const struct sim_device *d)
{
    return d->enrolled ? &d->mdm : NULL;
}

X509 *sim_device_identity(const struct sim_device *d)
{
    return d->identity;
}

EVP_PKEY *sim_device_key(const struct sim_device *d)
{
    return d->key;
}

void sim_device_set_push(struct sim_device *d, const unsigned char token[32],
                         const char *push_magic)
{
    memcpy(d->token, token, 32);
    str_copy(d->push_magic, sizeof(d->push_magic), push_magic);
}

const unsigned char *sim_device_token(const struct sim_device *d)
{
    return d->token;
}

const char *sim_device_push_magic(const struct sim_device *d)
{
    return d->push_magic;
}

void sim_device_set_locked(struct sim_device *d, bool locked)
{
    d->locked = locked;
}

size_t sim_device_profile_count(const struct sim_device *d)
{
    return d->nprofiles;
}

const char *sim_device_profile_identifier(const struct sim_device *d, size_t i)
{
    return i < d->nprofiles ? d->profiles[i].identifier : NULL;
}

static struct inst_profile *find_profile(const struct sim_device *d, const char *identifier,
                                         size_t *idx)
{
    for (size_t i = 0; i < d->nprofiles; i++)
        if (strcmp(d->profiles[i].identifier, identifier) == 0) {
            if (idx)
                *idx = i;
            return &d->profiles[i];
        }
    return NULL;
}

bool sim_device_has_profile(const struct sim_device *d, const char *identifier)
{
    return find_profile(d, identifier, NULL) != NULL;
}

size_t sim_device_profile_cert_count(const struct sim_device *d, size_t i)
{
    return i < d->nprofiles ? d->profiles[i].ncerts : 0;
}

const unsigned char *sim_device_profile_cert(const struct sim_device *d, size_t i, size_t k,
                                             size_t *len, bool *identity)
{
    if (i >= d->nprofiles || k >= d->profiles[i].ncerts)
        return NULL;
    *len = d->profiles[i].certs[k].len;
    *identity = d->profiles[i].certs[k].identity;
    return d->profiles[i].certs[k].der;
}

size_t sim_device_cert_count(const struct sim_device *d)
{
    size_t n = 0;

    for (size_t i = 0; i < d->nprofiles; i++)
        n += d->profiles[i].ncerts;
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* ErrorChain                                                                                */

void sim_error_chain_add(plist_t chain, int64_t code, const char *domain, const char *text)
{
    plist_t e = plist_new_dict();

    plist_dict_set_item(e, "ErrorCode", plist_new_uint((uint64_t)code));
    plist_dict_set_item(e, "ErrorDomain", plist_new_string(domain));
    plist_dict_set_item(e, "LocalizedDescription", plist_new_string(text));
    plist_dict_set_item(e, "USEnglishDescription", plist_new_string(text));
    plist_array_append_item(chain, e);
}

/* ---------------------------------------------------------------------------------------- */
/* Building an installed profile                                                             */

static void add_cert(struct inst_profile *p, X509 *c, bool identity)
{
    struct inst_cert *ic;
    char cn[256] = "";

    p->certs = xreallocarray(p->certs, p->ncerts + 1, sizeof(*p->certs));
    ic = &p->certs[p->ncerts++];
    memset(ic, 0, sizeof(*ic));
    ic->der = crypto_cert_der(c, &ic->len);
    X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, cn, sizeof(cn));
    ic->cn = xstrdup(cn);
    ic->identity = identity;
}

/* What went wrong while installing, for the ErrorChain. */
struct install_fail {
    int64_t code;
    const char *domain;
    char text[400];
};

static int fail_with(struct install_fail *f, int64_t code, const char *domain, const char *fmt, ...)
    PRINTF(4, 5);
static int fail_with(struct install_fail *f, int64_t code, const char *domain, const char *fmt, ...)
{
    va_list ap;

    f->code = code;
    f->domain = domain;
    va_start(ap, fmt);
    vsnprintf(f->text, sizeof(f->text), fmt, ap);
    va_end(ap);
    return -1;
}

static int scep_failure_code(enum sim_scep_failure f)
{
    switch (f) {
    case SIM_SCEP_UNREACHABLE:
        return 22001;
    case SIM_SCEP_BAD_CA:
        return 22002;
    case SIM_SCEP_FINGERPRINT:
        return 22003;
    case SIM_SCEP_REJECTED:
        return 22004;
    case SIM_SCEP_PENDING:
        return 22005;
    case SIM_SCEP_BAD_RESPONSE:
        return 22006;
    default:
        return 22000;
    }
}

/*
 * A Mac resolves Apple's payload variables itself when it installs a SCEP payload
 * (Apple's Device Management documentation on payload variables); iOS resolves none.  Replace them
 * in every string under node (the Subject array, the SubjectAltName dict).
 */
static void mac_resolve(plist_t node, const struct sim_facts *f)
{
    static const char *const names[] = {"%HardwareUUID%",  "%SerialNumber%", "%ComputerName%",
                                        "%LocalHostName%", "%HostName%",     "%MACAddress%"};
    char host[64];

    snprintf(host, sizeof(host), "%s.local", f->serial);
    const char *values[] = {f->udid, f->serial, f->device_name, f->serial, host, f->wifi_mac};

    switch (plist_get_node_type(node)) {
    case PLIST_ARRAY:
        for (uint32_t i = 0; i < plist_array_get_size(node); i++)
            mac_resolve(plist_array_get_item(node, i), f);
        break;
    case PLIST_DICT: {
        plist_dict_iter it = NULL;
        char *key = NULL;
        plist_t val = NULL;
        plist_dict_new_iter(node, &it);
        for (;;) {
            plist_dict_next_item(node, it, &key, &val);
            if (val == NULL)
                break;
            mac_resolve(val, f);
            free(key);
            key = NULL;
        }
        free(it);
        break;
    }
    case PLIST_STRING: {
        struct buf b = BUF_INIT;
        const char *p = plist_get_string_ptr(node, NULL);
        bool changed = false;
        while (*p) {
            size_t k;
            for (k = 0; k < ARRAY_LEN(names); k++)
                if (strncmp(p, names[k], strlen(names[k])) == 0)
                    break;
            if (k < ARRAY_LEN(names)) {
                buf_puts(&b, values[k]);
                p += strlen(names[k]);
                changed = true;
            } else {
                buf_putc(&b, *p++);
            }
        }
        if (changed)
            plist_set_string_val(node, b.data);
        buf_free(&b);
        break;
    }
    default:
        break;
    }
}

static int install_payload(const struct sim_device *d, const struct sim_brain_env *env,
                           const struct sim_payload *pl, struct inst_profile *np,
                           struct install_fail *f)
{
    struct scepter_error e;
    const unsigned char *data;
    size_t len;

    memset(&e, 0, sizeof(e));
    if (strcmp(pl->type, "com.apple.security.root") == 0 ||
        strcmp(pl->type, "com.apple.security.pkcs1") == 0 ||
        strcmp(pl->type, "com.apple.security.pem") == 0) {
        X509 *c;

        if (plistx_get_data(pl->dict, "PayloadContent", true, &data, &len, &e) != 0)
            return fail_with(f, 1000, "MCProfileErrorDomain", "Payload %s: %s", pl->identifier,
                             e.msg);
        c = crypto_cert_parse(data, len, "PayloadContent", &e);
        if (c == NULL)
            return fail_with(f, 9000, "MCCertificateErrorDomain",
                             "Payload %s: the certificate is invalid: %s", pl->identifier, e.msg);
        add_cert(np, c, false);
        X509_free(c);
        return 0;
    }
    if (strcmp(pl->type, "com.apple.security.pkcs12") == 0) {
        const char *pw = NULL;
        X509 *c = NULL;
        EVP_PKEY *k = NULL;

        if (plistx_get_data(pl->dict, "PayloadContent", true, &data, &len, &e) != 0 ||
            plistx_get_string(pl->dict, "Password", false, &pw, &e) < 0)
            return fail_with(f, 1000, "MCProfileErrorDomain", "Payload %s: %s", pl->identifier,
                             e.msg);
        if (crypto_pkcs12_parse(data, len, pw ? pw : "", &c, &k, NULL, &e) != 0)
            return fail_with(f, 9000, "MCCertificateErrorDomain",
                             "Payload %s: the identity cannot be imported (wrong password or "
                             "malformed PKCS#12): %s",
                             pl->identifier, e.msg);
        add_cert(np, c, true);
        X509_free(np->new_identity);
        EVP_PKEY_free(np->new_key);
        np->new_identity = c; /* the device's identity if this is its enrollment profile */
        np->new_key = k;
        return 0;
    }
    if (strcmp(pl->type, "com.apple.security.scep") == 0) {
        plist_t content = plist_dict_get_item(pl->dict, "PayloadContent");
        struct sim_scep_request req;
        struct sim_scep_result res;
        int rc;

        if (d->facts.platform == SIM_MAC && content) {
            content = plist_copy(content);
            mac_resolve(plist_dict_get_item(content, "Subject"), &d->facts);
            mac_resolve(plist_dict_get_item(content, "SubjectAltName"), &d->facts);
            rc = sim_scep_request_from_plist(content, &req, &e);
            plist_free(content);
        } else {
            rc = sim_scep_request_from_plist(content, &req, &e);
        }
        if (rc != 0)
            return fail_with(f, 1000, "MCProfileErrorDomain", "Payload %s: %s", pl->identifier,
                             e.msg);
        memset(&res, 0, sizeof(res));
        res.fail_info = -1;
        if (env->scep == NULL) {
            res.failure = SIM_SCEP_UNREACHABLE;
            scepter_err(&e, SCEPTER_EIO, "URL", "%s is unreachable: no network", req.url);
            rc = SCEPTER_EIO;
        } else {
            rc = env->scep(env->scep_arg, &req, &res, &e);
        }
        if (rc != 0) {
            const char *what;
            switch (res.failure) {
            case SIM_SCEP_UNREACHABLE:
                what = "The SCEP server could not be reached";
                break;
            case SIM_SCEP_FINGERPRINT:
                what = "The SCEP server's CA certificate does not match the CAFingerprint";
                break;
            case SIM_SCEP_REJECTED:
                what = "The SCEP server rejected the request; the challenge may be wrong or "
                       "expired";
                break;
            case SIM_SCEP_PENDING:
                what = "The SCEP server did not issue a certificate in time";
                break;
            default:
                what = "The SCEP server returned an invalid response";
                break;
            }
            fail_with(f, scep_failure_code(res.failure), "MCSCEPErrorDomain", "%s (%s): %s", what,
                      req.url, e.msg);
            sim_scep_result_clear(&res);
            sim_scep_request_clear(&req);
            return -1;
        }
        add_cert(np, res.cert, true);
        X509_free(np->new_identity);
        EVP_PKEY_free(np->new_key);
        np->new_identity = res.cert; /* the device's identity if this is its enrollment profile */
        np->new_key = res.key;
        res.cert = NULL;
        res.key = NULL;
        sim_scep_result_clear(&res);
        sim_scep_request_clear(&req);
        return 0;
    }
    if (strcmp(pl->type, "com.apple.mdm") == 0) {
        /* Only a replacement of the enrollment's own MDM payload, with the same essentials. */
        struct inst_profile *cur = NULL;
        const char *topic = NULL, *server = NULL;

        for (size_t i = 0; i < d->nprofiles; i++)
            if (d->profiles[i].is_mdm)
                cur = &d->profiles[i];
        if (!d->enrolled || cur == NULL || strcmp(cur->identifier, np->identifier) != 0)
            return fail_with(f, 12023, "MCMDMErrorDomain",
                             "An MDM payload can only replace the enrollment profile (%s)",
                             cur ? cur->identifier : "none");
        if (plistx_get_string(pl->dict, "Topic", true, &topic, &e) != 0 ||
            plistx_get_string(pl->dict, "ServerURL", true, &server, &e) != 0)
            return fail_with(f, 1000, "MCProfileErrorDomain", "Payload %s: %s", pl->identifier,
                             e.msg);
        if (strcmp(topic, d->mdm.topic) != 0 || strcmp(server, d->mdm.server_url) != 0)
            return fail_with(f, 12024, "MCMDMErrorDomain",
                             "The replacement MDM payload must keep Topic and ServerURL");
        np->is_mdm = true;
        return 0;
    }
    /* Other payload types are accepted and listed, as a device with that feature would. */
    return 0;
}

static int target_ok(const struct sim_device *d, plist_t root)
{
    uint64_t t = 0;
    plist_t n = plist_dict_get_item(root, "TargetDeviceType");

    if (n == NULL || plist_get_node_type(n) != PLIST_UINT)
        return 1;
    plist_get_uint_val(n, &t);
    if (t == 0)
        return 1;
    if (t == 5)
        return d->facts.platform == SIM_MAC;
    if (t == 1)
        return d->facts.platform != SIM_MAC;
    return 0;
}

/* Build the installed form of profile p (running its payloads) into *np. */
static int build_installed(const struct sim_device *d, const struct sim_brain_env *env,
                           const struct sim_profile *p, struct inst_profile *np,
                           struct install_fail *f)
{
    plist_t root = sim_profile_root(p);
    const char *s = NULL;
    bool b = false;
    struct scepter_error e;
    STACK_OF(X509) *signers = sim_profile_signers(p);

    memset(np, 0, sizeof(*np));
    np->identifier = xstrdup(sim_profile_identifier(p));
    np->uuid = xstrdup(sim_profile_uuid(p));
    np->version = 1;
    if (plistx_get_string(root, "PayloadDisplayName", false, &s, &e) == 0)
        np->display_name = xstrdup(s);
    if (plistx_get_string(root, "PayloadOrganization", false, &s, &e) == 0)
        np->organization = xstrdup(s);
    if (plistx_get_string(root, "PayloadDescription", false, &s, &e) == 0)
        np->description = xstrdup(s);
    if (plistx_get_bool(root, "PayloadRemovalDisallowed", false, &b, &e) == 0)
        np->removal_disallowed = b;
    if (plistx_get_bool(root, "HasRemovalPasscode", false, &b, &e) == 0)
        np->has_removal_passcode = b;
    if (!target_ok(d, root))
        return fail_with(f, 1017, "MCProfileErrorDomain",
                         "The profile \"%s\" is for another type of device (TargetDeviceType)",
                         np->identifier);
    for (int i = 0; signers && i < sk_X509_num(signers); i++) {
        np->signers = xreallocarray(np->signers, np->nsigners + 1, sizeof(*np->signers));
        memset(&np->signers[np->nsigners], 0, sizeof(struct inst_cert));
        np->signers[np->nsigners].der =
            crypto_cert_der(sk_X509_value(signers, i), &np->signers[np->nsigners].len);
        np->nsigners++;
    }
    np->npayloads = sim_profile_payload_count(p);
    np->payloads = xcalloc(np->npayloads ? np->npayloads : 1, sizeof(*np->payloads));
    /* Certificates first, as a device installs them before the payloads that use them. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < np->npayloads; i++) {
            const struct sim_payload *pl = sim_profile_payload(p, i);
            bool is_cert = str_has_prefix(pl->type, "com.apple.security.");

            if ((pass == 0) != is_cert)
                continue;
            if (install_payload(d, env, pl, np, f) != 0)
                return -1;
        }
    }
    for (size_t i = 0; i < np->npayloads; i++) {
        const struct sim_payload *pl = sim_profile_payload(p, i);
        struct inst_payload *ip = &np->payloads[i];
        const char *v = NULL;

        ip->type = xstrdup(pl->type);
        ip->identifier = xstrdup(pl->identifier);
        ip->uuid = xstrdup(pl->uuid);
        ip->version = pl->version;
        ip->display_name = dup_or_null(pl->display_name);
        if (plistx_get_string(pl->dict, "PayloadDescription", false, &v, &e) == 0)
            ip->description = xstrdup(v);
        if (plistx_get_string(pl->dict, "PayloadOrganization", false, &v, &e) == 0)
            ip->organization = xstrdup(v);
    }
    return 0;
}

static void put_profile(struct sim_device *d, struct inst_profile *np)
{
    size_t idx;
    struct inst_profile *old = find_profile(d, np->identifier, &idx);

    if (old) {
        profile_clear(old);
        *old = *np;
    } else {
        d->profiles = xreallocarray(d->profiles, d->nprofiles + 1, sizeof(*d->profiles));
        d->profiles[d->nprofiles++] = *np;
    }
    memset(np, 0, sizeof(*np));
}

int sim_device_enroll(struct sim_device *d, const struct sim_profile *profile, X509 *identity,
                      EVP_PKEY *key, struct scepter_error *err)
{
    struct sim_mdm_settings mdm;
    struct inst_profile np;
    struct install_fail f;
    struct sim_brain_env env;
    int rc;

    memset(&env, 0, sizeof(env));
    memset(&np, 0, sizeof(np));
    if (d->enrolled)
        return scepter_err(err, SCEPTER_ECONFLICT, "profile", "the device is already enrolled (%s)",
                           d->mdm.server_url);
    if ((rc = sim_mdm_settings_read(profile, &mdm, err)) != 0)
        return rc;
    if (!crypto_cert_matches_key(identity, key)) {
        sim_mdm_settings_clear(&mdm);
        return scepter_err(err, SCEPTER_ECRYPTO, "identity",
                           "identity: the certificate does not match the key");
    }
    /*
     * The identity payload (SCEP or PKCS#12) was already run by the caller: install the
     * certificate payloads, list every payload, and record the identity as this profile's
     * certificate.
     */
    {
        const struct sim_profile *p = profile;
        size_t n = sim_profile_payload_count(p);
        rc = 0;
        memset(&np, 0, sizeof(np));
        np.identifier = xstrdup(sim_profile_identifier(p));
        np.uuid = xstrdup(sim_profile_uuid(p));
        np.version = 1;
        np.is_mdm = true;
        {
            const char *s = NULL;
            struct scepter_error e;
            if (plistx_get_string(sim_profile_root(p), "PayloadDisplayName", false, &s, &e) == 0)
                np.display_name = xstrdup(s);
            if (plistx_get_string(sim_profile_root(p), "PayloadOrganization", false, &s, &e) == 0)
                np.organization = xstrdup(s);
        }
        np.npayloads = n;
        np.payloads = xcalloc(n ? n : 1, sizeof(*np.payloads));
        for (size_t i = 0; i < n && rc == 0; i++) {
            const struct sim_payload *pl = sim_profile_payload(p, i);
            np.payloads[i].type = xstrdup(pl->type);
            np.payloads[i].identifier = xstrdup(pl->identifier);
            np.payloads[i].uuid = xstrdup(pl->uuid);
            np.payloads[i].version = pl->version;
            np.payloads[i].display_name = dup_or_null(pl->display_name);
            if (strcmp(pl->type, "com.apple.security.root") == 0 ||
                strcmp(pl->type, "com.apple.security.pkcs1") == 0 ||
                strcmp(pl->type, "com.apple.security.pem") == 0)
                rc = install_payload(d, &env, pl, &np, &f);
        }
        for (int i = 0; sim_profile_signers(p) && i < sk_X509_num(sim_profile_signers(p)); i++) {
            np.signers = xreallocarray(np.signers, np.nsigners + 1, sizeof(*np.signers));
            memset(&np.signers[np.nsigners], 0, sizeof(struct inst_cert));
            np.signers[np.nsigners].der = crypto_cert_der(sk_X509_value(sim_profile_signers(p), i),
                                                          &np.signers[np.nsigners].len);
            np.nsigners++;
        }
    }
    if (rc != 0) {
        profile_clear(&np);
        sim_mdm_settings_clear(&mdm);
        return scepter_err(err, SCEPTER_EINVAL, "profile", "%s", f.text);
    }
    add_cert(&np, identity, true);
    put_profile(d, &np);
    d->mdm = mdm;
    X509_up_ref(identity);
    EVP_PKEY_up_ref(key);
    X509_free(d->identity);
    EVP_PKEY_free(d->key);
    d->identity = identity;
    d->key = key;
    d->enrolled = true;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Check-in bodies                                                                           */

static char *render(plist_t p, size_t *len)
{
    char *xml = plistx_to_xml(p, len);

    plist_free(p);
    return xml;
}

static plist_t checkin_base(const struct sim_device *d, const char *type)
{
    plist_t p = plist_new_dict();

    plistx_set_string(p, "MessageType", type);
    plistx_set_string(p, "Topic", d->enrolled ? d->mdm.topic : "");
    plistx_set_string(p, "UDID", d->facts.udid);
    return p;
}

char *sim_device_authenticate(const struct sim_device *d, size_t *len)
{
    plist_t p = checkin_base(d, "Authenticate");
    const struct sim_facts *f = &d->facts;

    plistx_set_string(p, "OSVersion", f->os_version);
    plistx_set_string(p, "BuildVersion", f->build_version);
    plistx_set_string(p, "ProductName", f->product_name);
    plistx_set_string(p, "SerialNumber", f->serial);
    if (f->platform == SIM_MAC) {
        /* Required on macOS. */
        plistx_set_string(p, "DeviceName", f->device_name);
        plistx_set_string(p, "Model", f->model);
        plistx_set_string(p, "ModelName", f->model_name);
    }
    if (f->imei[0])
        plistx_set_string(p, "IMEI", f->imei);
    return render(p, len);
}

char *sim_device_token_update(const struct sim_device *d, size_t *len)
{
    plist_t p = checkin_base(d, "TokenUpdate");

    plistx_set_data(p, "Token", d->token, sizeof(d->token));
    plistx_set_string(p, "PushMagic", d->push_magic);
    plistx_set_bool(p, "AwaitingConfiguration", false);
    if (d->facts.platform != SIM_MAC) {
        /* An opaque escrow keybag stand-in: iOS devices send one on the device channel. */
        unsigned char unlock[64];
        uint64_t rng = 0;
        for (size_t i = 0; i < 32; i++)
            rng = rng * 131 + d->token[i];
        for (size_t i = 0; i < sizeof(unlock); i++)
            unlock[i] = (unsigned char)sim_rand_next(&rng);
        memcpy(unlock, "DATA", 4);
        plistx_set_data(p, "UnlockToken", unlock, sizeof(unlock));
    }
    return render(p, len);
}

char *sim_device_checkout(const struct sim_device *d, size_t *len)
{
    return render(checkin_base(d, "CheckOut"), len);
}

char *sim_device_idle(const struct sim_device *d, size_t *len)
{
    plist_t p = plist_new_dict();

    plistx_set_string(p, "UDID", d->facts.udid);
    plistx_set_string(p, "Status", "Idle");
    return render(p, len);
}

/* ---------------------------------------------------------------------------------------- */
/* Commands                                                                                  */

static void set_status(plist_t r, struct sim_brain_outcome *o, const char *status)
{
    plistx_set_string(r, "Status", status);
    str_copy(o->status, sizeof(o->status), status);
}

static void command_error(plist_t r, struct sim_brain_outcome *o, int64_t code, const char *domain,
                          const char *text)
{
    plist_t chain = plist_new_array();

    sim_error_chain_add(chain, code, domain, text);
    set_status(r, o, "Error");
    plist_dict_set_item(r, "ErrorChain", chain);
}

static bool has_right(const struct sim_device *d, uint64_t right)
{
    return d->enrolled && (d->mdm.access_rights & right) != 0;
}

static void do_profile_list(const struct sim_device *d, plist_t r)
{
    plist_t list = plist_new_array();

    for (size_t i = 0; i < d->nprofiles; i++) {
        const struct inst_profile *p = &d->profiles[i];
        plist_t e = plist_new_dict(), content = plist_new_array();

        plistx_set_string(e, "PayloadIdentifier", p->identifier);
        plistx_set_string(e, "PayloadUUID", p->uuid);
        plistx_set_uint(e, "PayloadVersion", p->version);
        if (p->display_name)
            plistx_set_string(e, "PayloadDisplayName", p->display_name);
        if (p->organization)
            plistx_set_string(e, "PayloadOrganization", p->organization);
        if (p->description)
            plistx_set_string(e, "PayloadDescription", p->description);
        plistx_set_bool(e, "PayloadRemovalDisallowed", p->removal_disallowed);
        plistx_set_bool(e, "HasRemovalPasscode", p->has_removal_passcode);
        plistx_set_bool(e, "IsEncrypted", false);
        if (d->facts.platform != SIM_MAC)
            plistx_set_bool(e, "IsManaged", true);
        if (p->nsigners) {
            plist_t s = plist_new_array();
            for (size_t j = 0; j < p->nsigners; j++)
                plist_array_append_item(
                    s, plist_new_data((const char *)p->signers[j].der, p->signers[j].len));
            plist_dict_set_item(e, "SignerCertificates", s);
        }
        for (size_t j = 0; j < p->npayloads; j++) {
            const struct inst_payload *pl = &p->payloads[j];
            plist_t c = plist_new_dict();
            plistx_set_string(c, "PayloadType", pl->type);
            plistx_set_uint(c, "PayloadVersion", pl->version);
            plistx_set_string(c, "PayloadIdentifier", pl->identifier);
            plistx_set_string(c, "PayloadUUID", pl->uuid);
            if (pl->display_name)
                plistx_set_string(c, "PayloadDisplayName", pl->display_name);
            if (pl->description)
                plistx_set_string(c, "PayloadDescription", pl->description);
            if (pl->organization)
                plistx_set_string(c, "PayloadOrganization", pl->organization);
            plist_array_append_item(content, c);
        }
        plist_dict_set_item(e, "PayloadContent", content);
        plist_array_append_item(list, e);
    }
    plist_dict_set_item(r, "ProfileList", list);
}

static void do_certificate_list(const struct sim_device *d, plist_t r)
{
    plist_t list = plist_new_array();

    for (size_t i = 0; i < d->nprofiles; i++)
        for (size_t j = 0; j < d->profiles[i].ncerts; j++) {
            const struct inst_cert *c = &d->profiles[i].certs[j];
            plist_t e = plist_new_dict();
            plistx_set_string(e, "CommonName", c->cn);
            plistx_set_bool(e, "IsIdentity", c->identity);
            plistx_set_data(e, "Data", c->der, c->len);
            plist_array_append_item(list, e);
        }
    plist_dict_set_item(r, "CertificateList", list);
}

static void host_name(const struct sim_facts *f, char *out, size_t n)
{
    size_t j = 0;

    for (size_t i = 0; f->device_name[i] && j + 1 < n; i++) {
        char c = f->device_name[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            out[j++] = c;
        else if (c == ' ' && j > 0 && out[j - 1] != '-')
            out[j++] = '-';
    }
    out[j] = '\0';
}

/* Answer one query, or return NULL when this device does not know it (dropped silently). */
static plist_t query_value(const struct sim_device *d, const char *q, bool *network)
{
    const struct sim_facts *f = &d->facts;
    bool mac = f->platform == SIM_MAC, ios = !mac;
    char hn[64];

    *network = false;
    if (strcmp(q, "UDID") == 0)
        return plist_new_string(f->udid);
    if (strcmp(q, "DeviceName") == 0)
        return plist_new_string(f->device_name);
    if (strcmp(q, "OSVersion") == 0)
        return plist_new_string(f->os_version);
    if (strcmp(q, "BuildVersion") == 0)
        return plist_new_string(f->build_version);
    if (strcmp(q, "ModelName") == 0)
        return plist_new_string(f->model_name);
    if (strcmp(q, "Model") == 0)
        return plist_new_string(f->model);
    if (strcmp(q, "ProductName") == 0)
        return plist_new_string(f->product_name);
    if (strcmp(q, "SerialNumber") == 0)
        return plist_new_string(f->serial);
    if (strcmp(q, "DeviceCapacity") == 0)
        return plist_new_real((double)f->capacity_gb);
    if (strcmp(q, "AvailableDeviceCapacity") == 0)
        return plist_new_real((double)f->capacity_gb * 0.62);
    if (strcmp(q, "IsSupervised") == 0)
        return plist_new_bool(0);
    if (strcmp(q, "AwaitingConfiguration") == 0)
        return plist_new_bool(0);
    if (strcmp(q, "IsActivationLockEnabled") == 0)
        return plist_new_bool(0);
    if (strcmp(q, "PushToken") == 0)
        return plist_new_data((const char *)d->token, sizeof(d->token));
    if (strcmp(q, "WiFiMAC") == 0 || strcmp(q, "BluetoothMAC") == 0) {
        *network = true;
        return plist_new_string(q[0] == 'W' ? f->wifi_mac : f->bt_mac);
    }
    if (mac) {
        if (strcmp(q, "EthernetMAC") == 0) {
            *network = true;
            return plist_new_string(f->wifi_mac);
        }
        host_name(f, hn, sizeof(hn));
        if (strcmp(q, "LocalHostName") == 0)
            return plist_new_string(hn);
        if (strcmp(q, "HostName") == 0) {
            str_append(hn, sizeof(hn), ".local");
            return plist_new_string(hn);
        }
        if (strcmp(q, "IsAppleSilicon") == 0)
            return plist_new_bool(str_has_prefix(f->product_name, "Mac1"));
        if (strcmp(q, "SystemIntegrityProtectionEnabled") == 0)
            return plist_new_bool(1);
        if (strcmp(q, "HasBattery") == 0)
            return plist_new_bool(strstr(f->model_name, "MacBook") != NULL);
        if (strcmp(q, "IsActivationLockSupported") == 0)
            return plist_new_bool(1);
    }
    if (ios) {
        if (strcmp(q, "BatteryLevel") == 0)
            return plist_new_real(0.85);
        if (strcmp(q, "IsMDMLostModeEnabled") == 0 ||
            strcmp(q, "IsDeviceLocatorServiceEnabled") == 0 ||
            strcmp(q, "IsCloudBackupEnabled") == 0 || strcmp(q, "IsDoNotDisturbInEffect") == 0)
            return plist_new_bool(0);
        if (strcmp(q, "IsMultiUser") == 0)
            return plist_new_bool(0);
        if (strcmp(q, "TimeZone") == 0)
            return plist_new_string("America/New_York");
        if (strcmp(q, "IMEI") == 0 && f->imei[0]) {
            *network = true;
            return plist_new_string(f->imei);
        }
    }
    return NULL;
}

static int do_device_information(const struct sim_device *d, plist_t cmd, plist_t r,
                                 struct scepter_error *e)
{
    plist_t queries = NULL, resp;
    uint32_t n;

    if (plistx_get_array(cmd, "Queries", true, &queries, e) != 0)
        return -1;
    n = plist_array_get_size(queries);
    for (uint32_t i = 0; i < n; i++)
        if (plist_get_node_type(plist_array_get_item(queries, i)) != PLIST_STRING)
            return scepter_err(e, SCEPTER_EINVAL, "Queries", "Queries[%u]: expected string", i);
    resp = plist_new_dict();
    for (uint32_t i = 0; i < n; i++) {
        const char *q = plist_get_string_ptr(plist_array_get_item(queries, i), NULL);
        bool network = false;
        plist_t v = query_value(d, q, &network);

        if (v == NULL)
            continue;
        if (strcmp(q, "UDID") != 0 &&
            !has_right(d, network ? RIGHT_NETWORK_INFO : RIGHT_DEVICE_INFO)) {
            plist_free(v);
            continue; /* not allowed: dropped, as Apple documents */
        }
        plist_dict_set_item(resp, q, v);
    }
    plist_dict_set_item(r, "QueryResponses", resp);
    return 0;
}

static bool maybe_notnow(const struct sim_device *d, const struct sim_brain_env *env)
{
    if (d->locked)
        return true;
    return env->notnow_rate > 0 && env->rng && sim_rand_unit(env->rng) < env->notnow_rate;
}

static void do_install_profile(struct sim_device *d, const struct sim_brain_env *env,
                               const unsigned char *data, size_t len, plist_t r,
                               struct sim_brain_outcome *o)
{
    struct sim_profile *p = NULL;
    struct scepter_error e;
    struct inst_profile np;
    struct install_fail f;
    char text[400];

    memset(&np, 0, sizeof(np));
    if (sim_profile_parse(data, len, env->trust, &p, &e) != 0) {
        plist_t chain = plist_new_array();
        bool sig = e.code == SCEPTER_ECRYPTO;

        sim_error_chain_add(chain, sig ? 1009 : 1000, "MCProfileErrorDomain",
                            sig ? "The profile's signature could not be verified."
                                : "The profile is malformed.");
        sim_error_chain_add(chain, sig ? 1009 : 1001, "MCProfileErrorDomain", e.msg);
        set_status(r, o, "Error");
        plist_dict_set_item(r, "ErrorChain", chain);
        return;
    }
    if (build_installed(d, env, p, &np, &f) != 0) {
        plist_t chain = plist_new_array();

        snprintf(text, sizeof(text), "Profile Installation Failed: \"%s\"",
                 sim_profile_identifier(p));
        sim_error_chain_add(chain, 4001, "MCInstallationErrorDomain", text);
        sim_error_chain_add(chain, f.code, f.domain, f.text);
        set_status(r, o, "Error");
        plist_dict_set_item(r, "ErrorChain", chain);
        profile_clear(&np);
        sim_profile_free(p);
        return;
    }
    if (np.is_mdm && np.new_identity && np.new_key) {
        /* The enrollment profile again, with a fresh identity (the server renews it): from
         * now on the device presents the new certificate. */
        X509_free(d->identity);
        EVP_PKEY_free(d->key);
        d->identity = np.new_identity;
        d->key = np.new_key;
        np.new_identity = NULL;
        np.new_key = NULL;
        o->identity_renewed = true;
    }
    X509_free(np.new_identity);
    EVP_PKEY_free(np.new_key);
    np.new_identity = NULL;
    np.new_key = NULL;
    put_profile(d, &np);
    set_status(r, o, "Acknowledged");
    sim_profile_free(p);
}

static void do_remove_profile(struct sim_device *d, const char *identifier, plist_t r,
                              struct sim_brain_outcome *o)
{
    size_t idx;
    struct inst_profile *p = find_profile(d, identifier, &idx);
    char text[300];

    if (p == NULL) {
        snprintf(text, sizeof(text), "The profile \"%s\" is not installed.", identifier);
        command_error(r, o, 1003, "MCProfileErrorDomain", text);
        return;
    }
    if (p->is_mdm) {
        /* Removing the MDM profile unenrolls the device. */
        o->unenrolled = true;
        d->enrolled = false;
    }
    profile_clear(p);
    memmove(&d->profiles[idx], &d->profiles[idx + 1],
            (d->nprofiles - idx - 1) * sizeof(*d->profiles));
    d->nprofiles--;
    set_status(r, o, "Acknowledged");
}

void sim_brain_handle(struct sim_device *d, const struct sim_brain_env *env, const void *body,
                      size_t len, plist_t *result, struct sim_brain_outcome *o)
{
    plist_t r = plist_new_dict(), req = NULL, cmd = NULL;
    struct scepter_error e;
    const char *uuid = NULL, *type = NULL;
    bool b;

    memset(o, 0, sizeof(*o));
    memset(&e, 0, sizeof(e));
    plistx_set_string(r, "UDID", d->facts.udid);
    *result = r;
    if (plistx_parse_dict(body, len, &req, &e) != 0) {
        set_status(r, o, "CommandFormatError");
        goto out;
    }
    if (plistx_get_string(req, "CommandUUID", true, &uuid, &e) != 0 || str_empty(uuid)) {
        set_status(r, o, "CommandFormatError");
        goto out;
    }
    plistx_set_string(r, "CommandUUID", uuid);
    str_copy(o->command_uuid, sizeof(o->command_uuid), uuid);
    if (plistx_get_dict(req, "Command", true, &cmd, &e) != 0 ||
        plistx_get_string(cmd, "RequestType", true, &type, &e) != 0) {
        set_status(r, o, "CommandFormatError");
        goto out;
    }
    str_copy(o->request_type, sizeof(o->request_type), type);
    if (!d->enrolled) {
        command_error(r, o, 12020, "MCMDMErrorDomain", "The device is not enrolled.");
        goto out;
    }
    if (strcmp(type, "ProfileList") == 0 || strcmp(type, "CertificateList") == 0) {
        if (plistx_get_bool(cmd, "ManagedOnly", false, &b, &e) < 0) {
            set_status(r, o, "CommandFormatError");
            goto out;
        }
        if (!has_right(d, RIGHT_INSPECT_PROFILES)) {
            command_error(r, o, 12025, "MCMDMErrorDomain",
                          "The MDM server is not allowed to inspect profiles (AccessRights).");
            goto out;
        }
        if (type[0] == 'P')
            do_profile_list(d, r);
        else
            do_certificate_list(d, r);
        set_status(r, o, "Acknowledged");
    } else if (strcmp(type, "DeviceInformation") == 0) {
        if (do_device_information(d, cmd, r, &e) != 0) {
            set_status(r, o, "CommandFormatError");
            goto out;
        }
        set_status(r, o, "Acknowledged");
    } else if (strcmp(type, "InstallProfile") == 0) {
        const unsigned char *data = NULL;
        size_t dlen = 0;

        if (plistx_get_data(cmd, "Payload", true, &data, &dlen, &e) != 0 || dlen == 0) {
            set_status(r, o, "CommandFormatError");
            goto out;
        }
        if (!has_right(d, RIGHT_INSTALL_PROFILES)) {
            command_error(r, o, 12025, "MCMDMErrorDomain",
                          "The MDM server is not allowed to install profiles (AccessRights).");
            goto out;
        }
        if (maybe_notnow(d, env)) {
            set_status(r, o, "NotNow");
            goto out;
        }
        do_install_profile(d, env, data, dlen, r, o);
    } else if (strcmp(type, "DeclarativeManagement") == 0 && env->ddm != NULL) {
        /* The device syncs (ddm.c) and acknowledges; a failed sync is retried at the next. */
        const unsigned char *data = NULL;
        size_t dlen = 0;
        char *tokens;
        if (plistx_get_data(cmd, "Data", false, &data, &dlen, &e) < 0) {
            set_status(r, o, "CommandFormatError");
            goto out;
        }
        tokens = data ? xstrndup((const char *)data, dlen) : NULL;
        (void)env->ddm(env->ddm_arg, d, tokens, &e); /* failed: the next sync retries */
        free(tokens);
        set_status(r, o, "Acknowledged");
    } else if (strcmp(type, "RemoveProfile") == 0) {
        const char *id = NULL;

        if (plistx_get_string(cmd, "Identifier", true, &id, &e) != 0 || str_empty(id)) {
            set_status(r, o, "CommandFormatError");
            goto out;
        }
        if (!has_right(d, RIGHT_INSTALL_PROFILES)) {
            command_error(r, o, 12025, "MCMDMErrorDomain",
                          "The MDM server is not allowed to remove profiles (AccessRights).");
            goto out;
        }
        if (maybe_notnow(d, env)) {
            set_status(r, o, "NotNow");
            goto out;
        }
        do_remove_profile(d, id, r, o);
    } else {
        char text[160];

        snprintf(text, sizeof(text), "Unknown command \"%.100s\".", type);
        command_error(r, o, 12021, "MCMDMErrorDomain", text);
    }
out:
    if (req)
        plist_free(req);
}
