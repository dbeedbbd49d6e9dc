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

struct mdm_server *mdm_server_core_new(struct cfg *cfg, struct scepter_error *err)
{
    struct mdm_server *srv = xcalloc(1, sizeof(*srv));

    srv->cfg = cfg;
    srv->metrics = mdm_metrics_new();
    pthread_mutex_init(&srv->lock, NULL);
    mdm_live_set(srv, cfg);
    str_copy(srv->topic, sizeof(srv->topic), cfg->push_topic);
    srv->idcfg.accepted = mdm_identity_parse(cfg->identity);
    srv->idcfg.proxy_header =
        str_empty(cfg->trusted_proxy_header) ? NULL : cfg->trusted_proxy_header;
    srv->idcfg.proxy_addrs = cfg->trusted_proxy_addrs;
    if (!str_empty(cfg->device_ca_file)) {
        if ((srv->idcfg.device_ca = mdm_ca_store_load(cfg->device_ca_file, err)) == NULL)
            goto fail;
        if ((srv->device_ca_cert = crypto_cert_load(cfg->device_ca_file, err)) == NULL)
            goto fail;
    }
    if (!str_empty(cfg->device_ca_key_file)) {
        srv->device_ca_key = crypto_key_load(cfg->device_ca_key_file, NULL, err);
        if (srv->device_ca_key == NULL)
            goto fail;
        if (!crypto_cert_matches_key(srv->device_ca_cert, srv->device_ca_key)) {
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
        srv->signing_cert = sk_X509_shift(chain);
        srv->signing_chain = chain;
        if ((srv->signing_key = crypto_key_load(cfg->signing_key_file, NULL, err)) == NULL)
            goto fail;
        if (!crypto_cert_matches_key(srv->signing_cert, srv->signing_key)) {
            scepter_err(err, SCEPTER_ECRYPTO, "signing_key_file",
                        "signing_key_file: does not match signing_cert_file");
            goto fail;
        }
    }
    if (!str_empty(cfg->tls_ca_file)) {
        X509 *ca = crypto_cert_load(cfg->tls_ca_file, err);
        if (ca == NULL)
            goto fail;
        srv->tls_ca_der = crypto_cert_der(ca, &srv->tls_ca_der_len);
        X509_free(ca);
    }
    return srv;
fail:
    mdm_server_core_free(srv);
    return NULL;
}

void mdm_server_core_free(struct mdm_server *srv)
{
    if (srv == NULL)
        return;
    X509_STORE_free(srv->idcfg.device_ca);
    X509_free(srv->device_ca_cert);
    EVP_PKEY_free(srv->device_ca_key);
    X509_free(srv->signing_cert);
    EVP_PKEY_free(srv->signing_key);
    sk_X509_pop_free(srv->signing_chain, X509_free);
    free(srv->tls_ca_der);
    pthread_mutex_destroy(&srv->lock);
    for (size_t i = 0; i < ARRAY_LEN(srv->live); i++)
        free(srv->live[i]);
    mdm_metrics_free(srv->metrics);
    cfg_free(srv->cfg);
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
