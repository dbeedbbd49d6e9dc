/*
 * The protocol limits, each once, with its reason.  Check-in, the store and the APNs client all
 * take their bounds from here, so a value accepted at one end is never refused at another
 * (a PushMagic stored by check-in that APNs later refuses would stop every batch it is in).
 */
#ifndef SCEPTER_COMMON_LIMITS_H
#define SCEPTER_COMMON_LIMITS_H

/*
 * A device identifier (UDID, or the EnrollmentID of a User Enrollment): 25 to 36 bytes from
 * real devices (Apple's UDID formats and 40-hex-digit legacy ones); the bound leaves room for
 * forms Apple has not used yet without letting a device store kilobytes per row.
 */
#define LIMIT_DEVICE_ID 256

/*
 * An enrollment (channel) identifier: a device id, or "<device id>:<UserID>" for a user
 * channel, so at most a device id plus a UserID (a UUID) and more.
 */
#define LIMIT_ENROLLMENT_ID (2 * LIMIT_DEVICE_ID)

/*
 * An APNs device token, in bytes.  Apple's tokens are 32 bytes today; Apple asks servers not to
 * assume a length ("device tokens can change in size"), so allow a generous bound.  In hex, as
 * APNs' :path carries it, twice as many digits.
 */
#define LIMIT_PUSH_TOKEN_BYTES 256
#define LIMIT_PUSH_TOKEN_HEX   (2 * LIMIT_PUSH_TOKEN_BYTES)

/*
 * PushMagic: a UUID string in practice.  It is sent back inside the JSON body {"mdm":"..."},
 * so it must be printable ASCII without a quote or a backslash (apns_push_magic_check).
 */
#define LIMIT_PUSH_MAGIC 255

/* A push topic (com.apple.mgmt.External.<UUID>): an APNs header value, printable ASCII. */
#define LIMIT_TOPIC 255

/*
 * A CommandUUID as a device reports it.  Scepter's commands use UUIDs (36 characters), but a
 * report's identifier is only matched against the queue, never parsed, and a longer one is
 * answered as "no such command" rather than as malformed.
 */
#define LIMIT_COMMAND_UUID 128

/* A device fact (serial number, model, OS version, name...) as stored. */
#define LIMIT_FACT 1024

#endif
