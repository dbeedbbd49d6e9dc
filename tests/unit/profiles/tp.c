/*
 * Helpers shared by the profiles tests.
 */
#include "tp.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/xmalloc.h"
#include "support/support.h"

unsigned char *tp_ca_der(size_t *len)
{
    size_t plen;
    unsigned char *pem = tu_read_data("scep-ca/ca.crt", &plen);
    struct scepter_error err;
    X509 *c = crypto_cert_parse(pem, plen, NULL, &err);
    cr_assert_not_null(c, "%s", err.msg);
    unsigned char *der = crypto_cert_der(c, len);
    X509_free(c);
    free(pem);
    return der;
}

json_t *tp_base(void)
{
    json_error_t jerr;
    json_t *j = json_loads(
        "{\"name\": \"Corp Wi-Fi certificate\", \"platform\": \"macos\","
        " \"notes\": \"created 2026-11-25, tested on lab Macs\","
        " \"scep\": {\"url\": \"http://scep-server/cgi-bin/pkiclient.exe\","
        "   \"name\": \"WiFi Certificate\", \"challenge\": \"s3cret\", \"key_size\": 2048,"
        "   \"subject\": \"/C=US/O=ABCEnterprise/CN=foo/\"},"
        " \"targets\": {\"devices\": [\"" TP_UDID "\"], \"device_groups\": [\"lab\"]}}",
        0, &jerr);
    cr_assert_not_null(j, "%s", jerr.text);
    return j;
}

void tp_set(json_t *root, const char *path, json_t *v)
{
    char *copy = xstrdup(path), *save = NULL;
    json_t *obj = root;
    char *part = strtok_r(copy, ".", &save);

    for (;;) {
        char *next = strtok_r(NULL, ".", &save);
        if (next == NULL) {
            if (v)
                json_object_set_new(obj, part, v);
            else
                json_object_del(obj, part);
            break;
        }
        json_t *child = json_object_get(obj, part);
        if (child == NULL || !json_is_object(child)) {
            child = json_object();
            json_object_set_new(obj, part, child);
        }
        obj = child;
        part = next;
    }
    free(copy);
}

int tp_parse(json_t *root, struct profile_policy *p, struct profile_problems *pr)
{
    return profile_policy_from_json_value(root, p, pr);
}

const struct profile_problem *tp_find(const struct profile_problems *pr, const char *field)
{
    for (size_t i = 0; i < pr->n; i++)
        if (strcmp(pr->v[i].field, field) == 0)
            return &pr->v[i];
    return NULL;
}

static void dump(const struct profile_problems *pr, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < pr->n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, len - l, "[%s] %s\n", pr->v[i].field, pr->v[i].msg);
    }
}

void tp_expect_error(json_t *root, const char *field, const char *reason)
{
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    char all[8192];
    int rc = tp_parse(root, &p, &pr);

    dump(&pr, all, sizeof(all));
    cr_assert_eq(rc, SCEPTER_EINVAL, "expected %s to be refused; problems:\n%s", field, all);
    const struct profile_problem *pb = tp_find(&pr, field);
    cr_assert_not_null(pb, "no problem names %s; problems:\n%s", field, all);
    cr_assert_not(pb->warning, "%s is only a warning: %s", field, pb->msg);
    cr_assert(strstr(pb->msg, reason) != NULL, "%s: message \"%s\" lacks \"%s\"", field, pb->msg,
              reason);
    cr_assert(strncmp(pb->msg, field, strlen(field)) == 0,
              "message does not start with the "
              "field: %s",
              pb->msg);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(root);
}

void tp_expect_ok(json_t *root)
{
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    char all[8192];
    int rc = tp_parse(root, &p, &pr);

    dump(&pr, all, sizeof(all));
    cr_assert_eq(rc, 0, "refused:\n%s", all);
    cr_assert_eq(pr.n_errors, 0);
    profile_policy_clear(&p);
    profile_problems_clear(&pr);
    json_decref(root);
}

plist_t tp_plist(const char *xml, size_t len)
{
    plist_t p = NULL;
    plist_from_xml(xml, (uint32_t)len, &p);
    cr_assert_not_null(p, "libplist cannot parse:\n%.*s", (int)len, xml);
    return p;
}

plist_t tp_round_trip(const char *xml, size_t len)
{
    plist_t p = tp_plist(xml, len);
    char *again = NULL;
    uint32_t alen = 0;
    plist_to_xml(p, &again, &alen);
    cr_assert_eq(alen, len, "re-serialised length differs");
    cr_assert_eq(memcmp(again, xml, len), 0, "re-serialised bytes differ:\n%s\n---\n%s", xml,
                 again);
    plist_to_xml_free(again);
    return p;
}

const char *tp_str(plist_t dict, const char *key)
{
    plist_t n = plist_dict_get_item(dict, key);
    cr_assert_not_null(n, "missing key %s", key);
    cr_assert_eq(plist_get_node_type(n), PLIST_STRING, "%s is not a string", key);
    return plist_get_string_ptr(n, NULL);
}

uint64_t tp_uint(plist_t dict, const char *key)
{
    plist_t n = plist_dict_get_item(dict, key);
    uint64_t v = 0;
    cr_assert_not_null(n, "missing key %s", key);
    cr_assert_eq(plist_get_node_type(n), PLIST_UINT, "%s is not an integer", key);
    plist_get_uint_val(n, &v);
    return v;
}

plist_t tp_scep_content(plist_t profile)
{
    plist_t arr = plist_dict_get_item(profile, "PayloadContent");
    cr_assert_not_null(arr);
    for (uint32_t i = 0; i < plist_array_get_size(arr); i++) {
        plist_t pl = plist_array_get_item(arr, i);
        if (strcmp(tp_str(pl, "PayloadType"), "com.apple.security.scep") == 0)
            return plist_dict_get_item(pl, "PayloadContent");
    }
    cr_assert_fail("no SCEP payload");
    return NULL;
}

char *tp_render(const struct profile_policy *p, const struct profile_device *dev, size_t *len)
{
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct profile_render_opts o = {"com.example.policy.1", "Example Org"};
    char *xml = NULL;
    int rc = profile_render(p, dev, &o, &xml, len, &pr);
    char all[8192];

    dump(&pr, all, sizeof(all));
    cr_assert_eq(rc, 0, "render failed:\n%s", all);
    profile_problems_clear(&pr);
    return xml;
}

int tp_plist_equal(plist_t a, plist_t b)
{
    plist_type t = plist_get_node_type(a);

    if (t != plist_get_node_type(b))
        return 0;
    switch (t) {
    case PLIST_DICT: {
        if (plist_dict_get_size(a) != plist_dict_get_size(b))
            return 0;
        plist_dict_iter it = NULL;
        char *key = NULL;
        plist_t va = NULL;
        int eq = 1;
        plist_dict_new_iter(a, &it);
        for (;;) {
            key = NULL;
            plist_dict_next_item(a, it, &key, &va);
            if (key == NULL)
                break;
            plist_t vb = plist_dict_get_item(b, key);
            if (vb == NULL || !tp_plist_equal(va, vb))
                eq = 0;
            free(key);
        }
        free(it);
        return eq;
    }
    case PLIST_ARRAY:
        if (plist_array_get_size(a) != plist_array_get_size(b))
            return 0;
        for (uint32_t i = 0; i < plist_array_get_size(a); i++)
            if (!tp_plist_equal(plist_array_get_item(a, i), plist_array_get_item(b, i)))
                return 0;
        return 1;
    default:
        return plist_compare_node_value(a, b) ? 1 : 0;
    }
}
