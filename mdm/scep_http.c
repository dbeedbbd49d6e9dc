/*
 * The built-in SCEP CAs over HTTP (scep/ does the protocol, the store remembers):
 *
 *   GET  /scep[/{name}]?operation=GetCACaps      capabilities
 *   GET  /scep[/{name}]?operation=GetCACert      the CA (or CA + RA)
 *   GET  /scep[/{name}]?operation=PKIOperation&message=<base64>
 *   POST /scep[/{name}]?operation=PKIOperation   the DER message as the body
 *   GET  /scep/{name}/crl                        the CA's CRL (DER)
 *
 * and the operator routes under /v1/ca.  /scep is the CA named "default".  A PKCSReq needs
 * the static challenge (scep_challenge) or a one-time challenge of that CA, consumed in the
 * transaction that records the certificate; a RenewalReq is signed by a current, recorded,
 * unrevoked certificate of the CA and keeps its device.  Whatever fails, nothing is issued and
 * nothing is stored.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/scep_int.h"

/* CRLs are valid for a day; a cached one is served for half of that (crl()). */
#define CRL_NEXT_UPDATE (24 * 3600)
/* One-time challenges live at most this long. */
#define CHALLENGE_MAX_SECONDS (30 * 86400)
#define CERTS_MAX_LIMIT       1000

static const struct scep_ca *mdm_scep_find_in(const struct mdm_scep_cas *s, const char *name);

/* ---------------------------------------------------------------------------------------- */
/* Loading                                                                                   */

static void cas_add(struct mdm_scep_cas *s, struct scep_ca *ca)
{
    s->ca = xreallocarray(s->ca, s->n + 1, sizeof(struct scep_ca *));
    s->ca[s->n++] = ca;
}

void mdm_scep_free(struct mdm_scep_cas *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        scep_ca_free(s->ca[i]);
        if (s->crl)
            free(s->crl[i].der);
    }
    if (s->crl_lock) {
        pthread_mutex_destroy(s->crl_lock);
        free(s->crl_lock);
    }
    free(s->crl);
    free(s->ca);
    free(s);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *crl_url(const struct cfg *cfg, const char *name)
{
    const char *base = cfg->public_url;
    size_t n = strlen(base);

    while (n > 0 && base[n - 1] == '/')
        n--;
    return xasprintf("%.*s/scep/%s/crl", (int)n, base, name);
}

static int load_one(struct mdm_scep_cas *s, const struct cfg *cfg, const char *name,
                    const struct scep_ca_files *files, const char *prefix,
                    struct scepter_error *err)
{
    char *url = crl_url(cfg, name);
    struct scep_ca_policy pol = {.validity_days = (int)cfg->scep_validity_days,
                                 .min_rsa_bits = (int)cfg->scep_min_rsa_bits,
                                 .crl_url = url};
    struct scep_ca *ca = NULL;
    int rc;

    if (mdm_scep_find_in(s, name) != NULL) {
        free(url);
        return scepter_err(err, SCEPTER_EINVAL, "scep_cas", "scep_cas: CA '%s' is named twice",
                           name);
    }
    rc = scep_ca_load(name, files, &pol, prefix, &ca, err);
    free(url);
    if (rc != 0)
        return rc;
    cas_add(s, ca);
    return 0;
}

/* A CA directory as `scepter ca init` makes it. */
static int load_dir(struct mdm_scep_cas *s, const struct cfg *cfg, const char *name,
                    const char *dir, const char *prefix, struct scepter_error *err)
{
    char *cert = xasprintf("%s/ca.pem", dir), *key = xasprintf("%s/ca.key", dir);
    char *pass = xasprintf("%s/ca.key.pass", dir);
    char *ra = xasprintf("%s/ra.pem", dir), *ra_key = xasprintf("%s/ra.key", dir);
    struct scep_ca_files f = {.cert_file = cert,
                              .key_file = key,
                              .passphrase_file = file_exists(pass) ? pass : NULL,
                              .ra_cert_file = file_exists(ra) ? ra : NULL,
                              .ra_key_file = file_exists(ra) ? ra_key : NULL};
    int rc = load_one(s, cfg, name, &f, prefix, err);

    free(cert);
    free(key);
    free(pass);
    free(ra);
    free(ra_key);
    return rc;
}

static int load_named(struct mdm_scep_cas *s, const struct cfg *cfg, struct scepter_error *err)
{
    char *list = xstrdup(cfg->scep_cas), *save = NULL;
    int rc = 0;

    for (char *item = strtok_r(list, ",", &save); item && rc == 0;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (eq == NULL) {
            rc = scepter_err(err, SCEPTER_EINVAL, "scep_cas", "scep_cas: '%.80s' is not NAME=DIR",
                             str_trim(item));
            break;
        }
        *eq = '\0';
        char *name = str_trim(item), *dir = str_trim(eq + 1);
        if (!scep_ca_name_valid(name) || *dir == '\0') {
            rc = scepter_err(err, SCEPTER_EINVAL, "scep_cas",
                             "scep_cas: '%.64s=%.80s': want NAME=DIR, NAME of letters, digits, "
                             "'-' or '_'",
                             name, dir);
            break;
        }
        rc = load_dir(s, cfg, name, dir, "scep_cas: ", err);
    }
    free(list);
    return rc;
}

int mdm_scep_load(struct mdm_conf *c, struct scepter_error *err)
{
    const struct cfg *cfg = c->cfg;
    struct mdm_scep_cas *s = xcalloc(1, sizeof(*s));
    int rc = 0;

    if (!str_empty(cfg->scep_ca_cert_file) || !str_empty(cfg->scep_ca_key_file)) {
        struct scep_ca_files f = {.cert_file = cfg->scep_ca_cert_file,
                                  .key_file = cfg->scep_ca_key_file,
                                  .passphrase_file = cfg->scep_ca_key_passphrase_file,
                                  .ra_cert_file = cfg->scep_ra_cert_file,
                                  .ra_key_file = cfg->scep_ra_key_file};
        rc = load_one(s, cfg, "default", &f, "scep_ca_", err);
    } else if (cfg->scep_ca_generate) {
        char *cert = xasprintf("%s/ca.pem", cfg->scep_ca_dir);
        if (!file_exists(cert)) {
            rc = scep_ca_generate(cfg->scep_ca_dir, "Scepter SCEP CA", 3072, (int64_t)time(NULL),
                                  err);
            if (rc == 0)
                log_warn("generated a development SCEP CA in %s (scep_ca_generate)",
                         cfg->scep_ca_dir);
            else
                scepter_err(err, err->code, "scep_ca_dir", "scep_ca_dir: %s", err->msg);
        }
        free(cert);
        if (rc == 0)
            rc = load_dir(s, cfg, "default", cfg->scep_ca_dir, "scep_ca_", err);
    }
    if (rc == 0 && !str_empty(cfg->scep_cas))
        rc = load_named(s, cfg, err);
    if (rc == 0 && !str_empty(cfg->enroll_scep_ca) &&
        mdm_scep_find_in(s, cfg->enroll_scep_ca) == NULL)
        rc = scepter_err(err, SCEPTER_EINVAL, "enroll_scep_ca",
                         "enroll_scep_ca: no built-in CA named '%.80s' (scep_ca_cert_file, "
                         "scep_ca_generate or scep_cas make them)",
                         cfg->enroll_scep_ca);
    if (rc != 0 || s->n == 0) {
        mdm_scep_free(s);
        return rc;
    }
    s->crl = xcalloc(s->n, sizeof(*s->crl));
    s->crl_lock = xcalloc(1, sizeof(pthread_mutex_t));
    pthread_mutex_init(s->crl_lock, NULL);
    c->scep = s;
    return 0;
}

static const struct scep_ca *mdm_scep_find_in(const struct mdm_scep_cas *s, const char *name)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (strcmp(scep_ca_name(s->ca[i]), name) == 0)
            return s->ca[i];
    return NULL;
}

const struct scep_ca *mdm_scep_find(const struct mdm_conf *c, const char *name)
{
    return c ? mdm_scep_find_in(c->scep, name) : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* The per-address limit on PKIOperation                                                     */

#define LIMIT_SLOTS 1024 /* client addresses remembered */

struct mdm_scep_limit {
    pthread_mutex_t lock;
    int64_t per_minute;
    struct {
        char addr[48];
        int64_t at;     /* last request (seconds) */
        int64_t credit; /* 60 per request allowed now */
    } slot[LIMIT_SLOTS];
};

struct mdm_scep_limit *mdm_scep_limit_new(const struct cfg *cfg)
{
    struct mdm_scep_limit *l = xcalloc(1, sizeof(*l));

    pthread_mutex_init(&l->lock, NULL);
    l->per_minute = cfg->scep_rate_limit;
    return l;
}

void mdm_scep_limit_free(struct mdm_scep_limit *l)
{
    if (l == NULL)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* A token bucket per address: per_minute at once, refilled at per_minute a minute.  A slot
 * holds one address; a colliding one starts afresh (early admission, never a lock-out). */
static bool limit_admit(struct mdm_scep_limit *l, const char *addr, int64_t now)
{
    uint64_t h = 1469598103934665603ULL;
    int64_t cap;
    bool ok = true;
    size_t i;

    if (l == NULL || l->per_minute <= 0 || addr == NULL)
        return true;
    cap = l->per_minute * 60;
    for (const char *p = addr; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    i = (size_t)(h % LIMIT_SLOTS);
    pthread_mutex_lock(&l->lock);
    if (strcmp(l->slot[i].addr, addr) != 0) {
        str_copy(l->slot[i].addr, sizeof(l->slot[i].addr), addr);
        l->slot[i].credit = cap;
    } else {
        int64_t refill = (now - l->slot[i].at) * l->per_minute;
        l->slot[i].credit = refill > cap - l->slot[i].credit ? cap : l->slot[i].credit + refill;
    }
    l->slot[i].at = now;
    if (l->slot[i].credit < 60)
        ok = false;
    else
        l->slot[i].credit -= 60;
    pthread_mutex_unlock(&l->lock);
    return ok;
}

/* ---------------------------------------------------------------------------------------- */
/* /scep                                                                                     */

static void reply_der(struct mdm_reply *reply, const char *ctype, unsigned char *der, size_t len)
{
    reply->status = 200;
    reply->content_type = ctype;
    buf_append(&reply->body, der, len);
    free(der);
}

/*
 * The CRL: the revoked certificates are read from the store at each request (another
 * instance may have revoked one), but the CRL is signed again only when they changed or half
 * of its validity has passed; otherwise the cached one is served.
 */
static void crl(struct mdm_ctx *ctx, const struct scep_ca *ca, int64_t now, struct mdm_reply *reply)
{
    const struct mdm_scep_cas *cas = ctx->conf->scep;
    struct mdm_scep_crl *cache = NULL;
    struct store_scep_cert *v = NULL;
    struct scep_revoked *rv = NULL;
    struct scepter_error err;
    unsigned char *der = NULL, digest[CRYPTO_SHA256_LEN];
    size_t n = 0, len = 0;
    struct buf b = BUF_INIT;

    reply->message_type = "GetCRL";
    for (size_t i = 0; cas && cas->crl && i < cas->n; i++)
        if (cas->ca[i] == ca)
            cache = &cas->crl[i];
    if (store_scep_certs_list(ctx->store, scep_ca_name(ca), true, 0, &v, &n, &err) != 0) {
        mdm_reply_error(reply, 503, "scep crl: %s", err.msg);
        return;
    }
    rv = xcalloc(n ? n : 1, sizeof(*rv));
    for (size_t i = 0; i < n; i++) {
        rv[i].serial = v[i].serial;
        rv[i].revoked_at = v[i].revoked_at;
        buf_printf(&b, "%s %lld\n", v[i].serial, (long long)v[i].revoked_at);
    }
    crypto_sha256(b.data ? b.data : "", b.len, digest);
    if (cache)
        pthread_mutex_lock(cas->crl_lock);
    if (cache && cache->der && now >= cache->built_at &&
        now < cache->built_at + CRL_NEXT_UPDATE / 2 &&
        memcmp(cache->revoked_digest, digest, sizeof(digest)) == 0) {
        reply_der(reply, "application/pkix-crl", xmemdup(cache->der, cache->len), cache->len);
    } else if (scep_ca_crl(ca, rv, n, now, CRL_NEXT_UPDATE, &der, &len, &err) != 0) {
        mdm_reply_error(reply, 500, "scep crl: %s", err.msg);
    } else {
        if (cache) {
            free(cache->der);
            cache->der = xmemdup(der, len);
            cache->len = len;
            cache->built_at = now;
            memcpy(cache->revoked_digest, digest, sizeof(digest));
        }
        reply_der(reply, "application/pkix-crl", der, len);
    }
    if (cache)
        pthread_mutex_unlock(cas->crl_lock);
    buf_free(&b);
    free(rv);
    store_scep_certs_free(v, n);
}

/* The request's DER message: the POST body, or the base64 message= of a GET. */
static int message_bytes(const struct mdm_request *req, unsigned char **out, size_t *len,
                         struct mdm_reply *reply)
{
    *out = NULL;
    *len = 0;
    if (req->method == MDM_POST) {
        const char *ct = mdm_header(req, "Content-Type");
        if (ct != NULL && !mdm_content_type_is(ct, "application/x-pki-message") &&
            !mdm_content_type_is(ct, "application/octet-stream")) {
            mdm_reply_error(reply, 415, "scep: Content-Type %.80s: send application/x-pki-message",
                            ct);
            return -1;
        }
        if (req->body_len > SCEP_MAX_MESSAGE) {
            mdm_reply_error(reply, 413, "scep: message of %zu bytes: at most %d", req->body_len,
                            SCEP_MAX_MESSAGE);
            return -1;
        }
        if (req->body_len == 0) {
            mdm_reply_error(reply, 400, "scep: PKIOperation without a message");
            return -1;
        }
        *out = xmemdup(req->body, req->body_len);
        *len = req->body_len;
        return 0;
    }
    char *msg = mdm_query_param(req->query, "message");
    if (msg == NULL || *msg == '\0') {
        free(msg);
        mdm_reply_error(reply, 400, "scep: message: missing (base64 of the DER message)");
        return -1;
    }
    if (strlen(msg) > (size_t)SCEP_MAX_MESSAGE / 3 * 4 + 8) {
        free(msg);
        mdm_reply_error(reply, 413, "scep: message: at most %d bytes", SCEP_MAX_MESSAGE);
        return -1;
    }
    /* A '+' the client did not escape arrives as a space; base64 has no spaces.  Line breaks
     * some clients leave in are dropped. */
    size_t w = 0;
    for (size_t r = 0; msg[r]; r++) {
        if (msg[r] == '\r' || msg[r] == '\n')
            continue;
        msg[w++] = msg[r] == ' ' ? '+' : msg[r];
    }
    msg[w] = '\0';
    int rc = base64_decode(msg, w, true, out, len);
    free(msg);
    if (rc != 0) {
        mdm_reply_error(reply, 400, "scep: message: not base64");
        return -1;
    }
    return 0;
}

static void pkiop_failure(const struct scep_ca *ca, const struct scep_request *sr,
                          enum scep_fail_info fail, const char *why, struct mdm_reply *reply)
{
    struct scepter_error err;
    unsigned char *der = NULL;
    size_t len = 0;

    log_kv(LOG_LVL_WARN, "scep_refused", "ca", scep_ca_name(ca), "transaction", sr->transaction_id,
           "fail_info", scep_fail_name(fail), "reason", why, NULL);
    if (scep_reply_failure(ca, sr, fail, &der, &len, &err) != 0) {
        mdm_reply_error(reply, 500, "scep: %s", err.msg);
        return;
    }
    str_copy(reply->reason, sizeof(reply->reason), why);
    reply_der(reply, "application/x-pki-message", der, len);
}

static void pkiop(struct mdm_ctx *ctx, const struct scep_ca *ca, const struct mdm_request *req,
                  int64_t now, struct mdm_reply *reply)
{
    struct scep_request sr;
    struct scepter_error err;
    enum scep_fail_info fail = SCEP_FAIL_NONE;
    struct store_scep_cert rec = {0}, prev = {0};
    struct scep_cert_info info = {0};
    unsigned char *msg = NULL, *der = NULL;
    size_t msg_len = 0, len = 0;
    char *device = NULL, *bound_to = NULL, *expect = NULL;
    const char *challenge = NULL;
    X509 *cert = NULL;
    int rc;

    memset(&sr, 0, sizeof(sr));
    reply->message_type = "PKIOperation";
    if (message_bytes(req, &msg, &msg_len, reply) != 0)
        return;
    rc = scep_request_parse(ca, msg, msg_len, now, &sr, &fail, &err);
    free(msg);
    if (rc != 0 && fail == SCEP_FAIL_NONE) {
        mdm_reply_error(reply, err.code == SCEPTER_ETOOBIG ? 413 : 400, "scep: %s", err.msg);
        goto out;
    }
    if (rc != 0) {
        pkiop_failure(ca, &sr, fail, err.msg, reply);
        goto out;
    }
    if (sr.type == SCEP_MSG_PKCSREQ) {
        reply->message_type = "PKCSReq";
        if (sr.challenge[0] == '\0') {
            pkiop_failure(ca, &sr, SCEP_FAIL_BADREQUEST, "PKCSReq without a challengePassword",
                          reply);
            goto out;
        }
        if (!scep_challenge_equal(sr.challenge, ctx->cfg->scep_challenge)) {
            challenge = sr.challenge; /* a one-time challenge, or nothing */
            if (store_scep_challenge_peek(ctx->store, scep_ca_name(ca), challenge, now, &bound_to,
                                          &expect, &err) != 0) {
                if (err.code != SCEPTER_EFORBIDDEN)
                    mdm_reply_error(reply, 503, "scep: %s", err.msg);
                else
                    pkiop_failure(ca, &sr, SCEP_FAIL_BADREQUEST,
                                  "the challenge password is wrong, expired or already used",
                                  reply);
                goto out;
            }
        }
    } else {
        reply->message_type = "RenewalReq";
        if (store_scep_cert_get(ctx->store, scep_ca_name(ca), sr.signer_serial, &prev, &err) != 0) {
            if (err.code != SCEPTER_ENOTFOUND) {
                mdm_reply_error(reply, 503, "scep: %s", err.msg);
                goto out;
            }
            pkiop_failure(ca, &sr, SCEP_FAIL_BADCERTID,
                          "RenewalReq: the signer certificate is not one this CA recorded", reply);
            goto out;
        }
        if (prev.revoked_at != 0) {
            pkiop_failure(ca, &sr, SCEP_FAIL_BADCERTID,
                          "RenewalReq: the signer certificate is revoked", reply);
            goto out;
        }
    }
    if (scep_ca_issue(ca, &sr, now, &cert, &err) != 0) {
        mdm_reply_error(reply, 500, "scep: %s", err.msg);
        goto out;
    }
    if (expect != NULL) {
        /* A challenge rendered into one device's profile issues what that profile asks for. */
        char why[400], *text;
        if (scep_expect_check(cert, expect, why, sizeof(why)) != 0) {
            text = xasprintf("the one-time challenge was issued for the profile of device %s, "
                             "which asks for another subject or other names: %s",
                             bound_to ? bound_to : "?", why);
            pkiop_failure(ca, &sr, SCEP_FAIL_BADREQUEST, text, reply);
            free(text);
            goto out;
        }
    }
    scep_cert_info(cert, &info);
    rec.ca = (char *)scep_ca_name(ca);
    rec.serial = info.serial;
    rec.subject = info.subject;
    rec.sans = info.sans;
    rec.device_id = prev.device_id;
    rec.cert_sha256 = info.sha256;
    rec.kind = (char *)(sr.type == SCEP_MSG_PKCSREQ ? "PKCSReq" : "RenewalReq");
    rec.renewed_from = sr.type == SCEP_MSG_RENEWALREQ ? sr.signer_serial : NULL;
    rec.not_before = info.not_before;
    rec.not_after = info.not_after;
    if (store_scep_cert_add(ctx->store, &rec, challenge, now, &device, &err) != 0) {
        if (err.code == SCEPTER_EFORBIDDEN)
            pkiop_failure(ca, &sr, SCEP_FAIL_BADREQUEST,
                          "the challenge password is wrong, expired or already used", reply);
        else
            mdm_reply_error(reply, 503, "scep: recording the certificate: %s", err.msg);
        goto out;
    }
    if (scep_reply_success(ca, &sr, cert, &der, &len, &err) != 0) {
        mdm_reply_error(reply, 500, "scep: %s", err.msg);
        goto out;
    }
    log_kv(LOG_LVL_INFO, "scep_issued", "ca", scep_ca_name(ca), "kind", rec.kind, "serial",
           info.serial, "subject", info.subject, "device",
           device ? device : (prev.device_id ? prev.device_id : ""), "transaction",
           sr.transaction_id, NULL);
    reply_der(reply, "application/x-pki-message", der, len);
out:
    free(device);
    free(bound_to);
    free(expect);
    X509_free(cert);
    scep_cert_info_clear(&info);
    store_scep_cert_clear(&prev);
    scep_request_clear(&sr);
}

void mdm_scep_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                     struct mdm_reply *reply)
{
    const char *p = req->path + 5; /* after "/scep" */
    char name[80] = "default";
    bool want_crl = false;
    const struct scep_ca *ca;
    char *op = NULL;

    reply->event = "scep";
    if (*p == '/') {
        const char *end = strchr(p + 1, '/');
        size_t n = end ? (size_t)(end - p - 1) : strlen(p + 1);
        if (n == 0 || n >= sizeof(name) || (end && strcmp(end, "/crl") != 0)) {
            mdm_reply_error(reply, 404, "no such endpoint: %.100s", req->path);
            return;
        }
        memcpy(name, p + 1, n);
        name[n] = '\0';
        want_crl = end != NULL;
    }
    if ((ca = mdm_scep_find(ctx->conf, name)) == NULL) {
        mdm_reply_error(reply, 404, "scep: no CA named '%.80s' is configured", name);
        return;
    }
    if (want_crl) {
        if (req->method != MDM_GET && req->method != MDM_HEAD)
            mdm_reply_error(reply, 405, "scep crl: GET only");
        else
            crl(ctx, ca, now, reply);
        return;
    }
    if (req->method != MDM_GET && req->method != MDM_POST) {
        mdm_reply_error(reply, 405, "scep: GET or POST");
        return;
    }
    op = mdm_query_param(req->query, "operation");
    if (op == NULL) {
        mdm_reply_error(reply, 400,
                        "scep: operation: missing (GetCACaps, GetCACert or PKIOperation)");
    } else if (strcmp(op, "PKIOperation") == 0) {
        /* Before the message is read: decrypting and issuing is what the limit protects. */
        if (!limit_admit(ctx->srv ? ctx->srv->scep_limit : NULL, req->peer_addr, now)) {
            reply->message_type = "PKIOperation";
            mdm_reply_error(reply, 503,
                            "scep: more than %lld PKIOperation requests a minute from %s",
                            (long long)ctx->cfg->scep_rate_limit, req->peer_addr);
            mdm_reply_header(reply, "Retry-After", "60");
        } else {
            pkiop(ctx, ca, req, now, reply);
        }
    } else if (req->method != MDM_GET) {
        mdm_reply_error(reply, 405, "scep: %.40s: GET only", op);
    } else if (strcmp(op, "GetCACaps") == 0) {
        reply->message_type = "GetCACaps";
        reply->status = 200;
        reply->content_type = "text/plain";
        buf_puts(&reply->body, scep_caps());
    } else if (strcmp(op, "GetCACert") == 0) {
        struct scepter_error err;
        unsigned char *der = NULL;
        size_t len = 0;
        const char *ctype = NULL;
        reply->message_type = "GetCACert";
        if (scep_ca_getcacert(ca, &der, &len, &ctype, &err) != 0)
            mdm_reply_error(reply, 500, "scep: %s", err.msg);
        else
            reply_der(reply, ctype, der, len);
    } else {
        mdm_reply_error(reply, 400,
                        "scep: operation '%.40s' is not served (GetCACaps, GetCACert, "
                        "PKIOperation)",
                        op);
    }
    free(op);
}

/* ---------------------------------------------------------------------------------------- */
/* /v1/ca                                                                                    */

static const struct scep_ca *api_find_ca(struct api_call *c)
{
    const struct scep_ca *ca = mdm_scep_find(c->ctx->conf, c->seg[1]);

    if (ca == NULL)
        api_reply_error(c, 404, "name", "no built-in CA named '%.80s' is configured", c->seg[1]);
    return ca;
}

void api_ca_list(struct api_call *c)
{
    const struct mdm_scep_cas *s = c->ctx->conf ? c->ctx->conf->scep : NULL;
    json_t *arr = json_array();
    const char *base = c->ctx->cfg->public_url;
    size_t blen = strlen(base);

    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    for (size_t i = 0; s && i < s->n; i++) {
        char fp[65];
        const char *name = scep_ca_name(s->ca[i]);
        char *subject = crypto_cert_subject(scep_ca_cert(s->ca[i]));
        char *url = strcmp(name, "default") == 0 ? xasprintf("%.*s/scep", (int)blen, base)
                                                 : xasprintf("%.*s/scep/%s", (int)blen, base, name);
        char *crl = crl_url(c->ctx->cfg, name);
        scep_ca_fingerprint(s->ca[i], fp);
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "name", name, "url", url, "crl_url", crl,
                           "subject", subject ? subject : "", "ca_fingerprint_sha256", fp,
                           "not_after", api_time(crypto_cert_not_after(scep_ca_cert(s->ca[i])))));
        free(subject);
        free(url);
        free(crl);
    }
    api_reply_json(c, 200, json_pack("{s:o}", "cas", arr));
}

static json_t *cert_json(const struct store_scep_cert *v)
{
    return json_pack("{s:s,s:s,s:s,s:s?,s:s,s:s,s:s?,s:o,s:o,s:o,s:o}", "serial", v->serial,
                     "subject", v->subject, "sans", v->sans ? v->sans : "", "udid", v->device_id,
                     "sha256", v->cert_sha256, "kind", v->kind, "renewed_from", v->renewed_from,
                     "not_before", api_time(v->not_before), "not_after", api_time(v->not_after),
                     "issued_at", api_time(v->issued_at), "revoked_at", api_time(v->revoked_at));
}

void api_ca_certificates(struct api_call *c)
{
    const struct scep_ca *ca = api_find_ca(c);
    struct store_scep_cert *v = NULL;
    struct scepter_error err;
    char *limit_s, *revoked_s;
    int64_t limit = 100;
    bool revoked = false;
    size_t n = 0;

    if (ca == NULL)
        return;
    limit_s = api_query(c, "limit");
    revoked_s = api_query(c, "revoked");
    if (limit_s && str_to_i64(limit_s, 1, CERTS_MAX_LIMIT, &limit) != 0) {
        api_reply_error(c, 400, "limit", "limit: a number from 1 to %d", CERTS_MAX_LIMIT);
    } else if (revoked_s && str_to_bool(revoked_s, &revoked) != 0) {
        api_reply_error(c, 400, "revoked", "revoked: true or false");
    } else if (store_scep_certs_list(c->ctx->store, scep_ca_name(ca), revoked, (size_t)limit, &v,
                                     &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
    } else {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, cert_json(&v[i]));
        api_reply_json(c, 200, json_pack("{s:s,s:o}", "ca", scep_ca_name(ca), "certificates", arr));
    }
    store_scep_certs_free(v, n);
    free(limit_s);
    free(revoked_s);
}

void api_ca_revoke(struct api_call *c)
{
    const struct scep_ca *ca = api_find_ca(c);
    struct store_scep_cert rec = {0};
    struct scepter_error err;
    char serial[SCEP_SERIAL_HEX_LEN + 1], *device = NULL;
    int rc;

    if (ca == NULL)
        return;
    if (c->body != NULL && json_object_size(c->body) > 0) {
        api_reply_error(c, 400, "body", "revoke takes no body");
        return;
    }
    if (scep_serial_norm(c->seg[3], serial, &err) != 0 ||
        store_scep_cert_get(c->ctx->store, scep_ca_name(ca), serial, &rec, &err) != 0 ||
        (rc = store_scep_cert_revoke(c->ctx->store, scep_ca_name(ca), serial, c->now, &err)) < 0) {
        api_reply_scepter_error(c, &err);
        store_scep_cert_clear(&rec);
        return;
    }
    /* The certificate also stops being accepted as a device identity. */
    if (store_cert_revoke(c->ctx->store, rec.cert_sha256, "revoked", c->now, &device, &err) < 0) {
        api_reply_scepter_error(c, &err);
        store_scep_cert_clear(&rec);
        return;
    }
    mdm_caches_invalidate(c->ctx->srv);
    if (rc == 0) {
        log_kv(LOG_LVL_INFO, "scep_revoked", "ca", scep_ca_name(ca), "serial", serial, "device",
               rec.device_id ? rec.device_id : "", NULL);
        mdm_security_event(c->ctx, MDM_SEC_CERT_REVOKED, "certificate.revoked", rec.device_id,
                           json_pack("{s:s,s:s,s:s,s:s?}", "ca", scep_ca_name(ca), "serial", serial,
                                     "cert_sha256", rec.cert_sha256, "udid", rec.device_id),
                           c->now);
    }
    api_reply_json(c, 200,
                   json_pack("{s:s,s:s,s:s,s:b}", "ca", scep_ca_name(ca), "serial", serial,
                             "cert_sha256", rec.cert_sha256, "already_revoked", rc == 1));
    free(device);
    store_scep_cert_clear(&rec);
}

void api_ca_challenges(struct api_call *c)
{
    const struct scep_ca *ca = api_find_ca(c);
    struct scepter_error err;
    char challenge[STORE_SCEP_CHALLENGE_LEN];
    const char *udid = NULL;
    int64_t secs = 3600;
    json_t *exp;

    if (ca == NULL || !api_need_body(c))
        return;
    static const char *const keys[] = {"udid", "expires", NULL};
    if (jsonx_only_keys(c->body, keys, "", &err) != 0 ||
        jsonx_get_string(c->body, "udid", "", true, &udid, &err) < 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    exp = json_object_get(c->body, "expires");
    if (exp != NULL && !json_is_null(exp)) {
        if (json_is_integer(exp))
            secs = json_integer_value(exp);
        else if (!json_is_string(exp) || str_to_duration(json_string_value(exp), &secs) != 0) {
            api_reply_error(c, 400, "expires",
                            "expires: want a duration such as \"1h\", \"7d\" or seconds");
            return;
        }
    }
    if (secs < 60 || secs > CHALLENGE_MAX_SECONDS) {
        api_reply_error(c, 400, "expires", "expires: between 1 minute and 30 days");
        return;
    }
    if (store_scep_challenge_create(c->ctx->store, scep_ca_name(ca), udid, c->now + secs, c->now,
                                    challenge, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    log_kv(LOG_LVL_INFO, "scep_challenge_created", "ca", scep_ca_name(ca), "device", udid, NULL);
    api_reply_json(c, 201,
                   json_pack("{s:s,s:s,s:s,s:o}", "ca", scep_ca_name(ca), "udid", udid, "challenge",
                             challenge, "expires_at", api_time(c->now + secs)));
}

/* ---------------------------------------------------------------------------------------- */
/* "Use Scepter's CA" in a SCEP policy                                                       */

bool api_scep_policy_fill(struct api_call *c)
{
    static const char *const filled[] = {"url", "challenge", "fingerprint"};
    json_t *scep = c->body ? json_object_get(c->body, "scep") : NULL;
    json_t *v = json_is_object(scep) ? json_object_get(scep, "scepter_ca") : NULL;
    const struct scep_ca *ca;
    const char *name;
    char fp[65], *url;

    if (v == NULL)
        return true;
    if (!json_is_string(v)) {
        api_reply_error(c, 400, "scep.scepter_ca",
                        "scep.scepter_ca: want the name of a built-in CA (GET /v1/ca)");
        return false;
    }
    name = json_string_value(v);
    if ((ca = mdm_scep_find(c->ctx->conf, name)) == NULL) {
        api_reply_error(c, 400, "scep.scepter_ca",
                        "scep.scepter_ca: no built-in CA named '%.80s' is configured", name);
        return false;
    }
    for (size_t i = 0; i < ARRAY_LEN(filled); i++)
        if (json_object_get(scep, filled[i]) != NULL) {
            char field[32];
            snprintf(field, sizeof(field), "scep.%s", filled[i]);
            api_reply_error(c, 400, field,
                            "%s: leave it out with scep.scepter_ca: Scepter fills it in", field);
            return false;
        }
    /* No challenge: each device's rendering gets a one-time challenge of its own
     * (mdm/scep_profile.c). */
    url = mdm_scep_ca_url(c->ctx->cfg, scep_ca_name(ca));
    scep_ca_fingerprint(ca, fp);
    json_object_set_new(scep, "url", json_string(url));
    json_object_set_new(scep, "fingerprint", json_string(fp));
    json_object_del(scep, "scepter_ca");
    free(url);
    return true;
}
