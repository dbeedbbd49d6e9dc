/*
 * Private to mdm/: Declarative Device Management (mdm/ddm.c).
 *
 * Declarations are computed, never stored: for a device, every SCEP Profiles policy with
 * "ddm": true that reaches it (directly or through a group) yields four declarations when the
 * device is DDM-capable for them (iOS/iPadOS 17+, macOS 14+, from its record's OSVersion):
 *
 *   asset          <prefix>.policy.<uid>.scep      com.apple.asset.credential.scep
 *                  Reference.DataURL = <public_url>/mdm/ddm/asset/<uid>, Authentication MDM,
 *                  Hash-SHA-256 of the credential data (so the token follows the data)
 *   configuration  <prefix>.policy.<uid>.identity  com.apple.configuration.security.identity
 *                  CredentialAssetReference = the asset, KeyIsExtractable
 *   activation     <prefix>.policy.<uid>.activation com.apple.activation.simple
 *                  StandardConfigurations = [the configuration]
 * and, when the policy has a root certificate, a com.apple.asset.credential.certificate
 * <p>.root (PEM at <DataURL of the SCEP asset>/root) with the
 * com.apple.configuration.security.certificate <p>.root-certificate installing it, activated
 * before the identity; plus, once for the device, management <prefix>.ddm.server-capabilities
 * (com.apple.management.server-capabilities).
 *
 * ServerToken = the first 40 hex digits of SHA-256 over the declaration's canonical JSON
 * (sorted keys, compact) without the ServerToken: a declaration that did not change keeps its
 * token.  Declarations whose content does not depend on the device (everything but an asset
 * whose policy uses server-side variables) are the same bytes for every device.  The
 * DeclarationsToken is the same digest over the sorted (kind, identifier, token) list.
 */
#ifndef SCEPTER_MDM_DDM_INT_H
#define SCEPTER_MDM_DDM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mdm/mdm_int.h"

#define DDM_TOKEN_LEN 40

enum ddm_kind { DDM_ACTIVATION = 0, DDM_ASSET, DDM_CONFIGURATION, DDM_MANAGEMENT, DDM_KINDS };
/* "activation", ... as in the declaration/<kind>/<id> endpoint. */
const char *ddm_kind_name(enum ddm_kind k);
/* "activations", ... as in the status item management.declarations (and the store). */
const char *ddm_kind_status_key(enum ddm_kind k);
/* "Activations", ... as in DeclarationItemsResponse.Declarations. */
const char *ddm_kind_items_key(enum ddm_kind k);

/*
 * The status items every DDM-capable device is subscribed to (a
 * com.apple.configuration.management.status-subscriptions configuration <prefix>.ddm.status-
 * subscriptions, activated by <prefix>.ddm.status-activation): the facts the device record
 * keeps.  Only items Apple allows on every enrollment type (device.identifier.serial-number
 * is not allowed on a User Enrollment; the serial comes from Authenticate anyway).
 */
#define DDM_SUBSCRIBED_N 3
extern const char *const ddm_subscribed_items[DDM_SUBSCRIBED_N];

/* One computed declaration. */
struct ddm_decl {
    enum ddm_kind kind;
    char *identifier;
    char token[DDM_TOKEN_LEN + 1];
    json_t *json; /* {"Type", "Identifier", "ServerToken", "Payload"} (owned) */
};

/* Everything one device should hold. */
struct ddm_set {
    struct ddm_decl *v;
    size_t n;
    char token[DDM_TOKEN_LEN + 1]; /* DeclarationsToken */
    int64_t changed;               /* latest update of the policies it comes from (Timestamp) */
};
void ddm_set_clear(struct ddm_set *s);

/* A DDM policy reaching the device. */
struct ddm_policy_in {
    const char *uid; /* the policy's fixed uid */
    int64_t updated;
    const struct profile_policy *policy;
};

/*
 * Does the policy go over DDM where devices support it: "ddm": true, the device keychain (a
 * user-keychain policy goes to user channels as a profile) and no linked Wi-Fi/Ethernet/VPN
 * payloads (not rendered as declarations yet: such a policy stays a profile everywhere)?
 */
bool ddm_policy(const struct profile_policy *p);
/* Does the device run an OS whose DDM can install a SCEP credential asset? */
bool ddm_capable(enum store_platform platform, const char *os_version);

/*
 * The SCEP credential of a policy for a device (com.apple.credential.scep: URL, Name, Subject,
 * Challenge, Keysize, Key Usage, CAFingerprint, Retries, RetryDelay, SubjectAltName), with the
 * device's variables resolved as for its profile, as canonical JSON text (caller frees).  NULL
 * with err naming the variable when the device lacks a fact the policy needs.
 */
char *ddm_scep_credential(const struct profile_policy *p, const char *identifier,
                          const struct profile_device *dev, struct scepter_error *err);

/* The policy's root certificate as PEM (caller frees), NULL when it has none. */
char *ddm_root_pem(const struct profile_policy *p);

/*
 * The declarations of one device (pure).  prefix is payload_identifier_prefix, base_url the
 * public https URL.  A policy the device cannot be rendered for (a missing fact) is left out
 * and reported in *skipped (JSON array of {"policy", "error"}; may be NULL).
 */
int ddm_compute(const struct ddm_policy_in *pol, size_t npol, const struct profile_device *dev,
                const char *prefix, const char *base_url, struct ddm_set *out, json_t *skipped,
                struct scepter_error *err) WUR;

/*
 * What computing many devices' declarations shares (a policy save, a group change): each
 * policy's template and its declarations that do not depend on the device (all of them when
 * its credential has no server-side variable), the declarations every device gets, and the
 * policies read from the store.  Per device only the credential asset of a policy with
 * variables is rendered.  Valid while the policies it saw do not change (one request).
 */
struct ddm_cache;
struct ddm_cache *ddm_cache_new(void);
void ddm_cache_free(struct ddm_cache *c);
/* ddm_compute with a cache (NULL: none). */
int ddm_compute_cached(const struct ddm_policy_in *pol, size_t npol,
                       const struct profile_device *dev, const char *prefix, const char *base_url,
                       struct ddm_cache *cache, struct ddm_set *out, json_t *skipped,
                       struct scepter_error *err) WUR;

/* A status report (the JSON in a `status` request's Data), parsed. */
struct ddm_report {
    json_t *root;                   /* owns the strings below */
    struct store_ddm_status *items; /* borrowed strings, reasons_json owned */
    size_t n;
    bool has_declarations; /* StatusItems.management.declarations was present */
    const char *os_version, *build_version, *model_family;
};
/* SCEPTER_EINVAL naming the field ("StatusItems.management.declarations.assets[0].valid"). */
int ddm_report_parse(const void *data, size_t len, struct ddm_report *out,
                     struct scepter_error *err) WUR;
void ddm_report_clear(struct ddm_report *r);

/* The declarations a device should hold now, from the store (ctx's policies and device). */
int mdm_ddm_device_set(struct mdm_ctx *ctx, const char *device_id, struct ddm_set *out,
                       struct scepter_error *err) WUR;

/* The DeclarativeManagement check-in message (after the identity was checked against ids). */
void mdm_ddm_checkin(struct mdm_ctx *ctx, plist_t body, const struct mdm_ids *ids, int64_t now,
                     struct mdm_reply *reply);
/* GET /mdm/ddm/asset/<uid>: a credential asset's data, for the device whose identity asks. */
void mdm_ddm_asset_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                          struct mdm_reply *reply);

/* ---------------------------------------------------------------------------------------- */
/* The DeclarativeManagement command and the policy hooks (mdm/policy.c)                     */

struct mdm_command;

/* A policy being saved (pp as it will be stored) or deleted (pp as it was, reaches false). */
struct mdm_ddm_change {
    const char *uid;
    const struct profile_policy *pp;
    int64_t updated; /* the save's time */
};

/* The DeclarativeManagement command carrying a set's SyncTokens (base64 JSON in Data). */
void mdm_ddm_command(const struct ddm_set *s, struct mdm_command *out);

/*
 * Does this change reach the device over DDM?  1 when the policy is a DDM policy and the device
 * is DDM-capable: *out is the DeclarativeManagement command with the device's tokens after the
 * change (the policy counted for the device when reaches, left out otherwise; cache, or NULL,
 * shared by the calls of one save).  0: the device
 * keeps the profile channel (*out untouched).  Negative with err on a store failure.
 */
int mdm_ddm_sync_command(struct mdm_ctx *ctx, const char *device_id,
                         const struct mdm_ddm_change *ch, bool reaches, struct ddm_cache *cache,
                         struct mdm_command *out, struct scepter_error *err) WUR;

/*
 * The same for a save's target whose facts and policies (their ids, from
 * store_policies_for_devices) are known: no store read but the policies the cache has not
 * seen yet.
 */
int mdm_ddm_sync_command_for(struct mdm_ctx *ctx, const struct store_target_device *t,
                             const int64_t *policy_ids, size_t npolicies,
                             const struct mdm_ddm_change *ch, bool reaches, struct ddm_cache *cache,
                             struct mdm_command *out, struct scepter_error *err) WUR;

/*
 * For GET /v1/policies/{id}/status: add to entries[i], the JSON of st[i], "delivery" ("ddm" or
 * "profile") and, on the DDM channel, "ddm": what the device last reported of the policy's
 * declarations ({"state": "active"|"inactive"|"invalid"|"unknown", "declarations": [...]}).
 * One store query for all of them.
 */
void mdm_ddm_policy_status_json(struct mdm_ctx *ctx, const char *uid, bool policy_ddm,
                                const struct store_policy_device_status *st, size_t n,
                                json_t *const *entries);

#endif
