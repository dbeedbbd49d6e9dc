/*
 * The enrollment profile served at GET /mdm/enroll: the TLS server's root CA (optional, first,
 * so the device trusts the server before it talks to it), the device identity (a SCEP payload
 * the device enrolls with, or a PKCS#12 the server issued) and the com.apple.mdm payload that
 * points at it through IdentityCertificateUUID.  Keys follow Apple's com.apple.mdm.yaml.
 */
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/uuid.h"
#include "common/xmalloc.h"
#include "profiles/profiles_int.h"

static int check_https(const char *url, const char *field, bool required, struct scepter_error *err)
{
    if (url == NULL) {
        if (required)
            return scepter_err(err, SCEPTER_EINVAL, field, "%s: required", field);
        return 0;
    }
    if (strncmp(url, "https://", 8) != 0 || url[8] == '\0' || url[8] == '/')
        return scepter_err(err, SCEPTER_EINVAL, field,
                           "%s: \"%.80s\" must be an https:// URL with a host", field, url);
    if (txt_has_ctl(url, false) || strchr(url, ' ') != NULL)
        return scepter_err(err, SCEPTER_EINVAL, field,
                           "%s: contains spaces or control "
                           "characters",
                           field);
    return 0;
}

static int check_access_rights(int64_t ar, struct scepter_error *err)
{
    const char *f = "access_rights";

    if (ar <= 0 || ar > PROFILE_ACCESS_RIGHTS_ALL)
        return scepter_err(err, SCEPTER_EINVAL, f, "%s: %lld is out of range 1..8191", f,
                           (long long)ar);
    if ((ar & 2) && !(ar & 1))
        return scepter_err(err, SCEPTER_EINVAL, f,
                           "%s: 2 (install/remove profiles) needs 1 (inspect profiles)", f);
    if ((ar & 128) && !(ar & 64))
        return scepter_err(err, SCEPTER_EINVAL, f,
                           "%s: 128 (install/remove provisioning profiles) needs 64 (inspect "
                           "them)",
                           f);
    return 0;
}

static int check_opt_text(const char *s, const char *field, struct scepter_error *err)
{
    if (s && (txt_has_ctl(s, false) || !txt_valid_utf8(s, strlen(s))))
        return scepter_err(err, SCEPTER_EINVAL, field,
                           "%s: contains control characters or invalid UTF-8", field);
    return 0;
}

static int build_scep(const struct profile_enroll_opts *o, const char *ident, const char *uuid,
                      plist_t *out, struct scepter_error *err)
{
    plist_t p = NULL, c = NULL, subject = NULL;
    int64_t ks = o->scep_key_size ? o->scep_key_size : 2048;
    int64_t ku = o->scep_key_usage ? o->scep_key_usage : 5;
    char *stmt = NULL, *id = NULL;
    int rc = 0;

    if (strncasecmp(o->scep_url, "http://", 7) != 0 && strncasecmp(o->scep_url, "https://", 8) != 0)
        return scepter_err(err, SCEPTER_EINVAL, "scep_url",
                           "scep_url: must start with http:// or https://");
    if ((rc = check_opt_text(o->scep_url, "scep_url", err)) != 0 ||
        (rc = check_opt_text(o->scep_challenge, "scep_challenge", err)) != 0 ||
        (rc = check_opt_text(o->scep_name, "scep_name", err)) != 0)
        return rc;
    if (ks != 1024 && ks != 2048 && ks != 4096)
        return scepter_err(err, SCEPTER_EINVAL, "scep_key_size",
                           "scep_key_size: %lld is not one of 1024, 2048, 4096", (long long)ks);
    if (ku & ~(int64_t)5)
        return scepter_err(err, SCEPTER_EINVAL, "scep_key_usage",
                           "scep_key_usage: %lld has bits other than 1 and 4", (long long)ku);
    if (o->scep_subject) {
        if ((rc = profile_subject_parse(o->scep_subject, "scep_subject", &subject, err)) != 0)
            goto out;
    } else if (o->scep_common_name) {
        /* Escape what the statement syntax treats specially. */
        struct buf b = BUF_INIT;
        buf_puts(&b, "/CN=");
        for (const char *s = o->scep_common_name; *s; s++) {
            if (*s == '/' || *s == '=' || *s == '\\')
                buf_putc(&b, '\\');
            buf_putc(&b, *s);
        }
        stmt = buf_steal(&b, NULL);
        if ((rc = profile_subject_parse(stmt, "scep_common_name", &subject, err)) != 0)
            goto out;
    }
    if (subject) {
        /* Values are checked after parsing (they end up as plist strings). */
        for (uint32_t i = 0; i < plist_array_get_size(subject); i++) {
            plist_t pair = plist_array_get_item(plist_array_get_item(subject, i), 0);
            const char *v = plist_get_string_ptr(plist_array_get_item(pair, 1), NULL);
            if ((rc = check_opt_text(v, o->scep_subject ? "scep_subject" : "scep_common_name",
                                     err)) != 0)
                goto out;
        }
    }
    c = plist_new_dict();
    plistx_set_string(c, "URL", o->scep_url);
    if (o->scep_name)
        plistx_set_string(c, "Name", o->scep_name);
    if (subject) {
        plist_dict_set_item(c, "Subject", subject);
        subject = NULL;
    }
    if (o->scep_challenge)
        plistx_set_string(c, "Challenge", o->scep_challenge);
    plistx_set_uint(c, "Keysize", (uint64_t)ks);
    plistx_set_string(c, "Key Type", "RSA");
    plistx_set_uint(c, "Key Usage", (uint64_t)ku);
    plistx_set_uint(c, "Retries", PROFILE_DEFAULT_RETRIES);
    plistx_set_uint(c, "RetryDelay", PROFILE_DEFAULT_RETRY_DELAY);
    /* The MDM identity's key stays in the keychain. */
    plistx_set_bool(c, "KeyIsExtractable", false);
    p = plist_new_dict();
    plist_dict_set_item(p, "PayloadContent", c);
    id = xasprintf("%s.identity", ident);
    pl_payload_common(p, "com.apple.security.scep", id, uuid, "MDM identity (SCEP)",
                      o->organization);
    *out = p;
    p = NULL;
out:
    plist_free(p);
    plist_free(subject);
    free(stmt);
    free(id);
    return rc;
}

static int build_pkcs12(const struct profile_enroll_opts *o, const char *ident, const char *uuid,
                        plist_t *out, struct scepter_error *err)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    char *id = NULL;
    int rc;

    if ((rc = check_opt_text(o->pkcs12_password, "pkcs12_password", err)) != 0)
        return rc;
    /* Refuse what the device would refuse: a wrong password or not exactly one identity. */
    if ((rc = crypto_pkcs12_parse(o->pkcs12, o->pkcs12_len,
                                  o->pkcs12_password ? o->pkcs12_password : "", &cert, &key, NULL,
                                  err)) != 0) {
        if (err)
            str_copy(err->field, sizeof(err->field),
                     strcmp(err->field, "password") == 0 ? "pkcs12_password" : "pkcs12");
        return rc;
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    plist_t p = plist_new_dict();
    plistx_set_data(p, "PayloadContent", o->pkcs12, o->pkcs12_len);
    if (o->pkcs12_password)
        plistx_set_string(p, "Password", o->pkcs12_password);
    plistx_set_string(p, "PayloadCertificateFileName", "identity.p12");
    id = xasprintf("%s.identity", ident);
    pl_payload_common(p, "com.apple.security.pkcs12", id, uuid, "MDM identity", o->organization);
    free(id);
    *out = p;
    return 0;
}

int profile_enroll_render(const struct profile_enroll_opts *o, char **xml, size_t *len,
                          struct scepter_error *err)
{
    const char *ident = o->identifier ? o->identifier : "com.scepter.enroll";
    int64_t ar = o->access_rights ? o->access_rights : PROFILE_ACCESS_RIGHTS_ALL;
    char uuid_top[UUID_STR_LEN], uuid_id[UUID_STR_LEN], uuid_mdm[UUID_STR_LEN],
        uuid_root[UUID_STR_LEN];
    plist_t top = NULL, content = NULL, identity = NULL, mdm, caps;
    char *id = NULL;
    int rc = 0;

    *xml = NULL;
    *len = 0;
    if (!pl_identifier_ok(ident))
        return scepter_err(err, SCEPTER_EINVAL, "identifier",
                           "identifier: \"%.80s\" is not a reverse-DNS identifier", ident);
    if ((rc = check_https(o->server_url, "server_url", true, err)) != 0 ||
        (rc = check_https(o->checkin_url, "checkin_url", false, err)) != 0 ||
        (rc = check_access_rights(ar, err)) != 0 ||
        (rc = check_opt_text(o->organization, "organization", err)) != 0 ||
        (rc = check_opt_text(o->display_name, "display_name", err)) != 0)
        return rc;
    if (o->topic == NULL || !str_has_prefix(o->topic, "com.apple.mgmt.") ||
        strlen(o->topic) <= strlen("com.apple.mgmt.") || txt_has_ctl(o->topic, false))
        return scepter_err(err, SCEPTER_EINVAL, "topic",
                           "topic: \"%.80s\" must start with com.apple.mgmt. (the UID of the "
                           "push certificate)",
                           o->topic ? o->topic : "");
    if ((o->scep_url != NULL) == (o->pkcs12 != NULL))
        return scepter_err(err, SCEPTER_EINVAL, "identity",
                           "identity: give exactly one of a SCEP URL or a PKCS#12 identity");

    uuid_new(uuid_id);
    content = plist_new_array();
    if (o->root_cert) {
        X509 *cert = crypto_cert_parse(o->root_cert, o->root_cert_len, "root_cert", err);
        size_t derlen = 0;
        unsigned char *der;
        if (cert == NULL) {
            rc = err ? err->code : SCEPTER_EINVAL;
            goto out;
        }
        der = crypto_cert_der(cert, &derlen);
        X509_free(cert);
        char *cn = pl_cert_display_name(der, derlen);
        char *disp = xasprintf("Root certificate: %s", cn);
        plist_t root = plist_new_dict();
        plistx_set_data(root, "PayloadContent", der, derlen);
        id = xasprintf("%s.root", ident);
        uuid_new(uuid_root);
        pl_payload_common(root, "com.apple.security.root", id, uuid_root, disp, o->organization);
        plist_array_append_item(content, root);
        free(der);
        free(cn);
        free(disp);
        free(id);
        id = NULL;
    }
    rc = o->scep_url ? build_scep(o, ident, uuid_id, &identity, err)
                     : build_pkcs12(o, ident, uuid_id, &identity, err);
    if (rc != 0)
        goto out;
    plist_array_append_item(content, identity);

    mdm = plist_new_dict();
    plistx_set_string(mdm, "IdentityCertificateUUID", uuid_id);
    plistx_set_string(mdm, "Topic", o->topic);
    plistx_set_string(mdm, "ServerURL", o->server_url);
    if (o->checkin_url)
        plistx_set_string(mdm, "CheckInURL", o->checkin_url);
    plistx_set_bool(mdm, "SignMessage", true);
    plistx_set_uint(mdm, "AccessRights", (uint64_t)ar);
    plistx_set_bool(mdm, "CheckOutWhenRemoved", true);
    plistx_set_bool(mdm, "UseDevelopmentAPNS", o->use_development_apns);
    caps = plist_new_array();
    plist_array_append_item(caps, plist_new_string("com.apple.mdm.per-user-connections"));
    if (o->cap_bootstrap_token)
        plist_array_append_item(caps, plist_new_string("com.apple.mdm.bootstraptoken"));
    if (o->cap_token)
        plist_array_append_item(caps, plist_new_string("com.apple.mdm.token"));
    plist_dict_set_item(mdm, "ServerCapabilities", caps);
    id = xasprintf("%s.mdm", ident);
    uuid_new(uuid_mdm);
    pl_payload_common(mdm, "com.apple.mdm", id, uuid_mdm, "Mobile Device Management",
                      o->organization);
    plist_array_append_item(content, mdm);

    top = plist_new_dict();
    plist_dict_set_item(top, "PayloadContent", content);
    content = NULL;
    uuid_new(uuid_top);
    pl_payload_common(top, "Configuration", ident, uuid_top,
                      o->display_name ? o->display_name : "MDM enrollment", o->organization);
    plistx_set_string(top, "PayloadScope", "System");
    *xml = plistx_to_xml(top, len);
    if (*xml == NULL)
        rc = scepter_err(err, SCEPTER_EINTERNAL, NULL,
                         "libplist could not serialize the "
                         "enrollment profile");
out:
    plist_free(content);
    plist_free(top);
    free(id);
    return rc;
}
