/*
 * Device groups: names, renames, membership changes with unknown devices refused whole.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

TestSuite(groups, .init = tf_setup, .fini = tf_teardown);

static void free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

Test(groups, create_rename_delete)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_group *g, one;
    int64_t id, id2;
    size_t n;

    cr_assert_eq(store_group_create(s, "Lab Macs", T0, &id, &err), 0, "%s", err.msg);
    cr_assert_gt(id, 0);
    cr_assert_eq(store_group_create(s, "Lab Macs", T0, &id2, &err), SCEPTER_ECONFLICT);
    cr_assert_str_eq(err.field, "name");
    cr_assert_eq(store_group_create(s, "iPads", T0 + 1, &id2, &err), 0);
    cr_assert_eq(store_group_create(s, "", T0, &id2, &err), SCEPTER_EINVAL);
    cr_assert_eq(store_group_create(s, "bad\nname", T0, &id2, &err), SCEPTER_EINVAL);
    cr_assert_eq(store_group_rename(s, "Lab Macs", "iPads", &err), SCEPTER_ECONFLICT);
    cr_assert_str_eq(err.field, "new_name");
    cr_assert_eq(store_group_rename(s, "nope", "x", &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_group_rename(s, "Lab Macs", "Labs", &err), 0, "%s", err.msg);
    cr_assert_eq(store_group_get(s, "Labs", &one, &err), 0);
    cr_assert_eq(one.id, id);
    cr_assert_eq(one.members, 0);
    cr_assert_eq(one.created, T0);
    free(one.name);
    cr_assert_eq(store_group_list(s, &g, &n, &err), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(g[0].name, "Labs");
    cr_assert_str_eq(g[1].name, "iPads");
    store_groups_free(g, n);
    cr_assert_eq(store_group_delete(s, "Labs", &err), 0);
    cr_assert_eq(store_group_delete(s, "Labs", &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_group_get(s, "Labs", &one, &err), SCEPTER_ENOTFOUND);
    store_close(s);
}

Test(groups, membership)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_group one;
    struct store_device d;
    char **ids;
    size_t n, changed;
    int64_t id;
    const char *add[] = {"B", "A", "B"};
    const char *bad[] = {"A", "ghost"};
    const char *rm[] = {"A", "ghost"};

    tf_enroll(s, "A", "iPhone14,2", T0);
    tf_enroll(s, "B", "iPhone14,2", T0);
    cr_assert_eq(store_group_create(s, "G", T0, &id, &err), 0);
    cr_assert_eq(store_group_add(s, "G", add, 3, &changed, &err), 0, "%s", err.msg);
    cr_assert_eq(changed, 2);
    cr_assert_eq(store_group_add(s, "G", add, 2, &changed, &err), 0);
    cr_assert_eq(changed, 0);
    cr_assert_eq(store_group_add(s, "G", bad, 2, &changed, &err), SCEPTER_ENOTFOUND);
    cr_assert(strstr(err.msg, "ghost"), "%s", err.msg);
    cr_assert_eq(store_group_add(s, "nope", add, 1, &changed, &err), SCEPTER_ENOTFOUND);
    cr_assert_str_eq(err.field, "name");
    cr_assert_eq(store_group_members(s, "G", &ids, &n, &err), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(ids[0], "A");
    cr_assert_str_eq(ids[1], "B");
    free_ids(ids, n);
    cr_assert_eq(store_device_get(s, "A", &d, &err), 0);
    cr_assert_eq(d.n_groups, 1);
    store_device_clear(&d);
    cr_assert_eq(store_group_remove(s, "G", rm, 2, &changed, &err), 0, "%s", err.msg);
    cr_assert_eq(changed, 1);
    cr_assert_eq(store_group_get(s, "G", &one, &err), 0);
    cr_assert_eq(one.members, 1);
    free(one.name);
    cr_assert_eq(store_group_members(s, "nope", &ids, &n, &err), SCEPTER_ENOTFOUND);
    store_close(s);
}
