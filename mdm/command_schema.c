/*
 * Typed MDM commands described key by key after Apple's command schemas
 * (github.com/apple/device-management, mdm/commands/, one YAML file per command): for each
 * RequestType Scepter builds from JSON, its payload keys with their plist type, whether they are
 * required, the values they allow (rangelist) and their subkeys.  An operator's JSON names the keys
 * as Apple does ({"request_type": "DeviceLock", "Message": "Call IT", "PIN": "123456"}); the
 * builder checks every key against the table — unknown keys, wrong types, missing required keys and
 * values outside the rangelist are refused with the field's path ("command.Updates[0].
 * InstallAction") — and renders the Command dict.  tests/unit/mdm/test_commands.c checks the
 * table and the renderings against the schemas' facts (tests/data/apple-schemas/
 * command-facts.json).
 */
#include <stdio.h>
#include <string.h>

#include "common/codec.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/commands_int.h"

enum field_type { F_STRING, F_BOOL, F_INT, F_DATA, F_ARRAY, F_DICT };

struct field {
    const char *key;
    enum field_type type;
    bool required;
    const char *const *allowed;  /* rangelist (as text), NULL-terminated; NULL = any */
    const struct field *sub;     /* F_DICT: subkeys ({NULL} ends); F_ARRAY: the element */
    const struct variant *items; /* F_ARRAY of dicts told apart by their "Item" (Settings) */
};

/* One kind of Settings item: its Item value and its keys (besides Item). */
struct variant {
    const char *item;
    const struct field *keys;
};

#define END                                                                                        \
    {                                                                                              \
        NULL, F_STRING, false, NULL, NULL, NULL                                                    \
    }
#define OPT(k, t)                                                                                  \
    {                                                                                              \
        k, t, false, NULL, NULL, NULL                                                              \
    }
#define REQ(k, t)                                                                                  \
    {                                                                                              \
        k, t, true, NULL, NULL, NULL                                                               \
    }

static const struct field string_item[] = {{"", F_STRING, false, NULL, NULL, NULL}};

/* DeviceLock (device.lock.yaml) */
static const struct field k_device_lock[] = {OPT("Message", F_STRING), OPT("PhoneNumber", F_STRING),
                                             OPT("PIN", F_STRING), END};

/* EraseDevice (device.erase.yaml) */
static const char *const obliteration[] = {"Default", "DoNotObliterate", "ObliterateWithWarning",
                                           "Always", NULL};
static const struct field k_return_to_service[] = {
    REQ("Enabled", F_BOOL), OPT("WiFiProfileData", F_DATA), OPT("MDMProfileData", F_DATA), END};
static const struct field k_erase_device[] = {
    OPT("PreserveDataPlan", F_BOOL),
    OPT("DisallowProximitySetup", F_BOOL),
    OPT("PIN", F_STRING),
    {"ObliterationBehavior", F_STRING, false, obliteration, NULL, NULL},
    {"ReturnToService", F_DICT, false, NULL, k_return_to_service, NULL},
    END};

/* RestartDevice (device.restart.yaml) */
static const struct field k_restart_device[] = {
    OPT("RebuildKernelCache", F_BOOL),
    {"KextPaths", F_ARRAY, false, NULL, string_item, NULL},
    OPT("NotifyUser", F_BOOL),
    END};

/* ClearPasscode (passcode.clear.yaml): the UnlockToken is the device's escrowed one, filled in
 * by the server, never given by the operator. */
static const struct field k_clear_passcode[] = {END};

/* InstalledApplicationList (application.installed.list.yaml) */
static const char *const app_items[] = {"AdHocCodeSigned",
                                        "AppStoreVendable",
                                        "BetaApp",
                                        "BundleSize",
                                        "DeviceBasedVPP",
                                        "DistributorIdentifier",
                                        "DynamicSize",
                                        "ExternalVersionIdentifier",
                                        "HasUpdateAvailable",
                                        "Identifier",
                                        "Installing",
                                        "IsAppClip",
                                        "IsValidated",
                                        "Name",
                                        "ShortVersion",
                                        "Version",
                                        NULL};
static const struct field app_item[] = {{"", F_STRING, false, app_items, NULL, NULL}};
static const struct field k_installed_apps[] = {
    {"Identifiers", F_ARRAY, false, NULL, string_item, NULL},
    OPT("ManagedAppsOnly", F_BOOL),
    {"Items", F_ARRAY, false, NULL, app_item, NULL},
    END};

/* ScheduleOSUpdate (system.update.schedule.yaml) */
static const char *const install_actions[] = {"Default",    "DownloadOnly", "InstallASAP",
                                              "NotifyOnly", "InstallLater", "InstallForceRestart",
                                              NULL};
static const char *const priorities[] = {"Low", "High", NULL};
static const struct field k_update[] = {
    OPT("ProductKey", F_STRING),
    OPT("ProductVersion", F_STRING),
    {"InstallAction", F_STRING, true, install_actions, NULL, NULL},
    OPT("MaxUserDeferrals", F_INT),
    {"Priority", F_STRING, false, priorities, NULL, NULL},
    END};
static const struct field update_item[] = {{"", F_DICT, true, NULL, k_update, NULL}};
static const struct field k_schedule_update[] = {
    {"Updates", F_ARRAY, true, NULL, update_item, NULL}, END};

/* Settings (settings.yaml): the items an operator may send typed. */
static const struct field s_enabled[] = {REQ("Enabled", F_BOOL), END};
static const struct field s_device_name[] = {REQ("DeviceName", F_STRING), END};
static const struct field s_host_name[] = {REQ("HostName", F_STRING), END};
static const struct field s_time_zone[] = {REQ("TimeZone", F_STRING), END};
static const struct field s_max_users[] = {REQ("MaximumResidentUsers", F_INT), END};
static const char *const grace[] = {"0", "60", "300", "900", "3600", "14400", NULL};
static const struct field s_grace[] = {{"PasscodeLockGracePeriod", F_INT, true, grace, NULL, NULL},
                                       END};
static const char *const cadence[] = {"0", "1", "2", NULL};
static const struct field s_update_settings[] = {
    {"RecommendationCadence", F_INT, true, cadence, NULL, NULL}, END};
static const char *const where[] = {"1", "2", "3", NULL};
static const struct field s_wallpaper[] = {
    REQ("Image", F_DATA), {"Where", F_INT, true, where, NULL, NULL}, END};
static const char *const text_sizes[] = {"0", "1", "2", "3",  "4",  "5", "6",
                                         "7", "8", "9", "10", "11", NULL};
static const struct field s_accessibility[] = {OPT("BoldTextEnabled", F_BOOL),
                                               OPT("IncreaseContrastEnabled", F_BOOL),
                                               OPT("ReduceMotionEnabled", F_BOOL),
                                               OPT("ReduceTransparencyEnabled", F_BOOL),
                                               {"TextSize", F_INT, false, text_sizes, NULL, NULL},
                                               OPT("TouchAccommodationsEnabled", F_BOOL),
                                               OPT("VoiceOverEnabled", F_BOOL),
                                               OPT("ZoomEnabled", F_BOOL),
                                               OPT("GrayscaleEnabled", F_BOOL),
                                               END};
static const struct variant settings_items[] = {{"AccessibilitySettings", s_accessibility},
                                                {"AppAnalytics", s_enabled},
                                                {"Bluetooth", s_enabled},
                                                {"DataRoaming", s_enabled},
                                                {"DeviceName", s_device_name},
                                                {"DiagnosticSubmission", s_enabled},
                                                {"HostName", s_host_name},
                                                {"MaximumResidentUsers", s_max_users},
                                                {"PasscodeLockGracePeriod", s_grace},
                                                {"PersonalHotspot", s_enabled},
                                                {"SoftwareUpdateSettings", s_update_settings},
                                                {"TimeZone", s_time_zone},
                                                {"VoiceRoaming", s_enabled},
                                                {"Wallpaper", s_wallpaper},
                                                {NULL, NULL}};
static const struct field k_settings[] = {{"Settings", F_ARRAY, true, NULL, NULL, settings_items},
                                          END};

static const struct field k_none[] = {END};

static const struct {
    const char *request_type;
    const struct field *keys;
} specs[] = {
    {"DeviceLock", k_device_lock},
    {"EraseDevice", k_erase_device},
    {"RestartDevice", k_restart_device},
    {"ShutDownDevice", k_none},
    {"ClearPasscode", k_clear_passcode},
    {"SecurityInfo", k_none},
    {"InstalledApplicationList", k_installed_apps},
    {"AvailableOSUpdates", k_none},
    {"ScheduleOSUpdate", k_schedule_update},
    {"Settings", k_settings},
    {"DeviceConfigured", k_none},
};

bool mdm_command_schema_known(const char *request_type)
{
    for (size_t i = 0; i < ARRAY_LEN(specs); i++)
        if (strcmp(specs[i].request_type, request_type) == 0)
            return true;
    return false;
}

const char *mdm_command_schema_type(size_t i)
{
    return i < ARRAY_LEN(specs) ? specs[i].request_type : NULL;
}

static const char *type_name(enum field_type t)
{
    static const char *const names[] = {"a string",    "true or false", "an integer",
                                        "base64 data", "an array",      "an object"};
    return names[t];
}

static int convert(json_t *v, const struct field *f, const char *path, plist_t *out,
                   struct scepter_error *err);

/* The keys of obj per the table keys (besides those in skip), into the plist dict d. */
static int convert_dict(json_t *obj, const struct field *keys, const char *path,
                        const char *const *skip, plist_t d, struct scepter_error *err)
{
    const char *k;
    json_t *v;
    char sub[256];

    json_object_foreach(obj, k, v)
    {
        bool known = false;
        for (const char *const *s = skip; s && *s && !known; s++)
            known = strcmp(*s, k) == 0;
        for (const struct field *f = keys; f->key && !known; f++)
            known = strcmp(f->key, k) == 0;
        if (!known) {
            snprintf(sub, sizeof(sub), "%.150s%.64s", path, k);
            return scepter_err(err, SCEPTER_EINVAL, sub,
                               "%s: unknown key (Apple's schema has no such key here)", sub);
        }
    }
    for (const struct field *f = keys; f->key; f++) {
        plist_t node = NULL;
        int rc;
        snprintf(sub, sizeof(sub), "%.150s%.64s", path, f->key);
        v = json_object_get(obj, f->key);
        if (v == NULL || json_is_null(v)) {
            if (f->required)
                return scepter_err(err, SCEPTER_EINVAL, sub, "%s: required", sub);
            continue;
        }
        if ((rc = convert(v, f, sub, &node, err)) != 0)
            return rc;
        plist_dict_set_item(d, f->key, node);
    }
    return 0;
}

static int check_allowed(const struct field *f, const char *text, const char *path,
                         struct scepter_error *err)
{
    char list[256] = "";

    if (f->allowed == NULL)
        return 0;
    for (const char *const *a = f->allowed; *a; a++)
        if (strcmp(*a, text) == 0)
            return 0;
    for (const char *const *a = f->allowed; *a; a++) {
        if (a != f->allowed)
            str_append(list, sizeof(list), ", ");
        str_append(list, sizeof(list), *a);
    }
    return scepter_err(err, SCEPTER_EINVAL, path, "%s: '%.64s' is not one of %s", path, text, list);
}

/* A Settings item: a dict whose "Item" picks its keys. */
static int convert_variant(json_t *v, const struct variant *vars, const char *path, plist_t *out,
                           struct scepter_error *err)
{
    static const char *const skip[] = {"Item", NULL};
    char sub[256], list[512] = "";
    json_t *item;
    const char *name;

    if (!json_is_object(v))
        return scepter_err(err, SCEPTER_EINVAL, path, "%s: expected an object", path);
    snprintf(sub, sizeof(sub), "%.200s.Item", path);
    item = json_object_get(v, "Item");
    if (item == NULL || json_is_null(item))
        return scepter_err(err, SCEPTER_EINVAL, sub, "%s: required", sub);
    if (!json_is_string(item))
        return scepter_err(err, SCEPTER_EINVAL, sub, "%s: expected a string", sub);
    name = json_string_value(item);
    for (const struct variant *x = vars; x->item; x++) {
        if (strcmp(x->item, name) != 0)
            continue;
        plist_t d = plist_new_dict();
        plistx_set_string(d, "Item", name);
        snprintf(sub, sizeof(sub), "%.200s.", path);
        int rc = convert_dict(v, x->keys, sub, skip, d, err);
        if (rc != 0) {
            plist_free(d);
            return rc;
        }
        *out = d;
        return 0;
    }
    for (const struct variant *x = vars; x->item; x++) {
        if (x != vars)
            str_append(list, sizeof(list), ", ");
        str_append(list, sizeof(list), x->item);
    }
    snprintf(sub, sizeof(sub), "%.200s.Item", path);
    return scepter_err(err, SCEPTER_EINVAL, sub,
                       "%s: '%.64s' is not one of %s (send other settings as a raw plist)", sub,
                       name, list);
}

static int convert(json_t *v, const struct field *f, const char *path, plist_t *out,
                   struct scepter_error *err)
{
    char num[32], sub[256];
    int rc;

    *out = NULL;
    switch (f->type) {
    case F_STRING:
        if (!json_is_string(v))
            break;
        if ((rc = check_allowed(f, json_string_value(v), path, err)) != 0)
            return rc;
        *out = plist_new_string(json_string_value(v));
        return 0;
    case F_BOOL:
        if (!json_is_boolean(v))
            break;
        *out = plist_new_bool(json_is_true(v));
        return 0;
    case F_INT:
        if (!json_is_integer(v))
            break;
        if (json_integer_value(v) < 0)
            return scepter_err(err, SCEPTER_EINVAL, path, "%s: expected an integer of 0 or more",
                               path);
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        if ((rc = check_allowed(f, num, path, err)) != 0)
            return rc;
        *out = plist_new_uint((uint64_t)json_integer_value(v));
        return 0;
    case F_DATA: {
        unsigned char *bytes = NULL;
        size_t len = 0;
        if (!json_is_string(v))
            break;
        if (base64_decode(json_string_value(v), json_string_length(v), false, &bytes, &len) != 0)
            return scepter_err(err, SCEPTER_EINVAL, path, "%s: not base64", path);
        *out = plist_new_data((const char *)bytes, len);
        free(bytes);
        return 0;
    }
    case F_ARRAY: {
        size_t i;
        json_t *e;
        if (!json_is_array(v))
            break;
        plist_t arr = plist_new_array();
        json_array_foreach(v, i, e)
        {
            plist_t node = NULL;
            snprintf(sub, sizeof(sub), "%.200s[%zu]", path, i);
            rc = f->items ? convert_variant(e, f->items, sub, &node, err)
                          : convert(e, f->sub, sub, &node, err);
            if (rc != 0) {
                plist_free(arr);
                return rc;
            }
            plist_array_append_item(arr, node);
        }
        if (f->required && json_array_size(v) == 0) {
            plist_free(arr);
            return scepter_err(err, SCEPTER_EINVAL, path, "%s: required, and empty", path);
        }
        *out = arr;
        return 0;
    }
    case F_DICT: {
        if (!json_is_object(v))
            break;
        plist_t d = plist_new_dict();
        snprintf(sub, sizeof(sub), "%.200s.", path);
        if ((rc = convert_dict(v, f->sub, sub, NULL, d, err)) != 0) {
            plist_free(d);
            return rc;
        }
        *out = d;
        return 0;
    }
    }
    return scepter_err(err, SCEPTER_EINVAL, path, "%s: expected %s", path, type_name(f->type));
}

int mdm_command_schema_build(json_t *spec, const char *type, const struct mdm_device_secrets *sec,
                             const char *uuid, struct mdm_command *out, struct scepter_error *err)
{
    static const char *const skip[] = {"request_type", "uuid", NULL};
    const struct field *keys = NULL;
    plist_t cmd;
    int rc;

    for (size_t i = 0; i < ARRAY_LEN(specs); i++)
        if (strcmp(specs[i].request_type, type) == 0)
            keys = specs[i].keys;
    if (keys == NULL)
        return scepter_err(err, SCEPTER_EINVAL, "command.request_type",
                           "command.request_type: '%.64s' has no schema here", type);
    cmd = plist_new_dict();
    plistx_set_string(cmd, "RequestType", type);
    if ((rc = convert_dict(spec, keys, "command.", skip, cmd, err)) != 0) {
        plist_free(cmd);
        return rc;
    }
    if (strcmp(type, "ClearPasscode") == 0) {
        if (sec == NULL || sec->unlock_token == NULL || sec->unlock_token_len == 0) {
            plist_free(cmd);
            return scepter_err(err, SCEPTER_ECONFLICT, "command.request_type",
                               "command.request_type: ClearPasscode needs the UnlockToken the "
                               "device escrowed at TokenUpdate, and %s",
                               sec == NULL ? "it is sent to one device at a time "
                                             "(POST /v1/devices/{udid}/commands)"
                                           : "this device has none");
        }
        plistx_set_data(cmd, "UnlockToken", sec->unlock_token, sec->unlock_token_len);
    }
    mdm_command_finish(cmd, uuid, out);
    return 0;
}
