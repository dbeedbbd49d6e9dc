/*
 * Linked payloads: Wi-Fi, Ethernet 802.1X and VPN payloads that a SCEP policy carries in the
 * same profile, authenticating with the certificate its SCEP payload obtains.  A payload can
 * name a certificate only inside its own profile (PayloadCertificateUUID), which is why they
 * travel with the SCEP payload rather than in a profile of their own.
 *
 * Operator JSON ("linked" at the top level of a policy; every part optional):
 *
 *   "linked": {
 *     "wifi":     {"ssid", "encryption": "WPA2"|"WPA3", "hidden", "auto_join",
 *                  "trusted_server_names": [..], "outer_identity", "username"},
 *     "ethernet": {"interface": "global"|"first", "trusted_server_names": [..],
 *                  "outer_identity", "username"},
 *     "vpn":      {"name", "server", "remote_identifier", "local_identifier",
 *                  "server_certificate_issuer_common_name", "server_certificate_common_name"}
 *   }
 *
 * What is rendered, key by key (Apple's com.apple.wifi.managed, com.apple.globalethernet.managed
 * / com.apple.firstethernet.managed and com.apple.vpn.managed schemas):
 *
 *   Wi-Fi: SSID_STR, HIDDEN_NETWORK, AutoJoin, EncryptionType (WPA2 or WPA3: Enterprise, since
 *     EAP is configured), PayloadCertificateUUID (the SCEP payload), EAPClientConfiguration
 *     {AcceptEAPTypes [13] (EAP-TLS), TLSTrustedServerNames, OuterIdentity, UserName}.
 *   Ethernet: the same 802.1X keys (Apple's Ethernet payloads take the Wi-Fi payload's keys
 *     without the SSID ones): PayloadCertificateUUID, EAPClientConfiguration.  "global" is
 *     com.apple.globalethernet.managed (macOS 10.13, iOS 17), "first"
 *     com.apple.firstethernet.managed (macOS only).
 *   VPN: UserDefinedName, VPNType IKEv2, IKEv2 {RemoteAddress, RemoteIdentifier,
 *     LocalIdentifier, AuthenticationMethod Certificate, CertificateType RSA (SCEP keys are
 *     RSA), PayloadCertificateUUID, ServerCertificateIssuerCommonName,
 *     ServerCertificateCommonName, ExtendedAuthEnabled 0}.
 *
 * Device variables (%SerialNumber%, ...) are allowed where a device-specific value makes sense:
 * wifi/ethernet username and outer_identity, vpn.local_identifier.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/plistx.h"
#include "common/str.h"
#include "common/uuid.h"
#include "common/xmalloc.h"
#include "profiles/profiles_int.h"

#define MAX_SSID         32 /* bytes, IEEE 802.11 */
#define MAX_LINKED_TEXT  255
#define MAX_SERVER_NAMES 32
#define MAX_HOST         253

#define EAP_TLS 13

/* ---------------------------------------------------------------------------------------- */
/* Model                                                                                    */

static void wifi_free(struct profile_linked_wifi *w)
{
    if (w == NULL)
        return;
    free(w->ssid);
    free(w->encryption);
    pl_strlist_clear(&w->trusted_server_names);
    free(w->outer_identity);
    free(w->username);
    free(w);
}

static void ethernet_free(struct profile_linked_ethernet *e)
{
    if (e == NULL)
        return;
    pl_strlist_clear(&e->trusted_server_names);
    free(e->outer_identity);
    free(e->username);
    free(e);
}

static void vpn_free(struct profile_linked_vpn *v)
{
    if (v == NULL)
        return;
    free(v->name);
    free(v->server);
    free(v->remote_identifier);
    free(v->local_identifier);
    free(v->server_cert_issuer_cn);
    free(v->server_cert_cn);
    free(v);
}

void pl_linked_clear(struct profile_linked *l)
{
    wifi_free(l->wifi);
    ethernet_free(l->ethernet);
    vpn_free(l->vpn);
    memset(l, 0, sizeof(*l));
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void pl_linked_copy(struct profile_linked *dst, const struct profile_linked *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src->wifi) {
        const struct profile_linked_wifi *s = src->wifi;
        struct profile_linked_wifi *w = xcalloc(1, sizeof(*w));
        *w = *s;
        w->ssid = dup_or_null(s->ssid);
        w->encryption = dup_or_null(s->encryption);
        pl_strlist_copy(&w->trusted_server_names, &s->trusted_server_names);
        w->outer_identity = dup_or_null(s->outer_identity);
        w->username = dup_or_null(s->username);
        dst->wifi = w;
    }
    if (src->ethernet) {
        const struct profile_linked_ethernet *s = src->ethernet;
        struct profile_linked_ethernet *e = xcalloc(1, sizeof(*e));
        *e = *s;
        pl_strlist_copy(&e->trusted_server_names, &s->trusted_server_names);
        e->outer_identity = dup_or_null(s->outer_identity);
        e->username = dup_or_null(s->username);
        dst->ethernet = e;
    }
    if (src->vpn) {
        const struct profile_linked_vpn *s = src->vpn;
        struct profile_linked_vpn *v = xcalloc(1, sizeof(*v));
        v->name = dup_or_null(s->name);
        v->server = dup_or_null(s->server);
        v->remote_identifier = dup_or_null(s->remote_identifier);
        v->local_identifier = dup_or_null(s->local_identifier);
        v->server_cert_issuer_cn = dup_or_null(s->server_cert_issuer_cn);
        v->server_cert_cn = dup_or_null(s->server_cert_cn);
        dst->vpn = v;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* JSON in                                                                                  */

static const char *const g_linked_keys[] = {"wifi", "ethernet", "vpn", NULL};
static const char *const g_wifi_keys[] = {
    "ssid",           "encryption", "hidden", "auto_join", "trusted_server_names",
    "outer_identity", "username",   NULL};
static const char *const g_ethernet_keys[] = {"interface", "trusted_server_names", "outer_identity",
                                              "username", NULL};
static const char *const g_vpn_keys[] = {"name",
                                         "server",
                                         "remote_identifier",
                                         "local_identifier",
                                         "server_certificate_issuer_common_name",
                                         "server_certificate_common_name",
                                         NULL};

/* The object at key of obj: NULL when absent/null (or not an object: reported). */
static json_t *sub_object(json_t *obj, const char *key, const char *prefix,
                          struct profile_problems *pr)
{
    json_t *v = json_object_get(obj, key);
    char f[64];

    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_object(v)) {
        snprintf(f, sizeof(f), "%s%s", prefix, key);
        profile_problems_add(pr, false, f, "expected a JSON object");
        return NULL;
    }
    return v;
}

void pl_linked_parse(json_t *root, struct profile_linked *l, struct profile_problems *pr)
{
    json_t *linked = sub_object(root, "linked", "", pr), *o;

    pl_linked_clear(l);
    if (linked == NULL)
        return;
    pl_unknown_keys(linked, g_linked_keys, "linked.", pr);
    if ((o = sub_object(linked, "wifi", "linked.", pr)) != NULL) {
        const char *pre = "linked.wifi.";
        struct profile_linked_wifi *w = xcalloc(1, sizeof(*w));
        pl_unknown_keys(o, g_wifi_keys, pre, pr);
        /* Required fields are read as optional: the rules say what is missing and why. */
        w->ssid = pl_get_str(o, "ssid", pre, false, pr);
        w->encryption = pl_get_str(o, "encryption", pre, false, pr);
        if (w->encryption == NULL)
            w->encryption = xstrdup("WPA2");
        w->auto_join = true;
        pl_get_bool(o, "hidden", pre, &w->hidden, pr);
        pl_get_bool(o, "auto_join", pre, &w->auto_join, pr);
        pl_get_strlist(o, "trusted_server_names", pre, MAX_SERVER_NAMES, &w->trusted_server_names,
                       pr);
        w->outer_identity = pl_get_str(o, "outer_identity", pre, false, pr);
        w->username = pl_get_str(o, "username", pre, false, pr);
        l->wifi = w;
    }
    if ((o = sub_object(linked, "ethernet", "linked.", pr)) != NULL) {
        const char *pre = "linked.ethernet.";
        struct profile_linked_ethernet *e = xcalloc(1, sizeof(*e));
        pl_unknown_keys(o, g_ethernet_keys, pre, pr);
        char *itf = pl_get_str(o, "interface", pre, false, pr);
        if (itf && strcmp(itf, "first") == 0)
            e->interface = PROFILE_ETHERNET_FIRST;
        else if (itf && strcmp(itf, "global") != 0)
            profile_problems_add(pr, false, "linked.ethernet.interface",
                                 "\"%.40s\" is not \"global\" (every Ethernet interface, "
                                 "com.apple.globalethernet.managed) or \"first\" (the first "
                                 "one, com.apple.firstethernet.managed)",
                                 itf);
        free(itf);
        pl_get_strlist(o, "trusted_server_names", pre, MAX_SERVER_NAMES, &e->trusted_server_names,
                       pr);
        e->outer_identity = pl_get_str(o, "outer_identity", pre, false, pr);
        e->username = pl_get_str(o, "username", pre, false, pr);
        l->ethernet = e;
    }
    if ((o = sub_object(linked, "vpn", "linked.", pr)) != NULL) {
        const char *pre = "linked.vpn.";
        struct profile_linked_vpn *v = xcalloc(1, sizeof(*v));
        pl_unknown_keys(o, g_vpn_keys, pre, pr);
        v->name = pl_get_str(o, "name", pre, false, pr);
        v->server = pl_get_str(o, "server", pre, false, pr);
        v->remote_identifier = pl_get_str(o, "remote_identifier", pre, false, pr);
        v->local_identifier = pl_get_str(o, "local_identifier", pre, false, pr);
        v->server_cert_issuer_cn =
            pl_get_str(o, "server_certificate_issuer_common_name", pre, false, pr);
        v->server_cert_cn = pl_get_str(o, "server_certificate_common_name", pre, false, pr);
        l->vpn = v;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Rules                                                                                    */

/* A required text field: present, not blank, within max, clean. */
static void check_required(struct profile_problems *pr, const char *field, const char *v,
                           size_t max, const char *what)
{
    bool blank = true;

    if (v == NULL) {
        PP_ERR(pr, field, "required: %s", what);
        return;
    }
    for (const char *c = v; *c && blank; c++)
        blank = isspace((unsigned char)*c) != 0;
    if (blank)
        PP_ERR(pr, field, "must not be blank");
    pl_check_text(pr, field, v, max, false);
}

/* Text that may hold device variables. */
static void check_var_text(struct profile_problems *pr, enum profile_platform plat,
                           const char *field, const char *v)
{
    if (v == NULL)
        return;
    pl_check_text(pr, field, v, MAX_LINKED_TEXT, false);
    if (!pp_has_field(pr, field))
        pv_check(v, plat, field, pr);
}

/* A host name, optionally with a leading "*." wildcard (TLSTrustedServerNames patterns). */
static bool host_ok(const char *s, bool wildcard)
{
    size_t len = strlen(s);

    if (wildcard && strncmp(s, "*.", 2) == 0)
        s += 2, len -= 2;
    if (len == 0 || len > MAX_HOST || s[0] == '.' || s[0] == '-' || s[len - 1] == '.')
        return false;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.'))
            return false;
    return strstr(s, "..") == NULL;
}

/* A host name, an IPv4 address or an IPv6 address (hex digits, ':' and '.'). */
static bool address_ok(const char *s)
{
    bool v6 = strchr(s, ':') != NULL;

    if (!v6)
        return host_ok(s, false);
    if (strlen(s) > 45)
        return false;
    for (const char *p = s; *p; p++)
        if (!(isxdigit((unsigned char)*p) || *p == ':' || *p == '.'))
            return false;
    return true;
}

static void check_server_names(struct profile_problems *pr, const char *kind,
                               const struct profile_strlist *l)
{
    char f[80];

    for (size_t i = 0; i < l->n; i++) {
        snprintf(f, sizeof(f), "linked.%s.trusted_server_names[%zu]", kind, i);
        pl_check_text(pr, f, l->v[i], MAX_HOST, false);
        if (!pp_has_field(pr, f) && !host_ok(l->v[i], true))
            PP_ERR(pr, f,
                   "\"%.80s\" is not a server name the device can match, e.g. "
                   "radius.example.com or *.example.com",
                   l->v[i]);
    }
    if (l->n == 0) {
        snprintf(f, sizeof(f), "linked.%s.trusted_server_names", kind);
        profile_problems_add(pr, true, f,
                             "none given: the device asks the user to trust the RADIUS "
                             "server's certificate when it first connects");
    }
}

static void check_wifi(const struct profile_policy *p, const struct profile_linked_wifi *w,
                       struct profile_problems *pr)
{
    check_required(pr, "linked.wifi.ssid", w->ssid, MAX_SSID,
                   "the network name (SSID_STR), 1 to 32 bytes");
    if (w->encryption && strcmp(w->encryption, "WPA2") != 0 && strcmp(w->encryption, "WPA3") != 0)
        PP_ERR(pr, "linked.wifi.encryption",
               "\"%.40s\" is not \"WPA2\" or \"WPA3\": a certificate (EAP-TLS) needs WPA2 or "
               "WPA3 Enterprise",
               w->encryption);
    check_server_names(pr, "wifi", &w->trusted_server_names);
    check_var_text(pr, p->platform, "linked.wifi.outer_identity", w->outer_identity);
    check_var_text(pr, p->platform, "linked.wifi.username", w->username);
}

static void check_ethernet(const struct profile_policy *p, const struct profile_linked_ethernet *e,
                           struct profile_problems *pr)
{
    if (e->interface == PROFILE_ETHERNET_FIRST && p->platform == PROFILE_PLATFORM_IOS)
        PP_ERR(pr, "linked.ethernet.interface",
               "\"first\" (com.apple.firstethernet.managed) is macOS only; iOS and iPadOS take "
               "\"global\"");
    else if (p->platform == PROFILE_PLATFORM_IOS)
        profile_problems_add(pr, true, "linked.ethernet",
                             "iPhones and iPads before iOS 17 do not install Ethernet 802.1X "
                             "payloads (com.apple.globalethernet.managed) and refuse the "
                             "whole profile");
    check_server_names(pr, "ethernet", &e->trusted_server_names);
    check_var_text(pr, p->platform, "linked.ethernet.outer_identity", e->outer_identity);
    check_var_text(pr, p->platform, "linked.ethernet.username", e->username);
}

static void check_vpn(const struct profile_policy *p, const struct profile_linked_vpn *v,
                      struct profile_problems *pr)
{
    check_required(pr, "linked.vpn.name", v->name, MAX_LINKED_TEXT,
                   "the name the device shows for the VPN (UserDefinedName)");
    check_required(pr, "linked.vpn.server", v->server, MAX_HOST,
                   "the VPN server's host name or IP address (RemoteAddress)");
    if (v->server && !pp_has_field(pr, "linked.vpn.server") && !address_ok(v->server))
        PP_ERR(pr, "linked.vpn.server",
               "\"%.80s\" is not a host name or IP address (no scheme, port or path), e.g. "
               "vpn.example.com",
               v->server);
    check_required(pr, "linked.vpn.remote_identifier", v->remote_identifier, MAX_LINKED_TEXT,
                   "the server's IKE identity (RemoteIdentifier), usually its host name");
    check_required(pr, "linked.vpn.local_identifier", v->local_identifier, MAX_LINKED_TEXT,
                   "the device's IKE identity (LocalIdentifier), e.g. %SerialNumber% or the "
                   "certificate's common name");
    if (v->local_identifier && !pp_has_field(pr, "linked.vpn.local_identifier"))
        pv_check(v->local_identifier, p->platform, "linked.vpn.local_identifier", pr);
    pl_check_text(pr, "linked.vpn.server_certificate_issuer_common_name", v->server_cert_issuer_cn,
                  MAX_LINKED_TEXT, false);
    pl_check_text(pr, "linked.vpn.server_certificate_common_name", v->server_cert_cn,
                  MAX_LINKED_TEXT, false);
}

void pl_linked_check(const struct profile_policy *p, struct profile_problems *pr)
{
    const struct profile_linked *l = &p->linked;

    if (l->wifi)
        check_wifi(p, l->wifi, pr);
    if (l->ethernet)
        check_ethernet(p, l->ethernet, pr);
    if (l->vpn)
        check_vpn(p, l->vpn, pr);
    if ((l->wifi || l->ethernet || l->vpn) && p->key_usage == PROFILE_KEY_USAGE_ENCRYPTION)
        profile_problems_add(pr, true, "scep.key_usage",
                             "encryption only, but EAP-TLS and IKEv2 sign with the key: add "
                             "\"signing\" (or leave key usage unspecified)");
}

/* ---------------------------------------------------------------------------------------- */
/* JSON out                                                                                 */

static void set_opt(json_t *o, const char *key, const char *v)
{
    if (v != NULL)
        json_object_set_new(o, key, json_string(v));
}

json_t *pl_linked_json(const struct profile_linked *l)
{
    json_t *j;

    if (!l->wifi && !l->ethernet && !l->vpn)
        return NULL;
    j = json_object();
    if (l->wifi) {
        const struct profile_linked_wifi *w = l->wifi;
        json_t *o = json_object();
        set_opt(o, "ssid", w->ssid);
        set_opt(o, "encryption", w->encryption);
        json_object_set_new(o, "hidden", json_boolean(w->hidden));
        json_object_set_new(o, "auto_join", json_boolean(w->auto_join));
        json_object_set_new(o, "trusted_server_names",
                            pl_strlist_json_array(&w->trusted_server_names));
        set_opt(o, "outer_identity", w->outer_identity);
        set_opt(o, "username", w->username);
        json_object_set_new(j, "wifi", o);
    }
    if (l->ethernet) {
        const struct profile_linked_ethernet *e = l->ethernet;
        json_t *o = json_object();
        json_object_set_new(
            o, "interface",
            json_string(e->interface == PROFILE_ETHERNET_FIRST ? "first" : "global"));
        json_object_set_new(o, "trusted_server_names",
                            pl_strlist_json_array(&e->trusted_server_names));
        set_opt(o, "outer_identity", e->outer_identity);
        set_opt(o, "username", e->username);
        json_object_set_new(j, "ethernet", o);
    }
    if (l->vpn) {
        const struct profile_linked_vpn *v = l->vpn;
        json_t *o = json_object();
        set_opt(o, "name", v->name);
        set_opt(o, "server", v->server);
        set_opt(o, "remote_identifier", v->remote_identifier);
        set_opt(o, "local_identifier", v->local_identifier);
        set_opt(o, "server_certificate_issuer_common_name", v->server_cert_issuer_cn);
        set_opt(o, "server_certificate_common_name", v->server_cert_cn);
        json_object_set_new(j, "vpn", o);
    }
    return j;
}

/* ---------------------------------------------------------------------------------------- */
/* Rendering                                                                                */

/* EAPClientConfiguration for EAP-TLS with the SCEP identity. */
static plist_t eap_tls(const struct profile_strlist *names, const char *outer, const char *user,
                       enum profile_platform plat, uint64_t *used)
{
    plist_t eap = plist_new_dict(), types = plist_new_array();

    plist_array_append_item(types, plist_new_uint(EAP_TLS));
    plist_dict_set_item(eap, "AcceptEAPTypes", types);
    if (names->n > 0) {
        plist_t arr = plist_new_array();
        for (size_t i = 0; i < names->n; i++)
            plist_array_append_item(arr, plist_new_string(names->v[i]));
        plist_dict_set_item(eap, "TLSTrustedServerNames", arr);
    }
    if (outer)
        plist_dict_set_item(eap, "OuterIdentity", pl_tmpl_string(outer, plat, used));
    if (user)
        plist_dict_set_item(eap, "UserName", pl_tmpl_string(user, plat, used));
    return eap;
}

static void append(plist_t content, plist_t payload, const char *type, const char *ident,
                   const char *suffix, const char *display, const char *org)
{
    char uuid[UUID_STR_LEN];
    char *id = xasprintf("%s.%s", ident, suffix);

    uuid_new(uuid);
    pl_payload_common(payload, type, id, uuid, display, org);
    plist_array_append_item(content, payload);
    free(id);
}

void pl_linked_render(const struct profile_policy *p, plist_t content, const char *ident,
                      const char *scep_uuid, const char *org, uint64_t *used)
{
    const struct profile_linked *l = &p->linked;
    char *disp;

    if (l->wifi) {
        const struct profile_linked_wifi *w = l->wifi;
        plist_t d = plist_new_dict();
        plistx_set_string(d, "SSID_STR", w->ssid);
        plistx_set_bool(d, "HIDDEN_NETWORK", w->hidden);
        plistx_set_bool(d, "AutoJoin", w->auto_join);
        plistx_set_string(d, "EncryptionType", w->encryption ? w->encryption : "WPA2");
        plistx_set_string(d, "PayloadCertificateUUID", scep_uuid);
        plist_dict_set_item(
            d, "EAPClientConfiguration",
            eap_tls(&w->trusted_server_names, w->outer_identity, w->username, p->platform, used));
        disp = xasprintf("Wi-Fi: %s", w->ssid);
        append(content, d, "com.apple.wifi.managed", ident, "wifi", disp, org);
        free(disp);
    }
    if (l->ethernet) {
        const struct profile_linked_ethernet *e = l->ethernet;
        bool first = e->interface == PROFILE_ETHERNET_FIRST;
        plist_t d = plist_new_dict();
        plistx_set_string(d, "PayloadCertificateUUID", scep_uuid);
        plist_dict_set_item(
            d, "EAPClientConfiguration",
            eap_tls(&e->trusted_server_names, e->outer_identity, e->username, p->platform, used));
        append(content, d,
               first ? "com.apple.firstethernet.managed" : "com.apple.globalethernet.managed",
               ident, "ethernet", first ? "Ethernet 802.1X (first interface)" : "Ethernet 802.1X",
               org);
    }
    if (l->vpn) {
        const struct profile_linked_vpn *v = l->vpn;
        plist_t d = plist_new_dict(), ike = plist_new_dict();
        plistx_set_string(d, "UserDefinedName", v->name);
        plistx_set_string(d, "VPNType", "IKEv2");
        plistx_set_string(ike, "RemoteAddress", v->server);
        plistx_set_string(ike, "RemoteIdentifier", v->remote_identifier);
        plist_dict_set_item(ike, "LocalIdentifier",
                            pl_tmpl_string(v->local_identifier, p->platform, used));
        plistx_set_string(ike, "AuthenticationMethod", "Certificate");
        plistx_set_string(ike, "CertificateType", "RSA");
        plistx_set_string(ike, "PayloadCertificateUUID", scep_uuid);
        if (v->server_cert_issuer_cn)
            plistx_set_string(ike, "ServerCertificateIssuerCommonName", v->server_cert_issuer_cn);
        if (v->server_cert_cn)
            plistx_set_string(ike, "ServerCertificateCommonName", v->server_cert_cn);
        plistx_set_uint(ike, "ExtendedAuthEnabled", 0);
        plist_dict_set_item(d, "IKEv2", ike);
        disp = xasprintf("VPN: %s", v->name);
        append(content, d, "com.apple.vpn.managed", ident, "vpn", disp, org);
        free(disp);
    }
}
