/*
 * profiles/profiles.h — the Mac / iOS SCEP Profiles policy and the profiles Scepter renders.
 *
 * The module owns four things, all pure (no sockets, no store, no clock):
 *
 *   1. The policy model: struct profile_policy, parsed from the operator JSON
 *      (profile_policy_from_json) or from the document the store keeps for it
 *      (profile_policy_document / profile_policy_from_document: the store never parses it),
 *      and validated (profile_policy_check).  Validation lists every problem it finds, each
 *      naming the field by its dotted path ("scep.key_size") with a reason, plus warnings that
 *      do not stop a save (1024-bit keys, a policy without targets).
 *   2. Rendering a policy into a .mobileconfig: an outer Configuration profile holding an
 *      optional com.apple.security.root payload (installed first), the
 *      com.apple.security.scep payload and the linked Wi-Fi / Ethernet 802.1X / VPN payloads
 *      that use its certificate (profiles/linked.c; docs/policy.md).  For fleets, a template
 *      is prepared once per policy save and rendered per device by substitution
 *      (profile_template_*).
 *   3. The enrollment profile served at /mdm/enroll (profile_enroll_render): the com.apple.mdm
 *      payload, its identity (SCEP or PKCS#12) and optionally the TLS root CA.
 *   4. CMS signing and unwrapping of profiles (profile_signer_*, profile_sign, profile_unwrap).
 *
 * Device variables (in scep.subject and scep.subject_alt_name values, and in the linked
 * payloads' username, outer_identity and vpn.local_identifier):
 *
 *   Apple's device-resolved names: %ComputerName% %LocalHostName% %HostName% %HardwareUUID%
 *   %SerialNumber% %MACAddress% %AD_ComputerID% %AD_ComputerName% %AD_Domain%
 *   %AD_DomainForestName% %AD_DomainGUID% %AD_DomainNameDNS% %AD_KerberosID%.
 *     macOS policies: left in the profile for the Mac to resolve when it installs the payload.
 *     iOS policies (iOS resolves nothing): Scepter substitutes %SerialNumber% (serial number),
 *     %HardwareUUID% (the UDID) and %ComputerName% (the device name); a policy using any other
 *     Apple name is refused, because nothing could fill it in.
 *   Scepter's names, substituted by the server on both platforms: %UDID% (the device id),
 *     %DeviceName%, %Model% (as reported, e.g. "MacBookPro18,3", "iPhone14,2"),
 *     %ProductName%, %OSVersion% and %Platform% (the device's platform, "macos", "ios", ...).
 *   Any other %Name% (letters, digits, '_') is refused as a probable typo.  A '%' that does not
 *   open such a token (e.g. "100%") is literal text.  A device lacking a fact a substituted
 *   variable needs makes that device's render fail with an error naming the variable.
 *
 * Limits chosen here: retries 0..100, retry_delay 0..3600 seconds, name <= 255 bytes, notes
 * <= 8192, challenge <= 1024, url <= 2048, subject and each SAN value <= 1024 (at most 32 values
 * per subjectAltName kind), root
 * certificate < 1 MiB, targets.devices <= 200000 entries, targets.device_groups <= 10000.
 *
 * Conventions: fallible functions return 0 or a negative SCEPTER_E* code and fill a
 * caller-owned struct scepter_error (or, for validation, a struct profile_problems).  Strings
 * passed in are borrowed; everything returned through an out-parameter is the caller's and is
 * freed as stated.  profile_*_free(NULL) does nothing.
 */
#ifndef SCEPTER_PROFILES_PROFILES_H
#define SCEPTER_PROFILES_PROFILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>
#include <plist/plist.h>

#include "common/attr.h"
#include "common/buf.h"
#include "common/error.h"

/* ---------------------------------------------------------------------------------------- */
/* Problems: every validation error and warning, each naming its field                      */

struct profile_problem {
    bool warning;   /* false: an error that refuses the policy; true: advice only */
    char field[64]; /* dotted path, e.g. "scep.key_size", "targets.devices[3]" */
    char msg[256];  /* "<field>: <reason>", ready to show */
};

/* A plain value: zero-initialise (PROFILE_PROBLEMS_INIT), pass to validators, then clear. */
struct profile_problems {
    struct profile_problem *v; /* n entries, in the order found */
    size_t n, cap;
    size_t n_errors; /* entries with !warning */
};
#define PROFILE_PROBLEMS_INIT                                                                      \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

void profile_problems_clear(struct profile_problems *pr);
/* Record a problem (msg is prefixed with "<field>: "). */
void profile_problems_add(struct profile_problems *pr, bool warning, const char *field,
                          const char *fmt, ...) PRINTF(4, 5);
/* The first error, or NULL when there is none. */
const struct profile_problem *profile_problems_first_error(const struct profile_problems *pr);
/*
 * Fill err from the first error (SCEPTER_EINVAL, field set) and return SCEPTER_EINVAL; return
 * 0 and leave err alone when there are no errors.
 */
int profile_problems_to_error(const struct profile_problems *pr, struct scepter_error *err);
/*
 * The JSON the operator API answers a refused policy with:
 *   {"error": "<first error msg>", "field": "<its field>",
 *    "problems": [{"field", "message", "severity": "error"|"warning"}, ...]}
 * ("error"/"field" are absent when there are only warnings).  Caller json_decref()s.
 */
json_t *profile_problems_to_json(const struct profile_problems *pr);

/* ---------------------------------------------------------------------------------------- */
/* The policy                                                                               */

enum profile_platform {
    PROFILE_PLATFORM_NONE = 0,
    PROFILE_PLATFORM_MACOS, /* "macos" */
    PROFILE_PLATFORM_IOS,   /* "ios": iPhone and iPad */
};
const char *profile_platform_name(enum profile_platform p);  /* "macos", "ios" or "" */
enum profile_platform profile_platform_parse(const char *s); /* NONE when unknown */

#define PROFILE_KEY_USAGE_SIGNING    1u /* digitalSignature */
#define PROFILE_KEY_USAGE_ENCRYPTION 4u /* keyEncipherment */

#define PROFILE_DEFAULT_KEY_SIZE    1024 /* the admin guide's (and Apple's) default */
#define PROFILE_DEFAULT_RETRIES     3
#define PROFILE_DEFAULT_RETRY_DELAY 10
#define PROFILE_MAX_RETRIES         100
#define PROFILE_MAX_RETRY_DELAY     3600
#define PROFILE_MAX_ROOT_CERT       (1024 * 1024) /* "smaller than 1 MB" */

/* A list of strings the policy owns (v[0..n)); empty when n is 0. */
struct profile_strlist {
    char **v;
    size_t n;
};

/*
 * Where the SCEP identity is installed.  DEVICE: the System keychain, the profile sent on the
 * device channel (PayloadScope System).  USER (macOS only): the login keychain of the user
 * signed in, the profile sent on that user's channel (PayloadScope User): each targeted Mac's
 * user enrollments get the InstallProfile, a Mac without one gets it once a user's channel
 * checks in.
 */
enum profile_keychain {
    PROFILE_KEYCHAIN_DEVICE = 0, /* "device" (the default) */
    PROFILE_KEYCHAIN_USER,       /* "user" */
};

/*
 * Linked payloads: other payloads of the same profile that authenticate with the certificate
 * the SCEP payload obtains (their PayloadCertificateUUID is the SCEP payload's PayloadUUID).
 * Each is optional (NULL = none); see profiles/linked.c for the keys rendered and the rules.
 */
enum profile_ethernet_interface {
    PROFILE_ETHERNET_GLOBAL = 0, /* "global": com.apple.globalethernet.managed (macOS, iOS 17) */
    PROFILE_ETHERNET_FIRST,      /* "first": com.apple.firstethernet.managed (macOS only) */
};

struct profile_linked_wifi {
    char *ssid;                                  /* SSID_STR, required, 1..32 bytes */
    char *encryption;                            /* EncryptionType "WPA2" or "WPA3" (Enterprise) */
    bool hidden;                                 /* HIDDEN_NETWORK */
    bool auto_join;                              /* AutoJoin, default true */
    struct profile_strlist trusted_server_names; /* TLSTrustedServerNames of the RADIUS server */
    char *outer_identity;                        /* OuterIdentity, or NULL */
    char *username;                              /* UserName (variables allowed), or NULL */
};

struct profile_linked_ethernet {
    enum profile_ethernet_interface interface;
    struct profile_strlist trusted_server_names; /* TLSTrustedServerNames */
    char *outer_identity;                        /* OuterIdentity, or NULL */
    char *username;                              /* UserName, or NULL */
};

struct profile_linked_vpn {
    char *name;                  /* UserDefinedName, required */
    char *server;                /* IKEv2.RemoteAddress: host name or IP address, required */
    char *remote_identifier;     /* IKEv2.RemoteIdentifier, required */
    char *local_identifier;      /* IKEv2.LocalIdentifier (variables allowed), required */
    char *server_cert_issuer_cn; /* ServerCertificateIssuerCommonName, or NULL */
    char *server_cert_cn;        /* ServerCertificateCommonName, or NULL */
};

struct profile_linked {
    struct profile_linked_wifi *wifi;
    struct profile_linked_ethernet *ethernet;
    struct profile_linked_vpn *vpn;
};

/*
 * A SCEP Profiles policy: the one model.  The store keeps it as an opaque document
 * (profile_policy_document) next to the columns it queries; only this module parses it.  A
 * plain value that owns
 * every heap field; release with profile_policy_clear().  NULL strings mean "not set".
 */
struct profile_policy {
    char *name;                     /* required, unique per platform (the store checks) */
    enum profile_platform platform; /* required */
    char *notes;                    /* free text, rendered as the PayloadDescription */
    int64_t expires_in;             /* seconds its commands stay deliverable (0 = no expiry) */
    char *scep_url;                 /* required, http:// or https:// */
    char *scep_name;                /* SCEP Name (CA instance) */
    char *scep_challenge;           /* static pre-shared secret, as given */
    char *scep_fingerprint;         /* CA fingerprint as lower-case hex (40 or 64 digits) */
    char *scep_subject;             /* the subject statement as entered */
    int64_t key_size;               /* 1024, 2048 or 4096 */
    int64_t retries;                /* 0..PROFILE_MAX_RETRIES */
    int64_t retry_delay;            /* seconds, 0..PROFILE_MAX_RETRY_DELAY */
    bool key_extractable;           /* default false; rendered explicitly */
    int64_t key_usage;              /* bitmask of PROFILE_KEY_USAGE_* (0 = unspecified) */
    unsigned char *root_cert;       /* DER of the CA to install first, or NULL */
    size_t root_cert_len;
    /* Subject alternative names: each a list (JSON: a string or an array of strings). */
    struct profile_strlist san_dns, san_ntpn, san_rfc822, san_uri;
    bool allow_all_apps_access;     /* AllowAllAppsAccess (macOS only; default false) */
    enum profile_keychain keychain; /* where the identity goes (user: macOS only) */
    struct profile_linked linked;   /* payloads that use the SCEP certificate */
    char **target_devices;          /* UDIDs / device ids */
    size_t n_target_devices;
    char **target_groups; /* device group names */
    size_t n_target_groups;
    /* "ddm": Declarative Device Management where the device supports it (mdm/ddm.c) */
    bool ddm;
};

/* The longest expires_in of a policy (a year). */
#define PROFILE_MAX_EXPIRES_IN (365 * 86400)

/* Set every field to its default (empty strings NULL, key_size 1024, retries 3, delay 10). */
void profile_policy_init(struct profile_policy *p);
void profile_policy_clear(struct profile_policy *p);
/* A deep copy into *dst (which is overwritten, not cleared). */
void profile_policy_copy(struct profile_policy *dst, const struct profile_policy *src);

/*
 * Parse the operator JSON (see profiles/examples/) into *out (initialised by this function;
 * clear it even on failure) and validate it.  Every problem — unknown fields, wrong JSON
 * types, bad values — is added to *pr.  Returns 0 when there is no error (warnings may be
 * present), SCEPTER_EINVAL otherwise.  Conversions done for the user: fingerprint in base64
 * or hex (any delimiters, any case) -> lower-case hex; key_usage names -> bitmask;
 * root_certificate base64 of the .cer/.crt file (DER or PEM), or PEM text -> DER.  An empty
 * string or null in an optional field means "not set" (what web forms send).
 */
int profile_policy_from_json(const char *text, size_t len, struct profile_policy *out,
                             struct profile_problems *pr) WUR;
int profile_policy_from_json_value(json_t *root, struct profile_policy *p,
                                   struct profile_problems *pr) WUR;

/*
 * Validate a policy in canonical form (e.g. as read back from the store): the same rules as
 * the JSON path, errors and warnings appended to *pr.  0 or SCEPTER_EINVAL.
 */
int profile_policy_check(const struct profile_policy *p, struct profile_problems *pr) WUR;

#define PROFILE_JSON_MASK_CHALLENGE 0x1 /* "challenge": "********" (when set) */
/*
 * The policy as the operator JSON shape (what profile_policy_from_json accepts, so a GET can be
 * PUT back unless masked): fingerprint as lower-case hex, key_usage as names, root_certificate
 * as base64 of the DER.  Caller json_decref()s.
 */
json_t *profile_policy_to_json(const struct profile_policy *p, unsigned flags);

/*
 * The policy's canonical document, what the store keeps (it never parses it): the operator
 * JSON shape of profile_policy_to_json() with the challenge in clear and without "targets"
 * (the store keeps targets as rows it queries).  Caller frees.
 */
char *profile_policy_document(const struct profile_policy *p);
/*
 * A stored document back into *out (initialised here; clear it even on failure).  Fields are
 * read as profile_policy_from_json() reads them, but the rules are not applied: a policy saved
 * under older rules still reads back.  A document that is not one (bad JSON, wrong types,
 * unknown fields, "targets") is SCEPTER_EINVAL with field "document".
 */
int profile_policy_from_document(const char *doc, struct profile_policy *out,
                                 struct scepter_error *err) WUR;

/*
 * The checks an uploaded root certificate passes (the policy's scep.root_certificate and
 * POST /v1/certificates/inspect): smaller than 1 MB (else SCEPTER_ETOOBIG), exactly one
 * X.509 certificate in DER or PEM, and no private key (PEM key blocks, DER keys, PKCS#12).
 * Errors name field.  The certificate (X509_free) or NULL with err.
 */
X509 *profile_root_cert_read(const void *data, size_t len, const char *field,
                             struct scepter_error *err);

/*
 * The fingerprint as the user typed it -> bytes.  Accepts base64 (padded or not; what
 * `xxd -r -p | base64` prints) and hex with ':', ' ', '-' or no delimiters, any case.  A
 * string of only hex digits and delimiters is hex.  It must be 20 (SHA-1) or 32 (SHA-256)
 * bytes.  out has room for 32 bytes.  SCEPTER_EINVAL naming field otherwise.
 */
int profile_fingerprint_parse(const char *text, const char *field, unsigned char out[32],
                              size_t *outlen, struct scepter_error *err) WUR;

/*
 * Parse a subject statement ("/C=US/O=Example/CN=foo/", slashes at either end optional) into
 * Apple's Subject array [[["C","US"]],[["O","Example"]],[["CN","foo"]]] (a new plist the caller
 * plist_free()s).  Names: C, L, ST, O, OU, CN (any case, written upper-case) or dotted OIDs.
 * Escapes: "\/" "\=" "\\".  One attribute per RDN ('+' is literal text, not a multi-valued
 * RDN); at most 32 components.  Empty names, empty values, unknown short names, a bad OID or a
 * C that is not two letters are refused with err naming field.  Values are kept verbatim
 * (variables are not checked here).
 */
int profile_subject_parse(const char *stmt, const char *field, plist_t *out,
                          struct scepter_error *err) WUR;

/*
 * "com.scepter.policy.<platform>.<name slug>": a stable identifier for a policy with no id
 * (the CLI's default).  The slug keeps ASCII letters and digits, lower-cased, joined by '-';
 * a name with other characters (beyond space, '-', '_', '.') gets "-<8 hex of SHA-256(name)>"
 * appended so distinct names never share an identifier.  prefix NULL = "com.scepter".
 * Caller frees.
 */
char *profile_default_identifier(const struct profile_policy *p, const char *prefix);

/* ---------------------------------------------------------------------------------------- */
/* Devices and variables                                                                    */

/* What Scepter knows of a device (all borrowed; NULL = unknown). */
struct profile_device {
    const char *udid; /* device id: UDID (or EnrollmentID) */
    const char *serial_number;
    const char *device_name;
    const char *model; /* e.g. "MacBookPro18,3", "iPhone14,2" */
    const char *product_name;
    const char *os_version;
    const char *platform; /* "macos", "ios", "ipados", ... */
};

/*
 * Read device facts from JSON {"udid", "serial_number", "device_name", "model",
 * "product_name", "os_version", "platform"} (all optional strings; others refused).  The
 * strings in *out are borrowed from root.
 */
int profile_device_from_json(json_t *root, struct profile_device *out,
                             struct scepter_error *err) WUR;

enum profile_var_scope {
    PROFILE_VAR_SERVER,      /* Scepter substitutes on every platform */
    PROFILE_VAR_APPLE_IOS,   /* Apple name: the Mac resolves; Scepter substitutes on iOS */
    PROFILE_VAR_APPLE_MACOS, /* Apple name the Mac resolves; refused on iOS */
};
struct profile_variable {
    const char *name; /* without the percent signs */
    enum profile_var_scope scope;
    const char *description;
};
/* The table of known variables (static; n entries). */
const struct profile_variable *profile_variables(size_t *n);

/* ---------------------------------------------------------------------------------------- */
/* Rendering a policy                                                                       */

struct profile_render_opts {
    const char *identifier;   /* top-level PayloadIdentifier, e.g. "com.scepter.policy.42";
                                 NULL = profile_default_identifier(policy, NULL) */
    const char *organization; /* PayloadOrganization; NULL = none */
};

struct profile_template;

/*
 * Validate the policy and prepare its profile: the XML is built once with libplist, fresh
 * PayloadUUIDs included (new for every template, shared by the devices rendered from it), and
 * split where server-side variables go.  Layout: Configuration (PayloadIdentifier o->identifier,
 * PayloadDisplayName the policy name, PayloadDescription the notes, PayloadScope System — User
 * for a user-keychain policy — TargetDeviceType 5 for macOS or 1 for iOS) holding
 * "<identifier>.root" (com.apple.security.root, when root_cert is set), then "<identifier>.scep"
 * (com.apple.security.scep, KeyIsExtractable always written, AllowAllAppsAccess when set;
 * subjectAltNames a string for one value, an array for several), then the linked
 * "<identifier>.wifi", ".ethernet" and ".vpn" payloads, whose PayloadCertificateUUID is the SCEP
 * payload's PayloadUUID.  Problems (and
 * warnings, e.g. weak key size, no targets) are added to *pr; on error *out is NULL and
 * SCEPTER_EINVAL is returned.  Free with profile_template_free().
 */
int profile_template_new(const struct profile_policy *p, const struct profile_render_opts *o,
                         struct profile_template **out, struct profile_problems *pr) WUR;
void profile_template_free(struct profile_template *t);
/* True when the profile has no server-side variable: every device gets the same bytes. */
bool profile_template_is_uniform(const struct profile_template *t);
/* The top-level PayloadIdentifier (what RemoveProfile needs); borrowed. */
const char *profile_template_identifier(const struct profile_template *t);
/* Names (without '%') of the server-side variables the profile needs; borrowed, n entries. */
const char *const *profile_template_variables(const struct profile_template *t, size_t *n);
/*
 * Append the unsigned XML profile for one device to out (use buf_reset() between devices to
 * reuse the memory).  dev may be NULL for a uniform template.  Device values are XML-escaped;
 * a value with control characters or invalid UTF-8, a missing fact, or a device whose
 * platform does not match the policy is SCEPTER_EINVAL naming the variable (or "platform");
 * out is then left as it was.
 */
int profile_template_render(const struct profile_template *t, const struct profile_device *dev,
                            struct buf *out, struct scepter_error *err) WUR;

/*
 * One-shot convenience: template_new + render.  *xml (caller frees) and *len on success.
 * Validation problems go to *pr; a device problem to *pr as an error with its field.
 */
int profile_render(const struct profile_policy *p, const struct profile_device *dev,
                   const struct profile_render_opts *o, char **xml, size_t *len,
                   struct profile_problems *pr) WUR;

/* ---------------------------------------------------------------------------------------- */
/* The enrollment profile                                                                   */

#define PROFILE_ACCESS_RIGHTS_ALL 8191

struct profile_enroll_opts {
    const char *identifier;   /* top-level PayloadIdentifier; NULL = "com.scepter.enroll" */
    const char *organization; /* PayloadOrganization; NULL = none */
    const char *display_name; /* NULL = "MDM enrollment" */
    const char *server_url;   /* required, https://... (the connect endpoint) */
    const char *checkin_url;  /* optional, https://... */
    const char *topic;        /* required, com.apple.mgmt.... */
    int64_t access_rights;    /* 0 = PROFILE_ACCESS_RIGHTS_ALL */
    bool cap_bootstrap_token; /* add com.apple.mdm.bootstraptoken to ServerCapabilities */
    bool cap_token;           /* add com.apple.mdm.token */
    bool use_development_apns;
    /* The identity: set scep_url for a SCEP payload, or pkcs12 for a PKCS#12 payload. */
    const char *scep_url;
    const char *scep_challenge;
    const char *scep_name;
    int64_t scep_key_size;        /* 0 = 2048 */
    const char *scep_subject;     /* statement, e.g. "/O=Example/CN=%HardwareUUID%", or NULL */
    const char *scep_common_name; /* used as "/CN=<value>" when scep_subject is NULL */
    int64_t scep_key_usage;       /* 0 = signing|encryption (5) */
    const unsigned char *pkcs12;  /* PKCS#12 bytes with exactly one identity */
    size_t pkcs12_len;
    const char *pkcs12_password;
    /* Optional root CA of the TLS server (DER or PEM), installed first. */
    const unsigned char *root_cert;
    size_t root_cert_len;
};

/*
 * Render the enrollment profile (unsigned XML, caller frees *xml).  Payload order: root CA,
 * identity, com.apple.mdm (SignMessage and CheckOutWhenRemoved true, ServerCapabilities with
 * com.apple.mdm.per-user-connections, PayloadScope System).  Bad options: SCEPTER_EINVAL with
 * err naming the option; a PKCS#12 that does not open with the password: SCEPTER_ECRYPTO.
 */
int profile_enroll_render(const struct profile_enroll_opts *o, char **xml, size_t *len,
                          struct scepter_error *err) WUR;

/* ---------------------------------------------------------------------------------------- */
/* Signing                                                                                  */

struct profile_signer;

/*
 * A signer from PEM/DER files: cert_file holds the signing certificate first and optionally
 * its chain; key_file its private key (password may be NULL).  The key must match the
 * certificate.  SCEPTER_EIO / SCEPTER_ECRYPTO with a reason.
 */
int profile_signer_load(const char *cert_file, const char *key_file, const char *password,
                        struct profile_signer **out, struct scepter_error *err) WUR;
/* A signer from objects; references are taken (the caller keeps its own).  chain may be NULL. */
int profile_signer_new(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain,
                       struct profile_signer **out, struct scepter_error *err) WUR;
void profile_signer_free(struct profile_signer *s);

/*
 * CMS SignedData (DER) over data with the content attached, signer certificate and chain
 * embedded: what Apple accepts as a signed .mobileconfig.  *out is the caller's (free()).
 * The signer may be shared by threads.
 */
int profile_sign(const struct profile_signer *s, const void *data, size_t len, unsigned char **out,
                 size_t *outlen, struct scepter_error *err) WUR;

/*
 * Take a profile as a device would: a plain plist (XML or binary) is returned as is (*signer
 * NULL); DER CMS SignedData is verified — its signature always, and its signer's chain
 * against trust when trust is non-NULL — and its content returned with the signer
 * (X509_free() it; pass signer NULL if not wanted).  *plist (caller frees) is NUL-terminated.
 * SCEPTER_EINVAL for bytes that are neither, SCEPTER_ECRYPTO for a bad signature or an
 * untrusted signer.  The chain is checked for S/MIME signing unless trust carries another
 * purpose (X509_STORE_set_purpose(trust, X509_PURPOSE_ANY) for a TLS certificate used as the
 * signer, as devices accept).
 */
int profile_unwrap(const void *data, size_t len, X509_STORE *trust, unsigned char **plist,
                   size_t *plist_len, X509 **signer, struct scepter_error *err) WUR;

#endif
