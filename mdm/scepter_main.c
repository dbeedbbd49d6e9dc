/*
 * scepter — the MDM server daemon.
 *   scepter [--config FILE] [--key=value ...]     serve (migrations are applied at start)
 *   scepter config [--example]                    print the effective configuration (secrets
 *                                                 masked), or the documented example file
 *   scepter migrate                               apply the store's migrations and exit
 *   scepter healthcheck [--url URL]               GET /healthz of the local server (Docker)
 *   scepter ca init --out DIR [--cn NAME] [--bits N]   create a SCEP CA (ca.pem, ca.key)
 *   scepter operator bootstrap NAME [--force] [--password-file F | --password-stdin]
 *                                                 [--config FILE] [--KEY=VALUE ...]
 *                                                 the first admin account, in the store
 *   scepter --help
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/file.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "config/config.h"
#include "mdm/mdm.h"
#ifndef SCEPTER_CONFIG_ONLY
#include "scep/scep.h"
#endif
#include "store/store.h"

extern char **environ;

static void usage(FILE *fp)
{
    fputs("usage: scepter [--config FILE] [--KEY=VALUE ...]\n"
          "       scepter config [--example] [--config FILE] [--KEY=VALUE ...]\n"
          "       scepter migrate [--config FILE] [--KEY=VALUE ...]\n"
          "       scepter healthcheck [--url URL] [--config FILE]\n"
          "       scepter ca init --out DIR [--cn NAME] [--bits 2048..8192]\n"
          "       scepter operator bootstrap NAME [--force] [--password-file F | "
          "--password-stdin]\n"
          "                                  [--config FILE] [--KEY=VALUE ...]\n"
          "\n"
          "Scepter, an Apple MDM server.  Every configuration key can be given in the INI\n"
          "file (--config, $SCEPTER_CONFIG, ./scepter.conf or /etc/scepter/scepter.conf), as\n"
          "SCEPTER_<KEY> in the environment (SCEPTER_<KEY>_FILE reads it from a file), or as\n"
          "a flag:\n\n",
          fp);
    cfg_print_help(fp);
}

/* The URL of the local server's /healthz, from the listen settings. */
static void health_url(const struct cfg *cfg, char *out, size_t outlen)
{
    const char *listen = !str_empty(cfg->listen) ? cfg->listen : cfg->listen_http;
    const char *colon = strrchr(listen, ':');

    snprintf(out, outlen, "%s://127.0.0.1:%s/healthz", !str_empty(cfg->listen) ? "https" : "http",
             colon ? colon + 1 : "8443");
}

static int healthcheck(const struct cfg *cfg, const char *url)
{
    /* The local server's certificate is for its public name, not 127.0.0.1: liveness only. */
    struct httpc_opts o = {.insecure = true, .timeout_ms = 4000};
    struct httpc_response r;
    struct scepter_error err;
    char def[256];

    if (url == NULL) {
        health_url(cfg, def, sizeof(def));
        url = def;
    }
    if (httpc_request(url, "GET", NULL, NULL, 0, &o, &r, &err) != 0) {
        fprintf(stderr, "scepter healthcheck: %s\n", err.msg);
        return 1;
    }
    int ok = r.status == 200;
    printf("%d %s", r.status, r.body ? r.body : "");
    httpc_response_clear(&r);
    return ok ? 0 : 1;
}

#ifndef SCEPTER_CONFIG_ONLY
static int migrate(const struct cfg *cfg)
{
    struct scepter_error err;
    struct store *s = NULL;
    int dbv = 0, binv = 0;

    store_set_timeout_ms((int)cfg->store_timeout * 1000);
    store_set_sqlite_cache_bytes(cfg->sqlite_cache_bytes);
    store_set_sqlite_page_buffer_bytes(cfg->sqlite_page_buffer_bytes);
    if (store_open(cfg->store, &s, &err) != 0 || store_schema_version(s, &dbv, &binv, &err) != 0) {
        fprintf(stderr, "scepter migrate: %s\n", err.msg);
        store_close(s);
        return 1;
    }
    printf("%s store at schema version %d (this binary knows %d)\n", store_backend(s), dbv, binv);
    store_close(s);
    return 0;
}
#endif

#ifndef SCEPTER_CONFIG_ONLY
/* scepter ca init --out DIR [--cn NAME] [--bits N]: a new SCEP CA for scep_cas / scep_ca_*. */
static int ca_command(int argc, char **argv)
{
    const char *out = NULL, *cn = "Scepter SCEP CA";
    int64_t bits = 3072;
    struct scepter_error err;

    if (argc < 3 || strcmp(argv[2], "init") != 0) {
        fputs("usage: scepter ca init --out DIR [--cn NAME] [--bits 2048..8192]\n", stderr);
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--out") == 0) {
            out = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--cn") == 0) {
            cn = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--bits") == 0) {
            if (str_to_i64(argv[++i], 2048, 8192, &bits) != 0) {
                fprintf(stderr, "scepter ca init: --bits: a number from 2048 to 8192\n");
                return 2;
            }
        } else {
            fprintf(stderr, "scepter ca init: unknown or incomplete option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (out == NULL) {
        fputs("scepter ca init: --out DIR is required\n", stderr);
        return 2;
    }
    if (scep_ca_generate(out, cn, (int)bits, (int64_t)time(NULL), &err) != 0) {
        fprintf(stderr, "scepter ca init: %s\n", err.msg);
        return err.code == SCEPTER_ECONFLICT ? 4 : 1;
    }
    printf("created %s/ca.pem and %s/ca.key (%d-bit RSA, 10 years)\n", out, out, (int)bits);
    return 0;
}
#endif

#ifndef SCEPTER_CONFIG_ONLY
/* The password of `operator bootstrap`: a file or stdin (one line, the newline dropped). */
static int bootstrap_password(const char *file, char *out, size_t outlen)
{
    struct scepter_error err;
    FILE *fp = stdin;
    size_t n;

    if (file != NULL) {
        unsigned char *data = NULL;
        size_t len = 0;
        if (file_read(file, outlen - 1, &data, &len, &err) != 0) {
            fprintf(stderr, "scepter operator bootstrap: --password-file: %s\n", err.msg);
            return 2;
        }
        str_copy(out, outlen, (const char *)data);
        explicit_bzero(data, len);
        free(data);
    } else if (fgets(out, (int)outlen, fp) == NULL) {
        fputs("scepter operator bootstrap: no password on stdin (use --password-stdin or "
              "--password-file F)\n",
              stderr);
        return 2;
    }
    n = strlen(out);
    if (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    if (n > 0 && out[n - 1] == '\r')
        out[--n] = '\0';
    return 0;
}

/* scepter operator bootstrap NAME: the first admin account, straight into the store of the
 * configuration (the server need not run). */
static int operator_command(int argc, char **argv)
{
    const char *name = NULL, *pwfile = NULL;
    bool force = false, from_stdin = false;
    struct scepter_error err;
    struct store *s = NULL;
    struct cfg *cfg;
    char pw[1024];
    int rc, nrest = 0;
    char **rest = xcalloc((size_t)argc, sizeof(char *));

    if (argc < 4 || strcmp(argv[2], "bootstrap") != 0) {
        free(rest);
        fputs("usage: scepter operator bootstrap NAME [--force] [--password-file F | "
              "--password-stdin] [--config FILE] [--KEY=VALUE ...]\n",
              stderr);
        return 2;
    }
    name = argv[3];
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0)
            force = true;
        else if (strcmp(argv[i], "--password-stdin") == 0)
            from_stdin = true;
        else if (strcmp(argv[i], "--password-file") == 0 && i + 1 < argc)
            pwfile = argv[++i];
        else
            rest[nrest++] = argv[i]; /* --config and --KEY=VALUE */
    }
    if (pwfile == NULL && !from_stdin) {
        free(rest);
        fputs("scepter operator bootstrap: give the password with --password-file F or "
              "--password-stdin\n",
              stderr);
        return 2;
    }
    cfg = cfg_load(NULL, nrest, rest, environ, &err);
    free(rest);
    if (cfg == NULL) {
        fprintf(stderr, "scepter: %s\n", err.msg);
        return 2;
    }
    if ((rc = bootstrap_password(pwfile, pw, sizeof(pw))) != 0) {
        cfg_free(cfg);
        return rc;
    }
    store_set_timeout_ms((int)cfg->store_timeout * 1000);
    store_set_sqlite_cache_bytes(cfg->sqlite_cache_bytes);
    store_set_sqlite_page_buffer_bytes(cfg->sqlite_page_buffer_bytes);
    if (store_open(cfg->store, &s, &err) != 0) {
        fprintf(stderr, "scepter operator bootstrap: %s\n", err.msg);
        explicit_bzero(pw, sizeof(pw));
        cfg_free(cfg);
        return 1;
    }
    rc = mdm_operator_bootstrap(s, name, pw, force, (int64_t)time(NULL), &err);
    explicit_bzero(pw, sizeof(pw));
    store_close(s);
    cfg_free(cfg);
    if (rc != 0) {
        fprintf(stderr, "scepter operator bootstrap: %s\n", err.msg);
        return rc == SCEPTER_ECONFLICT ? 4 : rc == SCEPTER_EINVAL ? 2 : 1;
    }
    printf("admin account '%s' ready: sign in to the console with its name and password\n", name);
    return 0;
}
#endif

int main(int argc, char **argv)
{
    struct scepter_error err;
    struct cfg *cfg;
    const char *cmd = NULL, *url = NULL;
    int skip = 1;

    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
#ifndef SCEPTER_CONFIG_ONLY
    if (argc > 1 && strcmp(argv[1], "ca") == 0)
        return ca_command(argc, argv);
    if (argc > 1 && strcmp(argv[1], "operator") == 0)
        return operator_command(argc, argv);
#endif
    if (argc > 1 && (strcmp(argv[1], "config") == 0 || strcmp(argv[1], "migrate") == 0 ||
                     strcmp(argv[1], "healthcheck") == 0)) {
        cmd = argv[1];
        skip = 2;
        if (strcmp(cmd, "config") == 0 && argc > 2 && strcmp(argv[2], "--example") == 0) {
            cfg_print_example(stdout);
            return 0;
        }
        if (strcmp(cmd, "healthcheck") == 0 && argc > 3 && strcmp(argv[2], "--url") == 0) {
            url = argv[3];
            skip = 4;
        }
    }
    cfg = cfg_load(NULL, argc - skip, argv + skip, environ, &err);
    if (cfg == NULL) {
        fprintf(stderr, "scepter: %s\n", err.msg);
        return 2;
    }
    if (cmd && strcmp(cmd, "config") == 0) {
        cfg_print(cfg, stdout, true);
        cfg_free(cfg);
        return 0;
    }
    if (cmd && strcmp(cmd, "healthcheck") == 0) {
        int rc = healthcheck(cfg, url);
        cfg_free(cfg);
        return rc;
    }
    {
        enum log_level lvl = LOG_LVL_INFO;
        enum log_format fmt = LOG_FMT_TEXT;
        if (log_level_parse(cfg->log_level, &lvl) != 0 ||
            log_format_parse(cfg->log_format, &fmt) != 0)
            fatalx("bad log settings");
        log_init(lvl, fmt);
    }
#ifdef SCEPTER_CONFIG_ONLY
    fatalx("built without the store module: only `scepter config` works");
#else
    if (cmd && strcmp(cmd, "migrate") == 0) {
        int rc = migrate(cfg);
        cfg_free(cfg);
        return rc;
    }
#endif
    /* Few malloc arenas: with glibc's default (8 per core) every worker thread keeps its own
     * free memory, and RSS stays at the high-water mark of each. */
    if (cfg->malloc_arena_max > 0)
        mallopt(M_ARENA_MAX, (int)cfg->malloc_arena_max);
    if (mdm_serve(cfg, &err) != 0) {
        log_error("scepter: %s", err.msg);
        return 1;
    }
    return 0;
}
