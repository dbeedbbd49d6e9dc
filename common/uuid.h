/*
 * Random (version 4) UUIDs in Apple's canonical upper-case form, as used for PayloadUUID and
 * CommandUUID.  Tests may inject a deterministic generator.
 */
#ifndef SCEPTER_COMMON_UUID_H
#define SCEPTER_COMMON_UUID_H

#include <stdbool.h>

#define UUID_STR_LEN 37 /* 36 characters and the NUL */

/* Write a fresh UUID into out. */
void uuid_new(char out[UUID_STR_LEN]);
/* Lower-case variant (APNs apns-id wants lower case). */
void uuid_new_lower(char out[UUID_STR_LEN]);
/* True if s is 8-4-4-4-12 hex digits (any case). */
bool uuid_valid(const char *s);

typedef void (*uuid_generator_fn)(char out[UUID_STR_LEN], void *arg);
/* Replace the generator (NULL restores the random one).  For tests only; not thread-safe. */
void uuid_set_generator(uuid_generator_fn fn, void *arg);

#endif
