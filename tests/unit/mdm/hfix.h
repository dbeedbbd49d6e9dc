/*
 * The handler tests' fixture: a server value without listeners (mdm_server_core_new), a
 * temporary SQLite store per table row, a fixed clock, certificates of a throwaway device CA
 * presented as TLS client certificates, a fixed header table, and plist bodies built from
 * XML fragments.  Handlers are called directly, as the HTTP layer calls them.
 */
#ifndef SCEPTER_TESTS_UNIT_MDM_HFIX_H
#define SCEPTER_TESTS_UNIT_MDM_HFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mdm/mdm_int.h"

/* The handlers' clock (2023-11-14); the certificates are valid from five years before it. */
#define HF_NOW              1700000000
#define HF_MAID_SERVER_UUID "5c8f1f1e-8a3b-4f51-9d3c-0a1b2c3d4e5f"

#define HF_TOPIC  "com.apple.mgmt.External.hf-test"
#define HF_UDID_A "HF-UDID-A"
#define HF_UDID_B "HF-UDID-B"

/* Who presents which certificate. */
enum hf_id {
    HF_ID_NONE = 0, /* no client certificate */
    HF_ID_A,        /* device A's certificate */
    HF_ID_A2,       /* a second certificate from the device CA for device A (a re-enrollment) */
    HF_ID_B,        /* device B's certificate */
    HF_ID_FOREIGN,  /* device A's subject, issued by another CA */
    HF_ID_COUNT
};

/* What the store holds before a row runs.  Device B is always enrolled with its certificate
 * (except in HF_EMPTY); device A is: */
enum hf_state {
    HF_EMPTY = 0,   /* nothing at all */
    HF_UNKNOWN,     /* unknown (never authenticated) */
    HF_AUTHED,      /* authenticated with HF_ID_A, no TokenUpdate yet */
    HF_ENROLLED,    /* authenticated and TokenUpdate received */
    HF_CHECKED_OUT, /* enrolled, then CheckOut */
};

struct hf {
    char *dir;
    struct mdm_server *srv;
    struct cfg *cfg; /* srv's configuration (tests flip user_authenticate, reenroll) */
    struct mdm_ctx ctx;
    struct store *store;
    int row; /* store files are numbered */
    char hash[HF_ID_COUNT][CRYPTO_SHA256_HEX_LEN];
};

extern struct hf hf;

/* Criterion .init / .fini. */
void hf_setup(void);
void hf_teardown(void);

/* A fresh store in the given state (the previous one is closed). */
void hf_reset(enum hf_state st);

/* "<plist><dict>" fragment "</dict></plist>" (caller frees). */
char *hf_body(const char *dict_fragment);

/* Call the named handler ("checkin", "connect", or a path for mdm_route) with method PUT,
 * the content type (NULL: none), the identity and body.  reply must be released with
 * mdm_reply_free. */
struct hf_req {
    const char *path; /* "/mdm/checkin", "/mdm/connect", "/mdm", ... */
    enum mdm_method method;
    const char *content_type;
    enum hf_id id;
    const char *body; /* NUL-terminated */
    size_t body_len;  /* 0: strlen(body) */
    /* the HTTP layer's hook for batched Idle polls, or NULL */
    int (*defer_idle)(const struct mdm_request *req, const char *enrollment_id,
                      const char *device_id, const char *cert_hash);
    const char *mdm_signature; /* the Mdm-Signature header, or NULL */
};
void hf_route(const struct hf_req *r, struct mdm_reply *reply);
void hf_checkin(enum hf_id id, const char *body, struct mdm_reply *reply);
void hf_connect(enum hf_id id, const char *body, struct mdm_reply *reply);

/* An Mdm-Signature header value: the certificate of id signing body (caller frees). */
char *hf_signature(enum hf_id id, const char *body);

/* The reply body as a NUL-terminated string (borrowed from reply). */
const char *hf_text(struct mdm_reply *reply);

/* Queue a command (request_type, deterministic uuid from n) for an enrollment; asserts. */
void hf_enqueue(const char *enrollment_id, unsigned n, const char *request_type, char uuid[37]);

/* Store state helpers (assert on store errors). */
bool hf_enrolled(const char *enrollment_id); /* enrollment exists and is enabled */
bool hf_device_exists(const char *udid);
int hf_cert_check(enum hf_id id, const char *udid); /* store_cert_check's answer */
int64_t hf_outbox(void);                            /* webhook events queued */
size_t hf_events(const char *kind);                 /* security events of a kind */
/* The status of a command in the enrollment's queue ("queued", "Acknowledged", ...), or "" */
const char *hf_cmd_status(const char *enrollment_id, const char *uuid, int *notnow_count);

#endif
