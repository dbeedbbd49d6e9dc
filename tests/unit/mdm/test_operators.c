/*
 * Operator passwords and the first admin (mdm/api_operators.c) on a temporary SQLite store:
 * the password policy's bounds, Argon2id strings that verify only their password, and the
 * first admin from bootstrap_admin_name / bootstrap_admin_password_file (refused with the key
 * named when the file is missing or its password too short; once only) or from `scepter
 * operator bootstrap` (refused while an admin exists, unless forced).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/xmalloc.h"
#include "mdm/api_int.h"
#include "mdm/mdm.h"
#include "store/store.h"
#include "support/support.h"

Test(operators, password_policy_and_hashes)
{
    struct scepter_error err;
    char pw[258], hash[128], other[128];

    memset(pw, 'p', sizeof(pw) - 1);
    pw[sizeof(pw) - 1] = '\0';
    pw[11] = '\0';
    cr_assert_eq(api_password_check(pw, "password", &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "password");
    pw[11] = 'p';
    pw[12] = '\0';
    cr_assert_eq(api_password_check(pw, "new_password", &err), 0);
    pw[12] = 'p';
    pw[256] = '\0';
    cr_assert_eq(api_password_check(pw, "password", &err), 0, "256 characters are allowed");
    pw[256] = 'p';
    cr_assert_eq(api_password_check(pw, "password", &err), SCEPTER_EINVAL, "257 are not");

    cr_assert_eq(api_password_hash("correct horse battery", hash), 0);
    cr_assert_eq(strncmp(hash, "$argon2id$", 10), 0, "%s", hash);
    cr_assert_null(strstr(hash, "correct horse"));
    cr_assert(api_password_verify(hash, "correct horse battery"));
    cr_assert_not(api_password_verify(hash, "correct horse batterY"));
    cr_assert_not(api_password_verify(hash, ""));
    cr_assert_not(api_password_verify("not a hash", "correct horse battery"));
    cr_assert_eq(api_password_hash("correct horse battery", other), 0);
    cr_assert_str_neq(hash, other, "a salt of its own each time");
}

static struct cfg *config(const char *dir, const char *pwfile)
{
    struct scepter_error err;
    char *store = xasprintf("SCEPTER_STORE=sqlite:%s/s.db", dir);
    char *file = xasprintf("SCEPTER_BOOTSTRAP_ADMIN_PASSWORD_FILE=%s", pwfile);
    char *const env[] = {store, (char *)"SCEPTER_BOOTSTRAP_ADMIN_NAME=first", file, NULL};
    struct cfg *c = cfg_load("", 0, NULL, env, &err);
    cr_assert_not_null(c, "%s", err.msg);
    free(store);
    free(file);
    return c;
}

Test(operators, the_first_admin)
{
    struct scepter_error err;
    char *dir = tu_tmpdir();
    char *url = xasprintf("sqlite:%s/s.db", dir);
    char *pwfile = xasprintf("%s/pw", dir);
    struct store *s = NULL;
    struct store_operator o;
    int64_t admins = -1;

    cr_assert_eq(store_open(url, &s, &err), 0, "%s", err.msg);
    struct cfg *c = config(dir, pwfile);
    /* A missing file, a short password: refused naming the key, nothing made. */
    cr_assert_eq(mdm_operator_bootstrap_config(c, s, 1000, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "bootstrap_admin_password_file", "%s", err.msg);
    tu_write(pwfile, "short\n", 6);
    cr_assert_eq(mdm_operator_bootstrap_config(c, s, 1000, &err), SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "bootstrap_admin_password_file", "%s", err.msg);
    cr_assert(strstr(err.msg, "12") != NULL, "%s", err.msg);
    cr_assert_eq(store_operator_admins(s, &admins, &err), 0);
    cr_assert_eq(admins, 0);

    /* The password without its final newline. */
    tu_write(pwfile, "first-password-01\n", 18);
    cr_assert_eq(mdm_operator_bootstrap_config(c, s, 1000, &err), 0, "%s", err.msg);
    cr_assert_eq(store_operator_get(s, "first", &o, &err), 0, "%s", err.msg);
    cr_assert_eq(o.role, STORE_ROLE_ADMIN);
    cr_assert(api_password_verify(o.password_hash, "first-password-01"));
    store_operator_clear(&o);
    /* Once only: an admin exists, a changed file changes nothing. */
    tu_write(pwfile, "another-password-2\n", 19);
    cr_assert_eq(mdm_operator_bootstrap_config(c, s, 2000, &err), 0, "%s", err.msg);
    cr_assert_eq(store_operator_get(s, "first", &o, &err), 0, "%s", err.msg);
    cr_assert(api_password_verify(o.password_hash, "first-password-01"));
    cr_assert_eq(o.updated, 1000);
    store_operator_clear(&o);

    /* scepter operator bootstrap: refused while an admin exists, unless forced. */
    cr_assert_eq(mdm_operator_bootstrap(s, "second", "second-password-1", false, 3000, &err),
                 SCEPTER_ECONFLICT);
    cr_assert(strstr(err.msg, "--force") != NULL, "%s", err.msg);
    cr_assert_eq(mdm_operator_bootstrap(s, "bad name", "second-password-1", true, 3000, &err),
                 SCEPTER_EINVAL);
    cr_assert_str_eq(err.field, "name");
    cr_assert_eq(mdm_operator_bootstrap(s, "second", "second-password-1", true, 3000, &err), 0,
                 "%s", err.msg);
    /* Forced on an existing account: an enabled admin again, with the new password. */
    struct store_operator_change demote = {
        .set_role = true, .role = STORE_ROLE_VIEWER, .set_disabled = true, .disabled = true};
    int64_t revoked = 0;
    cr_assert_eq(store_operator_update(s, "first", &demote, NULL, 4000, NULL, &revoked, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(mdm_operator_bootstrap(s, "first", "first-password-new", true, 5000, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(store_operator_get(s, "first", &o, &err), 0, "%s", err.msg);
    cr_assert_eq(o.role, STORE_ROLE_ADMIN);
    cr_assert_not(o.disabled);
    cr_assert(api_password_verify(o.password_hash, "first-password-new"));
    store_operator_clear(&o);
    cr_assert_eq(store_operator_admins(s, &admins, &err), 0);
    cr_assert_eq(admins, 2);

    cfg_free(c);
    store_close(s);
    free(pwfile);
    free(url);
    free(dir);
}
