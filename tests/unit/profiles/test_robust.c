/*
 * Bad input from the network, generated: deterministic mutations of a valid policy, random
 * subject statements and damaged signed profiles.  Whatever comes in, the answer is either a
 * valid rendering that libplist reads back byte for byte, or problems that each name a field —
 * never a crash (the sanitizers watch) or a silent half-result.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "tp.h"

/* A small deterministic generator (xorshift), so failures reproduce. */
static uint64_t g_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    g_state ^= g_state << 13;
    g_state ^= g_state >> 7;
    g_state ^= g_state << 17;
    return g_state;
}

static void check_outcome(int rc, const struct profile_policy *p, const struct profile_problems *pr,
                          const char *input)
{
    if (rc != 0) {
        cr_assert_gt(pr->n_errors, 0, "refused without an error: %s", input);
        for (size_t i = 0; i < pr->n; i++) {
            cr_assert_gt(strlen(pr->v[i].field), 0, "problem without a field: %s", pr->v[i].msg);
            cr_assert(strncmp(pr->v[i].msg, pr->v[i].field, strlen(pr->v[i].field)) == 0,
                      "message does not name its field: %s", pr->v[i].msg);
        }
        return;
    }
    /* Accepted: it must render, and the XML must read back exactly. */
    size_t len;
    struct profile_device dev = {"UDID-X", "SER1", "Dev & <Name>", "Model1,1", "Prod", "1.0", NULL};
    char *xml = tp_render(p, &dev, &len);
    plist_free(tp_round_trip(xml, len));
    free(xml);
}

Test(robust, mutated_policy_json)
{
    json_t *base = tp_base();
    json_object_set_new(
        json_object_get(base, "scep"), "subject_alt_name",
        json_pack("{s:s,s:s}", "dns_name", "%ComputerName%.example.com", "rfc822_name", "a@b.c"));
    char *text = json_dumps(base, JSON_COMPACT);
    size_t len = strlen(text);
    json_decref(base);
    const char alphabet[] = "{}[]\":,%/=\\ 0123456789abcxyzACN.-_\x01\xc3\xa9";

    for (int iter = 0; iter < 1500; iter++) {
        char *m = xmemdup0(text, len);
        size_t mlen = len;
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits && mlen > 1; e++) {
            size_t pos = (size_t)(rnd() % mlen);
            switch (rnd() % 3) {
            case 0: /* replace */
                m[pos] = alphabet[rnd() % (sizeof(alphabet) - 1)];
                break;
            case 1: /* delete */
                memmove(m + pos, m + pos + 1, mlen - pos);
                mlen--;
                break;
            default: /* truncate */
                if (pos > 0) {
                    m[pos] = '\0';
                    mlen = pos;
                }
                break;
            }
        }
        struct profile_policy p;
        struct profile_problems pr = PROFILE_PROBLEMS_INIT;
        int rc = profile_policy_from_json(m, mlen, &p, &pr);
        check_outcome(rc, &p, &pr, m);
        profile_policy_clear(&p);
        profile_problems_clear(&pr);
        free(m);
    }
    free(text);
}

Test(robust, random_subjects_and_san_values)
{
    const char *pieces[] = {"/",
                            "=",
                            "\\/",
                            "\\=",
                            "\\",
                            "CN",
                            "O",
                            "C",
                            "US",
                            "x",
                            " ",
                            "%",
                            "%UDID%",
                            "%SerialNumber%",
                            "%MACAddress%",
                            "%Bad%",
                            "1.2.3",
                            "0..1",
                            "&",
                            "<",
                            "]]>",
                            "é"};
    for (int iter = 0; iter < 3000; iter++) {
        char subj[256] = "";
        int n = 1 + (int)(rnd() % 10);
        for (int i = 0; i < n; i++) {
            size_t l = strlen(subj);
            snprintf(subj + l, sizeof(subj) - l, "%s",
                     pieces[rnd() % (sizeof(pieces) / sizeof(pieces[0]))]);
        }
        json_t *j = tp_base();
        tp_set(j, "platform", json_string(rnd() % 2 ? "ios" : "macos"));
        tp_set(j, rnd() % 2 ? "scep.subject" : "scep.subject_alt_name.nt_principal_name",
               json_string(subj));
        struct profile_policy p;
        struct profile_problems pr = PROFILE_PROBLEMS_INIT;
        int rc = tp_parse(j, &p, &pr);
        check_outcome(rc, &p, &pr, subj);
        profile_policy_clear(&p);
        profile_problems_clear(&pr);
        json_decref(j);
    }
}

Test(robust, fingerprint_noise)
{
    const char alphabet[] = "0123456789abcdefABCDEF:- =+/xyz\t";
    for (int iter = 0; iter < 5000; iter++) {
        char s[80];
        size_t n = (size_t)(rnd() % (sizeof(s) - 1));
        for (size_t i = 0; i < n; i++)
            s[i] = alphabet[rnd() % (sizeof(alphabet) - 1)];
        s[n] = '\0';
        unsigned char out[32];
        size_t olen = 99;
        struct scepter_error err;
        int rc = profile_fingerprint_parse(s, "scep.fingerprint", out, &olen, &err);
        if (rc == 0)
            cr_assert(olen == 20 || olen == 32, "\"%s\" gave %zu bytes", s, olen);
        else
            cr_assert(olen == 0 && strcmp(err.field, "scep.fingerprint") == 0, "\"%s\"", s);
    }
}
