/*
 * Helpers for the simulator's tests: a real scepserver (Debian's scep package) on an
 * ephemeral loopback port, test identities and CMS-signed profiles.  Everything asserts.
 */
#ifndef SCEPTER_TESTS_SIM_TEST_UTIL_H
#define SCEPTER_TESTS_SIM_TEST_UTIL_H

#include <sys/types.h>

#include "tests/sim/sim.h"

struct scep_srv {
    pid_t pid;
    int port;
    char *dir; /* temporary directory (depot, log) */
    char *url; /* http://127.0.0.1:PORT/scep */
    X509 *ca;  /* the CA certificate */
};

/* Start scepserver with a fresh CA and the given challenge (bounded 15 s start-up wait). */
void ts_scep_start(struct scep_srv *s, const char *challenge);
void ts_scep_stop(struct scep_srv *s);
/* A free loopback port (bound then closed). */
int ts_free_port(void);
/* A key and a self-signed certificate with CN=cn. */
void ts_identity(const char *cn, X509 **cert, EVP_PKEY **key);
/* CMS SignedData (DER, content included) of data; caller frees. */
unsigned char *ts_cms_sign(const void *data, size_t len, X509 *cert, EVP_PKEY *key, size_t *outlen);
/* XML of a plist (caller frees). */
char *ts_xml(plist_t p, size_t *len);
/* A device enrolled with the nanomdm fixture profile (SCEP identity, AccessRights rights). */
struct sim_device *ts_enrolled_device(enum sim_platform platform, uint64_t rights);
/* A command body {CommandUUID, Command:{RequestType, ...params}}; params may be NULL and is
 * consumed. */
char *ts_command(const char *uuid, const char *type, plist_t params, size_t *len);
/* A minimal profile: identifier, uuid, and payloads (consumed). */
plist_t ts_profile(const char *identifier, const char *uuid, plist_t payloads);
plist_t ts_payload(const char *type, const char *identifier, const char *uuid);

#endif
