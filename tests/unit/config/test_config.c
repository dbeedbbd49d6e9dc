#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/xmalloc.h"
#include "config/config.h"
#include "support/support.h"

Test(config, defaults)
{
    struct cfg *c = cfg_new();
    cr_assert_str_eq(c->store, "sqlite:./var/scepter.db");
    cr_assert_eq(c->apns_connections, 1);
    cr_assert_eq(c->user_authenticate, false);
    cr_assert(cfg_list_has(c->identity, "mtls"));
    cr_assert(cfg_list_has(c->identity, "signature"));
    cr_assert_not(cfg_list_has(c->identity, "header"));
    cfg_free(c);
    cfg_free(NULL);
}

Test(config, file_env_flags_precedence)
{
    char *dir = tu_tmpdir();
    char *path = xasprintf("%s/scepter.conf", dir);
    const char *ini = "; comment\n[server]\nlisten = 127.0.0.1:9000\nworkers = 3\n"
                      "[log]\nlog_level = debug\n";
    tu_write(path, ini, strlen(ini));
    char *const env[] = {(char *)"SCEPTER_WORKERS=5", (char *)"HOME=/root",
                         (char *)"SCEPTER_LOG_FORMAT=json", NULL};
    char *const argv[] = {(char *)"--log-format=logfmt", (char *)"--api_key",
                          (char *)"k3y-0123456789abcdef", NULL};
    struct scepter_error err;
    struct cfg *c = cfg_load(path, 3, argv, env, &err);
    cr_assert_not_null(c, "%s", err.msg);
    cr_assert_str_eq(c->listen, "127.0.0.1:9000"); /* file */
    cr_assert_eq(c->workers, 5);                   /* env beats file */
    cr_assert_str_eq(c->log_format, "logfmt");     /* flag beats env */
    cr_assert_str_eq(c->log_level, "debug");
    cr_assert_str_eq(c->api_key, "k3y-0123456789abcdef");
    cfg_free(c);
    tu_rmtree(dir);
    free(dir);
    free(path);
}

Test(config, secret_from_file_env)
{
    char *dir = tu_tmpdir();
    char *path = xasprintf("%s/secret", dir);
    tu_write(path, "s3cret-0123456789\n", 18);
    char *var = xasprintf("SCEPTER_API_KEY_FILE=%s", path);
    char *const env[] = {var, NULL};
    struct scepter_error err;
    struct cfg *c = cfg_load("", 0, NULL, env, &err);
    cr_assert_not_null(c, "%s", err.msg);
    cr_assert_str_eq(c->api_key, "s3cret-0123456789");
    /* printed masked */
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&out, &len);
    cfg_print(c, fp, true);
    fclose(fp);
    cr_assert(strstr(out, "s3cret") == NULL);
    cr_assert(strstr(out, "api_key = ********") != NULL);
    free(out);
    cfg_free(c);
    tu_rmtree(dir);
    free(dir);
    free(path);
    free(var);
}

Test(config, errors_name_the_key_and_origin)
{
    char *dir = tu_tmpdir();
    char *path = xasprintf("%s/bad.conf", dir);
    const char *ini = "listen = :1\nworkers = lots\n";
    tu_write(path, ini, strlen(ini));
    struct scepter_error err;
    struct cfg *c = cfg_load(path, 0, NULL, NULL, &err);
    cr_assert_null(c);
    cr_assert_str_eq(err.field, "workers");
    cr_assert(strstr(err.msg, "bad.conf:2") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "not an integer") != NULL, "%s", err.msg);

    const char *ini2 = "colour = blue\n";
    tu_write(path, ini2, strlen(ini2));
    cr_assert_null(cfg_load(path, 0, NULL, NULL, &err));
    cr_assert(strstr(err.msg, "unknown configuration key 'colour'") != NULL, "%s", err.msg);

    char *const e1[] = {(char *)"SCEPTER_LOG_LEVEL=loud", NULL};
    cr_assert_null(cfg_load("", 0, NULL, e1, &err));
    cr_assert(strstr(err.msg, "SCEPTER_LOG_LEVEL") != NULL, "%s", err.msg);
    char *const e2[] = {(char *)"SCEPTER_STORE=mysql://x", NULL};
    cr_assert_null(cfg_load("", 0, NULL, e2, &err));
    cr_assert_str_eq(err.field, "store");
    char *const e3[] = {(char *)"SCEPTER_IDENTITY=mtls,carrier-pigeon", NULL};
    cr_assert_null(cfg_load("", 0, NULL, e3, &err));
    cr_assert(strstr(err.msg, "carrier-pigeon") != NULL, "%s", err.msg);
    char *const a1[] = {(char *)"--tls-key-file=/x", NULL};
    cr_assert_null(cfg_load("", 1, a1, NULL, &err));
    cr_assert_str_eq(err.field, "tls_cert_file");
    char *const a2[] = {(char *)"--no-such-flag=1", NULL};
    cr_assert_null(cfg_load("", 1, a2, NULL, &err));
    char *const e4[] = {(char *)"SCEPTER_ENROLL_KEY_SIZE=3072", NULL};
    cr_assert_null(cfg_load("", 0, NULL, e4, &err));
    cr_assert(strstr(err.msg, "3072 is not one of 1024, 2048, 4096") != NULL, "%s", err.msg);
    /* The first admin needs its name and its password file together. */
    char *const e5[] = {(char *)"SCEPTER_BOOTSTRAP_ADMIN_NAME=root", NULL};
    cr_assert_null(cfg_load("", 0, NULL, e5, &err));
    cr_assert_str_eq(err.field, "bootstrap_admin_password_file");
    char *const e6[] = {(char *)"SCEPTER_BOOTSTRAP_ADMIN_PASSWORD_FILE=/run/pw", NULL};
    cr_assert_null(cfg_load("", 0, NULL, e6, &err));
    cr_assert_str_eq(err.field, "bootstrap_admin_name");
    tu_rmtree(dir);
    free(dir);
    free(path);
}

/* max_body_bytes was split: a configuration still naming it is refused, naming the two keys
 * that replace it, from the file, the environment and the flags alike. */
Test(config, retired_max_body_bytes_names_its_replacements)
{
    char *dir = tu_tmpdir();
    char *path = xasprintf("%s/old.conf", dir);
    const char *ini = "workers = 2\nmax_body_bytes = 8388608\n";
    struct scepter_error err;
    struct cfg *c;

    tu_write(path, ini, strlen(ini));
    cr_assert_null(cfg_load(path, 0, NULL, NULL, &err));
    cr_assert_str_eq(err.field, "max_body_bytes");
    cr_assert(strstr(err.msg, "old.conf:2") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "max_body_bytes is no longer a configuration key: use "
                              "max_device_body_bytes") != NULL,
              "%s", err.msg);
    cr_assert(strstr(err.msg, "max_api_body_bytes") != NULL, "%s", err.msg);
    char *const e1[] = {(char *)"SCEPTER_MAX_BODY_BYTES=1048576", NULL};
    cr_assert_null(cfg_load("", 0, NULL, e1, &err));
    cr_assert(strstr(err.msg, "max_device_body_bytes") != NULL, "%s", err.msg);
    char *const a1[] = {(char *)"--max-body-bytes=1048576", NULL};
    cr_assert_null(cfg_load("", 1, a1, NULL, &err));
    cr_assert(strstr(err.msg, "max_api_body_bytes") != NULL, "%s", err.msg);
    /* the new keys and their defaults */
    c = cfg_new();
    cr_assert_eq(c->max_device_body_bytes, 8 * 1024 * 1024);
    cr_assert_eq(c->max_api_body_bytes, 4 * 1024 * 1024);
    cfg_free(c);
    const char *ini2 = "max_device_body_bytes = 16777216\nmax_api_body_bytes = 1048576\n";
    tu_write(path, ini2, strlen(ini2));
    c = cfg_load(path, 0, NULL, NULL, &err);
    cr_assert_not_null(c, "%s", err.msg);
    cr_assert_eq(c->max_device_body_bytes, 16777216);
    cr_assert_eq(c->max_api_body_bytes, 1048576);
    cfg_free(c);
    tu_rmtree(dir);
    free(dir);
    free(path);
}

Test(config, example_file_documents_every_key_and_is_current)
{
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&out, &len);
    cfg_print_example(fp);
    fclose(fp);
    size_t n;
    const struct cfg_key *keys = cfg_keys(&n);
    for (size_t i = 0; i < n; i++) {
        char *needle = xasprintf("\n%s%s =", *keys[i].def ? "" : ";", keys[i].name);
        cr_assert(strstr(out, needle) != NULL, "key %s missing from the example", keys[i].name);
        free(needle);
    }
    char *path = tu_source_path("config/scepter.conf.example");
    size_t flen;
    char *file = (char *)tu_read(path, &flen);
    cr_assert_str_eq(file, out,
                     "config/scepter.conf.example is stale: regenerate it with "
                     "`scepter config --example > config/scepter.conf.example`");
    free(file);
    free(path);
    free(out);
}

Test(config, example_file_loads)
{
    char *path = tu_source_path("config/scepter.conf.example");
    struct scepter_error err;
    struct cfg *c = cfg_load(path, 0, NULL, NULL, &err);
    cr_assert_not_null(c, "%s", err.msg);
    cfg_free(c);
    free(path);
}

Test(config, restart_diff)
{
    struct cfg *a = cfg_new(), *b = cfg_new();
    struct scepter_error err;
    cr_assert_eq(cfg_set(b, "log_level", "debug", "t", &err), 0);
    char out[256];
    cr_assert_eq(cfg_restart_diff(a, b, out, sizeof(out)), 0);
    cr_assert_eq(cfg_set(b, "listen", "127.0.0.1:1", "t", &err), 0);
    cr_assert_eq(cfg_set(b, "store", "sqlite:/tmp/x", "t", &err), 0);
    cr_assert_eq(cfg_restart_diff(a, b, out, sizeof(out)), 2);
    cr_assert_str_eq(out, "listen,store");
    cfg_free(a);
    cfg_free(b);
}

/* The console session lifetimes: seconds within bounds, and the idle timeout no longer than
 * the lifetime; each refusal names the key. */
Test(config, console_session_keys_are_validated)
{
    struct scepter_error err;
    struct cfg *c = cfg_new();
    cr_assert_eq(c->console_session_ttl, 8 * 3600);
    cr_assert_eq(c->console_session_idle, 30 * 60);
    cfg_free(c);

    char *const e1[] = {(char *)"SCEPTER_CONSOLE_SESSION_TTL=8h", NULL};
    cr_assert_null(cfg_load("", 0, NULL, e1, &err));
    cr_assert_str_eq(err.field, "console_session_ttl");
    cr_assert(strstr(err.msg, "console_session_ttl: '8h' is not an integer") != NULL, "%s",
              err.msg);
    char *const e2[] = {(char *)"SCEPTER_CONSOLE_SESSION_IDLE=0", NULL};
    cr_assert_null(cfg_load("", 0, NULL, e2, &err));
    cr_assert_str_eq(err.field, "console_session_idle");
    char *const e3[] = {(char *)"SCEPTER_CONSOLE_SESSION_TTL=600",
                        (char *)"SCEPTER_CONSOLE_SESSION_IDLE=900", NULL};
    cr_assert_null(cfg_load("", 0, NULL, e3, &err));
    cr_assert_str_eq(err.field, "console_session_idle");
    cr_assert(strstr(err.msg, "longer than console_session_ttl") != NULL, "%s", err.msg);
    char *const e4[] = {(char *)"SCEPTER_CONSOLE_SESSION_TTL=600",
                        (char *)"SCEPTER_CONSOLE_SESSION_IDLE=600", NULL};
    c = cfg_load("", 0, NULL, e4, &err);
    cr_assert_not_null(c, "%s", err.msg);
    cr_assert_eq(c->console_session_idle, 600);
    cfg_free(c);
}
