/*
 * Helpers private to the simulator (the tests/sim sources): TLS set-up shared by the blocking and
 * the event-driven HTTP clients, and the ErrorChain builder shared by the brain and the engine.
 */
#ifndef SCEPTER_TESTS_SIM_SIM_INT_H
#define SCEPTER_TESTS_SIM_SIM_INT_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "sim.h"

/*
 * A client SSL_CTX: TLS 1.2+, peer verification against trust (a reference is taken; NULL =
 * the system store).
 */
SSL_CTX *sim_tls_client_ctx(X509_STORE *trust, struct scepter_error *err);
/*
 * A connecting OpenSSL bufferevent for host (SNI + host name check), presenting cert/key when
 * given.  The bufferevent owns the SSL object and the socket.
 */
void sim_http_nodelay(struct evhttp_connection *evcon);
struct bufferevent *sim_tls_bev_new(struct event_base *base, SSL_CTX *ctx, const char *host,
                                    X509 *cert, EVP_PKEY *key, struct scepter_error *err);

/* Append {ErrorCode, ErrorDomain, LocalizedDescription, USEnglishDescription} to chain. */
void sim_error_chain_add(plist_t chain, int64_t code, const char *domain, const char *text);

#endif
