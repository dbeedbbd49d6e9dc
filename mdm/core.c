/*
 * struct mdm_server without its runtime: the configuration and the certificates the protocol
 * handlers need (device CA, profile signing identity, TLS root for the enrollment profile).
 * Handlers and unit tests use it directly; mdm/server.c adds listeners and workers.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/metrics_int.h"
#include "mdm/scep_int.h"

/* X509_STORE with the device CA file's certificates, and the CRLs of device_ca_crl_file. */
static int load_device_ca(struct mdm_conf *c, const struct cfg *cfg, struct scepter_error *err)
{
    if ((c->idcfg.device_ca = mdm_ca_store_load(cfg->device_ca_file, err)) == NULL)
        return err->code;
    if ((c->device_ca_cert = crypto_cert_load(cfg->device_ca_file, err)) == NULL)
        return err->code;
    if (!str_empty(cfg->device_ca_crl_file))
        return mdm_ca_store_add_crls(c->idcfg.device_ca, cfg->device_ca_crl_file, err);
    return 0;
}

struct mdm_conf *mdm_conf_new(struct cfg *cfg, struct scepter_error *err)
{
    struct mdm_conf *c = xcalloc(1, sizeof(*c));

    c->refs = 1;
    c->cfg = cfg;
    c->idcfg.accepted = mdm_identity_parse(cfg->identity);
    c->idcfg.proxy_header = str_empty(cfg->trusted_proxy_header) ? NULL : cfg->trusted_proxy_header;
    c->idcfg.proxy_addrs = cfg->trusted_proxy_addrs;
    if (!str_empty(cfg->device_ca_file) && load_device_ca(c, cfg, err) != 0)
        goto fail;
    if (!str_empty(cfg->device_ca_key_file)) {
        c->device_ca_key = crypto_key_load(cfg->device_ca_key_file, NULL, err);
        if (c->device_ca_key == NULL)
            goto fail;
        if (!crypto_cert_matches_key(c->device_ca_cert, c->device_ca_key)) {
            scepter_err(err, SCEPTER_ECRYPTO, "device_ca_key_file",
                        "device_ca_key_file: does not match the first certificate of "
                        "device_ca_file");
            goto fail;
        }
    }
    if (!str_empty(cfg->signing_cert_file)) {
        STACK_OF(X509) *chain = crypto_certs_load(cfg->signing_cert_file, err);
        if (chain == NULL)
            goto fail;
        c->signing_cert = sk_X509_shift(chain);
        c->signing_chain = chain;
        if ((c->signing_key = crypto_key_load(cfg->signing_key_file, NULL, err)) == NULL)
            goto fail;
        if (!crypto_cert_matches_key(c->signing_cert, c->signing_key)) {
            scepter_err(err, SCEPTER_ECRYPTO, "signing_key_file",
                        "signing_key_file: does not match signing_cert_file");
            goto fail;
        }
        if (profile_signer_new(c->signing_cert, c->signing_key, c->signing_chain, &c->signer,
                               err) != 0)
            goto fail;
    }
    if (!str_empty(cfg->maid_key_file)) {
        if ((c->maid_key = crypto_key_load(cfg->maid_key_file, NULL, err)) == NULL)
            goto fail;
        if (EVP_PKEY_get_base_id(c->maid_key) != EVP_PKEY_RSA) {
            scepter_err(err, SCEPTER_ECRYPTO, "maid_key_file",
                        "maid_key_file: not an RSA key (the com.apple.maid token is RS256)");
            goto fail;
        }
    }
    if (!str_empty(cfg->tls_ca_file)) {
        X509 *ca = crypto_cert_load(cfg->tls_ca_file, err);
        if (ca == NULL)
            goto fail;
        c->tls_ca_der = crypto_cert_der(ca, &c->tls_ca_der_len);
        X509_free(ca);
    }
    if (mdm_scep_load(c, err) != 0)
        goto fail;
    return c;
fail:
    c->refs = 0;
    mdm_conf_put(NULL, c);
    return NULL;
}

static void conf_free(struct mdm_conf *c)
{
    X509_STORE_free(c->idcfg.device_ca);
    X509_free(c->device_ca_cert);
    EVP_PKEY_free(c->device_ca_key);
    profile_signer_free(c->signer);
    X509_free(c->signing_cert);
    EVP_PKEY_free(c->signing_key);
    EVP_PKEY_free(c->maid_key);
    sk_X509_pop_free(c->signing_chain, X509_free);
    free(c->tls_ca_der);
    mdm_scep_free(c->scep);
    cfg_free(c->cfg);
    free(c);
}

void mdm_conf_put(struct mdm_server *srv, struct mdm_conf *c)
{
    bool last;

    if (c == NULL)
        return;
    if (srv)
        pthread_mutex_lock(&srv->lock);
    last = c->refs <= 1;
    c->refs--;
    if (srv)
        pthread_mutex_unlock(&srv->lock);
    if (last)
        conf_free(c);
}

struct mdm_conf *mdm_conf_get(struct mdm_server *srv)
{
    struct mdm_conf *c;

    pthread_mutex_lock(&srv->lock);
    c = srv->conf;
    c->refs++;
    pthread_mutex_unlock(&srv->lock);
    return c;
}

void mdm_conf_publish(struct mdm_server *srv, struct mdm_conf *c)
{
    struct mdm_conf *old;

    pthread_mutex_lock(&srv->lock);
    old = srv->conf;
    c->gen = old ? old->gen + 1 : 1;
    srv->conf = c;
    __atomic_store_n(&srv->conf_gen, c->gen, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&srv->lock);
    mdm_live_set(srv, c->cfg);
    mdm_caches_invalidate(srv);
    mdm_conf_put(srv, old);
}

void mdm_caches_invalidate(struct mdm_server *srv)
{
    __atomic_add_fetch(&srv->cache_gen, 1, __ATOMIC_RELEASE);
}

struct mdm_server *mdm_server_core_new(struct cfg *cfg, struct scepter_error *err)
{
    struct mdm_server *srv = xcalloc(1, sizeof(*srv));

    srv->metrics = mdm_metrics_new();
    pthread_mutex_init(&srv->lock, NULL);
    str_copy(srv->topic, sizeof(srv->topic), cfg->push_topic);
    if ((srv->boot = mdm_conf_new(cfg, err)) == NULL)
        goto fail;
    srv->cfg = srv->boot->cfg;
    srv->boot->refs++; /* srv->boot keeps srv->cfg alive for the server's life */
    mdm_conf_publish(srv, srv->boot);
    srv->enroll_guard = mdm_enroll_guard_new(srv->cfg);
    srv->scep_limit = mdm_scep_limit_new(srv->cfg);
    return srv;
fail:
    mdm_server_core_free(srv);
    return NULL;
}

void mdm_server_core_free(struct mdm_server *srv)
{
    if (srv == NULL)
        return;
    mdm_enroll_guard_free(srv->enroll_guard);
    mdm_scep_limit_free(srv->scep_limit);
    mdm_conf_put(srv, srv->conf);
    mdm_conf_put(srv, srv->boot);
    pthread_mutex_destroy(&srv->lock);
    for (size_t i = 0; i < ARRAY_LEN(srv->live); i++)
        free(srv->live[i]);
    mdm_metrics_free(srv->metrics);
    free(srv);
}

void mdm_server_topic(struct mdm_server *srv, char *out, size_t outlen)
{
    pthread_mutex_lock(&srv->lock);
    str_copy(out, outlen, srv->topic);
    pthread_mutex_unlock(&srv->lock);
}

void mdm_server_set_topic(struct mdm_server *srv, const char *topic)
{
    pthread_mutex_lock(&srv->lock);
    str_copy(srv->topic, sizeof(srv->topic), topic ? topic : "");
    pthread_mutex_unlock(&srv->lock);
}

void mdm_live_get(struct mdm_server *srv, enum mdm_live which, char *out, size_t outlen)
{
    pthread_mutex_lock(&srv->lock);
    str_copy(out, outlen, srv->live[which] ? srv->live[which] : "");
    pthread_mutex_unlock(&srv->lock);
}

void mdm_live_set(struct mdm_server *srv, const struct cfg *cfg)
{
    const char *v[3] = {cfg->webhook_url, cfg->webhook_secret, cfg->api_key};

    pthread_mutex_lock(&srv->lock);
    for (size_t i = 0; i < ARRAY_LEN(srv->live); i++) {
        free(srv->live[i]);
        srv->live[i] = xstrdup(v[i] ? v[i] : "");
    }
    pthread_mutex_unlock(&srv->lock);
}
