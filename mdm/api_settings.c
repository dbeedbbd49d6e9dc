/*
 * The operator API's settings:
 *
 *   GET /v1/pushcert          the APNs certificate's topic and expiry, and the APNs state
 *   PUT /v1/pushcert          install a push certificate: {"cert_pem", "key_pem"} or
 *                             {"pkcs12", "password"}; a topic change needs
 *                             "confirm_topic_change": true (or ?force=true, as scepterctl sends)
 *   GET /v1/apikeys           operator keys (name, hash prefix, last used)
 *   POST /v1/apikeys          {"name"}: a new key, shown once
 *   DELETE /v1/apikeys/{id}
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/api_int.h"
#include "mdm/push_int.h"

void api_pushcert_show(struct api_call *c)
{
    struct scepter_error err;
    struct store_pushcert pc;
    struct apns_stats st;
    json_t *j;
    memset(&pc, 0, sizeof(pc));
    if (store_pushcert_get(c->ctx->store, &pc, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    j = json_pack("{s:s,s:o,s:o,s:I}", "topic", pc.topic, "not_after", api_time(pc.not_after),
                  "updated", api_time(pc.updated), "version", (json_int_t)pc.version);
    if (mdm_push_state(c->ctx->srv, &st) == 0)
        json_object_set_new(
            j, "apns",
            json_pack("{s:s,s:i}", "state", apns_state_name(st.state), "connections", st.conns_up));
    store_pushcert_clear(&pc);
    api_reply_json(c, 200, j);
}

void api_pushcert_put(struct api_call *c)
{
    struct scepter_error err;
    static const char *const keys[] = {
        "cert_pem", "key_pem", "pkcs12", "password", "confirm_topic_change", NULL};
    const char *cert = NULL, *key = NULL, *p12 = NULL, *password = NULL;
    unsigned char *p12_bytes = NULL;
    size_t p12_len = 0;
    struct apns_identity *id = NULL;
    bool force = false, confirm = false;
    if (!api_need_body(c) || !api_query_bool(c, "force", &force))
        return;
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        jsonx_get_string(c->body, "cert_pem", "", false, &cert, &err) < 0 ||
        jsonx_get_string(c->body, "key_pem", "", false, &key, &err) < 0 ||
        jsonx_get_string(c->body, "pkcs12", "", false, &p12, &err) < 0 ||
        jsonx_get_string(c->body, "password", "", false, &password, &err) < 0 ||
        jsonx_get_bool(c->body, "confirm_topic_change", "", false, &confirm, &err) < 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    force = force || confirm;
    if ((cert == NULL) == (p12 == NULL)) {
        api_reply_error(c, 400, "cert_pem",
                        "send either cert_pem (+ key_pem) or pkcs12 (base64) + password");
        return;
    }
    if (p12) {
        if (base64_decode(p12, strlen(p12), false, &p12_bytes, &p12_len) != 0) {
            api_reply_error(c, 400, "pkcs12", "pkcs12: not base64");
            return;
        }
        id = apns_identity_parse(p12_bytes, p12_len, NULL, 0, password, c->now, &err);
        OPENSSL_cleanse(p12_bytes, p12_len);
        free(p12_bytes);
    } else {
        id = apns_identity_parse(cert, strlen(cert), key, key ? strlen(key) : 0, password, c->now,
                                 &err);
    }
    if (id == NULL) {
        if (strcmp(err.field, "cert") == 0)
            str_copy(err.field, sizeof(err.field), p12 ? "pkcs12" : "cert_pem");
        else if (strcmp(err.field, "key") == 0)
            str_copy(err.field, sizeof(err.field), "key_pem");
        api_reply_error(c, 400, err.field, "%s", err.msg);
        return;
    }
    if (mdm_push_install(c->ctx->srv, c->ctx->store, id, force, c->now, &err) != 0) {
        apns_identity_free(id);
        if (err.code == SCEPTER_ECONFLICT && strcmp(err.field, "topic") == 0) {
            /* Say what the change does and how to make it anyway (the store's message names
             * the devices and both topics). */
            char msg[sizeof(err.msg)];
            str_copy(msg, sizeof(msg), err.msg);
            char *cut = strstr(msg, " (force to replace anyway)");
            if (cut)
                *cut = '\0';
            api_reply_error(c, 409, "confirm_topic_change",
                            "%s. Devices enrolled with the old topic stop answering pushes until "
                            "they re-enroll; send \"confirm_topic_change\": true to install it "
                            "anyway",
                            msg);
            return;
        }
        api_reply_scepter_error(c, &err);
        return;
    }
    api_reply_json(c, 200,
                   json_pack("{s:s,s:o,s:s}", "topic", apns_identity_topic(id), "not_after",
                             api_time(apns_identity_not_after(id)), "subject",
                             apns_identity_subject(id)));
    apns_identity_free(id);
}

void api_apikey_delete(struct api_call *c)
{
    const char *id_text = c->seg[1];
    struct scepter_error err;
    int64_t id;
    if (str_to_i64(id_text, 1, INT64_MAX, &id) != 0) {
        api_reply_error(c, 404, "id", "no API key %s", id_text);
        return;
    }
    if (store_apikey_delete(c->ctx->store, id, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    api_reply_json(c, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id, "deleted", 1));
}

void api_apikeys_list(struct api_call *c)
{
    struct scepter_error err;
    struct store_apikey *k = NULL;
    size_t n = 0;
    if (store_apikey_list(c->ctx->store, &k, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:I,s:s,s:s,s:s,s:o,s:o}", "id", (json_int_t)k[i].id,
                                             "name", k[i].name, "hash_prefix", k[i].hash_prefix,
                                             "role", store_role_name(k[i].role), "created",
                                             api_time(k[i].created), "last_used",
                                             api_time(k[i].last_used)));
    store_apikeys_free(k, n);
    api_reply_json(c, 200, json_pack("{s:o}", "api_keys", arr));
}

void api_apikey_create(struct api_call *c)
{
    static const char *const keys[] = {"name", "role", NULL};
    struct scepter_error err;
    const char *name = NULL, *role_name = "operator";
    enum store_role role = STORE_ROLE_NONE;
    unsigned char raw[32], md[CRYPTO_SHA256_LEN];
    char hex[CRYPTO_SHA256_HEX_LEN], *key;
    int64_t id = 0;
    if (!api_need_body(c))
        return;
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        jsonx_get_string(c->body, "name", "", true, &name, &err) != 0 ||
        jsonx_get_string(c->body, "role", "", false, &role_name, &err) < 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    if (*name == '\0' || strlen(name) > 128) {
        api_reply_error(c, 400, "name", "name: must be 1 to 128 characters");
        return;
    }
    /* Without "role" a new key is an operator: keys for automation rarely need accounts. */
    if (store_role_parse(role_name, &role) != 0) {
        api_reply_error(c, 400, "role", "role: '%s' is not one of admin, operator, viewer",
                        role_name);
        return;
    }
    RAND_bytes(raw, sizeof(raw));
    char *hexkey = hex_encode(raw, sizeof(raw), false);
    key = xasprintf("scp_%s", hexkey);
    free(hexkey);
    crypto_sha256(key, strlen(key), md);
    hex_encode_to(md, sizeof(md), hex, false);
    if (store_apikey_create(c->ctx->store, name, hex, role, c->now, &id, &err) != 0) {
        free(key);
        api_reply_scepter_error(c, &err);
        return;
    }
    log_kv(LOG_LVL_INFO, "apikey_created", "name", name, "role", store_role_name(role), NULL);
    api_audit_summary(c, "name %s, role %s", name, store_role_name(role));
    api_reply_json(c, 201,
                   json_pack("{s:I,s:s,s:s,s:s,s:s}", "id", (json_int_t)id, "name", name, "role",
                             store_role_name(role), "key", key, "note",
                             "the key is shown once; only its hash is stored"));
    OPENSSL_cleanse(key, strlen(key));
    free(key);
}
