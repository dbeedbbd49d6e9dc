/*
 * The plist pre-scan: every bomb kind refused fast with an error naming what was exceeded,
 * before libplist sees it; real device bodies (large ProfileList and
 * InstalledApplicationList results, as XML and as libplist-written binary) accepted; the
 * depth and node limits exact at their edges.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/plistscan.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "support/plistbomb.h"

static const char *const envelope[] = {"Status",      "Acknowledged", "UDID", "UDID-BOMB",
                                       "CommandUUID", "0000-1111",    NULL};

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* What each bomb's refusal must say. */
static const char *expected(enum plistbomb_kind k)
{
    switch (k) {
    case PLISTBOMB_XML_DEEP:
    case PLISTBOMB_XML_DEEP_DICT:
    case PLISTBOMB_BIN_DEEP:
        return "nested deeper than 64";
    case PLISTBOMB_BIN_FANOUT:
        return "nodes once shared objects are expanded";
    case PLISTBOMB_BIN_OVERLAP:
        return "objects overlap";
    case PLISTBOMB_BIN_CYCLE:
    case PLISTBOMB_BIN_SELF:
        return "reference cycle";
    case PLISTBOMB_BIN_BAD_OFFSET:
        return "outside the object area";
    case PLISTBOMB_BIN_BAD_REF:
        return "references object 134217727; there are only";
    case PLISTBOMB_BIN_HUGE_COUNT:
        return "declares 4611686018427387904 elements";
    case PLISTBOMB_BIN_HUGE_STRING:
        return "declares 1099511627776 bytes";
    case PLISTBOMB_BIN_BAD_TRAILER:
        return "offset table of";
    default:
        return "?";
    }
}

/* Under ASan and UBSan the scan of the largest bomb (3 MB of XML) takes a few ms; 50 ms is
 * the bound the server must meet for a whole request. */
Test(plistscan, every_bomb_is_refused_fast_with_a_reason)
{
    for (int k = 0; k < PLISTBOMB_KIND_COUNT; k++) {
        size_t len;
        unsigned char *b = plistbomb_make((enum plistbomb_kind)k, 0, envelope, &len);
        struct scepter_error err;
        struct timespec t0;
        plist_t d = NULL;
        double ms;
        int rc;

        memset(&err, 0, sizeof(err));
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = plistscan_check(b, len, NULL, &err);
        ms = ms_since(&t0);
        cr_assert_eq(rc, SCEPTER_EINVAL, "%s: accepted", plistbomb_name((enum plistbomb_kind)k));
        cr_assert_str_eq(err.field, "body");
        cr_assert(strstr(err.msg, expected((enum plistbomb_kind)k)) != NULL, "%s: %s",
                  plistbomb_name((enum plistbomb_kind)k), err.msg);
        cr_assert_lt(ms, 50.0, "%s: %.1f ms", plistbomb_name((enum plistbomb_kind)k), ms);
        /* the parse entry refuses it the same way, before libplist */
        memset(&err, 0, sizeof(err));
        cr_assert_eq(plistx_parse_dict(b, len, &d, &err), SCEPTER_EINVAL);
        cr_assert_null(d);
        cr_assert(strstr(err.msg, expected((enum plistbomb_kind)k)) != NULL, "%s", err.msg);
        free(b);
    }
}

Test(plistscan, the_reported_bombs)
{
    /* the 127-byte fan-out (each array references the next twice) and the 3 MB XML
     * of 200,000 nested arrays */
    size_t len;
    struct scepter_error err;
    unsigned char *b = plistbomb_bin_nested(30, 1, NULL, &len);

    cr_assert_lt(len, 1024);
    cr_assert_eq(plistscan_check(b, len, NULL, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "nodes once shared objects are expanded"), "%s", err.msg);
    free(b);
    b = plistbomb_make(PLISTBOMB_XML_DEEP, 200000, NULL, &len);
    cr_assert_gt(len, 3000000);
    cr_assert_eq(plistscan_check(b, len, NULL, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "XML plist: arrays/dicts nested deeper than 64"), "%s", err.msg);
    free(b);
}

/* A ProfileList result with n profiles of 3 payloads each, like a managed Mac's. */
static plist_t profile_list(int n)
{
    plist_t root = plist_new_dict(), list = plist_new_array();

    plistx_set_string(root, "Status", "Acknowledged");
    plistx_set_string(root, "UDID", "6D5D2E6B-0F1B-4C2E-9A57-2E8F3C6A1B2C");
    plistx_set_string(root, "CommandUUID", "8E2B7A44-6C1F-4B8A-9F0E-0C4D1F5E2A3B");
    for (int i = 0; i < n; i++) {
        plist_t p = plist_new_dict(), content = plist_new_array();
        char id[64];
        snprintf(id, sizeof(id), "com.example.profile.%d", i);
        plistx_set_string(p, "PayloadIdentifier", id);
        plistx_set_string(p, "PayloadDisplayName", "Example profile");
        plistx_set_string(p, "PayloadUUID", "3F2504E0-4F89-11D3-9A0C-0305E82C3301");
        plistx_set_uint(p, "PayloadVersion", 1);
        plistx_set_bool(p, "PayloadRemovalDisallowed", i % 2);
        plistx_set_bool(p, "IsManaged", true);
        for (int j = 0; j < 3; j++) {
            plist_t pl = plist_new_dict();
            plistx_set_string(pl, "PayloadType", "com.apple.wifi.managed");
            plistx_set_string(pl, "PayloadIdentifier", id);
            plistx_set_uint(pl, "PayloadVersion", 1);
            plistx_set_data(pl, "Hash", "0123456789abcdef", 16);
            plist_array_append_item(content, pl);
        }
        plist_dict_set_item(p, "PayloadContent", content);
        plist_array_append_item(list, p);
    }
    plist_dict_set_item(root, "ProfileList", list);
    return root;
}

static void accepted_both_ways(plist_t p, uint64_t *nodes)
{
    char *xml = NULL, *bin = NULL;
    uint32_t xlen = 0, blen = 0;
    struct plistscan_stats sx, sb;
    struct scepter_error err;
    plist_t back = NULL;

    plist_to_xml(p, &xml, &xlen);
    plist_to_bin(p, &bin, &blen);
    cr_assert_eq(plistscan_check_stats(xml, xlen, NULL, &sx, &err), 0, "xml: %s", err.msg);
    cr_assert_eq(plistscan_check_stats(bin, blen, NULL, &sb, &err), 0, "bin: %s", err.msg);
    cr_assert_eq(sx.binary, 0);
    cr_assert_eq(sb.binary, 1);
    /* the two formats count the same tree the same way */
    cr_assert_eq(sx.nodes, sb.nodes, "xml %llu, bin %llu", (unsigned long long)sx.nodes,
                 (unsigned long long)sb.nodes);
    cr_assert_eq(sx.depth, sb.depth);
    cr_assert_eq(plistx_parse_dict(xml, xlen, &back, &err), 0, "%s", err.msg);
    plist_free(back);
    cr_assert_eq(plistx_parse_dict(bin, blen, &back, &err), 0, "%s", err.msg);
    plist_free(back);
    *nodes = sx.nodes;
    plist_to_xml_free(xml);
    plist_to_bin_free(bin);
}

Test(plistscan, large_device_results_are_accepted_in_both_formats)
{
    plist_t p = profile_list(500); /* ~1 MB of XML */
    uint64_t nodes;

    accepted_both_ways(p, &nodes);
    /* root dict (1) + 4 keys + 3 strings + the array (1) + per profile: dict, 7 keys, 6
     * values, the content array, 3 x (dict, 4 keys, 4 values) */
    cr_assert_eq(nodes, 1 + 4 + 3 + 1 + 500ull * (1 + 7 + 6 + 1 + 3 * 9));
    plist_free(p);

    /* an authenticate body */
    p = plist_new_dict();
    plistx_set_string(p, "MessageType", "Authenticate");
    plistx_set_string(p, "Topic", "com.apple.mgmt.External.e0bd1eac");
    plistx_set_string(p, "UDID", "66ADE930-5FDF-5EC4-8429-15640684C489");
    plistx_set_data(p, "Challenge", "apple", 5);
    plistx_set_string(p, "OSVersion", "17.4");
    accepted_both_ways(p, &nodes);
    cr_assert_eq(nodes, 1 + 5 + 5);
    plist_free(p);
}

Test(plistscan, depth_limit_is_exact)
{
    struct plistscan_stats st;
    struct scepter_error err;
    size_t len;
    /* root dict + 63 arrays = 64 */
    unsigned char *b = plistbomb_bin_nested(63, 0, NULL, &len);

    cr_assert_eq(plistscan_check_stats(b, len, NULL, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.depth, 64);
    free(b);
    b = plistbomb_bin_nested(64, 0, NULL, &len);
    cr_assert_eq(plistscan_check(b, len, NULL, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "nested deeper than 64"), "%s", err.msg);
    free(b);
    /* XML: <dict> + 63 <array>s */
    b = plistbomb_make(PLISTBOMB_XML_DEEP, 63, NULL, &len);
    cr_assert_eq(plistscan_check_stats(b, len, NULL, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.depth, 64);
    free(b);
    b = plistbomb_make(PLISTBOMB_XML_DEEP, 64, NULL, &len);
    cr_assert_eq(plistscan_check(b, len, NULL, &err), SCEPTER_EINVAL);
    free(b);
    /* a smaller limit */
    struct plistscan_limits lim = {8, 0};
    b = plistbomb_bin_nested(7, 0, NULL, &len);
    cr_assert_eq(plistscan_check(b, len, &lim, &err), 0, "%s", err.msg);
    free(b);
    b = plistbomb_bin_nested(8, 0, NULL, &len);
    cr_assert_eq(plistscan_check(b, len, &lim, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "nested deeper than 8"), "%s", err.msg);
    free(b);
}

Test(plistscan, shared_objects_count_once_per_use)
{
    struct plistscan_stats st;
    struct scepter_error err;
    size_t len;
    /* 5 arrays each holding the next twice, ending in a string: 2^6 - 1 arrays and leaves,
     * plus the root dict and its key */
    unsigned char *b = plistbomb_bin_nested(5, 1, NULL, &len);
    struct plistscan_limits lim = {0, 65};

    cr_assert_eq(plistscan_check_stats(b, len, NULL, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.nodes, 2 + 63);
    cr_assert_eq(st.depth, 6);
    cr_assert_eq(plistscan_check(b, len, &lim, &err), 0, "%s", err.msg);
    lim.max_nodes = 64;
    cr_assert_eq(plistscan_check(b, len, &lim, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "more than 64 nodes"), "%s", err.msg);
    /* libplist expands it the same way */
    plist_t d = NULL;
    cr_assert_eq(plistx_parse_dict(b, len, &d, &err), 0, "%s", err.msg);
    plist_free(d);
    free(b);
    /* a binary plist expands to no more nodes than it has bytes: 12 levels (8,193 nodes) in
     * ~200 bytes is a bomb whatever max_nodes says */
    b = plistbomb_bin_nested(12, 1, NULL, &len);
    cr_assert_lt(len, 8193);
    cr_assert_eq(plistscan_check(b, len, NULL, &err), SCEPTER_EINVAL);
    char want[64];
    snprintf(want, sizeof(want), "more than %zu nodes once shared objects", len);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    cr_assert(strstr(err.msg, "smaller of the plist's size in bytes and 1000000"), "%s", err.msg);
    free(b);
    /* XML counts elements */
    const char *xml = "<plist><dict><key>a</key><array><true/><false/></array></dict></plist>";
    lim.max_nodes = 5;
    cr_assert_eq(plistscan_check_stats(xml, strlen(xml), NULL, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.nodes, 5);
    cr_assert_eq(plistscan_check(xml, strlen(xml), &lim, &err), 0);
    lim.max_nodes = 4;
    cr_assert_eq(plistscan_check(xml, strlen(xml), &lim, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "more than 4 nodes"), "%s", err.msg);
}

Test(plistscan, malformed_xml_is_named)
{
    static const struct {
        const char *xml, *msg;
    } cases[] = {
        {"<plist><dict></array></plist>", "closing tag </array> at byte 13 does not match"},
        {"<plist><dict>", "element <dict> is not closed"},
        {"<plist><dict><!-- x", "unterminated comment at byte 13"},
        {"<plist><dict><key", "unterminated tag <key at byte 13"},
        {"<?xml version=\"1.0\"?><!DOCTYPE plist [<!ENTITY a \"aaaa\">]><plist/>",
         "DOCTYPE with an internal subset"},
        {"<plist><dict><string><![CDATA[ <", "unterminated CDATA section"},
        {"<plist><dict><>", "malformed tag at byte 13"},
    };
    struct scepter_error err;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_eq(plistscan_check(cases[i].xml, strlen(cases[i].xml), NULL, &err),
                     SCEPTER_EINVAL, "%s accepted", cases[i].xml);
        cr_assert(strstr(err.msg, cases[i].msg) != NULL, "%s: %s", cases[i].xml, err.msg);
    }
    /* what a plist may hold: comments, CDATA with markup, attributes with '>' in quotes */
    const char *ok = "<?xml version=\"1.0\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST "
                     "1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                     "<plist version=\"1.0>\"><!-- <array> --><dict><key>a</key>"
                     "<string><![CDATA[</dict><array>]]></string><key>b</key><data/>"
                     "</dict ></plist>";
    cr_assert_eq(plistscan_check(ok, strlen(ok), NULL, &err), 0, "%s", err.msg);
}

Test(plistscan, malformed_binary_is_named)
{
    struct scepter_error err;
    size_t len;
    unsigned char *b = plistbomb_bin_nested(2, 0, NULL, &len);
    unsigned char *c = (unsigned char *)xmemdup0(b, len);

    cr_assert_eq(plistscan_check(b, len, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(plistscan_check("bplist01xxxxxxxx", 16, NULL, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "bplist00"), "%s", err.msg);
    cr_assert_eq(plistscan_check("bplist00", 8, NULL, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "too short"), "%s", err.msg);
    /* top object out of range */
    c[len - 9] = 0x7f;
    cr_assert_eq(plistscan_check(c, len, NULL, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "top object 127"), "%s", err.msg);
    memcpy(c, b, len);
    /* reference size 0 */
    c[len - 25] = 0;
    cr_assert_eq(plistscan_check(c, len, NULL, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "reference size 0"), "%s", err.msg);
    memcpy(c, b, len);
    /* an unknown marker (0x70) in the first object, after the header */
    c[8] = 0x70;
    cr_assert_eq(plistscan_check(c, len, NULL, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "unsupported object marker 0x70"), "%s", err.msg);
    /* every truncation and every single-byte change: refused or accepted, never a crash, and
     * what is accepted libplist parses */
    for (size_t n = 0; n < len; n++) {
        plist_t d = NULL;
        if (plistx_parse_dict(b, n, &d, &err) == 0)
            plist_free(d);
    }
    for (size_t i = 0; i < len; i++)
        for (int v = 0; v < 256; v += 17) {
            plist_t d = NULL;
            memcpy(c, b, len);
            c[i] = (unsigned char)v;
            if (plistx_parse_dict(c, len, &d, &err) == 0)
                plist_free(d);
        }
    free(b);
    free(c);
}
