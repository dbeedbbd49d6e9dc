/*
 * Typed commands against Apple's command schemas (tests/data/apple-schemas/command-facts.json,
 * generated from github.com/apple/device-management by scripts/command-facts.py): every
 * command mdm/command_schema.c describes is in the facts and the other way round; a command
 * carrying every key of its schema is accepted and renders a Command dict whose every key,
 * type and value the schema allows; leaving out any required key (at any depth) is refused
 * with the key's path; unknown keys and wrong types are refused naming the key; ClearPasscode
 * carries the escrowed UnlockToken and nothing else supplies one.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "mdm/commands_int.h"
#include "support/support.h"

static json_t *facts(void)
{
    static json_t *f;
    if (f == NULL) {
        size_t len;
        unsigned char *text = tu_read_data("apple-schemas/command-facts.json", &len);
        json_error_t je;
        f = json_loadb((const char *)text, len, 0, &je);
        cr_assert_not_null(f, "command-facts.json: %s", je.text);
        free(text);
    }
    return json_object_get(f, "commands");
}

static bool is_type(json_t *k, const char *t)
{
    return strcmp(json_string_value(json_object_get(k, "type")), t) == 0;
}

/* A value for key spec k: its first allowed value, or a plain one of its type. */
static json_t *sample(json_t *k)
{
    json_t *allowed = json_object_get(k, "allowed"), *subs = json_object_get(k, "subkeys");
    const char *first = allowed ? json_string_value(json_array_get(allowed, 0)) : NULL;

    if (is_type(k, "<string>"))
        return json_string(first ? first : "sample");
    if (is_type(k, "<boolean>"))
        return json_true();
    if (is_type(k, "<integer>"))
        return json_integer(first ? strtoll(first, NULL, 10) : 1);
    if (is_type(k, "<data>"))
        return json_string("AAECAw==");
    if (is_type(k, "<array>")) {
        json_t *a = json_array();
        json_array_append_new(a, sample(json_array_get(subs, 0)));
        return a;
    }
    json_t *o = json_object();
    size_t i;
    json_t *s;
    json_array_foreach(subs, i, s)
        json_object_set_new(o, json_string_value(json_object_get(s, "key")), sample(s));
    return o;
}

static const char *server_filled(const char *type, const char *key)
{
    return strcmp(type, "ClearPasscode") == 0 && strcmp(key, "UnlockToken") == 0 ? key : NULL;
}

/* The operator's JSON with every key of the command's schema. */
static json_t *full_spec(const char *type, json_t *keys)
{
    json_t *spec = json_pack("{s:s}", "request_type", type), *k;
    size_t i;
    json_array_foreach(keys, i, k)
    {
        const char *name = json_string_value(json_object_get(k, "key"));
        if (!server_filled(type, name))
            json_object_set_new(spec, name, sample(k));
    }
    return spec;
}

static const unsigned char unlock[] = {1, 2, 3, 4, 5};
static const struct mdm_device_secrets secrets = {unlock, sizeof(unlock)};

/* The Command dict of a built command (caller plist_free()s the root it returns). */
static plist_t command_of(const struct mdm_command *c, plist_t *root)
{
    struct scepter_error err;
    plist_t cmd = NULL;
    cr_assert_eq(plistx_parse_dict(c->plist.data, c->plist.len, root, &err), 0, "%s", err.msg);
    cr_assert_eq(plistx_get_dict(*root, "Command", true, &cmd, &err), 0);
    return cmd;
}

static const char *node_type_name(plist_t n)
{
    switch (plist_get_node_type(n)) {
    case PLIST_STRING:
        return "<string>";
    case PLIST_BOOLEAN:
        return "<boolean>";
    case PLIST_UINT:
        return "<integer>";
    case PLIST_DATA:
        return "<data>";
    case PLIST_ARRAY:
        return "<array>";
    case PLIST_DICT:
        return "<dictionary>";
    default:
        return "?";
    }
}

static void check_node(plist_t n, json_t *k, const char *path);

/* dict d against the key specs keys (skipping "RequestType" at the top). */
static void check_dict(plist_t d, json_t *keys, const char *path)
{
    plist_dict_iter it = NULL;
    char *name = NULL;
    plist_t v = NULL;
    size_t i;
    json_t *k;

    plist_dict_new_iter(d, &it);
    for (;;) {
        plist_dict_next_item(d, it, &name, &v);
        if (v == NULL)
            break;
        json_t *spec = NULL;
        json_array_foreach(keys, i, k) if (strcmp(json_string_value(json_object_get(k, "key")),
                                                  name) == 0) spec = k;
        if (strcmp(path, "") == 0 && strcmp(name, "RequestType") == 0) {
            free(name);
            continue;
        }
        cr_assert_not_null(spec, "%s%s: not in Apple's schema", path, name);
        char *sub = xasprintf("%s%s", path, name);
        check_node(v, spec, sub);
        free(sub);
        free(name);
        name = NULL;
    }
    free(it);
    json_array_foreach(keys, i, k)
    {
        if (json_is_true(json_object_get(k, "required")))
            cr_assert_not_null(plist_dict_get_item(d, json_string_value(json_object_get(k, "key"))),
                               "%s%s: required by Apple's schema, missing", path,
                               json_string_value(json_object_get(k, "key")));
    }
}

static void check_node(plist_t n, json_t *k, const char *path)
{
    json_t *allowed = json_object_get(k, "allowed"), *subs = json_object_get(k, "subkeys");

    cr_assert_str_eq(node_type_name(n), json_string_value(json_object_get(k, "type")), "%s", path);
    if (allowed) {
        char text[64] = "";
        if (plist_get_node_type(n) == PLIST_STRING)
            snprintf(text, sizeof(text), "%s", plist_get_string_ptr(n, NULL));
        else if (plist_get_node_type(n) == PLIST_UINT) {
            uint64_t u = 0;
            plist_get_uint_val(n, &u);
            snprintf(text, sizeof(text), "%llu", (unsigned long long)u);
        }
        bool ok = false;
        size_t i;
        json_t *a;
        json_array_foreach(allowed, i, a) ok = ok || strcmp(json_string_value(a), text) == 0;
        cr_assert(ok, "%s: '%s' is not an allowed value", path, text);
    }
    if (plist_get_node_type(n) == PLIST_DICT) {
        char *p = xasprintf("%s.", path);
        check_dict(n, subs, p);
        free(p);
    } else if (plist_get_node_type(n) == PLIST_ARRAY) {
        for (uint32_t i = 0; i < plist_array_get_size(n); i++) {
            plist_t e = plist_array_get_item(n, i);
            char *p = xasprintf("%s[%u]", path, i);
            json_t *spec = json_array_get(subs, 0);
            /* Settings: the element's spec is the alternative its Item names. */
            if (json_array_size(subs) > 1 && plist_get_node_type(e) == PLIST_DICT) {
                plist_t item = plist_dict_get_item(e, "Item");
                size_t j;
                json_t *s;
                cr_assert_not_null(item, "%s: no Item", p);
                json_array_foreach(subs, j,
                                   s) if (strcmp(json_string_value(json_object_get(s, "key")),
                                                 plist_get_string_ptr(item, NULL)) == 0) spec = s;
            }
            check_node(e, spec, p);
            free(p);
        }
    }
}

Test(commands, the_described_commands_are_the_schemas)
{
    json_t *f = facts();
    size_t n = 0;

    for (size_t i = 0; mdm_command_schema_type(i); i++, n++)
        cr_assert_not_null(json_object_get(f, mdm_command_schema_type(i)),
                           "%s has no facts: add it to scripts/command-facts.py",
                           mdm_command_schema_type(i));
    const char *type;
    json_t *v;
    json_object_foreach(f, type, v) cr_assert(mdm_command_schema_known(type), "%s", type);
    cr_assert_eq(n, json_object_size(f));
    cr_assert_geq(n, 11);
}

/* Every key of the schema given: accepted, and every rendered key is Apple's. */
Test(commands, each_command_with_every_key_is_accepted_and_renders_per_the_schema)
{
    const char *type;
    json_t *cmdfacts;

    json_object_foreach(facts(), type, cmdfacts)
    {
        json_t *keys = json_object_get(cmdfacts, "keys");
        struct mdm_command c;
        struct scepter_error err;
        plist_t root = NULL;

        if (strcmp(type, "Settings") == 0)
            continue; /* one item kind at a time: below */
        json_t *spec = full_spec(type, keys);
        cr_assert_eq(mdm_command_from_json_for(spec, &secrets, &c, &err), 0, "%s: %s (%s)", type,
                     err.msg, json_dumps(spec, JSON_COMPACT));
        cr_assert_str_eq(c.request_type, type);
        plist_t cmd = command_of(&c, &root);
        cr_assert_str_eq(plist_get_string_ptr(plist_dict_get_item(cmd, "RequestType"), NULL), type);
        check_dict(cmd, keys, "");
        plist_free(root);
        mdm_command_clear(&c);
        json_decref(spec);
    }
}

/* Settings: each kind of item Apple lists is either built (and checked) or refused naming its
 * Item; the common ones are built. */
Test(commands, settings_items_render_per_the_schema)
{
    json_t *keys = json_object_get(json_object_get(facts(), "Settings"), "keys");
    json_t *kinds = json_object_get(json_array_get(keys, 0), "subkeys"), *kind;
    size_t i, built = 0;

    json_array_foreach(kinds, i, kind)
    {
        struct mdm_command c;
        struct scepter_error err;
        plist_t root = NULL;
        json_t *settings = json_array();
        json_array_append_new(settings, sample(kind));
        json_t *spec = json_pack("{s:s,s:o}", "request_type", "Settings", "Settings", settings);
        if (mdm_command_from_json(spec, &c, &err) == 0) {
            check_dict(command_of(&c, &root), keys, "");
            plist_free(root);
            mdm_command_clear(&c);
            built++;
        } else {
            cr_assert_str_eq(err.field, "command.Settings[0].Item", "%s: %s",
                             json_string_value(json_object_get(kind, "key")), err.msg);
        }
        json_decref(spec);
    }
    cr_assert_geq(built, 14);
}

/* Remove each required key (at any depth) from the full command in turn: refused naming it. */
static void each_required(const char *type, json_t *spec, json_t *obj, json_t *keys,
                          const char *path, size_t *n)
{
    size_t i;
    json_t *k;

    json_array_foreach(keys, i, k)
    {
        const char *name = json_string_value(json_object_get(k, "key"));
        json_t *v = json_object_get(obj, name);
        char *sub = xasprintf("%s%s", path, name);
        if (v == NULL) {
            free(sub);
            continue;
        }
        if (json_is_true(json_object_get(k, "required"))) {
            struct mdm_command c;
            struct scepter_error err;
            json_incref(v);
            json_object_del(obj, name);
            cr_assert_neq(mdm_command_from_json_for(spec, &secrets, &c, &err), 0, "%s: %s", type,
                          sub);
            cr_assert_str_eq(err.field, sub, "%s: %s", type, err.msg);
            cr_assert_not_null(strstr(err.msg, "required"), "%s", err.msg);
            json_object_set_new(obj, name, v);
            (*n)++;
        }
        if (json_is_object(v)) {
            char *p = xasprintf("%s.", sub);
            each_required(type, spec, v, json_object_get(k, "subkeys"), p, n);
            free(p);
        } else if (json_is_array(v) && json_is_object(json_array_get(v, 0))) {
            char *p = xasprintf("%s[0].", sub);
            json_t *el = json_array_get(json_object_get(k, "subkeys"), 0);
            each_required(type, spec, json_array_get(v, 0), json_object_get(el, "subkeys"), p, n);
            free(p);
        }
        free(sub);
    }
}

Test(commands, a_missing_required_key_is_refused_naming_it)
{
    const char *type;
    json_t *cmdfacts;
    size_t n = 0;

    json_object_foreach(facts(), type, cmdfacts)
    {
        if (strcmp(type, "Settings") == 0)
            continue;
        json_t *spec = full_spec(type, json_object_get(cmdfacts, "keys"));
        {
            char *prefix = xstrdup("command.");
            each_required(type, spec, spec, json_object_get(cmdfacts, "keys"), prefix, &n);
            free(prefix);
        }
        json_decref(spec);
    }
    /* Settings items: Item and the item's own required keys. */
    struct mdm_command c;
    struct scepter_error err;
    json_t *spec = json_loads("{\"request_type\":\"Settings\",\"Settings\":[{\"Item\":"
                              "\"DeviceName\"}]}",
                              0, NULL);
    cr_assert_neq(mdm_command_from_json(spec, &c, &err), 0);
    cr_assert_str_eq(err.field, "command.Settings[0].DeviceName", "%s", err.msg);
    json_decref(spec);
    spec = json_loads("{\"request_type\":\"Settings\",\"Settings\":[{\"Enabled\":true}]}", 0, NULL);
    cr_assert_neq(mdm_command_from_json(spec, &c, &err), 0);
    cr_assert_str_eq(err.field, "command.Settings[0].Item", "%s", err.msg);
    json_decref(spec);
    spec = json_loads("{\"request_type\":\"Settings\"}", 0, NULL);
    cr_assert_neq(mdm_command_from_json(spec, &c, &err), 0);
    cr_assert_str_eq(err.field, "command.Settings", "%s", err.msg);
    json_decref(spec);
    /* Updates (ScheduleOSUpdate) and its items' InstallAction, ReturnToService.Enabled. */
    cr_assert_geq(n, 3, "%zu required keys tried", n);
}

Test(commands, unknown_keys_wrong_types_and_values_are_refused_naming_the_key)
{
    static const struct {
        const char *json, *field;
    } bad[] = {
        {"{\"request_type\":\"DeviceLock\",\"Mesage\":\"typo\"}", "command.Mesage"},
        {"{\"request_type\":\"DeviceLock\",\"PIN\":123456}", "command.PIN"},
        {"{\"request_type\":\"EraseDevice\",\"ObliterationBehavior\":\"Sometimes\"}",
         "command.ObliterationBehavior"},
        {"{\"request_type\":\"EraseDevice\",\"ReturnToService\":{\"Enabled\":\"yes\"}}",
         "command.ReturnToService.Enabled"},
        {"{\"request_type\":\"RestartDevice\",\"KextPaths\":[\"/a\",7]}", "command.KextPaths[1]"},
        {"{\"request_type\":\"ScheduleOSUpdate\",\"Updates\":[{\"InstallAction\":\"Now\"}]}",
         "command.Updates[0].InstallAction"},
        {"{\"request_type\":\"ScheduleOSUpdate\",\"Updates\":[]}", "command.Updates"},
        {"{\"request_type\":\"Settings\",\"Settings\":[{\"Item\":\"PasscodeLockGracePeriod\","
         "\"PasscodeLockGracePeriod\":61}]}",
         "command.Settings[0].PasscodeLockGracePeriod"},
        {"{\"request_type\":\"Settings\",\"Settings\":[{\"Item\":\"Nonsense\"}]}",
         "command.Settings[0].Item"},
        {"{\"request_type\":\"Settings\",\"Settings\":[{\"Item\":\"Bluetooth\",\"Enabled\":true,"
         "\"Extra\":1}]}",
         "command.Settings[0].Extra"},
        {"{\"request_type\":\"InstalledApplicationList\",\"Items\":[\"Colour\"]}",
         "command.Items[0]"},
        {"{\"request_type\":\"ShutDownDevice\",\"Force\":true}", "command.Force"},
        {"{\"request_type\":\"DeviceConfigured\",\"x\":1}", "command.x"},
        {"{\"request_type\":\"Settings\",\"Settings\":[{\"Item\":\"Wallpaper\",\"Image\":\"!!\","
         "\"Where\":1}]}",
         "command.Settings[0].Image"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct mdm_command c;
        struct scepter_error err;
        json_t *spec = json_loads(bad[i].json, 0, NULL);
        cr_assert_not_null(spec, "%s", bad[i].json);
        cr_assert_eq(mdm_command_from_json(spec, &c, &err), SCEPTER_EINVAL, "%s", bad[i].json);
        cr_assert_str_eq(err.field, bad[i].field, "%s: %s", bad[i].json, err.msg);
        cr_assert_not_null(strstr(err.msg, bad[i].field), "the message names the key: %s", err.msg);
        json_decref(spec);
    }
}

Test(commands, clear_passcode_carries_the_escrowed_unlock_token_only)
{
    struct mdm_command c;
    struct scepter_error err;
    plist_t root = NULL;
    json_t *spec = json_pack("{s:s}", "request_type", "ClearPasscode");
    const struct mdm_device_secrets none = {NULL, 0};

    cr_assert_eq(mdm_command_from_json(spec, &c, &err), SCEPTER_ECONFLICT, "no device: refused");
    cr_assert_eq(mdm_command_from_json_for(spec, &none, &c, &err), SCEPTER_ECONFLICT);
    cr_assert_not_null(strstr(err.msg, "has none"), "%s", err.msg);
    cr_assert_eq(mdm_command_from_json_for(spec, &secrets, &c, &err), 0, "%s", err.msg);
    plist_t cmd = command_of(&c, &root);
    uint64_t len = 0;
    const char *tok = plist_get_data_ptr(plist_dict_get_item(cmd, "UnlockToken"), &len);
    cr_assert_eq(len, sizeof(unlock));
    cr_assert_eq(memcmp(tok, unlock, len), 0);
    plist_free(root);
    mdm_command_clear(&c);
    json_object_set_new(spec, "UnlockToken", json_string("AAAA"));
    cr_assert_eq(mdm_command_from_json_for(spec, &secrets, &c, &err), SCEPTER_EINVAL,
                 "the operator cannot supply one");
    cr_assert_str_eq(err.field, "command.UnlockToken");
    json_decref(spec);
}

/* A result as the API shows it beside the raw plist: types kept (SecurityInfo's shape). */
Test(commands, results_render_as_typed_json)
{
    static const char xml[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><dict>"
        "<key>CommandUUID</key><string>u</string><key>Status</key><string>Acknowledged</string>"
        "<key>SecurityInfo</key><dict><key>HardwareEncryptionCaps</key><integer>3</integer>"
        "<key>PasscodePresent</key><true/><key>FDE_Enabled</key><false/>"
        "<key>ManagementStatus</key><dict><key>EnrolledViaDEP</key><false/></dict></dict>"
        "</dict></plist>";
    plist_t p = NULL;
    struct scepter_error err;

    cr_assert_eq(plistx_parse_dict(xml, sizeof(xml) - 1, &p, &err), 0, "%s", err.msg);
    json_t *j = mdm_plist_to_json(p);
    json_t *si = json_object_get(j, "SecurityInfo");
    cr_assert_eq(json_integer_value(json_object_get(si, "HardwareEncryptionCaps")), 3);
    cr_assert(json_is_true(json_object_get(si, "PasscodePresent")));
    cr_assert(json_is_false(json_object_get(si, "FDE_Enabled")));
    cr_assert(
        json_is_false(json_object_get(json_object_get(si, "ManagementStatus"), "EnrolledViaDEP")));
    json_decref(j);
    plist_free(p);
}
