/*
 * Operator accounts, roles and the audit log, on both stores: accounts are unique by name and
 * validated; the last enabled admin cannot be demoted, disabled or deleted; a new password
 * revokes the account's other sessions and disabling it all of them, and a session reports
 * its account's role as it is now; API keys carry a role and the keys that existed before
 * roles are admins; audit entries are listed newest first with every filter, paged by id,
 * and purged by age.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/xmalloc.h"
#include "fixture.h"

TestSuite(operators, .init = tf_setup, .fini = tf_teardown);

#define HASH_A "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g" /* any string */
#define HASH_B "$argon2id$v=19$m=65536,t=2,p=1$b3RoZXJzYWx0$b3RoZXJoYXNo"

static int64_t mk(struct store *s, const char *name, enum store_role role)
{
    struct scepter_error err;
    int64_t id = 0;
    cr_assert_eq(store_operator_create(s, name, role, HASH_A, T0, &id, &err), 0, "%s: %s", name,
                 err.msg);
    cr_assert_gt(id, 0);
    return id;
}

static struct store_operator get(struct store *s, const char *name)
{
    struct scepter_error err;
    struct store_operator o;
    cr_assert_eq(store_operator_get(s, name, &o, &err), 0, "%s: %s", name, err.msg);
    return o;
}

Test(operators, create_get_list_and_refuse_bad_input)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_operator *v = NULL, o;
    size_t n = 0;
    int64_t id = 0;

    int64_t a = mk(s, "alice@example.com", STORE_ROLE_ADMIN);
    mk(s, "bob.smith-2_x", STORE_ROLE_VIEWER);
    o = get(s, "alice@example.com");
    cr_assert_eq(o.id, a);
    cr_assert_eq(o.role, STORE_ROLE_ADMIN);
    cr_assert_str_eq(o.password_hash, HASH_A);
    cr_assert_not(o.disabled);
    cr_assert_eq(o.created, T0);
    cr_assert_eq(o.updated, T0);
    cr_assert_eq(o.password_changed, T0);
    cr_assert_eq(o.last_sign_in, 0);
    store_operator_clear(&o);

    cr_assert_eq(
        store_operator_create(s, "alice@example.com", STORE_ROLE_VIEWER, HASH_B, T0, &id, &err),
        SCEPTER_ECONFLICT);
    cr_assert_str_eq(err.field, "name");
    cr_assert_eq(store_operator_create(s, "with space", STORE_ROLE_VIEWER, HASH_B, T0, &id, &err),
                 SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "name");
    cr_assert_eq(store_operator_create(s, "", STORE_ROLE_VIEWER, HASH_B, T0, &id, &err),
                 SCEPTER_EINVAL);
    char longname[66];
    memset(longname, 'x', 65);
    longname[65] = '\0';
    cr_assert_eq(store_operator_create(s, longname, STORE_ROLE_VIEWER, HASH_B, T0, &id, &err),
                 SCEPTER_EINVAL);
    longname[64] = '\0';
    cr_assert_eq(store_operator_create(s, longname, STORE_ROLE_VIEWER, HASH_B, T0, &id, &err), 0,
                 "64 characters are allowed: %s", err.msg);
    cr_assert_eq(store_operator_create(s, "carol", STORE_ROLE_NONE, HASH_B, T0, &id, &err),
                 SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "role");
    cr_assert_eq(store_operator_get(s, "nobody", &o, &err), SCEPTER_ENOTFOUND);

    cr_assert_eq(store_operator_list(s, &v, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(v[0].name, "alice@example.com");
    cr_assert_str_eq(v[1].name, "bob.smith-2_x");
    cr_assert_eq(v[1].role, STORE_ROLE_VIEWER);
    cr_assert_null(v[0].password_hash, "lists never carry hashes");
    store_operators_free(v, n);

    cr_assert_eq(store_operator_signed_in(s, a, T0 + 50, &err), 0, "%s", err.msg);
    o = get(s, "alice@example.com");
    cr_assert_eq(o.last_sign_in, T0 + 50);
    store_operator_clear(&o);
    store_close(s);
}

Test(operators, the_last_enabled_admin_stays)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_operator o;
    int64_t revoked = 0, admins = 0;

    mk(s, "root", STORE_ROLE_ADMIN);
    mk(s, "ops", STORE_ROLE_OPERATOR);
    struct store_operator_change demote = {.set_role = true, .role = STORE_ROLE_OPERATOR};
    struct store_operator_change disable = {.set_disabled = true, .disabled = true};
    cr_assert_eq(store_operator_update(s, "root", &demote, NULL, T0 + 1, NULL, &revoked, &err),
                 SCEPTER_ECONFLICT);
    cr_assert_str_eq(err.field, "role");
    cr_assert_eq(store_operator_update(s, "root", &disable, NULL, T0 + 1, NULL, &revoked, &err),
                 SCEPTER_ECONFLICT);
    cr_assert_str_eq(err.field, "disabled");
    cr_assert_eq(store_operator_delete(s, "root", &err), SCEPTER_ECONFLICT);
    o = get(s, "root");
    cr_assert_eq(o.role, STORE_ROLE_ADMIN, "nothing changed");
    cr_assert_not(o.disabled);
    store_operator_clear(&o);

    /* Other accounts change freely. */
    cr_assert_eq(store_operator_update(s, "ops", &disable, NULL, T0 + 2, NULL, &revoked, &err), 0,
                 "%s", err.msg);
    /* A disabled admin is no admin: promoting ops while disabled leaves root the last one. */
    struct store_operator_change promote = {.set_role = true, .role = STORE_ROLE_ADMIN};
    cr_assert_eq(store_operator_update(s, "ops", &promote, NULL, T0 + 3, NULL, &revoked, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(store_operator_admins(s, &admins, &err), 0, "%s", err.msg);
    cr_assert_eq(admins, 1);
    cr_assert_eq(store_operator_delete(s, "root", &err), SCEPTER_ECONFLICT);
    /* Enabled, ops is a second admin: now root may go. */
    struct store_operator_change enable = {.set_disabled = true, .disabled = false};
    struct store_operator before = {0};
    cr_assert_eq(store_operator_update(s, "ops", &enable, NULL, T0 + 4, &before, &revoked, &err), 0,
                 "%s", err.msg);
    cr_assert(before.disabled, "before: as it was");
    cr_assert_eq(before.role, STORE_ROLE_ADMIN);
    store_operator_clear(&before);
    cr_assert_eq(store_operator_update(s, "root", &demote, NULL, T0 + 5, NULL, &revoked, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(store_operator_delete(s, "ops", &err), SCEPTER_ECONFLICT,
                 "ops is the last admin now");
    cr_assert_eq(store_operator_delete(s, "root", &err), 0, "%s", err.msg);
    cr_assert_eq(store_operator_get(s, "root", &o, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_operator_delete(s, "root", &err), SCEPTER_ENOTFOUND);
    store_close(s);
}

static void session(struct store *s, const char *seed, int64_t op, char h[65])
{
    struct scepter_error err;
    tf_hash(seed, h);
    cr_assert_eq(store_session_create_operator(s, h, "csrf", op, "127.0.0.1", T0, T0 + 3600, &err),
                 0, "%s", err.msg);
}

static struct store_session sget(struct store *s, const char *h)
{
    struct scepter_error err;
    struct store_session ss;
    cr_assert_eq(store_session_get(s, h, &ss, &err), 0, "%s", err.msg);
    return ss;
}

Test(operators, sessions_follow_their_account)
{
    struct scepter_error err;
    struct store *s = tf_open();
    char h1[65], h2[65], h3[65];
    int64_t revoked = 0;

    mk(s, "root", STORE_ROLE_ADMIN);
    int64_t id = mk(s, "eve", STORE_ROLE_VIEWER);
    session(s, "eve-1", id, h1);
    session(s, "eve-2", id, h2);
    session(s, "eve-3", id, h3);
    struct store_session ss = sget(s, h1);
    cr_assert_eq(ss.operator_id, id);
    cr_assert_str_eq(ss.actor, "eve");
    cr_assert_eq(ss.role, STORE_ROLE_VIEWER);
    cr_assert_not(ss.operator_disabled);
    cr_assert_eq(ss.apikey_id, 0);
    cr_assert_str_eq(ss.key_hash, "");

    /* The role of a session is the account's now. */
    struct store_operator_change promote = {.set_role = true, .role = STORE_ROLE_OPERATOR};
    cr_assert_eq(store_operator_update(s, "eve", &promote, NULL, T0 + 1, NULL, &revoked, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(revoked, 0, "a role change keeps the sessions");
    cr_assert_eq(sget(s, h2).role, STORE_ROLE_OPERATOR);

    /* A new password: every session but the one kept is revoked. */
    struct store_operator_change pw = {.password_hash = HASH_B};
    cr_assert_eq(store_operator_update(s, "eve", &pw, h1, T0 + 2, NULL, &revoked, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(revoked, 2);
    cr_assert_eq(sget(s, h1).revoked, 0);
    cr_assert_eq(sget(s, h2).revoked, T0 + 2);
    cr_assert_eq(sget(s, h3).revoked, T0 + 2);
    struct store_operator o = get(s, "eve");
    cr_assert_str_eq(o.password_hash, HASH_B);
    cr_assert_eq(o.password_changed, T0 + 2);
    cr_assert_eq(o.updated, T0 + 2);
    store_operator_clear(&o);

    /* Disabled: all of them, and the session says so. */
    char h4[65];
    session(s, "eve-4", id, h4);
    struct store_operator_change disable = {.set_disabled = true, .disabled = true};
    cr_assert_eq(store_operator_update(s, "eve", &disable, h1, T0 + 3, NULL, &revoked, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(revoked, 2, "h1 and h4");
    cr_assert(sget(s, h1).operator_disabled);

    /* The sessions of all but one: store_operator_sessions_revoke. */
    struct store_operator_change enable = {.set_disabled = true, .disabled = false};
    cr_assert_eq(store_operator_update(s, "eve", &enable, NULL, T0 + 4, NULL, &revoked, &err), 0,
                 "%s", err.msg);
    char h5[65], h6[65];
    session(s, "eve-5", id, h5);
    session(s, "eve-6", id, h6);
    cr_assert_eq(store_operator_sessions_revoke(s, id, h5, T0 + 5, &revoked, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(revoked, 1);
    cr_assert_eq(sget(s, h5).revoked, 0);
    cr_assert_eq(sget(s, h6).revoked, T0 + 5);

    /* Deleted: its sessions go with it. */
    cr_assert_eq(store_operator_delete(s, "eve", &err), 0, "%s", err.msg);
    struct store_session gone;
    cr_assert_eq(store_session_get(s, h5, &gone, &err), SCEPTER_ENOTFOUND);
    cr_assert_eq(store_session_create_operator(s, h6, "csrf", 0, NULL, T0, T0 + 10, &err),
                 SCEPTER_EINVAL);
    store_close(s);
}

Test(operators, api_keys_carry_a_role)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_apikey *k = NULL;
    enum store_role role;
    char h1[65], h2[65], *name = NULL;
    int64_t id1, id2, got;
    size_t n;

    tf_hash("key-viewer", h1);
    tf_hash("key-admin", h2);
    cr_assert_eq(store_apikey_create(s, "dashboards", h1, STORE_ROLE_VIEWER, T0, &id1, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(store_apikey_create(s, "ci", h2, STORE_ROLE_ADMIN, T0, &id2, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(store_apikey_create(s, "bad", "ab", STORE_ROLE_NONE, T0, &got, &err),
                 SCEPTER_EINVAL);
    cr_assert_eq(store_apikey_auth(s, h1, &got, &role, &name, &err), 0, "%s", err.msg);
    cr_assert_eq(got, id1);
    cr_assert_eq(role, STORE_ROLE_VIEWER);
    cr_assert_str_eq(name, "dashboards");
    free(name);
    name = NULL;
    cr_assert_eq(store_apikey_auth(s, "00", &got, &role, &name, &err), SCEPTER_EAUTH);
    cr_assert_null(name);
    cr_assert_eq(store_apikey_list(s, &k, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(k[0].role, STORE_ROLE_VIEWER);
    cr_assert_eq(k[1].role, STORE_ROLE_ADMIN);
    store_apikeys_free(k, n);

    /* A key's session reports the key's name and role. */
    char sh[65];
    struct store_session ss;
    tf_hash("key-session", sh);
    cr_assert_eq(store_session_create(s, sh, "csrf", h1, NULL, T0, T0 + 60, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(store_session_get(s, sh, &ss, &err), 0, "%s", err.msg);
    cr_assert_eq(ss.apikey_id, id1);
    cr_assert_eq(ss.operator_id, 0);
    cr_assert_str_eq(ss.actor, "dashboards");
    cr_assert_eq(ss.role, STORE_ROLE_VIEWER);
    store_close(s);
}

/* Keys made before roles existed could do everything: the upgrade makes them admins. */
Test(operators, keys_from_before_roles_are_admins)
{
    struct scepter_error err;
    struct store *s = NULL;
    enum store_role role;
    char h[65], *name = NULL;
    int64_t id = 0;

    tf_hash("old-key", h);
    cr_assert_eq(store_open_at(tf_url(), 7, &s, &err), 0, "%s", err.msg);
    char *sql =
        xasprintf("INSERT INTO apikeys (name, hash, created) VALUES ('old', '%s', %d)", h, T0);
    cr_assert_eq(store_exec_sql(s, sql, &err), 0, "%s", err.msg);
    free(sql);
    store_close(s);
    s = tf_open();
    cr_assert_eq(store_apikey_auth(s, h, &id, &role, &name, &err), 0, "%s", err.msg);
    cr_assert_eq(role, STORE_ROLE_ADMIN);
    cr_assert_str_eq(name, "old");
    free(name);
    store_close(s);
}

static void add(struct store *s, int64_t at, const char *type, const char *actor,
                const char *action, const char *object)
{
    struct scepter_error err;
    int64_t id = 0;
    struct store_audit_entry e = {.at = at,
                                  .actor_type = (char *)type,
                                  .actor_name = (char *)actor,
                                  .address = (char *)"127.0.0.1",
                                  .action = (char *)action,
                                  .route = (char *)"POST /v1/x",
                                  .object = (char *)object,
                                  .summary = (char *)"fields: a"};
    cr_assert_eq(store_audit_add(s, &e, &id, &err), 0, "%s", err.msg);
    cr_assert_gt(id, 0);
}

static size_t list(struct store *s, struct store_audit_filter f, struct store_audit_entry **v)
{
    struct scepter_error err;
    size_t n = 0;
    cr_assert_eq(store_audit_list(s, &f, v, &n, &err), 0, "%s", err.msg);
    return n;
}

Test(operators, audit_entries_filtered_paged_and_purged)
{
    struct scepter_error err;
    struct store *s = tf_open();
    struct store_audit_entry *v = NULL;
    size_t n;
    int64_t deleted = 0;

    add(s, T0, "operator", "alice", "policy.create", "1");
    add(s, T0 + 10, "api_key", "ci", "policy.update", "1");
    add(s, T0 + 20, "operator", "alice", "group.create", "lab");
    add(s, T0 + 30, "operator", "bob", "policy.delete", "1");

    n = list(s, (struct store_audit_filter){0}, &v);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(v[0].action, "policy.delete", "newest first");
    cr_assert_str_eq(v[3].action, "policy.create");
    cr_assert_str_eq(v[1].actor_type, "operator");
    cr_assert_str_eq(v[1].address, "127.0.0.1");
    cr_assert_str_eq(v[1].route, "POST /v1/x");
    cr_assert_str_eq(v[1].summary, "fields: a");
    cr_assert_eq(v[1].at, T0 + 20);
    int64_t second = v[1].id;
    store_audit_entries_free(v, n);

    n = list(s, (struct store_audit_filter){.actor = "alice"}, &v);
    cr_assert_eq(n, 2);
    store_audit_entries_free(v, n);
    n = list(s, (struct store_audit_filter){.action = "policy.*"}, &v);
    cr_assert_eq(n, 3, "a prefix");
    store_audit_entries_free(v, n);
    n = list(s, (struct store_audit_filter){.action = "policy."}, &v);
    cr_assert_eq(n, 0, "exact without the star");
    store_audit_entries_free(v, n);
    n = list(s, (struct store_audit_filter){.object = "lab"}, &v);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0].action, "group.create");
    store_audit_entries_free(v, n);
    n = list(s, (struct store_audit_filter){.since = T0 + 10, .until = T0 + 20}, &v);
    cr_assert_eq(n, 2);
    store_audit_entries_free(v, n);
    n = list(s, (struct store_audit_filter){.before = second, .limit = 1}, &v);
    cr_assert_eq(n, 1, "a page of one");
    cr_assert_str_eq(v[0].action, "policy.update");
    store_audit_entries_free(v, n);

    struct store_audit_entry bad = {.at = T0,
                                    .actor_type = (char *)"operator",
                                    .actor_name = (char *)"",
                                    .action = (char *)"x",
                                    .route = (char *)"y"};
    int64_t id;
    cr_assert_eq(store_audit_add(s, &bad, &id, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "actor_name");

    cr_assert_eq(store_audit_purge(s, T0 + 20, &deleted, &err), 0, "%s", err.msg);
    cr_assert_eq(deleted, 2);
    n = list(s, (struct store_audit_filter){0}, &v);
    cr_assert_eq(n, 2);
    store_audit_entries_free(v, n);
    store_close(s);
}
