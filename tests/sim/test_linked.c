/*
 * A SCEP policy with linked Wi-Fi and VPN payloads, rendered by Scepter's profiles module,
 * passes the facts of Apple's schemas (tests/data/apple-schemas) and is installed by the
 * simulated device: the SCEP payload enrolls against a real scepserver and the Wi-Fi and VPN
 * payloads name the SCEP payload's UUID.  A linked payload whose PayloadCertificateUUID names
 * nothing in the profile (or a payload that is no certificate) is refused, as a device refuses
 * it, with the field in the ErrorChain.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/plistx.h"
#include "common/xmalloc.h"
#include "profiles/profiles.h"
#include "support/support.h"
#include "tests/sim/sim_test_util.h"
#include "tests/unit/profiles/schema.h"

static struct scep_srv g_srv;

static void srv_start(void)
{
    ts_scep_start(&g_srv, "s3cret");
}

static void srv_stop(void)
{
    ts_scep_stop(&g_srv);
}

static int real_scep(void *arg, const struct sim_scep_request *req, struct sim_scep_result *res,
                     struct scepter_error *err)
{
    struct sim_scep_opts o;

    (void)arg;
    memset(&o, 0, sizeof(o));
    o.timeout_ms = 10000;
    return sim_scep_enroll(req, &o, res, err);
}

/* The policy's profile (uniform: no server-side variable), parsed. */
static plist_t render_policy(const char *url)
{
    char *text = xasprintf(
        "{\"name\": \"Corp network\", \"platform\": \"ios\","
        " \"notes\": \"Wi-Fi and VPN with the device certificate\","
        " \"scep\": {\"url\": \"%s\", \"challenge\": \"s3cret\", \"key_size\": 2048,"
        "   \"subject\": \"/O=Scepter Test/CN=linked-device\","
        "   \"subject_alt_name\": {\"dns_name\": [\"dev.example.org\", \"alt.example.org\"]}},"
        " \"linked\": {"
        "   \"wifi\": {\"ssid\": \"CorpNet\", \"encryption\": \"WPA2\","
        "     \"trusted_server_names\": [\"radius.example.org\"]},"
        "   \"vpn\": {\"name\": \"Corp VPN\", \"server\": \"vpn.example.org\","
        "     \"remote_identifier\": \"vpn.example.org\", \"local_identifier\": "
        "\"linked-device\"}},"
        " \"targets\": {\"devices\": [\"X\"]}}",
        url);
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct profile_render_opts ro = {"com.example.policy.linked", NULL};
    char *xml = NULL;
    size_t len = 0;
    plist_t prof = NULL;
    struct scepter_error err;

    cr_assert_eq(profile_policy_from_json(text, strlen(text), &p, &pr), 0, "%s",
                 pr.n ? pr.v[0].msg : "");
    cr_assert_eq(profile_render(&p, NULL, &ro, &xml, &len, &pr), 0, "%s",
                 pr.n_errors ? profile_problems_first_error(&pr)->msg : "");
    cr_assert_eq(plistx_parse_dict(xml, len, &prof, &err), 0, "%s", err.msg);
    free(xml);
    free(text);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    return prof;
}

static plist_t payload_of(plist_t prof, const char *type)
{
    plist_t arr = plist_dict_get_item(prof, "PayloadContent");
    for (uint32_t i = 0; i < plist_array_get_size(arr); i++) {
        plist_t pl = plist_array_get_item(arr, i);
        if (strcmp(plist_get_string_ptr(plist_dict_get_item(pl, "PayloadType"), NULL), type) == 0)
            return pl;
    }
    return NULL;
}

/* Send prof as an InstallProfile to a fresh iPhone; the result and outcome. */
static struct sim_device *install(plist_t prof, plist_t *r, struct sim_brain_outcome *out)
{
    struct sim_brain_env env;
    struct sim_device *d = ts_enrolled_device(SIM_IPHONE, 8191);
    size_t xlen, len;
    char *xml = ts_xml(prof, &xlen), *cmd;
    plist_t params = plist_new_dict();

    plistx_set_data(params, "Payload", xml, xlen);
    free(xml);
    cmd = ts_command("CMD-LINKED-1", "InstallProfile", params, &len);
    memset(&env, 0, sizeof(env));
    env.scep = real_scep;
    sim_brain_handle(d, &env, cmd, len, r, out);
    free(cmd);
    return d;
}

/* Every message of a result's ErrorChain, one per line (caller frees). */
static char *error_text(plist_t r)
{
    plist_t chain = plist_dict_get_item(r, "ErrorChain");
    struct buf b = BUF_INIT;

    for (uint32_t i = 0; chain && i < plist_array_get_size(chain); i++) {
        plist_t m = plist_dict_get_item(plist_array_get_item(chain, i), "USEnglishDescription");
        if (m)
            buf_printf(&b, "%s\n", plist_get_string_ptr(m, NULL));
    }
    return b.data ? buf_steal(&b, NULL) : xstrdup("");
}

Test(linked, scep_policy_with_wifi_and_vpn_passes_the_schema_and_installs, .init = srv_start,
     .fini = srv_stop)
{
    plist_t prof = render_policy(g_srv.url), r = NULL;
    struct buf problems = BUF_INIT;
    struct sim_brain_outcome out;

    size_t n = schema_check_profile(prof, "iOS", &problems);
    cr_assert_eq(n, 0, "%zu schema problems:\n%s", n, problems.data);
    buf_free(&problems);

    const char *scep_uuid = plist_get_string_ptr(
        plist_dict_get_item(payload_of(prof, "com.apple.security.scep"), "PayloadUUID"), NULL);
    plist_t wifi = payload_of(prof, "com.apple.wifi.managed");
    plist_t vpn = payload_of(prof, "com.apple.vpn.managed");
    cr_assert_not_null(wifi);
    cr_assert_not_null(vpn);
    cr_assert_str_eq(
        plist_get_string_ptr(plist_dict_get_item(wifi, "PayloadCertificateUUID"), NULL), scep_uuid,
        "the Wi-Fi payload names the SCEP payload's certificate");
    cr_assert_str_eq(
        plist_get_string_ptr(
            plist_dict_get_item(plist_dict_get_item(vpn, "IKEv2"), "PayloadCertificateUUID"), NULL),
        scep_uuid, "the VPN payload names the SCEP payload's certificate");

    struct sim_device *d = install(prof, &r, &out);
    char *why = error_text(r);
    cr_assert_str_eq(out.status, "Acknowledged", "%s", why);
    free(why);
    cr_assert(sim_device_has_profile(d, "com.example.policy.linked"));
    /* the enrollment identity and the SCEP identity the payload obtained */
    cr_assert_eq(sim_device_cert_count(d), 2);
    plist_free(r);
    sim_device_free(d);
    plist_free(prof);
}

Test(linked, a_dangling_certificate_reference_is_refused, .init = srv_start, .fini = srv_stop)
{
    plist_t prof = render_policy(g_srv.url), r = NULL;
    struct sim_brain_outcome out;
    struct sim_device *d;
    char *why;

    /* Wi-Fi names a UUID no payload has */
    plist_dict_set_item(payload_of(prof, "com.apple.wifi.managed"), "PayloadCertificateUUID",
                        plist_new_string("00000000-0000-4000-8000-00000000DEAD"));
    d = install(prof, &r, &out);
    why = error_text(r);
    cr_assert_str_eq(out.status, "Error");
    cr_assert(strstr(why, "PayloadCertificateUUID") != NULL && strstr(why, "DEAD") != NULL, "%s",
              why);
    cr_assert_not(sim_device_has_profile(d, "com.example.policy.linked"));
    free(why);
    plist_free(r);
    sim_device_free(d);
    plist_free(prof);

    /* VPN names the Wi-Fi payload, which is no certificate */
    prof = render_policy(g_srv.url);
    const char *wifi_uuid = plist_get_string_ptr(
        plist_dict_get_item(payload_of(prof, "com.apple.wifi.managed"), "PayloadUUID"), NULL);
    plist_dict_set_item(plist_dict_get_item(payload_of(prof, "com.apple.vpn.managed"), "IKEv2"),
                        "PayloadCertificateUUID", plist_new_string(wifi_uuid));
    d = install(prof, &r, &out);
    why = error_text(r);
    cr_assert_str_eq(out.status, "Error");
    cr_assert(strstr(why, "IKEv2.PayloadCertificateUUID") != NULL, "%s", why);
    free(why);
    plist_free(r);
    sim_device_free(d);
    plist_free(prof);
}
