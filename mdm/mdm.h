/*
 * mdm/ — the scepter daemon: Apple's MDM check-in and command protocol over HTTPS, device
 * identity, the enrollment profile, the operator API, metrics and background jobs.
 *
 * The daemon is one call: mdm_serve() listens as the configuration says and returns when a
 * SIGTERM/SIGINT has been handled (0) or start-up failed (negative, err filled).
 */
#ifndef SCEPTER_MDM_MDM_H
#define SCEPTER_MDM_MDM_H

#include "common/attr.h"
#include "common/error.h"
#include "config/config.h"

/* Serve until a shutdown signal.  Takes ownership of cfg. */
int mdm_serve(struct cfg *cfg, struct scepter_error *err) WUR;

#endif
