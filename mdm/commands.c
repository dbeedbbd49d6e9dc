/*
 * MDM commands: building the {CommandUUID, Command} plist a device receives, from a typed
 * request (InstallProfile, RemoveProfile, ProfileList, DeviceInformation, CertificateList)
 * or from a raw plist an operator supplies; and turning result plists into JSON.
 *
 * InstallProfile is built by hand rather than through libplist: a policy saved for 100,000
 * devices builds 100,000 of them, and the layout is fixed (the profile goes in one <data>
 * element as base64, once — never base64 of base64).
 */
#include <string.h>

#include "common/codec.h"
#include "common/jsonx.h"
#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/commands_int.h"
#include "profiles/profiles.h"

static const char plist_head[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                 "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
                                 "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                                 "<plist version=\"1.0\">\n<dict>\n";

void mdm_command_clear(struct mdm_command *c)
{
    free(c->request_type);
    buf_free(&c->plist);
    memset(c, 0, sizeof(*c));
}

/* Append base64 of data in 68-column lines, as Apple's tools write <data>. */
static void append_base64(struct buf *out, const void *data, size_t len)
{
    char *b64 = base64_encode(data, len);
    size_t n = strlen(b64);

    buf_reserve(out, n + n / 68 * 3 + 8);
    for (size_t i = 0; i < n; i += 68) {
        buf_append(out, "\t\t", 2);
        buf_append(out, b64 + i, n - i < 68 ? n - i : 68);
        buf_putc(out, '\n');
    }
    free(b64);
}

void mdm_command_install_profile(const void *profile, size_t len, const char *uuid,
                                 struct mdm_command *out)
{
    memset(out, 0, sizeof(*out));
    if (uuid)
        str_copy(out->uuid, sizeof(out->uuid), uuid);
    else
        uuid_new(out->uuid);
    out->request_type = xstrdup("InstallProfile");
    buf_reserve(&out->plist, xsize_add(xsize_mul(len / 3 + 1, 4), 512));
    buf_append(&out->plist, plist_head, sizeof(plist_head) - 1);
    buf_puts(&out->plist, "\t<key>Command</key>\n\t<dict>\n\t\t<key>Payload</key>\n\t\t<data>\n");
    append_base64(&out->plist, profile, len);
    buf_puts(&out->plist, "\t\t</data>\n\t\t<key>RequestType</key>\n"
                          "\t\t<string>InstallProfile</string>\n\t</dict>\n"
                          "\t<key>CommandUUID</key>\n\t<string>");
    buf_puts(&out->plist, out->uuid);
    buf_puts(&out->plist, "</string>\n</dict>\n</plist>\n");
}

void mdm_command_finish(plist_t command, const char *uuid, struct mdm_command *out)
{
    plist_t root = plist_new_dict();
    const char *type = NULL;
    size_t len;
    char *xml;

    memset(out, 0, sizeof(*out));
    if (uuid)
        str_copy(out->uuid, sizeof(out->uuid), uuid);
    else
        uuid_new(out->uuid);
    if (plistx_get_string(command, "RequestType", true, &type, NULL) == 0)
        out->request_type = xstrdup(type);
    plist_dict_set_item(root, "Command", command);
    plistx_set_string(root, "CommandUUID", out->uuid);
    xml = plistx_to_xml(root, &len);
    buf_append(&out->plist, xml, len);
    free(xml);
    plist_free(root);
}

void mdm_command_remove_profile(const char *identifier, const char *uuid, struct mdm_command *out)
{
    plist_t cmd = plist_new_dict();

    plistx_set_string(cmd, "RequestType", "RemoveProfile");
    plistx_set_string(cmd, "Identifier", identifier);
    mdm_command_finish(cmd, uuid, out);
}

void mdm_command_simple(const char *request_type, const char *uuid, struct mdm_command *out)
{
    plist_t cmd = plist_new_dict();

    plistx_set_string(cmd, "RequestType", request_type);
    mdm_command_finish(cmd, uuid, out);
}

/* The queries a DeviceInformation command asks when the operator names none. */
static const char *const default_queries[] = {
    "UDID",
    "DeviceName",
    "OSVersion",
    "BuildVersion",
    "ModelName",
    "Model",
    "ProductName",
    "SerialNumber",
    "IsSupervised",
    "IsActivationLockEnabled",
    "AvailableDeviceCapacity",
    "DeviceCapacity",
    "WiFiMAC",
    "BluetoothMAC",
};

static int typed_from_json(json_t *spec, const char *type, const struct mdm_device_secrets *sec,
                           struct mdm_command *out, struct scepter_error *err)
{
    static const char *const keys_install[] = {"request_type", "payload", "uuid", NULL};
    static const char *const keys_remove[] = {"request_type", "identifier", "uuid", NULL};
    static const char *const keys_list[] = {"request_type", "managed_only", "uuid", NULL};
    static const char *const keys_info[] = {"request_type", "queries", "uuid", NULL};
    const char *uuid = NULL;
    int rc;

    if ((rc = jsonx_get_string(spec, "uuid", "command.", false, &uuid, err)) < 0)
        return rc;
    if (uuid && (strlen(uuid) == 0 || strlen(uuid) >= UUID_STR_LEN))
        return scepter_err(err, SCEPTER_EINVAL, "command.uuid",
                           "command.uuid: empty or longer than a UUID");
    if (strcmp(type, "InstallProfile") == 0) {
        const char *payload = NULL;
        unsigned char *bytes = NULL, *inner = NULL;
        size_t blen = 0, ilen = 0;
        plist_t prof = NULL;
        const char *ptype = NULL;

        if ((rc = jsonx_only_keys(spec, keys_install, "command.", err)) != 0 ||
            (rc = jsonx_get_string(spec, "payload", "command.", true, &payload, err)) != 0)
            return rc < 0 ? rc : SCEPTER_EINVAL;
        if (base64_decode(payload, strlen(payload), false, &bytes, &blen) != 0)
            return scepter_err(err, SCEPTER_EINVAL, "command.payload",
                               "command.payload: not base64 of a .mobileconfig");
        /* A profile the device can take: a plist, or CMS-signed (signature checked). */
        rc = profile_unwrap(bytes, blen, NULL, &inner, &ilen, NULL, err);
        if (rc == 0 && (rc = plistx_parse_dict(inner, ilen, &prof, err)) == 0 &&
            (plistx_get_string(prof, "PayloadType", true, &ptype, err) != 0 ||
             strcmp(ptype, "Configuration") != 0))
            rc = scepter_err(err, SCEPTER_EINVAL, "command.payload",
                             "command.payload: not a Configuration profile (PayloadType)");
        else if (rc != 0 && err)
            scepter_err(err, SCEPTER_EINVAL, "command.payload", "command.payload: %.200s",
                        err->msg);
        if (rc == 0)
            mdm_command_install_profile(bytes, blen, uuid, out);
        plist_free(prof);
        free(inner);
        free(bytes);
        return rc;
    }
    if (strcmp(type, "RemoveProfile") == 0) {
        const char *ident = NULL;
        if ((rc = jsonx_only_keys(spec, keys_remove, "command.", err)) != 0 ||
            (rc = jsonx_get_string(spec, "identifier", "command.", true, &ident, err)) != 0)
            return rc < 0 ? rc : SCEPTER_EINVAL;
        if (*ident == '\0')
            return scepter_err(err, SCEPTER_EINVAL, "command.identifier",
                               "command.identifier: empty");
        mdm_command_remove_profile(ident, uuid, out);
        return 0;
    }
    if (strcmp(type, "ProfileList") == 0 || strcmp(type, "CertificateList") == 0) {
        bool managed = false;
        int have;
        if ((rc = jsonx_only_keys(spec, keys_list, "command.", err)) != 0 ||
            (have = jsonx_get_bool(spec, "managed_only", "command.", false, &managed, err)) < 0)
            return rc ? rc : have;
        plist_t cmd = plist_new_dict();
        plistx_set_string(cmd, "RequestType", type);
        if (have == 0)
            plistx_set_bool(cmd, "ManagedOnly", managed);
        mdm_command_finish(cmd, uuid, out);
        return 0;
    }
    if (strcmp(type, "DeviceInformation") == 0) {
        json_t *queries = NULL;
        int have;
        if ((rc = jsonx_only_keys(spec, keys_info, "command.", err)) != 0 ||
            (have = jsonx_get_array(spec, "queries", "command.", false, &queries, err)) < 0)
            return rc ? rc : have;
        plist_t cmd = plist_new_dict(), arr = plist_new_array();
        if (queries && json_array_size(queries) > 0) {
            for (size_t i = 0; i < json_array_size(queries); i++) {
                json_t *q = json_array_get(queries, i);
                if (!json_is_string(q) || json_string_length(q) == 0) {
                    plist_free(cmd);
                    plist_free(arr);
                    return scepter_err(err, SCEPTER_EINVAL, "command.queries",
                                       "command.queries[%zu]: expected a query name", i);
                }
                plist_array_append_item(arr, plist_new_string(json_string_value(q)));
            }
        } else {
            for (size_t i = 0; i < ARRAY_LEN(default_queries); i++)
                plist_array_append_item(arr, plist_new_string(default_queries[i]));
        }
        plistx_set_string(cmd, "RequestType", type);
        plist_dict_set_item(cmd, "Queries", arr);
        mdm_command_finish(cmd, uuid, out);
        return 0;
    }
    if (mdm_command_schema_known(type))
        return mdm_command_schema_build(spec, type, sec, uuid, out, err);
    return scepter_err(err, SCEPTER_EINVAL, "command.request_type",
                       "command.request_type: '%.64s' is not one of InstallProfile, "
                       "RemoveProfile, ProfileList, DeviceInformation, CertificateList, "
                       "DeviceLock, EraseDevice, RestartDevice, ShutDownDevice, ClearPasscode, "
                       "SecurityInfo, InstalledApplicationList, AvailableOSUpdates, "
                       "ScheduleOSUpdate, Settings, DeviceConfigured (send other commands as a "
                       "raw plist)",
                       type);
}

static int raw_from_text(const char *text, size_t len, struct mdm_command *out,
                         struct scepter_error *err)
{
    plist_t root = NULL, cmd = NULL;
    const char *uuid = NULL, *type = NULL;
    int rc;

    if ((rc = plistx_parse_dict(text, len, &root, err)) != 0)
        return scepter_err(err, rc, "command.plist", "command.plist: %.200s", err->msg);
    /* Either the whole {CommandUUID, Command} or just the Command dict. */
    if (plist_dict_get_item(root, "Command") != NULL) {
        if ((rc = plistx_get_dict(root, "Command", true, &cmd, err)) != 0 ||
            (rc = plistx_get_string(root, "CommandUUID", false, &uuid, err)) < 0)
            goto fail;
        cmd = plist_copy(cmd);
    } else {
        cmd = root;
        root = NULL;
    }
    if ((rc = plistx_get_string(cmd, "RequestType", true, &type, err)) != 0)
        goto fail;
    if (*type == '\0') {
        rc = scepter_err(err, SCEPTER_EINVAL, "RequestType", "RequestType: empty");
        goto fail;
    }
    if (uuid && (*uuid == '\0' || strlen(uuid) >= UUID_STR_LEN)) {
        rc = scepter_err(err, SCEPTER_EINVAL, "CommandUUID", "CommandUUID: empty or too long");
        goto fail;
    }
    {
        char u[UUID_STR_LEN] = "";
        if (uuid)
            str_copy(u, sizeof(u), uuid);
        mdm_command_finish(cmd, uuid ? u : NULL, out);
    }
    plist_free(root);
    return 0;
fail:
    if (err && err->field[0] && strncmp(err->field, "command.", 8) != 0) {
        char f[sizeof(err->field)];
        str_copy(f, sizeof(f), "command.plist.");
        str_append(f, sizeof(f), err->field);
        str_copy(err->field, sizeof(err->field), f);
    }
    if (cmd != root)
        plist_free(cmd);
    plist_free(root);
    return rc < 0 ? rc : SCEPTER_EINVAL;
}

int mdm_command_from_json(json_t *spec, struct mdm_command *out, struct scepter_error *err)
{
    return mdm_command_from_json_for(spec, NULL, out, err);
}

int mdm_command_from_json_for(json_t *spec, const struct mdm_device_secrets *sec,
                              struct mdm_command *out, struct scepter_error *err)
{
    const char *type = NULL, *plist = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(spec))
        return scepter_err(err, SCEPTER_EINVAL, "command", "command: expected an object");
    if ((rc = jsonx_get_string(spec, "plist", "command.", false, &plist, err)) < 0)
        return rc;
    if (plist != NULL) {
        static const char *const keys[] = {"plist", NULL};
        if ((rc = jsonx_only_keys(spec, keys, "command.", err)) != 0)
            return rc;
        return raw_from_text(plist, strlen(plist), out, err);
    }
    if ((rc = jsonx_get_string(spec, "request_type", "command.", true, &type, err)) != 0)
        return rc < 0 ? rc : SCEPTER_EINVAL;
    return typed_from_json(spec, type, sec, out, err);
}

json_t *mdm_plist_to_json(plist_t node)
{
    switch (plist_get_node_type(node)) {
    case PLIST_DICT: {
        json_t *obj = json_object();
        plist_dict_iter it = NULL;
        char *key = NULL;
        plist_t val = NULL;
        plist_dict_new_iter(node, &it);
        for (;;) {
            plist_dict_next_item(node, it, &key, &val);
            if (val == NULL)
                break;
            json_object_set_new(obj, key, mdm_plist_to_json(val));
            free(key);
            key = NULL;
        }
        free(it);
        return obj;
    }
    case PLIST_ARRAY: {
        json_t *arr = json_array();
        for (uint32_t i = 0; i < plist_array_get_size(node); i++)
            json_array_append_new(arr, mdm_plist_to_json(plist_array_get_item(node, i)));
        return arr;
    }
    case PLIST_STRING:
        return json_string(plist_get_string_ptr(node, NULL));
    case PLIST_BOOLEAN:
        return json_boolean(plist_bool_val_is_true(node));
    case PLIST_UINT: {
        uint64_t v = 0;
        plist_get_uint_val(node, &v);
        return json_integer((json_int_t)v);
    }
    case PLIST_REAL: {
        double d = 0;
        plist_get_real_val(node, &d);
        return json_real(d);
    }
    case PLIST_DATA: {
        uint64_t len = 0;
        const char *p = plist_get_data_ptr(node, &len);
        char *b64 = base64_encode(p, (size_t)len);
        json_t *s = json_string(b64);
        free(b64);
        return s;
    }
    case PLIST_DATE: {
        int32_t sec = 0, usec = 0;
        char buf[32];
        plist_get_date_val(node, &sec, &usec);
        /* plist dates count from 2001-01-01 */
        time_t t = (time_t)sec + 978307200;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        return json_string(buf);
    }
    default:
        return json_null();
    }
}
