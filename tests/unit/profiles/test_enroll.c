/*
 * The enrollment profile served at /mdm/enroll: the com.apple.mdm payload key by key, the
 * identity it points at (SCEP or PKCS#12), the optional TLS root installed first, and every
 * bad option refused with its name.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/uuid.h"
#include "support/support.h"
#include "tp.h"

#define TOPIC "com.apple.mgmt.External.e0bd1eac-0000-4c6f-9c1a-000000000000"

static struct profile_enroll_opts base(void)
{
    struct profile_enroll_opts o = {
        .organization = "Example",
        .server_url = "https://mdm.example.com:8443/mdm/connect",
        .checkin_url = "https://mdm.example.com:8443/mdm/checkin",
        .topic = TOPIC,
        .scep_url = "https://mdm.example.com/scep",
        .scep_challenge = "enroll-secret",
        .scep_name = "Scepter",
        .scep_common_name = "MDM Identity",
    };
    return o;
}

static plist_t render(const struct profile_enroll_opts *o)
{
    char *xml = NULL;
    size_t len;
    struct scepter_error err;
    cr_assert_eq(profile_enroll_render(o, &xml, &len, &err), 0, "%s", err.msg);
    plist_t p = tp_round_trip(xml, len);
    free(xml);
    return p;
}

static void refused(const struct profile_enroll_opts *o, const char *field, const char *reason)
{
    char *xml = (char *)"untouched";
    size_t len;
    struct scepter_error err;
    cr_assert_neq(profile_enroll_render(o, &xml, &len, &err), 0, "%s accepted", field);
    cr_assert_null(xml);
    cr_assert_str_eq(err.field, field, "%s", err.msg);
    cr_assert(strstr(err.msg, reason) != NULL, "%s (wanted \"%s\")", err.msg, reason);
}

static plist_t payload_of(plist_t prof, const char *type)
{
    plist_t arr = plist_dict_get_item(prof, "PayloadContent");
    for (uint32_t i = 0; i < plist_array_get_size(arr); i++) {
        plist_t p = plist_array_get_item(arr, i);
        if (strcmp(tp_str(p, "PayloadType"), type) == 0)
            return p;
    }
    return NULL;
}

Test(enroll, mdm_payload_with_scep_identity)
{
    struct profile_enroll_opts o = base();
    plist_t prof = render(&o);

    cr_assert_str_eq(tp_str(prof, "PayloadType"), "Configuration");
    cr_assert_str_eq(tp_str(prof, "PayloadIdentifier"), "com.scepter.enroll");
    cr_assert_str_eq(tp_str(prof, "PayloadScope"), "System");
    cr_assert_str_eq(tp_str(prof, "PayloadOrganization"), "Example");
    plist_t arr = plist_dict_get_item(prof, "PayloadContent");
    cr_assert_eq(plist_array_get_size(arr), 2);
    plist_t id = plist_array_get_item(arr, 0), mdm = plist_array_get_item(arr, 1);
    cr_assert_str_eq(tp_str(id, "PayloadType"), "com.apple.security.scep");
    cr_assert_str_eq(tp_str(mdm, "PayloadType"), "com.apple.mdm");

    cr_assert_str_eq(tp_str(mdm, "IdentityCertificateUUID"), tp_str(id, "PayloadUUID"));
    cr_assert(uuid_valid(tp_str(mdm, "IdentityCertificateUUID")));
    cr_assert_str_eq(tp_str(mdm, "Topic"), TOPIC);
    cr_assert_str_eq(tp_str(mdm, "ServerURL"), "https://mdm.example.com:8443/mdm/connect");
    cr_assert_str_eq(tp_str(mdm, "CheckInURL"), "https://mdm.example.com:8443/mdm/checkin");
    cr_assert(plist_bool_val_is_true(plist_dict_get_item(mdm, "SignMessage")));
    cr_assert(plist_bool_val_is_true(plist_dict_get_item(mdm, "CheckOutWhenRemoved")));
    cr_assert_not(plist_bool_val_is_true(plist_dict_get_item(mdm, "UseDevelopmentAPNS")));
    cr_assert_eq(tp_uint(mdm, "AccessRights"), 8191);
    plist_t caps = plist_dict_get_item(mdm, "ServerCapabilities");
    cr_assert_eq(plist_array_get_size(caps), 1);
    cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(caps, 0), NULL),
                     "com.apple.mdm.per-user-connections");

    plist_t c = plist_dict_get_item(id, "PayloadContent");
    cr_assert_str_eq(tp_str(c, "URL"), "https://mdm.example.com/scep");
    cr_assert_str_eq(tp_str(c, "Challenge"), "enroll-secret");
    cr_assert_str_eq(tp_str(c, "Name"), "Scepter");
    cr_assert_eq(tp_uint(c, "Keysize"), 2048);
    cr_assert_eq(tp_uint(c, "Key Usage"), 5);
    cr_assert_str_eq(tp_str(c, "Key Type"), "RSA");
    plist_t subj = plist_dict_get_item(c, "Subject");
    plist_t pair = plist_array_get_item(plist_array_get_item(subj, 0), 0);
    cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(pair, 0), NULL), "CN");
    cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(pair, 1), NULL), "MDM Identity");
    plist_free(prof);

    /* options: both extra capabilities, a subject statement, a CN that needs escaping */
    o.cap_bootstrap_token = o.cap_token = true;
    o.scep_subject = "/O=Example/CN=%HardwareUUID%";
    prof = render(&o);
    caps = plist_dict_get_item(payload_of(prof, "com.apple.mdm"), "ServerCapabilities");
    cr_assert_eq(plist_array_get_size(caps), 3);
    plist_free(prof);
    o.scep_subject = NULL;
    o.scep_common_name = "a/b=c";
    prof = render(&o);
    c = plist_dict_get_item(payload_of(prof, "com.apple.security.scep"), "PayloadContent");
    pair = plist_array_get_item(plist_array_get_item(plist_dict_get_item(c, "Subject"), 0), 0);
    cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(pair, 1), NULL), "a/b=c");
    plist_free(prof);
}

Test(enroll, pkcs12_identity_and_root_first)
{
    size_t plen, dlen;
    unsigned char *p12 = tu_read_data("push/pushcert.p12", &plen);
    unsigned char *pem = tu_read_data("scep-ca/ca.pem", &dlen);
    struct profile_enroll_opts o = base();
    o.scep_url = NULL;
    o.pkcs12 = p12;
    o.pkcs12_len = plen;
    o.pkcs12_password = "secret";
    o.root_cert = pem;
    o.root_cert_len = dlen;
    o.identifier = "org.example.mdm";
    plist_t prof = render(&o);
    plist_t arr = plist_dict_get_item(prof, "PayloadContent");
    cr_assert_eq(plist_array_get_size(arr), 3);
    plist_t root = plist_array_get_item(arr, 0), id = plist_array_get_item(arr, 1),
            mdm = plist_array_get_item(arr, 2);
    cr_assert_str_eq(tp_str(root, "PayloadType"), "com.apple.security.root");
    cr_assert_eq(plist_get_node_type(plist_dict_get_item(root, "PayloadContent")), PLIST_DATA);
    cr_assert_str_eq(tp_str(id, "PayloadType"), "com.apple.security.pkcs12");
    cr_assert_str_eq(tp_str(id, "Password"), "secret");
    uint64_t n = 0;
    const char *bytes = plist_get_data_ptr(plist_dict_get_item(id, "PayloadContent"), &n);
    cr_assert_eq(n, plen);
    cr_assert_eq(memcmp(bytes, p12, plen), 0);
    cr_assert_str_eq(tp_str(mdm, "IdentityCertificateUUID"), tp_str(id, "PayloadUUID"));
    cr_assert_str_eq(tp_str(prof, "PayloadIdentifier"), "org.example.mdm");
    cr_assert_str_eq(tp_str(mdm, "PayloadIdentifier"), "org.example.mdm.mdm");
    plist_free(prof);

    o.pkcs12_password = "wrong";
    refused(&o, "pkcs12_password", "password");
    o.pkcs12_password = "secret";
    o.pkcs12_len = 10;
    refused(&o, "pkcs12", "");
    free(p12);
    free(pem);
}

Test(enroll, bad_options_name_the_option)
{
    struct profile_enroll_opts o = base();
    o.server_url = "http://mdm.example.com/mdm";
    refused(&o, "server_url", "https://");
    o = base();
    o.server_url = NULL;
    refused(&o, "server_url", "required");
    o = base();
    o.checkin_url = "ftp://x";
    refused(&o, "checkin_url", "https://");
    o = base();
    o.topic = "com.example.push";
    refused(&o, "topic", "com.apple.mgmt.");
    o = base();
    o.topic = NULL;
    refused(&o, "topic", "com.apple.mgmt.");
    o = base();
    o.access_rights = 2;
    refused(&o, "access_rights", "needs 1");
    o = base();
    o.access_rights = 1 | 128;
    refused(&o, "access_rights", "needs 64");
    o = base();
    o.access_rights = 9000;
    refused(&o, "access_rights", "out of range");
    o = base();
    o.scep_url = NULL;
    refused(&o, "identity", "exactly one");
    o = base();
    o.pkcs12 = (const unsigned char *)"x";
    o.pkcs12_len = 1;
    refused(&o, "identity", "exactly one");
    o = base();
    o.scep_key_size = 3072;
    refused(&o, "scep_key_size", "3072");
    o = base();
    o.scep_subject = "/XX=1";
    refused(&o, "scep_subject", "unknown name");
    o = base();
    o.scep_url = "ldap://x";
    refused(&o, "scep_url", "http");
    o = base();
    o.identifier = "bad id";
    refused(&o, "identifier", "reverse-DNS");
    o = base();
    o.root_cert = (const unsigned char *)"junk";
    o.root_cert_len = 4;
    refused(&o, "root_cert", "not a valid X.509");
    o = base();
    o.scep_challenge = "a\nb";
    refused(&o, "scep_challenge", "control");

    /* fewer rights are fine when consistent */
    o = base();
    o.access_rights = 1 | 2 | 16;
    plist_t prof = render(&o);
    cr_assert_eq(tp_uint(payload_of(prof, "com.apple.mdm"), "AccessRights"), 19);
    plist_free(prof);
}
