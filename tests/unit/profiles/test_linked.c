/*
 * The SCEP profile's completeness: linked Wi-Fi / Ethernet 802.1X / VPN payloads that use the
 * SCEP certificate (rendered key by key, checked against the committed facts of Apple's
 * schemas, each naming the SCEP payload's UUID), subjectAltName lists, AllowAllAppsAccess,
 * PayloadDescription from the notes and the keychain choice — and the errors, each naming its
 * field.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "schema.h"
#include "support/support.h"
#include "tp.h"

static const struct profile_device g_mac = {"564D8F2A-0E5B-4C0A-9A7D-1B2C3D4E5F60",
                                            "C02XL0GHJGH5",
                                            "Lab Mac 7",
                                            "MacBookPro18,3",
                                            "MacBook Pro",
                                            "15.1",
                                            "macos"};
static const struct profile_device g_phone = {"00008030-001A2B3C4D5E6F70",
                                              "F17XK2ABCD",
                                              "Ana's iPhone",
                                              "iPhone15,2",
                                              "iPhone",
                                              "18.1",
                                              "ios"};

static json_t *linked_policy(const char *platform)
{
    json_t *j = tp_base();
    tp_set(j, "platform", json_string(platform));
    tp_set(j, "scep.key_usage", json_pack("[ss]", "signing", "encryption"));
    tp_set(j, "linked",
           json_pack("{s:{s:s,s:s,s:b,s:[ss],s:s,s:s},s:{s:s,s:[s]},s:{s:s,s:s,s:s,s:s,s:s}}",
                     "wifi", "ssid", "CorpNet", "encryption", "WPA3", "hidden", 1,
                     "trusted_server_names", "radius.example.com", "*.radius.example.com",
                     "outer_identity", "anonymous", "username", "%SerialNumber%", "ethernet",
                     "interface", "global", "trusted_server_names", "radius.example.com", "vpn",
                     "name", "Corp VPN", "server", "vpn.example.com", "remote_identifier",
                     "vpn.example.com", "local_identifier", "%SerialNumber%",
                     "server_certificate_issuer_common_name", "Example Issuing CA"));
    return j;
}

static plist_t render(json_t *j, const struct profile_device *dev)
{
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    size_t len;

    cr_assert_eq(tp_parse(j, &p, &pr), 0, "%s", pr.n ? pr.v[0].msg : "");
    char *xml = tp_render(&p, dev, &len);
    plist_t prof = tp_round_trip(xml, len);
    free(xml);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
    return prof;
}

static void expect_schema_clean(plist_t prof, const char *os)
{
    struct buf problems = BUF_INIT;
    size_t n = schema_check_profile(prof, os, &problems);
    cr_assert_eq(n, 0, "%zu schema problems on %s:\n%s", n, os, problems.data);
    buf_free(&problems);
}

static plist_t payload_of(plist_t prof, const char *type)
{
    plist_t arr = plist_dict_get_item(prof, "PayloadContent");
    for (uint32_t i = 0; i < plist_array_get_size(arr); i++) {
        plist_t pl = plist_array_get_item(arr, i);
        if (strcmp(tp_str(pl, "PayloadType"), type) == 0)
            return pl;
    }
    return NULL;
}

/*
 * Apple's Ethernet schemas list their keys as ANY ("Keys relevant to 802.1X configuration"): the
 * keys are the Wi-Fi payload's.  Check an Ethernet payload's keys against the Wi-Fi facts.
 */
static void expect_ethernet_keys_are_wifi_keys(plist_t ethernet, const char *os)
{
    plist_t top = plist_new_dict(), arr = plist_new_array(), copy = plist_copy(ethernet);

    plist_dict_set_item(copy, "PayloadType", plist_new_string("com.apple.wifi.managed"));
    plist_array_append_item(arr, copy);
    plist_dict_set_item(top, "PayloadContent", arr);
    plist_dict_set_item(top, "PayloadIdentifier", plist_new_string("t"));
    plist_dict_set_item(top, "PayloadUUID", plist_new_string("t"));
    plist_dict_set_item(top, "PayloadType", plist_new_string("Configuration"));
    plist_dict_set_item(top, "PayloadVersion", plist_new_uint(1));
    expect_schema_clean(top, os);
    plist_free(top);
}

Test(linked, wifi_ethernet_vpn_name_the_scep_certificate_and_pass_the_schema_facts)
{
    plist_t prof = render(linked_policy("macos"), &g_mac);
    plist_t scep = payload_of(prof, "com.apple.security.scep");
    plist_t wifi = payload_of(prof, "com.apple.wifi.managed");
    plist_t eth = payload_of(prof, "com.apple.globalethernet.managed");
    plist_t vpn = payload_of(prof, "com.apple.vpn.managed");

    cr_assert_not_null(scep);
    cr_assert_not_null(wifi, "the Wi-Fi payload is in the SCEP profile");
    cr_assert_not_null(eth);
    cr_assert_not_null(vpn);
    const char *scep_uuid = tp_str(scep, "PayloadUUID");
    expect_schema_clean(prof, "macOS");
    expect_ethernet_keys_are_wifi_keys(eth, "macOS");

    /* Wi-Fi: WPA3 Enterprise with EAP-TLS, the SCEP identity as the client certificate */
    cr_assert_str_eq(tp_str(wifi, "PayloadIdentifier"), "com.example.policy.1.wifi");
    cr_assert_str_eq(tp_str(wifi, "SSID_STR"), "CorpNet");
    cr_assert_str_eq(tp_str(wifi, "EncryptionType"), "WPA3");
    cr_assert(plist_bool_val_is_true(plist_dict_get_item(wifi, "HIDDEN_NETWORK")));
    cr_assert(plist_bool_val_is_true(plist_dict_get_item(wifi, "AutoJoin")));
    cr_assert_str_eq(tp_str(wifi, "PayloadCertificateUUID"), scep_uuid);
    plist_t eap = plist_dict_get_item(wifi, "EAPClientConfiguration");
    plist_t types = plist_dict_get_item(eap, "AcceptEAPTypes");
    cr_assert_eq(plist_array_get_size(types), 1);
    uint64_t t = 0;
    plist_get_uint_val(plist_array_get_item(types, 0), &t);
    cr_assert_eq(t, 13, "EAP-TLS");
    plist_t names = plist_dict_get_item(eap, "TLSTrustedServerNames");
    cr_assert_eq(plist_array_get_size(names), 2);
    cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(names, 1), NULL),
                     "*.radius.example.com");
    cr_assert_str_eq(tp_str(eap, "OuterIdentity"), "anonymous");
    /* a Mac resolves %SerialNumber% itself */
    cr_assert_str_eq(tp_str(eap, "UserName"), "%SerialNumber%");

    /* Ethernet: the same 802.1X configuration on every interface */
    cr_assert_str_eq(tp_str(eth, "PayloadCertificateUUID"), scep_uuid);
    cr_assert_not_null(
        plist_dict_get_item(plist_dict_get_item(eth, "EAPClientConfiguration"), "AcceptEAPTypes"));

    /* VPN: IKEv2 with certificate authentication */
    cr_assert_str_eq(tp_str(vpn, "VPNType"), "IKEv2");
    cr_assert_str_eq(tp_str(vpn, "UserDefinedName"), "Corp VPN");
    plist_t ike = plist_dict_get_item(vpn, "IKEv2");
    cr_assert_str_eq(tp_str(ike, "AuthenticationMethod"), "Certificate");
    cr_assert_str_eq(tp_str(ike, "PayloadCertificateUUID"), scep_uuid);
    cr_assert_str_eq(tp_str(ike, "RemoteAddress"), "vpn.example.com");
    cr_assert_str_eq(tp_str(ike, "RemoteIdentifier"), "vpn.example.com");
    cr_assert_str_eq(tp_str(ike, "LocalIdentifier"), "%SerialNumber%");
    cr_assert_str_eq(tp_str(ike, "ServerCertificateIssuerCommonName"), "Example Issuing CA");
    plist_free(prof);
}

Test(linked, ios_profile_passes_the_schema_facts_with_variables_resolved)
{
    json_t *j = linked_policy("ios");
    plist_t prof = render(j, &g_phone);

    expect_schema_clean(prof, "iOS");
    plist_t eth = payload_of(prof, "com.apple.globalethernet.managed");
    cr_assert_not_null(eth);
    expect_ethernet_keys_are_wifi_keys(eth, "iOS");
    plist_t wifi = payload_of(prof, "com.apple.wifi.managed");
    /* iOS resolves nothing: Scepter put the device's serial number in */
    cr_assert_str_eq(tp_str(plist_dict_get_item(wifi, "EAPClientConfiguration"), "UserName"),
                     "F17XK2ABCD");
    cr_assert_str_eq(tp_str(plist_dict_get_item(payload_of(prof, "com.apple.vpn.managed"), "IKEv2"),
                            "LocalIdentifier"),
                     "F17XK2ABCD");
    plist_free(prof);
}

Test(linked, first_ethernet_interface_is_a_macos_payload)
{
    json_t *j = linked_policy("macos");
    tp_set(j, "linked.ethernet.interface", json_string("first"));
    plist_t prof = render(j, &g_mac);
    cr_assert_not_null(payload_of(prof, "com.apple.firstethernet.managed"));
    cr_assert_null(payload_of(prof, "com.apple.globalethernet.managed"));
    expect_schema_clean(prof, "macOS");
    plist_free(prof);

    j = linked_policy("ios");
    tp_set(j, "linked.ethernet.interface", json_string("first"));
    tp_expect_error(j, "linked.ethernet.interface", "macOS only");
}

Test(linked, each_bad_field_is_named)
{
    json_t *j;

    j = linked_policy("macos");
    tp_set(j, "linked.wifi.ssid", NULL);
    tp_expect_error(j, "linked.wifi.ssid", "required");
    j = linked_policy("macos");
    tp_set(j, "linked.wifi.ssid", json_string("a-network-name-longer-than-32-byte"));
    tp_expect_error(j, "linked.wifi.ssid", "at most 32");
    j = linked_policy("macos");
    tp_set(j, "linked.wifi.encryption", json_string("WEP"));
    tp_expect_error(j, "linked.wifi.encryption", "WPA2");
    j = linked_policy("macos");
    tp_set(j, "linked.wifi.trusted_server_names", json_pack("[ss]", "ok.example.com", "bad name"));
    tp_expect_error(j, "linked.wifi.trusted_server_names[1]", "not a server name");
    j = linked_policy("macos");
    tp_set(j, "linked.wifi.trusted_server_names", json_pack("[si]", "ok.example.com", 7));
    tp_expect_error(j, "linked.wifi.trusted_server_names[1]", "expected a string");
    j = linked_policy("macos");
    tp_set(j, "linked.wifi.hidden", json_string("yes"));
    tp_expect_error(j, "linked.wifi.hidden", "");
    j = linked_policy("macos");
    tp_set(j, "linked.wifi.password", json_string("x"));
    tp_expect_error(j, "linked.wifi.password", "unknown field");
    j = linked_policy("ios");
    tp_set(j, "linked.wifi.username", json_string("%LocalHostName%"));
    tp_expect_error(j, "linked.wifi.username", "LocalHostName");
    j = linked_policy("macos");
    tp_set(j, "linked.ethernet.interface", json_string("second"));
    tp_expect_error(j, "linked.ethernet.interface", "\"global\"");
    j = linked_policy("macos");
    tp_set(j, "linked.vpn.server", json_string("https://vpn.example.com/"));
    tp_expect_error(j, "linked.vpn.server", "not a host name or IP address");
    j = linked_policy("macos");
    tp_set(j, "linked.vpn.local_identifier", NULL);
    tp_expect_error(j, "linked.vpn.local_identifier", "required");
    j = linked_policy("macos");
    tp_set(j, "linked.vpn.name", json_string("   "));
    tp_expect_error(j, "linked.vpn.name", "blank");
    j = linked_policy("macos");
    tp_set(j, "linked.vpn.type", json_string("L2TP"));
    tp_expect_error(j, "linked.vpn.type", "unknown field");
    j = linked_policy("macos");
    tp_set(j, "linked.bluetooth", json_object());
    tp_expect_error(j, "linked.bluetooth", "unknown field");
    j = linked_policy("macos");
    json_object_set_new(json_object_get(j, "linked"), "vpn", json_string("Corp VPN"));
    tp_expect_error(j, "linked.vpn", "expected a JSON object");
    /* IPv6 and IPv4 addresses are servers too */
    j = linked_policy("macos");
    tp_set(j, "linked.vpn.server", json_string("2001:db8::1"));
    tp_expect_ok(j);
    j = linked_policy("macos");
    tp_set(j, "linked.vpn.server", json_string("192.0.2.10"));
    tp_expect_ok(j);
}

Test(linked, advice_without_trusted_server_names_or_signing)
{
    json_t *j = linked_policy("macos");
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;

    tp_set(j, "linked.wifi.trusted_server_names", NULL);
    tp_set(j, "scep.key_usage", json_pack("[s]", "encryption"));
    cr_assert_eq(tp_parse(j, &p, &pr), 0, "warnings do not refuse the policy");
    const struct profile_problem *w = tp_find(&pr, "linked.wifi.trusted_server_names");
    cr_assert_not_null(w);
    cr_assert(w->warning);
    w = tp_find(&pr, "scep.key_usage");
    cr_assert_not_null(w);
    cr_assert(w->warning && strstr(w->msg, "signing") != NULL, "%s", w->msg);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
}

Test(linked, document_round_trip)
{
    json_t *j = linked_policy("macos");
    struct profile_policy p, q, c;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct scepter_error err;

    tp_set(j, "scep.subject_alt_name.dns_name",
           json_pack("[ss]", "a.example.com", "b.example.com"));
    tp_set(j, "scep.subject_alt_name.uri", json_string("https://x.example/"));
    tp_set(j, "scep.allow_all_apps_access", json_true());
    tp_set(j, "scep.keychain", json_string("user"));
    cr_assert_eq(tp_parse(j, &p, &pr), 0, "%s", pr.n ? pr.v[0].msg : "");
    char *doc = profile_policy_document(&p);
    cr_assert_eq(profile_policy_from_document(doc, &q, &err), 0, "%s", err.msg);
    cr_assert_not_null(q.linked.wifi);
    cr_assert_str_eq(q.linked.wifi->ssid, "CorpNet");
    cr_assert_eq(q.linked.wifi->trusted_server_names.n, 2);
    cr_assert_not_null(q.linked.vpn);
    cr_assert_str_eq(q.linked.vpn->local_identifier, "%SerialNumber%");
    cr_assert_eq(q.san_dns.n, 2);
    cr_assert_str_eq(q.san_dns.v[1], "b.example.com");
    cr_assert(q.allow_all_apps_access);
    cr_assert_eq(q.keychain, PROFILE_KEYCHAIN_USER);
    profile_policy_copy(&c, &q);
    char *again = profile_policy_document(&c);
    cr_assert_str_eq(again, doc, "a copy writes the same document");
    /* a single value stays a string in the JSON, several are an array */
    json_t *back = profile_policy_to_json(&q, 0);
    json_t *san = json_object_get(json_object_get(back, "scep"), "subject_alt_name");
    cr_assert(json_is_array(json_object_get(san, "dns_name")));
    cr_assert(json_is_string(json_object_get(san, "uri")));
    json_decref(back);
    free(again);
    free(doc);
    profile_policy_clear(&c);
    profile_policy_clear(&q);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(j);
}

/* ---------------------------------------------------------------------------------------- */
/* SubjectAltName lists                                                                     */

Test(san, several_values_render_as_arrays_with_variables_per_element)
{
    json_t *j = tp_base();
    tp_set(j, "platform", json_string("ios"));
    tp_set(j, "scep.subject_alt_name.dns_name",
           json_pack("[ss]", "%SerialNumber%.example.com", "phone.example.com"));
    tp_set(j, "scep.subject_alt_name.rfc822_name",
           json_pack("[ss]", "%SerialNumber%@example.com", "it@example.com"));
    tp_set(j, "scep.subject_alt_name.uri", json_pack("[ss]", "urn:dev:%UDID%", "https://x/"));
    tp_set(j, "scep.subject_alt_name.nt_principal_name", json_pack("[s]", "host/%SerialNumber%"));
    plist_t prof = render(j, &g_phone);
    expect_schema_clean(prof, "iOS");
    plist_t san = plist_dict_get_item(tp_scep_content(prof), "SubjectAltName");
    plist_t dns = plist_dict_get_item(san, "dNSName");
    cr_assert_eq(plist_get_node_type(dns), PLIST_ARRAY);
    cr_assert_eq(plist_array_get_size(dns), 2);
    cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(dns, 0), NULL),
                     "F17XK2ABCD.example.com");
    cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(dns, 1), NULL), "phone.example.com");
    plist_t mail = plist_dict_get_item(san, "rfc822Name");
    cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(mail, 0), NULL),
                     "F17XK2ABCD@example.com");
    plist_t uri = plist_dict_get_item(san, "uniformResourceIdentifier");
    cr_assert_str_eq(plist_get_string_ptr(plist_array_get_item(uri, 0), NULL),
                     "urn:dev:00008030-001A2B3C4D5E6F70");
    /* an array of one is one value: a string, as before */
    cr_assert_str_eq(tp_str(san, "ntPrincipalName"), "host/F17XK2ABCD");
    plist_free(prof);
}

Test(san, errors_name_the_field_and_index)
{
    json_t *j = tp_base();
    tp_set(j, "scep.subject_alt_name.dns_name",
           json_pack("[sss]", "a.example.com", "b.example.com", "not a host"));
    tp_expect_error(j, "scep.subject_alt_name.dns_name[2]", "DNS name");
    j = tp_base();
    tp_set(j, "scep.subject_alt_name.rfc822_name", json_pack("[ss]", "it@example.com", "nobody"));
    tp_expect_error(j, "scep.subject_alt_name.rfc822_name[1]", "email address");
    j = tp_base();
    tp_set(j, "scep.subject_alt_name.uri", json_pack("[ss]", "https://x/", "https://x/"));
    tp_expect_error(j, "scep.subject_alt_name.uri[1]", "repeats");
    j = tp_base();
    tp_set(j, "scep.subject_alt_name.nt_principal_name", json_pack("[si]", "a@B", 3));
    tp_expect_error(j, "scep.subject_alt_name.nt_principal_name[1]", "expected a string");
    j = tp_base();
    tp_set(j, "scep.subject_alt_name.dns_name", json_pack("[ss]", "a.example.com", ""));
    tp_expect_error(j, "scep.subject_alt_name.dns_name[1]", "empty");
    j = tp_base();
    tp_set(j, "scep.subject_alt_name.dns_name", json_integer(5));
    tp_expect_error(j, "scep.subject_alt_name.dns_name", "a string or an array of strings");
    j = tp_base();
    tp_set(j, "platform", json_string("ios"));
    tp_set(j, "scep.subject_alt_name.dns_name",
           json_pack("[ss]", "a.example.com", "%LocalHostName%.example.com"));
    tp_expect_error(j, "scep.subject_alt_name.dns_name[1]", "LocalHostName");
    j = tp_base();
    json_t *many = json_array();
    for (int i = 0; i < 33; i++) {
        char *v = xasprintf("h%d.example.com", i);
        json_array_append_new(many, json_string(v));
        free(v);
    }
    tp_set(j, "scep.subject_alt_name.dns_name", many);
    tp_expect_error(j, "scep.subject_alt_name.dns_name", "at most 32");
}

/* ---------------------------------------------------------------------------------------- */
/* AllowAllAppsAccess, PayloadDescription, keychain                                         */

Test(scep_options, allow_all_apps_access_is_macos_only)
{
    json_t *j = tp_base();
    tp_set(j, "scep.allow_all_apps_access", json_true());
    plist_t prof = render(j, &g_mac);
    plist_t v = plist_dict_get_item(tp_scep_content(prof), "AllowAllAppsAccess");
    cr_assert_not_null(v);
    cr_assert(plist_bool_val_is_true(v));
    expect_schema_clean(prof, "macOS");
    plist_free(prof);

    /* not set: the key is left out (Apple's default is false) */
    prof = render(tp_base(), &g_mac);
    cr_assert_null(plist_dict_get_item(tp_scep_content(prof), "AllowAllAppsAccess"));
    plist_free(prof);

    j = tp_base();
    tp_set(j, "platform", json_string("ios"));
    tp_set(j, "scep.allow_all_apps_access", json_true());
    tp_expect_error(j, "scep.allow_all_apps_access", "macOS only");
}

Test(scep_options, notes_become_the_payload_description)
{
    plist_t prof = render(tp_base(), &g_mac);
    cr_assert_str_eq(tp_str(prof, "PayloadDescription"), "created 2026-11-25, tested on lab Macs");
    plist_free(prof);

    json_t *j = tp_base();
    tp_set(j, "notes", NULL);
    prof = render(j, &g_mac);
    cr_assert_null(plist_dict_get_item(prof, "PayloadDescription"));
    plist_free(prof);
}

Test(scep_options, user_keychain_is_a_user_scoped_macos_profile)
{
    json_t *j = tp_base();
    tp_set(j, "scep.keychain", json_string("user"));
    plist_t prof = render(j, &g_mac);
    cr_assert_str_eq(tp_str(prof, "PayloadScope"), "User");
    expect_schema_clean(prof, "macOS");
    plist_free(prof);

    j = tp_base();
    tp_set(j, "scep.keychain", json_string("device"));
    prof = render(j, &g_mac);
    cr_assert_str_eq(tp_str(prof, "PayloadScope"), "System");
    plist_free(prof);

    j = tp_base();
    tp_set(j, "platform", json_string("ios"));
    tp_set(j, "scep.keychain", json_string("user"));
    tp_expect_error(j, "scep.keychain", "macOS only");
    j = tp_base();
    tp_set(j, "scep.keychain", json_string("login"));
    tp_expect_error(j, "scep.keychain", "\"device\"");
}

/* The example in profiles/examples renders a profile that passes the schema facts. */
Test(linked, the_example_policy_renders_clean)
{
    char *path = tu_source_path("profiles/examples/policy-macos-linked.json");
    size_t len;
    unsigned char *text = tu_read(path, &len);
    json_error_t jerr;
    json_t *j = json_loadb((const char *)text, len, 0, &jerr);

    cr_assert_not_null(j, "%s: %s", path, jerr.text);
    plist_t prof = render(j, &g_mac);
    expect_schema_clean(prof, "macOS");
    cr_assert_not_null(payload_of(prof, "com.apple.wifi.managed"));
    cr_assert_not_null(payload_of(prof, "com.apple.globalethernet.managed"));
    cr_assert_not_null(payload_of(prof, "com.apple.vpn.managed"));
    plist_free(prof);
    free(text);
    free(path);
}
