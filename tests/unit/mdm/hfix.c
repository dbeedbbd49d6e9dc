/*
 * The handler tests' fixture (see hfix.h).
 */
#include "hfix.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "support/pki.h"
#include "support/support.h"

struct hf hf;

static struct tu_cert ca, other_ca, certs[HF_ID_COUNT], signer;

#define YEAR (365L * 86400)

/* The request's headers: a fixed table. */
static const char *hdr_content_type, *hdr_signature;

static const char *hdr_fn(const void *arg, const char *name)
{
    (void)arg;
    if (strcasecmp(name, "Content-Type") == 0)
        return hdr_content_type;
    if (strcasecmp(name, "Mdm-Signature") == 0)
        return hdr_signature;
    return NULL;
}

static void set(struct cfg *cfg, const char *key, const char *value)
{
    struct scepter_error err;

    cr_assert_eq(cfg_set(cfg, key, value, "hfix", &err), 0, "%s: %s", key, err.msg);
}

void hf_setup(void)
{
    struct scepter_error err;
    char *path, *key;
    long now_off = (long)(HF_NOW - time(NULL));
    struct tu_cert_opts o = {
        .cn = "HF Device CA", .not_before = now_off - 5 * YEAR, .not_after = now_off + 10 * YEAR};

    log_init(LOG_LVL_ERROR, LOG_FMT_TEXT);
    memset(&hf, 0, sizeof(hf));
    hf.dir = tu_tmpdir();
    ca = tu_ca_new(&o);
    o.cn = "HF Other CA";
    other_ca = tu_ca_new(&o);
    o.cn = HF_UDID_A;
    certs[HF_ID_A] = tu_cert_issue(&ca, &o);
    certs[HF_ID_A2] = tu_cert_issue(&ca, &o);
    certs[HF_ID_FOREIGN] = tu_cert_issue(&other_ca, &o);
    o.cn = HF_UDID_B;
    certs[HF_ID_B] = tu_cert_issue(&ca, &o);
    o.cn = "HF Profile Signer";
    signer = tu_cert_issue(&ca, &o);
    for (int i = HF_ID_A; i < HF_ID_COUNT; i++)
        crypto_cert_sha256_hex(certs[i].cert, hf.hash[i]);

    hf.cfg = cfg_new();
    path = xasprintf("%s/device-ca.pem", hf.dir);
    tu_cert_write(&ca, path, NULL);
    set(hf.cfg, "device_ca_file", path);
    free(path);
    path = xasprintf("%s/signer.pem", hf.dir);
    key = xasprintf("%s/signer.key", hf.dir);
    tu_cert_write(&signer, path, key);
    set(hf.cfg, "signing_cert_file", path);
    set(hf.cfg, "signing_key_file", key);
    /* GetToken: the server's Apple Business Manager identity (any RSA key serves a test). */
    set(hf.cfg, "maid_server_uuid", HF_MAID_SERVER_UUID);
    set(hf.cfg, "maid_key_file", key);
    free(path);
    free(key);
    set(hf.cfg, "identity", "mtls");
    set(hf.cfg, "push_topic", HF_TOPIC);
    /* Events are queued in the store's outbox; nothing is delivered without a worker. */
    set(hf.cfg, "webhook_url", "https://127.0.0.1:9/hook");
    hf.srv = mdm_server_core_new(hf.cfg, &err);
    cr_assert_not_null(hf.srv, "mdm_server_core_new: %s", err.msg);
    hf.ctx.srv = hf.srv;
    hf.ctx.cfg = hf.srv->conf->cfg;
    hf.ctx.conf = hf.srv->conf;
}

void hf_teardown(void)
{
    store_close(hf.store);
    mdm_server_core_free(hf.srv);
    for (int i = 0; i < HF_ID_COUNT; i++)
        tu_cert_free(&certs[i]);
    tu_cert_free(&ca);
    tu_cert_free(&other_ca);
    tu_cert_free(&signer);
    if (hf.dir)
        tu_rmtree(hf.dir);
    free(hf.dir);
    memset(&hf, 0, sizeof(hf));
}

static void authenticate(const char *udid, enum hf_id id)
{
    struct scepter_error err;
    struct store_authenticate a = {.device_id = udid,
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = HF_TOPIC,
                                   .cert_hash = hf.hash[id],
                                   .facts = {.product_name = "MacBookPro18,3"}};

    cr_assert_eq(store_authenticate(hf.store, &a, HF_NOW - 100, NULL, &err), 0, "%s", err.msg);
}

static void token_update(const char *udid)
{
    static const unsigned char token[32] = {1, 2, 3};
    struct scepter_error err;
    bool first = false;
    struct store_token_update t = {.enrollment_id = udid,
                                   .device_id = udid,
                                   .type = STORE_ENROLL_DEVICE,
                                   .topic = HF_TOPIC,
                                   .token = token,
                                   .token_len = sizeof(token),
                                   .push_magic = "MAGIC-0001"};

    cr_assert_eq(store_token_update(hf.store, &t, HF_NOW - 90, &first, &err), 0, "%s", err.msg);
}

void hf_reset(enum hf_state st)
{
    struct scepter_error err;
    char *url, *path;
    unsigned char *data;
    size_t len;

    store_close(hf.store);
    hf.store = NULL;
    /* Each row starts from a copy of one migrated, empty database (migrating per row would
     * cost most of the suite's time). */
    path = xasprintf("%s/template.db", hf.dir);
    if (access(path, F_OK) != 0) {
        url = xasprintf("sqlite:%s", path);
        cr_assert_eq(store_open(url, &hf.store, &err), 0, "%s", err.msg);
        store_close(hf.store); /* checkpoints: the whole database is in the file */
        hf.store = NULL;
        free(url);
    }
    data = tu_read(path, &len);
    free(path);
    path = xasprintf("%s/row-%d.db", hf.dir, ++hf.row);
    tu_write(path, data, len);
    free(data);
    url = xasprintf("sqlite:%s", path);
    cr_assert_eq(store_open(url, &hf.store, &err), 0, "%s", err.msg);
    free(url);
    free(path);
    hf.ctx.store = hf.store;
    if (st == HF_EMPTY)
        return;
    authenticate(HF_UDID_B, HF_ID_B);
    token_update(HF_UDID_B);
    if (st == HF_UNKNOWN)
        return;
    authenticate(HF_UDID_A, HF_ID_A);
    if (st == HF_AUTHED)
        return;
    token_update(HF_UDID_A);
    if (st == HF_CHECKED_OUT)
        cr_assert_eq(store_checkout(hf.store, HF_UDID_A, HF_NOW - 50, &err), 0, "%s", err.msg);
}

char *hf_body(const char *dict_fragment)
{
    return xasprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
                     "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                     "<plist version=\"1.0\"><dict>%s</dict></plist>\n",
                     dict_fragment);
}

void hf_route(const struct hf_req *r, struct mdm_reply *reply)
{
    struct mdm_request req;

    memset(&req, 0, sizeof(req));
    req.method = r->method ? r->method : MDM_PUT;
    req.path = r->path;
    req.body = (const unsigned char *)(r->body ? r->body : "");
    req.body_len = r->body_len ? r->body_len : strlen((const char *)req.body);
    req.header = hdr_fn;
    req.peer_addr = "127.0.0.1";
    req.tls = true;
    req.defer_idle = r->defer_idle;
    req.peer_cert = r->id == HF_ID_NONE ? NULL : certs[r->id].cert;
    snprintf(req.id, sizeof(req.id), "hf-%d", hf.row);
    hdr_content_type = r->content_type;
    hdr_signature = r->mdm_signature;
    mdm_reply_init(reply);
    if (strcmp(r->path, "checkin") == 0)
        mdm_checkin_handle(&hf.ctx, &req, HF_NOW, reply);
    else if (strcmp(r->path, "connect") == 0)
        mdm_command_handle(&hf.ctx, &req, HF_NOW, reply);
    else
        mdm_route(&hf.ctx, &req, HF_NOW, reply);
}

void hf_checkin(enum hf_id id, const char *body, struct mdm_reply *reply)
{
    struct hf_req r = {.path = "checkin",
                       .method = MDM_PUT,
                       .content_type = "application/x-apple-aspen-mdm-checkin",
                       .id = id,
                       .body = body};
    hf_route(&r, reply);
}

void hf_connect(enum hf_id id, const char *body, struct mdm_reply *reply)
{
    struct hf_req r = {.path = "connect",
                       .method = MDM_PUT,
                       .content_type = "application/x-apple-aspen-mdm",
                       .id = id,
                       .body = body};
    hf_route(&r, reply);
}

char *hf_signature(enum hf_id id, const char *body)
{
    return tu_mdm_signature(&certs[id], body, strlen(body));
}

const char *hf_text(struct mdm_reply *reply)
{
    buf_putc(&reply->body, '\0');
    reply->body.len--;
    return (const char *)reply->body.data;
}

/* A command the way the API queues one: {CommandUUID, Command {RequestType}}. */
void hf_enqueue(const char *enrollment_id, unsigned n, const char *request_type, char uuid[37])
{
    struct scepter_error err;
    struct store_command c;
    char *xml;

    memset(&c, 0, sizeof(c));
    snprintf(uuid, 37, "00000000-0000-4000-8000-%012X", n);
    xml = xasprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>"
                    "<key>CommandUUID</key><string>%s</string>"
                    "<key>Command</key><dict><key>RequestType</key><string>%s</string></dict>"
                    "</dict></plist>\n",
                    uuid, request_type);
    snprintf(c.uuid, sizeof(c.uuid), "%s", uuid);
    c.request_type = request_type;
    c.plist = (const unsigned char *)xml;
    c.plist_len = strlen(xml);
    cr_assert_eq(store_enqueue(hf.store, &c, &enrollment_id, 1, HF_NOW - 10 + (int64_t)n, &err), 0,
                 "%s", err.msg);
    free(xml);
}

bool hf_enrolled(const char *enrollment_id)
{
    struct scepter_error err;
    struct store_enrollment e;
    bool on;
    int rc;

    memset(&e, 0, sizeof(e));
    rc = store_enrollment_get(hf.store, enrollment_id, &e, &err);
    if (rc == SCEPTER_ENOTFOUND)
        return false;
    cr_assert_eq(rc, 0, "%s", err.msg);
    on = e.enabled;
    store_enrollment_clear(&e);
    return on;
}

bool hf_device_exists(const char *udid)
{
    struct scepter_error err;
    struct store_device d;
    int rc;

    memset(&d, 0, sizeof(d));
    rc = store_device_get(hf.store, udid, &d, &err);
    if (rc == SCEPTER_ENOTFOUND)
        return false;
    cr_assert_eq(rc, 0, "%s", err.msg);
    store_device_clear(&d);
    return true;
}

int hf_cert_check(enum hf_id id, const char *udid)
{
    struct scepter_error err;

    return store_cert_check(hf.store, hf.hash[id], udid, &err);
}

int64_t hf_outbox(void)
{
    struct scepter_error err;
    int64_t n = -1;

    cr_assert_eq(store_outbox_pending(hf.store, &n, &err), 0, "%s", err.msg);
    return n;
}

size_t hf_events(const char *kind)
{
    struct scepter_error err;
    struct store_event_filter f = {.kind = kind};
    struct store_event *v = NULL;
    size_t n = 0;

    cr_assert_eq(store_event_list(hf.store, &f, &v, &n, &err), 0, "%s", err.msg);
    store_events_free(v, n);
    return n;
}

const char *hf_cmd_status(const char *enrollment_id, const char *uuid, int *notnow_count)
{
    static char status[64];
    struct scepter_error err;
    struct store_queue_item *items = NULL;
    size_t n = 0;

    status[0] = '\0';
    cr_assert_eq(store_queue_list(hf.store, enrollment_id, true, &items, &n, &err), 0, "%s",
                 err.msg);
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i].uuid, uuid) == 0) {
            snprintf(status, sizeof(status), "%s", items[i].status);
            if (notnow_count)
                *notnow_count = items[i].notnow_count;
        }
    store_queue_items_free(items, n);
    return status;
}
