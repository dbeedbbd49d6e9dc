/*
 * store/ddm.c on every backend: a status report replaces an enrollment's declaration rows in
 * one piece and writes the device facts (the OS version also to the device record); a report
 * without declarations keeps the rows; bad values and unknown enrollments are refused naming
 * the field, with nothing stored; the device a certificate is bound to is found.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "fixture.h"

TestSuite(ddm, .init = tf_setup, .fini = tf_teardown);

static struct store_ddm_status item(const char *kind, const char *id, const char *token,
                                    bool active, const char *valid)
{
    struct store_ddm_status s;
    memset(&s, 0, sizeof(s));
    s.kind = kind;
    s.identifier = id;
    s.server_token = token;
    s.active = active;
    s.valid = valid;
    return s;
}

Test(ddm, reports_replace_rows_and_keep_facts)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_ddm_statuses l;
    struct store_device d;
    tf_enroll(s, "DEV-D1", "iPhone15,2", 1000);

    struct store_ddm_status a[] = {
        item("configurations", "com.example.c", "t1", true, "valid"),
        item("activations", "com.example.a", "t2", true, "valid"),
    };
    a[0].reasons_json = "[{\"code\":\"X\"}]";
    struct store_ddm_report r = {"DEV-D1", "DEV-D1", true, a, 2, "17.4", "iPhone", NULL};
    cr_assert_eq(store_ddm_report_save(s, &r, 2000, &err), 0, "%s", err.msg);
    cr_assert_eq(store_ddm_status_list(s, "DEV-D1", &l, &err), 0, "%s", err.msg);
    cr_assert_eq(l.n, 2);
    cr_assert_str_eq(l.v[0].kind, "activations");
    cr_assert_str_eq(l.v[1].identifier, "com.example.c");
    cr_assert_str_eq(l.v[1].reasons_json, "[{\"code\":\"X\"}]");
    cr_assert(l.v[1].active);
    cr_assert_eq(l.v[1].updated, 2000);
    store_ddm_statuses_clear(&l);
    memset(&d, 0, sizeof(d));
    cr_assert_eq(store_device_get(s, "DEV-D1", &d, &err), 0);
    cr_assert_str_eq(d.os_version, "17.4");
    store_device_clear(&d);

    /* facts only: the rows stay */
    struct store_ddm_report facts = {"DEV-D1", "DEV-D1", false, NULL, 0, NULL, "iPhone", NULL};
    cr_assert_eq(store_ddm_report_save(s, &facts, 3000, &err), 0, "%s", err.msg);
    cr_assert_eq(store_ddm_status_list(s, "DEV-D1", &l, &err), 0);
    cr_assert_eq(l.n, 2);
    store_ddm_statuses_clear(&l);

    /* a new declarations item replaces them all */
    struct store_ddm_status b[] = {item("assets", "com.example.s", "t3", false, "invalid")};
    struct store_ddm_report r2 = {"DEV-D1", "DEV-D1", true, b, 1, NULL, NULL, NULL};
    cr_assert_eq(store_ddm_report_save(s, &r2, 4000, &err), 0, "%s", err.msg);
    cr_assert_eq(store_ddm_status_list(s, "DEV-D1", &l, &err), 0);
    cr_assert_eq(l.n, 1);
    cr_assert_str_eq(l.v[0].valid, "invalid");
    cr_assert_null(l.v[0].reasons_json);
    store_ddm_statuses_clear(&l);
    store_close(s);
}

Test(ddm, bad_reports_store_nothing)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_ddm_statuses l;
    tf_enroll(s, "DEV-D2", "iPhone15,2", 1000);

    struct store_ddm_status bad_valid[] = {item("assets", "x", "t", true, "maybe")};
    struct store_ddm_report r = {"DEV-D2", "DEV-D2", true, bad_valid, 1, NULL, NULL, NULL};
    cr_assert_eq(store_ddm_report_save(s, &r, 2000, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "valid");
    struct store_ddm_status bad_kind[] = {item("widgets", "x", "t", true, "valid")};
    r.items = bad_kind;
    cr_assert_eq(store_ddm_report_save(s, &r, 2000, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "kind");
    struct store_ddm_status no_id[] = {item("assets", "", "t", true, "valid")};
    r.items = no_id;
    cr_assert_eq(store_ddm_report_save(s, &r, 2000, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "identifier");
    struct store_ddm_status ok[] = {item("assets", "x", "t", true, "valid")};
    struct store_ddm_report unknown = {"DEV-NONE", "DEV-NONE", true, ok, 1, "17.0", NULL, NULL};
    cr_assert_eq(store_ddm_report_save(s, &unknown, 2000, &err), SCEPTER_ENOTFOUND);
    cr_assert_str_eq(err.field, "enrollment_id");
    /* another device's enrollment id under this device: refused too */
    tf_enroll(s, "DEV-D3", "iPhone15,2", 1000);
    struct store_ddm_report crossed = {"DEV-D3", "DEV-D2", true, ok, 1, NULL, NULL, NULL};
    cr_assert_eq(store_ddm_report_save(s, &crossed, 2000, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_ddm_status_list(s, "DEV-D2", &l, &err), 0);
    cr_assert_eq(l.n, 0);
    store_ddm_statuses_clear(&l);
    cr_assert_eq(store_ddm_status_list(s, "DEV-D3", &l, &err), 0);
    cr_assert_eq(l.n, 0);
    store_ddm_statuses_clear(&l);
    store_close(s);
}

Test(ddm, the_device_of_a_certificate)
{
    struct scepter_error err;
    struct store *s = tf_open();
    char hash[65], *dev = NULL;
    tf_enroll(s, "DEV-D4", "iPhone15,2", 1000);
    tf_hash("cert-DEV-D4", hash); /* what tf_enroll binds */
    cr_assert_eq(store_ddm_cert_device(s, hash, &dev, &err), 0, "%s", err.msg);
    cr_assert_str_eq(dev, "DEV-D4");
    free(dev);
    tf_hash("nobody", hash);
    cr_assert_eq(store_ddm_cert_device(s, hash, &dev, &err), SCEPTER_ENOTFOUND);
    cr_assert_null(dev);
    cr_assert_eq(store_ddm_cert_device(s, "not-a-hash", &dev, &err), SCEPTER_EINVAL);
    store_close(s);
}

Test(ddm, page_of_reports_build_version_and_model_family)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_ddm_statuses l;
    struct store_device d;
    tf_enroll(s, "DEV-P1", "iPhone15,2", 1000);
    tf_enroll(s, "DEV-P2", "iPhone15,2", 1000);
    tf_enroll(s, "DEV-P3", "iPhone15,2", 1000);

    struct store_ddm_status a[] = {
        item("configurations", "com.x.policy.U1.identity", "t1", true, "valid"),
        item("configurations", "com.x.ddm.status-subscriptions", "t2", true, "valid"),
        item("activations", "com.x.policy.U1.activation", "t3", true, "valid"),
    };
    struct store_ddm_report r1 = {"DEV-P1", "DEV-P1", true, a, 3, "17.5", "iPhone", "21F79"};
    struct store_ddm_report r2 = {"DEV-P2", "DEV-P2", true, a, 1, NULL, NULL, NULL};
    cr_assert_eq(store_ddm_report_save(s, &r1, 2000, &err), 0, "%s", err.msg);
    cr_assert_eq(store_ddm_report_save(s, &r2, 2000, &err), 0, "%s", err.msg);

    /* the build version goes to the device record, the family beside it */
    memset(&d, 0, sizeof(d));
    cr_assert_eq(store_device_get(s, "DEV-P1", &d, &err), 0);
    cr_assert_str_eq(d.os_version, "17.5");
    cr_assert_str_eq(d.build_version, "21F79");
    cr_assert_str_eq(d.model_family, "iPhone");
    store_device_clear(&d);
    cr_assert_eq(store_device_get(s, "DEV-P3", &d, &err), 0);
    cr_assert_null(d.model_family);
    store_device_clear(&d);

    /* one query for many enrollments, only the policy's identifiers; '_' in the prefix is not
     * a pattern */
    const char *ids[] = {"DEV-P1", "DEV-P2", "DEV-P3"};
    cr_assert_eq(store_ddm_status_page(s, ids, 3, "com.x.policy.U1.", &l, &err), 0, "%s", err.msg);
    cr_assert_eq(l.n, 3);
    cr_assert_str_eq(l.v[0].enrollment_id, "DEV-P1");
    cr_assert_str_eq(l.v[0].kind, "activations");
    cr_assert_str_eq(l.v[1].enrollment_id, "DEV-P1");
    cr_assert_str_eq(l.v[2].enrollment_id, "DEV-P2");
    cr_assert_str_eq(l.v[2].identifier, "com.x.policy.U1.identity");
    store_ddm_statuses_clear(&l);
    cr_assert_eq(store_ddm_status_page(s, ids, 3, "com_x.policy.U1.", &l, &err), 0);
    cr_assert_eq(l.n, 0);
    store_ddm_statuses_clear(&l);
    store_close(s);
}

Test(ddm, handover_added_listed_done)
{
    struct scepter_error err;
    struct store *s = tf_open();
    int64_t *pids = NULL;
    char **uids = NULL;
    size_t n = 0;
    tf_enroll(s, "DEV-H1", "iPhone15,2", 1000);

    cr_assert_eq(store_ddm_handover_add(s, "DEV-H1", 7, "U7", 2000, &err), 0, "%s", err.msg);
    cr_assert_eq(store_ddm_handover_add(s, "DEV-H1", 7, "U7", 2001, &err), 0, "twice is once");
    cr_assert_eq(store_ddm_handover_add(s, "DEV-H1", 3, "U3", 2002, &err), 0);
    cr_assert_eq(store_ddm_handover_add(s, "DEV-NONE", 3, "U3", 2002, &err), SCEPTER_ENOTFOUND,
                 "an unknown enrollment: %s", err.msg);
    cr_assert_eq(store_ddm_handover_list(s, "DEV-H1", &pids, &uids, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(pids[0], 3);
    cr_assert_str_eq(uids[1], "U7");
    free(pids);
    store_strv_free(uids, n);
    cr_assert_eq(store_ddm_handover_done(s, "DEV-H1", 3, &err), 0);
    cr_assert_eq(store_ddm_handover_list(s, "DEV-H1", &pids, &uids, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(pids[0], 7);
    free(pids);
    store_strv_free(uids, n);
    store_close(s);
}
