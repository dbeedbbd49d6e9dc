/*
 * Fuzz target: what a device sends.  Every input goes through the real handlers —
 * mdm_checkin_handle and mdm_command_handle, as a verified device whose certificate is bound
 * to the seeds' UDID — on a temporary SQLite store, so the plist parser, the identifier
 * rules, each message's typed lookups, the ErrorChain conversion, the result recording and
 * the store calls all see the bytes as the server would.  The same bytes also go through the
 * Mdm-Signature parser as a header.  Nothing here may crash, leak or read out of bounds,
 * whatever the bytes.
 *
 * The store lives in a fresh /tmp/scepter-test.<tag>.* directory (removed at exit): the device of
 * the seeds is authenticated and enrolled there, with the commands of the seeds queued.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/codec.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/mdm_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the seeds (tests/data/device-plists, seeds/) name. */
#define SEED_UDID  "66ADE930-5FDF-5EC4-8429-15640684C489"
#define SEED_TOPIC "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9"
static const char *const seed_commands[] = {"76eda240-5488-4989-8339-f2ae160113c4",
                                            "7e761ec5-9e20-42d1-9072-3d5a611e3ac5",
                                            "0F3C5E5A-6E0B-4C2B-9E3F-0D8C7B6A5F41"};
#define NOW 1700000000 /* the handlers' clock; the certificates are valid around it */

static struct {
    char dir[256];
    struct mdm_server *srv;
    struct mdm_ctx ctx;
    struct store *store;
    X509 *device;
    char device_hash[CRYPTO_SHA256_HEX_LEN];
} F;

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_device_body: %s: %s\n", what, msg);
    abort();
}

/* A P-256 certificate for cn, valid from NOW - 1 day to NOW + 1 day, signed by issuer (or
 * self-signed). */
static X509 *cert_new(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), issuer ? 2 : 1);
    X509_time_adj_ex(X509_getm_notBefore(x), -1, 0, &(time_t){NOW});
    X509_time_adj_ex(X509_getm_notAfter(x), 1, 0, &(time_t){NOW});
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_NAME_free(name);
    X509_set_pubkey(x, key);
    if (issuer == NULL) {
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "CA:TRUE");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) <= 0)
        die("certificate", "X509_sign failed");
    return x;
}

static void cleanup(void)
{
    char *cmd;

    store_close(F.store);
    mdm_server_core_free(F.srv);
    X509_free(F.device);
    if (F.dir[0]) {
        cmd = xasprintf("rm -rf '%s'", F.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "fuzz_device_body: could not remove %s\n", F.dir);
        free(cmd);
    }
}

static void enqueue(const char *uuid)
{
    struct scepter_error err;
    struct store_command c;
    const char *ids[1] = {SEED_UDID};
    char *xml = xasprintf("<plist version=\"1.0\"><dict><key>CommandUUID</key><string>%s</string>"
                          "<key>Command</key><dict><key>RequestType</key>"
                          "<string>DeviceInformation</string></dict></dict></plist>",
                          uuid);

    memset(&c, 0, sizeof(c));
    str_copy(c.uuid, sizeof(c.uuid), uuid);
    c.request_type = "DeviceInformation";
    c.plist = (const unsigned char *)xml;
    c.plist_len = strlen(xml);
    if (store_enqueue(F.store, &c, ids, 1, NOW, &err) != 0)
        die("enqueue", err.msg);
    free(xml);
}

static void setup(void)
{
    struct scepter_error err;
    const char *tag = getenv("SCEPTER_TEST_TAG");
    EVP_PKEY *ca_key, *dev_key;
    X509 *ca;
    struct cfg *cfg;
    char *url;
    static const unsigned char token[32] = {1};
    bool first;

    log_init(LOG_LVL_ERROR, LOG_FMT_TEXT);
    /* named as the suite's temporary directories, so leftovers_check sees one left behind */
    snprintf(F.dir, sizeof(F.dir), "/tmp/scepter-test.%s.XXXXXX", tag && *tag ? tag : "fuzz");
    if (mkdtemp(F.dir) == NULL)
        die("mkdtemp", F.dir);
    atexit(cleanup);

    ca_key = EVP_EC_gen("P-256");
    dev_key = EVP_EC_gen("P-256");
    ca = cert_new("Fuzz Device CA", ca_key, NULL, NULL);
    F.device = cert_new(SEED_UDID, dev_key, ca, ca_key);
    crypto_cert_sha256_hex(F.device, F.device_hash);

    cfg = cfg_new();
    if (cfg_set(cfg, "identity", "mtls", "fuzz", &err) != 0 ||
        cfg_set(cfg, "push_topic", SEED_TOPIC, "fuzz", &err) != 0 ||
        cfg_set(cfg, "user_authenticate", "true", "fuzz", &err) != 0 ||
        cfg_set(cfg, "webhook_url", "https://127.0.0.1:9/hook", "fuzz", &err) != 0)
        die("configuration", err.msg);
    if ((F.srv = mdm_server_core_new(cfg, &err)) == NULL)
        die("server", err.msg);
    /* the device CA, in memory (the snapshot frees it) */
    F.srv->conf->idcfg.device_ca = X509_STORE_new();
    X509_STORE_add_cert(F.srv->conf->idcfg.device_ca, ca);
    X509_STORE_set_purpose(F.srv->conf->idcfg.device_ca, X509_PURPOSE_ANY);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(dev_key);

    url = xasprintf("sqlite:%s/fuzz.db", F.dir);
    if (store_open(url, &F.store, &err) != 0)
        die("store", err.msg);
    /* A throwaway database: no waiting for the disk (the inputs write on every check-in). */
    if (store_exec_sql(F.store, "PRAGMA synchronous=OFF", &err) != 0)
        die("store", err.msg);
    free(url);
    F.ctx.srv = F.srv;
    F.ctx.cfg = F.srv->conf->cfg;
    F.ctx.conf = F.srv->conf;
    F.ctx.store = F.store;

    struct store_authenticate a = {.device_id = SEED_UDID,
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = SEED_TOPIC,
                                   .cert_hash = F.device_hash};
    struct store_token_update t = {.enrollment_id = SEED_UDID,
                                   .device_id = SEED_UDID,
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = SEED_TOPIC,
                                   .token = token,
                                   .token_len = sizeof(token),
                                   .push_magic = "FUZZ-MAGIC"};
    if (store_authenticate(F.store, &a, NOW, NULL, &err) != 0 ||
        store_token_update(F.store, &t, NOW, &first, &err) != 0)
        die("enroll", err.msg);
    for (size_t i = 0; i < sizeof(seed_commands) / sizeof(seed_commands[0]); i++)
        enqueue(seed_commands[i]);
}

static const char *content_type;

static const char *header(const void *arg, const char *name)
{
    (void)arg;
    return strcmp(name, "Content-Type") == 0 ? content_type : NULL;
}

static const char *signature_header(const void *arg, const char *name)
{
    return strcmp(name, "Mdm-Signature") == 0 ? arg : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mdm_request req;
    struct mdm_reply reply;
    /* The worker's cache of verified certificates, as the server has one: the device's chain
     * to its CA (the same certificate for every input) is verified once, not per input. */
    static struct mdm_idcache verified;

    if (F.store == NULL)
        setup();
    /* the real handlers, as a verified device: check-in, then the command channel */
    memset(&req, 0, sizeof(req));
    req.idcache = &verified;
    req.method = MDM_PUT;
    req.body = data;
    req.body_len = size;
    req.header = header;
    req.peer_addr = "127.0.0.1";
    req.tls = true;
    req.peer_cert = F.device;
    str_copy(req.id, sizeof(req.id), "fuzz");
    req.path = "/mdm/checkin";
    content_type = "application/x-apple-aspen-mdm-checkin";
    mdm_reply_init(&reply);
    mdm_route(&F.ctx, &req, NOW, &reply);
    if (reply.status < 200 || reply.status > 599)
        die("check-in", "a reply without a status");
    mdm_reply_free(&reply);
    req.path = "/mdm/connect";
    content_type = "application/x-apple-aspen-mdm";
    mdm_reply_init(&reply);
    mdm_route(&F.ctx, &req, NOW, &reply);
    if (reply.status < 200 || reply.status > 599)
        die("connect", "a reply without a status");
    mdm_reply_free(&reply);

    /* the same bytes as an Mdm-Signature over an empty body */
    struct scepter_error err;
    char *b64 = base64_encode(data, size);
    struct mdm_identity_cfg cfg = {MDM_ID_SIGNATURE, NULL, NULL, NULL};
    struct mdm_identity id;
    static struct mdm_idcache cache; /* the fast path: certificates taken out of the CMS */
    memset(&req, 0, sizeof(req));
    req.idcache = (size & 1) ? &cache : NULL;
    req.header = signature_header;
    req.header_arg = b64;
    if (mdm_identity_get(&cfg, &req, 0, &id, &err) == 0)
        mdm_identity_clear(&id);
    free(b64);
    return 0;
}
