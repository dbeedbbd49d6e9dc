/*
 * mdm/ — the scepter daemon: Apple's MDM check-in and command protocol over HTTPS, device
 * identity, the enrollment profile, the operator API, metrics and background jobs.
 *
 * The daemon is one call: mdm_serve() listens as the configuration says and returns when a
 * SIGTERM/SIGINT has been handled (0) or start-up failed (negative, err filled).
 */
#ifndef SCEPTER_MDM_MDM_H
#define SCEPTER_MDM_MDM_H

#include <stdbool.h>
#include <stdint.h>

#include "common/attr.h"
#include "common/error.h"
#include "config/config.h"

/* Serve until a shutdown signal.  Takes ownership of cfg. */
int mdm_serve(struct cfg *cfg, struct scepter_error *err) WUR;

/*
 * The first admin account: create operator `name` with role admin and password (12 to 256
 * characters) directly in the store.  SCEPTER_ECONFLICT when an enabled admin account exists,
 * unless force (then `name` is created, or made an enabled admin with this password).
 */
struct store;
int mdm_operator_bootstrap(struct store *st, const char *name, const char *password, bool force,
                           int64_t now, struct scepter_error *err) WUR;
/* The same from bootstrap_admin_name and bootstrap_admin_password_file, when set and no
 * enabled admin account exists (at start). */
int mdm_operator_bootstrap_config(const struct cfg *cfg, struct store *st, int64_t now,
                                  struct scepter_error *err) WUR;

#endif
