/*
 * Private to mdm/: the built-in SCEP CAs (mdm/scep_http.c) — loaded into each configuration
 * snapshot, served at /scep[/{name}] and managed under /v1/ca.
 */
#ifndef SCEPTER_MDM_SCEP_INT_H
#define SCEPTER_MDM_SCEP_INT_H

#include <pthread.h>

#include "mdm/api_int.h"
#include "mdm/mdm_int.h"
#include "profiles/profiles.h"
#include "scep/scep.h"
#include "store/store.h"

/* The CAs of one configuration snapshot. */
/* A CA's CRL as last signed: served again until the revocations change or half its
 * validity has passed. */
struct mdm_scep_crl {
    unsigned char *der;
    size_t len;
    int64_t built_at;
    unsigned char revoked_digest[32]; /* SHA-256 of the revoked serials and times */
};

struct mdm_scep_cas {
    struct scep_ca **ca; /* ca[i], named; "default" first when configured */
    size_t n;
    struct mdm_scep_crl *crl;  /* crl[i] is ca[i]'s (guarded by crl_lock) */
    pthread_mutex_t *crl_lock; /* the snapshot is shared by every worker */
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
 * A policy's "scep": {"scepter_ca": "NAME"} (mdm/policy.c, before parsing): fill url and
 * fingerprint (the CA certificate's SHA-256) from that built-in CA, and leave the challenge
 * out: each rendering gets a one-time challenge (mdm_scep_otc_*).  false with the reply set
 * when it cannot.
 */
bool api_scep_policy_fill(struct api_call *c);

/* mdm/scep_profile.c: a one-time challenge per rendered profile for policies that use a
 * built-in CA. */
/* A built-in CA's URL: <public_url>/scep for "default", else <public_url>/scep/NAME. */
char *mdm_scep_ca_url(const struct cfg *cfg, const char *name);
/* The built-in CA a policy uses: its URL is that CA's (/scep or /scep/NAME) and it carries no
 * challenge.  NULL otherwise. */
const struct scep_ca *mdm_scep_policy_ca(const struct mdm_ctx *ctx, const char *url,
                                         const char *challenge);
struct mdm_scep_otc {
    const struct scep_ca *ca; /* NULL: the policy carries its own challenge */
    char placeholder[STORE_SCEP_CHALLENGE_LEN];
    int64_t ttl; /* seconds */
};
/* Before profile_template_new: when pp uses a built-in CA, its challenge becomes a random
 * placeholder (true); mdm_scep_otc_end puts it back to none once the template is made. */
bool mdm_scep_otc_begin(const struct mdm_ctx *ctx, struct profile_policy *pp,
                        struct mdm_scep_otc *o);
void mdm_scep_otc_end(struct profile_policy *pp, const struct mdm_scep_otc *o);
/* After rendering for device d: a new one-time challenge for d, bound to the subject and
 * names its profile asks for, replaces the placeholder in xml.  o NULL or unused: 0. */
int mdm_scep_otc_apply(struct mdm_ctx *ctx, const struct mdm_scep_otc *o,
                       const struct profile_device *d, struct buf *xml, int64_t now,
                       struct scepter_error *err) WUR;

#endif
