/*
 * Private to mdm/: the built-in SCEP CAs (mdm/scep_http.c) — loaded into each configuration
 * snapshot, served at /scep[/{name}] and managed under /v1/ca.
 */
#ifndef SCEPTER_MDM_SCEP_INT_H
#define SCEPTER_MDM_SCEP_INT_H

#include "mdm/api_int.h"
#include "mdm/mdm_int.h"
#include "scep/scep.h"

/* The CAs of one configuration snapshot. */
struct mdm_scep_cas {
    struct scep_ca **ca; /* ca[i], named; "default" first when configured */
    size_t n;
};

/* Load (and, with scep_ca_generate, create once) the CAs the configuration names into
 * c->scep.  Nothing configured: c->scep stays NULL.  err names the key at fault. */
int mdm_scep_load(struct mdm_conf *c, struct scepter_error *err) WUR;
void mdm_scep_free(struct mdm_scep_cas *s);
/* The CA of that name in the snapshot, or NULL. */
const struct scep_ca *mdm_scep_find(const struct mdm_conf *c, const char *name);

/* /scep, /scep/{name}, /scep/{name}/crl */
void mdm_scep_handle(struct mdm_ctx *ctx, const struct mdm_request *req, int64_t now,
                     struct mdm_reply *reply);

/* /v1/ca, /v1/ca/{name}/certificates, .../certificates/{serial}/revoke, .../challenges */
void api_ca_list(struct api_call *c);
void api_ca_certificates(struct api_call *c);
void api_ca_revoke(struct api_call *c);
void api_ca_challenges(struct api_call *c);
/*
 * A policy's "scep": {"scepter_ca": "NAME"} (mdm/policy.c, before parsing): fill url,
 * challenge (scep_challenge) and fingerprint (the CA certificate's SHA-256) from that built-in
 * CA.  false with the reply set when it cannot.
 */
bool api_scep_policy_fill(struct api_call *c);

#endif
