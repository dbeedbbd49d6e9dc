/*
 * The HTTP/2 core of one APNs connection.  It sees bytes, not sockets: the transport feeds
 * what it read to apns_session_recv() and writes what apns_session_send() hands its sink.
 * The core turns pushes into requests (POST /3/device/<token>, apns-* headers, body
 * {"mdm":"<magic>"}), never opens more streams than the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS, parses answers (:status, apns-id, {"reason":...}) and
 * tells its owner, through callbacks, what became of each request — including the ones that
 * were never answered (refused after GOAWAY, reset, or lost with the connection).
 *
 * Callbacks run inside apns_session_recv/send/abort/free; they must not call back into the
 * same session except through the read-only queries.
 */
#ifndef SCEPTER_APNS_SESSION_INT_H
#define SCEPTER_APNS_SESSION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/attr.h"
#include "common/error.h"

/* Error bodies longer than this are cut (APNs sends a few dozen bytes). */
#define APNS_MAX_RESPONSE_BODY 4096

struct apns_session;

/* One request.  Strings are copied by apns_session_submit. */
struct apns_h2_request {
    const char *token_hex;  /* path /3/device/<token_hex> */
    const char *push_magic; /* body {"mdm":"<push_magic>"} */
    const char *topic;      /* apns-topic */
    const char *priority;   /* apns-priority ("10", "5", "1"); NULL = omit */
    const char *expiration; /* apns-expiration (UNIX seconds, decimal); NULL = omit */
    void *user;             /* handed back in the callbacks */
};

/* A complete answer. */
struct apns_h2_response {
    int status;
    const char *reason;   /* from the JSON body, "" if none */
    const char *apns_id;  /* "" if none */
    int64_t timestamp_ms; /* "timestamp" of a 410, 0 if none */
};

/* Why a request got no answer. */
enum apns_unanswered {
    APNS_UNSENT,  /* it never left this process: safe to send again */
    APNS_REFUSED, /* the peer refused it unprocessed (above GOAWAY's last stream, or
                     REFUSED_STREAM): safe to send again */
    APNS_LOST,    /* reset, or the connection went away after it was sent: it may or may not
                     have been delivered */
};

struct apns_session_cbs {
    void (*response)(void *arg, void *user, const struct apns_h2_response *r);
    void (*unanswered)(void *arg, void *user, enum apns_unanswered why, uint32_t h2_error);
    /* The peer's SETTINGS arrived (the first time and every change after). */
    void (*settings)(void *arg, uint32_t max_concurrent_streams);
    /* GOAWAY: streams up to last_stream_id will still be answered. reason may be "". */
    void (*goaway)(void *arg, uint32_t error_code, int32_t last_stream_id, const char *reason);
    void (*ping_ack)(void *arg);
};

/*
 * A client session for :authority `authority`.  Queues the connection preface and our
 * SETTINGS (push disabled) for the first apns_session_send.  cbs is copied.
 */
struct apns_session *apns_session_new(const char *authority, const struct apns_session_cbs *cbs,
                                      void *arg);
/* Report every request still open as unanswered (APNS_UNSENT or APNS_LOST), then free.
 * NULL does nothing. */
void apns_session_free(struct apns_session *s);

/* Feed bytes read from the peer.  SCEPTER_EIO on a protocol error: the connection is dead
 * (call apns_session_free). */
int apns_session_recv(struct apns_session *s, const uint8_t *data, size_t len,
                      struct scepter_error *err) WUR;

typedef void (*apns_sink_fn)(void *arg, const uint8_t *data, size_t len);
/*
 * Hand pending frames to sink until none are left or about `limit` bytes were written.
 * Returns the number of bytes written, or SCEPTER_EIO (the session is dead).
 */
int64_t apns_session_send(struct apns_session *s, apns_sink_fn sink, void *arg, size_t limit,
                          struct scepter_error *err);

/*
 * Streams that may be opened now: the peer's SETTINGS_MAX_CONCURRENT_STREAMS minus the open
 * ones.  0 before the peer's SETTINGS, after GOAWAY, after apns_session_shutdown, and when the
 * stream ids are used up.
 */
size_t apns_session_free_slots(const struct apns_session *s);
/* Queue a request.  SCEPTER_EUNAVAIL when there is no free slot (nothing queued). */
int apns_session_submit(struct apns_session *s, const struct apns_h2_request *r,
                        struct scepter_error *err) WUR;
/* Requests submitted and not yet finished. */
size_t apns_session_open_streams(const struct apns_session *s);
/* The peer's current SETTINGS_MAX_CONCURRENT_STREAMS (0 before its SETTINGS). */
uint32_t apns_session_peer_max_streams(const struct apns_session *s);
bool apns_session_got_settings(const struct apns_session *s);
/* True when frames wait for apns_session_send. */
bool apns_session_want_write(const struct apns_session *s);
/* True when the session is over: GOAWAY exchanged (either way) and every stream finished. */
bool apns_session_finished(const struct apns_session *s);
/* Queue a PING (the answer comes through cbs.ping_ack). */
int apns_session_ping(struct apns_session *s, struct scepter_error *err) WUR;
/* Queue GOAWAY(NO_ERROR): no new requests; open ones finish. */
void apns_session_shutdown(struct apns_session *s);

#endif
