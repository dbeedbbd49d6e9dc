/*
 * The store conformance suite's fixture.  Every test runs against the backend named by
 * SCEPTER_STORE_BACKEND ("sqlite", the default, or "postgres"), on a database of its own:
 * a fresh SQLite file in a temporary directory, or a fresh schema in the "pg" ctest
 * fixture's PostgreSQL (selected through the URL's search_path), dropped afterwards.
 */
#ifndef SCEPTER_TESTS_UNIT_STORE_FIXTURE_H
#define SCEPTER_TESTS_UNIT_STORE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define T0 1700000000 /* the tests' clock starts here */

/* Criterion .init / .fini: create and drop the test's database. */
void tf_setup(void);
void tf_teardown(void);
bool tf_pg(void);
/* The URL of the test's database (borrowed; valid until tf_teardown). */
const char *tf_url(void);
/* A new connection to the test's database (asserts success); store_close() it. */
struct store *tf_open(void);

/* SHA-256 hex of seed, as a certificate hash. */
void tf_hash(const char *seed, char out[65]);
/* Authenticate + TokenUpdate the device channel of udid (platform from product). */
void tf_enroll(struct store *s, const char *udid, const char *product, int64_t now);
/* n iPhones "D00", "D01", ... enrolled at T0: their names in names[], ids[i] = names[i]. */
void tf_enroll_numbered(struct store *s, int n, char (*names)[16], const char **ids);
/* For reads that must not grow with the history: n numbered iPhones (tf_enroll_numbered),
 * each given the same `commands` ProfileList commands at T0 + 1 (UUIDs tf_uuid(1000 + k)), all
 * of them cancelled; the last command's UUID in last. */
void tf_finished_history(struct store *s, int n, char (*names)[16], const char **ids,
                         unsigned commands, char last[37]);
/* Authenticate only (the channel stays disabled). */
void tf_authenticate(struct store *s, const char *udid, const char *product, int64_t now);
/* A command with a small (shared, static) plist; uuid is copied. */
struct store_command tf_cmd(const char *uuid, const char *request_type, int priority);
/* A deterministic UUID from n (upper-case, canonical). */
void tf_uuid(unsigned n, char out[37]);
/* One connect exchange; asserts success and returns 1/0 (command or not). */
int tf_connect(struct store *s, const char *enrollment, enum store_status st, const char *uuid,
               int64_t now, struct store_next *next, enum store_report_outcome *outcome);
/* Run a shell command as the PostgreSQL server user would (as root: runuser -u postgres). */
int tf_pg_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A libpq connection to the fixture's admin database (for SQL the store does not offer). */
void *tf_pg_admin(void);
/* Run SQL on a PGconn; returns the first value of the first row (caller frees) or NULL. */
char *tf_pg_query(void *conn, const char *sql);

#endif
