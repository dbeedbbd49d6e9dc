/*
 * Fuzz target: what APNs (or anyone on the path to it) answers.  The bytes are the server's
 * side of the HTTP/2 connection — SETTINGS, HEADERS with :status and apns-id, DATA with
 * {"reason":...,"timestamp":...}, RST_STREAM, GOAWAY with its debug data, PING — fed to the
 * session core (apns/session.c) in pieces whose size the first byte picks, while requests are
 * submitted whenever the peer allows one (stream ids 1, 3, 5, ...).  Each answer goes through
 * the classification and the statistics slots.  Nothing may crash, leak or read out of
 * bounds, and every request must end in exactly one callback (answered or unanswered).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apns/apns.h"
#include "apns/apns_int.h"
#include "apns/session_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQUESTS 8

struct state {
    int submitted, ended[MAX_REQUESTS];
    size_t sink;
};

static void on_response(void *arg, void *user, const struct apns_h2_response *r)
{
    struct state *s = arg;
    intptr_t i = (intptr_t)user;

    s->ended[i]++;
    s->sink += (size_t)apns_classify(r->status, r->reason) + apns_status_slot(r->status) +
               apns_reason_slot(r->reason) + strlen(r->apns_id);
    if (apns_reason_slot_name(apns_reason_slot(r->reason)) == NULL)
        abort();
}

static void on_unanswered(void *arg, void *user, enum apns_unanswered why, uint32_t h2_error)
{
    struct state *s = arg;
    (void)why;
    (void)h2_error;
    s->ended[(intptr_t)user]++;
}

static void on_goaway(void *arg, uint32_t code, int32_t last, const char *reason)
{
    struct state *s = arg;
    s->sink += code + (size_t)last + strlen(reason);
}

static void discard(void *arg, const uint8_t *d, size_t len)
{
    (void)arg;
    (void)d;
    (void)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct apns_session_cbs cbs = {on_response, on_unanswered, NULL, on_goaway, NULL};
    struct state st;
    struct scepter_error err;
    struct apns_session *s;
    size_t step, pos = 1;

    if (size == 0)
        return 0;
    memset(&st, 0, sizeof(st));
    step = (size_t)(data[0] % 64) + 1;
    s = apns_session_new("api.sandbox.push.apple.com", &cbs, &st);
    if (apns_session_send(s, discard, NULL, 1 << 20, &err) < 0)
        abort(); /* the preface cannot fail */
    while (pos < size) {
        size_t n = size - pos < step ? size - pos : step;
        while (st.submitted < MAX_REQUESTS && apns_session_free_slots(s) > 0) {
            struct apns_h2_request r = {"00aaBBcc",
                                        "magic-1234",
                                        "com.apple.mgmt.External.x",
                                        (st.submitted & 1) ? "5" : NULL,
                                        (st.submitted & 2) ? "1700000000" : NULL,
                                        (void *)(intptr_t)st.submitted};
            if (apns_session_submit(s, &r, &err) != 0)
                break;
            st.submitted++;
        }
        if (apns_session_recv(s, data + pos, n, &err) != 0)
            break;
        if (apns_session_send(s, discard, NULL, 1 << 20, &err) < 0)
            break;
        pos += n;
        if (apns_session_finished(s))
            break;
    }
    apns_session_free(s);
    for (int i = 0; i < st.submitted; i++)
        if (st.ended[i] != 1)
            abort(); /* a request ended in no callback, or in two */
    return (int)(st.sink & 0);
}
