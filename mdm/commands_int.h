/*
 * Private to mdm/: building MDM command plists (mdm/commands.c).
 */
#ifndef SCEPTER_MDM_COMMANDS_INT_H
#define SCEPTER_MDM_COMMANDS_INT_H

#include <stdbool.h>

#include <jansson.h>
#include <plist/plist.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/uuid.h"

/* A command ready to queue: its UUID, RequestType and the {CommandUUID, Command} plist. */
struct mdm_command {
    char uuid[UUID_STR_LEN];
    char *request_type;
    struct buf plist;
};
void mdm_command_clear(struct mdm_command *c);

/* InstallProfile carrying the profile bytes (plist or CMS-signed); uuid NULL = fresh. */
void mdm_command_install_profile(const void *profile, size_t len, const char *uuid,
                                 struct mdm_command *out);
/* RemoveProfile of the top-level PayloadIdentifier. */
void mdm_command_remove_profile(const char *identifier, const char *uuid, struct mdm_command *out);
/* Wrap a Command dict (taken over) into {CommandUUID, Command}; uuid NULL = fresh. */
void mdm_command_finish(plist_t command, const char *uuid, struct mdm_command *out);
/* A command with no parameters (e.g. DeviceConfigured). */
void mdm_command_simple(const char *request_type, const char *uuid, struct mdm_command *out);

/* What the server holds for one device that a command may need (ClearPasscode). */
struct mdm_device_secrets {
    const unsigned char *unlock_token; /* escrowed at TokenUpdate, or NULL */
    size_t unlock_token_len;
};

/*
 * An operator's command: typed {"request_type": "InstallProfile", "payload": base64} |
 * {"request_type": "RemoveProfile", "identifier"} | {"request_type": "ProfileList" |
 * "CertificateList", "managed_only"?} | {"request_type": "DeviceInformation", "queries"?} |
 * one of the schema-described types of mdm/command_schema.c with Apple's key names
 * ({"request_type": "DeviceLock", "Message": "..."}), each with an optional "uuid"; or raw
 * {"plist": "<XML of {CommandUUID?, Command} or of the Command dict>"}.
 * SCEPTER_EINVAL naming the field ("command.payload", ...) on bad input.
 */
int mdm_command_from_json(json_t *spec, struct mdm_command *out, struct scepter_error *err) WUR;
/* The same for one device: sec (may be NULL: no device) supplies ClearPasscode's UnlockToken;
 * ClearPasscode without it is SCEPTER_ECONFLICT. */
int mdm_command_from_json_for(json_t *spec, const struct mdm_device_secrets *sec,
                              struct mdm_command *out, struct scepter_error *err) WUR;

/* mdm/command_schema.c: the typed commands described after Apple's command schemas. */
bool mdm_command_schema_known(const char *request_type);
/* The i-th described RequestType, NULL past the end (for tests and documentation). */
const char *mdm_command_schema_type(size_t i);
/* Build a described command from the operator's JSON (Apple's key names); SCEPTER_EINVAL
 * naming the key path on bad input. */
int mdm_command_schema_build(json_t *spec, const char *type, const struct mdm_device_secrets *sec,
                             const char *uuid, struct mdm_command *out,
                             struct scepter_error *err) WUR;

/* A plist as JSON (data as base64 text, dates as ISO 8601); caller json_decref()s. */
json_t *mdm_plist_to_json(plist_t node);

#endif
