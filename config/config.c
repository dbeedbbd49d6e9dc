/*
 * The configuration table and its loaders.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/crypto.h>

#include "common/file.h"
#include "common/uuid.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"

static const struct cfg_key g_keys[] = {
#define CFG_SECTION(name, help)
#define CFG_KEY(type, name, def, min, max, flags, help)                                            \
    {#name, CFG_TYPE_##type, def, min, max, flags, help, offsetof(struct cfg, name)},
#include "config/keys.def"
#undef CFG_KEY
#undef CFG_SECTION
};

/* Sections and keys in file order, for the example file: a NULL name is the next key. */
static const struct {
    const char *name, *help;
} g_layout[] = {
#define CFG_SECTION(name, help)                         {name, help},
#define CFG_KEY(type, name, def, min, max, flags, help) {NULL, NULL},
#include "config/keys.def"
#undef CFG_KEY
#undef CFG_SECTION
};

const struct cfg_key *cfg_keys(size_t *n)
{
    *n = ARRAY_LEN(g_keys);
    return g_keys;
}

const struct cfg_key *cfg_key_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(g_keys); i++)
        if (strcmp(g_keys[i].name, name) == 0)
            return &g_keys[i];
    return NULL;
}

static void *field(struct cfg *cfg, const struct cfg_key *k)
{
    return (char *)cfg + k->offset;
}

static const void *cfield(const struct cfg *cfg, const struct cfg_key *k)
{
    return (const char *)cfg + k->offset;
}

static int validate_key(const struct cfg_key *k, const char *value, const char *origin,
                        struct scepter_error *err)
{
    if (strcmp(k->name, "log_level") == 0) {
        enum log_level l;
        if (log_level_parse(value, &l) != 0)
            return scepter_err(err, SCEPTER_EINVAL, k->name,
                               "%s: log_level: '%s' is not one of error, warn, info, debug", origin,
                               value);
    } else if (strcmp(k->name, "log_format") == 0) {
        enum log_format f;
        if (log_format_parse(value, &f) != 0)
            return scepter_err(err, SCEPTER_EINVAL, k->name,
                               "%s: log_format: '%s' is not one of text, logfmt, json", origin,
                               value);
    } else if (strcmp(k->name, "identity") == 0) {
        char *copy = xstrdup(value), *save = NULL, *tok;
        int rc = 0, n = 0;
        for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            str_trim(tok);
            if (strcmp(tok, "mtls") != 0 && strcmp(tok, "signature") != 0 &&
                strcmp(tok, "header") != 0) {
                rc = scepter_err(err, SCEPTER_EINVAL, k->name,
                                 "%s: identity: '%s' is not one of mtls, signature, header", origin,
                                 tok);
                break;
            }
            n++;
        }
        free(copy);
        if (rc == 0 && n == 0)
            rc = scepter_err(err, SCEPTER_EINVAL, k->name,
                             "%s: identity: name at least one of mtls, signature, header", origin);
        return rc;
    } else if (strcmp(k->name, "store") == 0) {
        if (!str_has_prefix(value, "sqlite:") && !str_has_prefix(value, "postgres://") &&
            !str_has_prefix(value, "postgresql://"))
            return scepter_err(err, SCEPTER_EINVAL, k->name,
                               "%s: store: '%s' must start with sqlite: or postgres://", origin,
                               value);
    } else if (strcmp(k->name, "public_url") == 0) {
        if (!str_has_prefix(value, "https://"))
            return scepter_err(err, SCEPTER_EINVAL, k->name,
                               "%s: public_url: must start with https:// (Apple requires "
                               "HTTPS for ServerURL)",
                               origin);
    } else if (strcmp(k->name, "apns_url") == 0) {
        if (!str_has_prefix(value, "https://"))
            return scepter_err(err, SCEPTER_EINVAL, k->name,
                               "%s: apns_url: must start with https://", origin);
    } else if (strcmp(k->name, "enroll_key_size") == 0) {
        if (strcmp(value, "1024") != 0 && strcmp(value, "2048") != 0 && strcmp(value, "4096") != 0)
            return scepter_err(err, SCEPTER_EINVAL, k->name,
                               "%s: enroll_key_size: %s is not one of 1024, 2048, 4096", origin,
                               value);
    } else if (strcmp(k->name, "apns_priority") == 0) {
        if (strcmp(value, "10") != 0 && strcmp(value, "5") != 0 && strcmp(value, "1") != 0)
            return scepter_err(err, SCEPTER_EINVAL, k->name,
                               "%s: apns_priority: %s is not one of 10, 5, 1", origin, value);
    }
    return 0;
}

/* Keys that were renamed or split: a configuration naming one is refused, with the keys that
 * replace it, rather than ignored. */
static const struct {
    const char *name, *instead;
} retired[] = {
    {"max_body_bytes", "max_device_body_bytes (devices, /mdm) and max_api_body_bytes "
                       "(operator API, /v1)"},
};

static const char *retired_key(const char *key)
{
    for (size_t i = 0; i < ARRAY_LEN(retired); i++)
        if (strcmp(retired[i].name, key) == 0)
            return retired[i].instead;
    return NULL;
}

int cfg_set(struct cfg *cfg, const char *key, const char *value, const char *origin,
            struct scepter_error *err)
{
    const struct cfg_key *k = cfg_key_find(key);
    const char *instead;
    int rc;

    if (k == NULL && (instead = retired_key(key)) != NULL)
        return scepter_err(err, SCEPTER_EINVAL, key,
                           "%s: %s is no longer a configuration key: use %s instead", origin, key,
                           instead);
    if (k == NULL)
        return scepter_err(err, SCEPTER_EINVAL, key, "%s: unknown configuration key '%s'", origin,
                           key);
    switch (k->type) {
    case CFG_TYPE_STR: {
        if ((rc = validate_key(k, value, origin, err)) != 0)
            return rc;
        char **p = field(cfg, k);
        free(*p);
        *p = xstrdup(value);
        break;
    }
    case CFG_TYPE_INT: {
        int64_t v;
        if (str_to_i64(value, k->min, k->max, &v) != 0)
            return scepter_err(err, SCEPTER_EINVAL, key,
                               "%s: %s: '%s' is not an integer between %lld and %lld", origin, key,
                               value, (long long)k->min, (long long)k->max);
        if ((rc = validate_key(k, value, origin, err)) != 0)
            return rc;
        *(int64_t *)field(cfg, k) = v;
        break;
    }
    case CFG_TYPE_BOOL: {
        bool v;
        if (str_to_bool(value, &v) != 0)
            return scepter_err(err, SCEPTER_EINVAL, key,
                               "%s: %s: '%s' is not a boolean (true/false, yes/no, on/off, 1/0)",
                               origin, key, value);
        *(bool *)field(cfg, k) = v;
        break;
    }
    }
    return 0;
}

struct cfg *cfg_new(void)
{
    struct cfg *cfg = xcalloc(1, sizeof(*cfg));
    struct scepter_error err;

    for (size_t i = 0; i < ARRAY_LEN(g_keys); i++)
        if (cfg_set(cfg, g_keys[i].name, g_keys[i].def, "default", &err) != 0)
            fatalx("bad default in the configuration table: %s", err.msg);
    return cfg;
}

void cfg_free(struct cfg *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < ARRAY_LEN(g_keys); i++)
        if (g_keys[i].type == CFG_TYPE_STR)
            free(*(char **)field(cfg, &g_keys[i]));
    free(cfg->source_file);
    for (int i = 0; i < cfg->argc; i++)
        free(cfg->argv[i]);
    free(cfg->argv);
    free(cfg);
}

struct ini_ctx {
    struct cfg *cfg;
    const char *path;
    const char *text;   /* the file, to find line numbers (Debian's inih passes none) */
    const char *cursor; /* where the previous key was found */
    int line;           /* line number of cursor */
    struct scepter_error *err;
    int rc;
};

/* Advance ctx->cursor to the line defining `name` and return its number. */
static int find_line(struct ini_ctx *ctx, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = ctx->cursor;
    int line = ctx->line;

    while (*p) {
        const char *q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (strncmp(q, name, nlen) == 0) {
            const char *r = q + nlen;
            while (*r == ' ' || *r == '\t')
                r++;
            if (*r == '=' || *r == ':') {
                ctx->cursor = p;
                ctx->line = line;
                return line;
            }
        }
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
        line++;
    }
    return ctx->line;
}

static int ini_handler_cb(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *ctx = user;
    char origin[512];

    (void)section; /* sections group keys for people; names are unique without them */
    if (ctx->rc != 0)
        return 0;
    snprintf(origin, sizeof(origin), "%s:%d", ctx->path, find_line(ctx, name));
    ctx->rc = cfg_set(ctx->cfg, name, value, origin, ctx->err);
    return ctx->rc == 0;
}

int cfg_load_file(struct cfg *cfg, const char *path, struct scepter_error *err)
{
    struct ini_ctx ctx = {cfg, path, NULL, NULL, 1, err, 0};
    unsigned char *data = NULL;
    size_t len = 0;
    int rc;

    if ((rc = file_read(path, 1024 * 1024, &data, &len, err)) != 0)
        return rc;
    /* inih reads a line into INI_MAX_LINE bytes and would split a longer one into a bogus
     * second line: say what is wrong instead. */
    int line = 1;
    for (const char *p = (const char *)data, *nl; *p; p = nl + 1, line++) {
        nl = strchr(p, '\n');
        if ((nl ? (size_t)(nl - p) : strlen(p)) + 2 > INI_MAX_LINE) {
            free(data);
            return scepter_err(err, SCEPTER_EINVAL, NULL,
                               "%s:%d: line longer than %d bytes; give long values through "
                               "SCEPTER_<KEY> or SCEPTER_<KEY>_FILE instead",
                               path, line, INI_MAX_LINE - 2);
        }
        if (nl == NULL)
            break;
    }
    ctx.text = ctx.cursor = (const char *)data;
    rc = ini_parse_string((const char *)data, ini_handler_cb, &ctx);
    free(data);
    if (ctx.rc != 0)
        return ctx.rc;
    if (rc != 0)
        return scepter_err(err, SCEPTER_EINVAL, NULL, "%s:%d: syntax error (expected key = value)",
                           path, rc);
    free(cfg->source_file);
    cfg->source_file = xstrdup(path);
    return 0;
}

/* "SCEPTER_APNS_URL" -> "apns_url" into out; returns false if not one of ours. */
static bool env_key(const char *name, size_t namelen, char *out, size_t outlen)
{
    static const char prefix[] = "SCEPTER_";
    size_t plen = sizeof(prefix) - 1;

    if (namelen <= plen || strncmp(name, prefix, plen) != 0 || namelen - plen >= outlen)
        return false;
    for (size_t i = plen; i < namelen; i++)
        out[i - plen] = (char)tolower((unsigned char)name[i]);
    out[namelen - plen] = '\0';
    return true;
}

int cfg_load_env(struct cfg *cfg, char *const *envp, struct scepter_error *err)
{
    char key[128];
    int rc;

    for (char *const *e = envp; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || !env_key(*e, (size_t)(eq - *e), key, sizeof(key)))
            continue;
        if (strcmp(key, "config") == 0)
            continue; /* SCEPTER_CONFIG names the file, handled by cfg_load */
        char origin[160];
        snprintf(origin, sizeof(origin), "%.*s", (int)(eq - *e), *e);
        size_t klen = strlen(key);
        if (cfg_key_find(key) == NULL && klen > 5 && strcmp(key + klen - 5, "_file") == 0) {
            /* SCEPTER_<KEY>_FILE: the value lives in a (secret) file. */
            key[klen - 5] = '\0';
            if (cfg_key_find(key) == NULL) {
                log_warnx("%s: not a configuration key; ignored", origin);
                continue;
            }
            unsigned char *data = NULL;
            size_t len = 0;
            if ((rc = file_read(eq + 1, 64 * 1024, &data, &len, err)) != 0)
                return scepter_err(err, rc, key, "%s: %.200s", origin, err ? err->msg : "");
            while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
                data[--len] = '\0';
            rc = cfg_set(cfg, key, (const char *)data, origin, err);
            OPENSSL_cleanse(data, len);
            free(data);
        } else if (cfg_key_find(key) == NULL && retired_key(key) == NULL) {
            /* The SCEPTER_ namespace is shared with scepterctl (SCEPTER_SERVER) and the test
             * harness: an unknown variable is not an error, but say so in case of a typo. */
            log_warnx("%s: not a configuration key; ignored", origin);
            continue;
        } else {
            rc = cfg_set(cfg, key, eq + 1, origin, err);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

int cfg_validate(const struct cfg *cfg, struct scepter_error *err)
{
    if (!str_empty(cfg->tls_key_file) && str_empty(cfg->tls_cert_file))
        return scepter_err(err, SCEPTER_EINVAL, "tls_cert_file",
                           "tls_cert_file: required when tls_key_file is set");
    if (!str_empty(cfg->tls_cert_file) && str_empty(cfg->tls_key_file))
        return scepter_err(err, SCEPTER_EINVAL, "tls_key_file",
                           "tls_key_file: required when tls_cert_file is set");
    if (!str_empty(cfg->signing_cert_file) != !str_empty(cfg->signing_key_file))
        return scepter_err(err, SCEPTER_EINVAL, "signing_key_file",
                           "signing_cert_file and signing_key_file: set both or neither");
    if (!str_empty(cfg->device_ca_key_file) && str_empty(cfg->device_ca_file))
        return scepter_err(err, SCEPTER_EINVAL, "device_ca_file",
                           "device_ca_file: required when device_ca_key_file is set");
    if (cfg_list_has(cfg->identity, "header") && str_empty(cfg->trusted_proxy_header))
        return scepter_err(err, SCEPTER_EINVAL, "trusted_proxy_header",
                           "trusted_proxy_header: required when identity includes header");
    if (!str_empty(cfg->webhook_url) && !str_has_prefix(cfg->webhook_url, "http://") &&
        !str_has_prefix(cfg->webhook_url, "https://"))
        return scepter_err(err, SCEPTER_EINVAL, "webhook_url",
                           "webhook_url: must be an http:// or https:// URL");
    if (!str_empty(cfg->api_key) &&
        (strlen(cfg->api_key) < CFG_API_KEY_MIN || strlen(cfg->api_key) > CFG_API_KEY_MAX))
        return scepter_err(err, SCEPTER_EINVAL, "api_key",
                           "api_key: %zu characters; keys are %d to %d characters long",
                           strlen(cfg->api_key), CFG_API_KEY_MIN, CFG_API_KEY_MAX);
    /* PKCS#12 identities last enroll_identity_days: renewing them earlier than that would
     * renew every renewed identity again at once. */
    if (cfg->identity_renew_days > 0 && cfg->identity_renew_days >= cfg->enroll_identity_days &&
        !str_empty(cfg->device_ca_key_file) && str_empty(cfg->enroll_scep_ca) &&
        str_empty(cfg->enroll_scep_url))
        return scepter_err(err, SCEPTER_EINVAL, "identity_renew_days",
                           "identity_renew_days: %lld is not shorter than enroll_identity_days "
                           "(%lld): every renewed identity would be renewed again at once",
                           (long long)cfg->identity_renew_days,
                           (long long)cfg->enroll_identity_days);
    if (str_empty(cfg->maid_server_uuid) != str_empty(cfg->maid_key_file))
        return scepter_err(err, SCEPTER_EINVAL,
                           str_empty(cfg->maid_server_uuid) ? "maid_server_uuid" : "maid_key_file",
                           "%s: required with %s (GetToken needs both to issue verifiable tokens)",
                           str_empty(cfg->maid_server_uuid) ? "maid_server_uuid" : "maid_key_file",
                           str_empty(cfg->maid_server_uuid) ? "maid_key_file" : "maid_server_uuid");
    if (!str_empty(cfg->maid_server_uuid) && !uuid_valid(cfg->maid_server_uuid))
        return scepter_err(err, SCEPTER_EINVAL, "maid_server_uuid",
                           "maid_server_uuid: '%s' is not a UUID (Apple Business Manager's "
                           "server_uuid)",
                           cfg->maid_server_uuid);
    if (strcmp(cfg->shared_ipad_users, "accept") != 0 &&
        strcmp(cfg->shared_ipad_users, "decline") != 0)
        return scepter_err(err, SCEPTER_EINVAL, "shared_ipad_users",
                           "shared_ipad_users: '%s' is not accept or decline",
                           cfg->shared_ipad_users);
    if (str_empty(cfg->bootstrap_admin_name) != str_empty(cfg->bootstrap_admin_password_file))
        return scepter_err(err, SCEPTER_EINVAL,
                           str_empty(cfg->bootstrap_admin_name) ? "bootstrap_admin_name"
                                                                : "bootstrap_admin_password_file",
                           "%s: required with %s",
                           str_empty(cfg->bootstrap_admin_name) ? "bootstrap_admin_name"
                                                                : "bootstrap_admin_password_file",
                           str_empty(cfg->bootstrap_admin_name) ? "bootstrap_admin_password_file"
                                                                : "bootstrap_admin_name");
    if (strcmp(cfg->reenroll, "refuse") != 0 && strcmp(cfg->reenroll, "allow") != 0)
        return scepter_err(err, SCEPTER_EINVAL, "reenroll", "reenroll: '%s' is not refuse or allow",
                           cfg->reenroll);
    if (cfg->console_session_idle > cfg->console_session_ttl)
        return scepter_err(err, SCEPTER_EINVAL, "console_session_idle",
                           "console_session_idle: %lld s is longer than console_session_ttl "
                           "(%lld s), which ends every session first",
                           (long long)cfg->console_session_idle,
                           (long long)cfg->console_session_ttl);
    if (!str_empty(cfg->device_ca_crl_file) && str_empty(cfg->device_ca_file))
        return scepter_err(err, SCEPTER_EINVAL, "device_ca_crl_file",
                           "device_ca_crl_file: needs device_ca_file (the CA the CRL is of)");
    if (cfg_enroll_hands_out_credentials(cfg) && str_empty(cfg->enroll_secret) &&
        !cfg->enroll_tokens && !cfg->enroll_open)
        return scepter_err(
            err, SCEPTER_EINVAL, "enroll_secret",
            "/mdm/enroll would hand a device credential (%s) to anyone who asks: set "
            "enroll_secret, or enroll_tokens = true (scepterctl enrollment-token create), or "
            "enroll_open = true to allow it knowingly (a lab)",
            !str_empty(cfg->device_ca_key_file) ? "a PKCS#12 identity from device_ca_key_file"
            : !str_empty(cfg->enroll_scep_ca)   ? "a one-time challenge of enroll_scep_ca"
                                                : "enroll_scep_challenge");
    if (!str_empty(cfg->enroll_scep_ca) && !str_empty(cfg->enroll_scep_url))
        return scepter_err(err, SCEPTER_EINVAL, "enroll_scep_ca",
                           "enroll_scep_ca: set it or enroll_scep_url, not both (enroll_scep_ca "
                           "fills in the URL of Scepter's own CA)");
    return 0;
}

bool cfg_enroll_hands_out_credentials(const struct cfg *cfg)
{
    return !str_empty(cfg->device_ca_key_file) || !str_empty(cfg->enroll_scep_ca) ||
           (!str_empty(cfg->enroll_scep_url) && !str_empty(cfg->enroll_scep_challenge));
}

void cfg_keep_restart(struct cfg *next, const struct cfg *running)
{
    for (size_t i = 0; i < ARRAY_LEN(g_keys); i++) {
        const struct cfg_key *k = &g_keys[i];
        void *dst = field(next, k);
        const void *src = cfield(running, k);

        if (!(k->flags & CFG_RESTART))
            continue;
        switch (k->type) {
        case CFG_TYPE_STR:
            free(*(char **)dst);
            *(char **)dst = xstrdup(*(char *const *)src);
            break;
        case CFG_TYPE_INT:
            *(int64_t *)dst = *(const int64_t *)src;
            break;
        default:
            *(bool *)dst = *(const bool *)src;
            break;
        }
    }
}

static const char *default_file(char *const *envp)
{
    static const char *const candidates[] = {"./scepter.conf", "/etc/scepter/scepter.conf"};

    for (char *const *e = envp; e && *e; e++)
        if (str_has_prefix(*e, "SCEPTER_CONFIG="))
            return *e + strlen("SCEPTER_CONFIG=");
    for (size_t i = 0; i < ARRAY_LEN(candidates); i++)
        if (access(candidates[i], R_OK) == 0)
            return candidates[i];
    return NULL;
}

struct cfg *cfg_load(const char *path, int argc, char *const *argv, char *const *envp,
                     struct scepter_error *err)
{
    struct cfg *cfg = cfg_new();
    const char *file = path;

    /* --config on the command line wins over everything else. */
    for (int i = 0; i < argc; i++) {
        if (str_has_prefix(argv[i], "--config="))
            file = argv[i] + strlen("--config=");
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[i + 1];
    }
    if (file == NULL)
        file = default_file(envp);
    if (file && *file && cfg_load_file(cfg, file, err) != 0)
        goto fail;
    if (cfg_load_env(cfg, envp, err) != 0)
        goto fail;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *value;
        char key[128], origin[160];

        if (!str_has_prefix(a, "--")) {
            scepter_err(err, SCEPTER_EINVAL, NULL, "unexpected argument '%s'", a);
            goto fail;
        }
        a += 2;
        const char *eq = strchr(a, '=');
        size_t klen = eq ? (size_t)(eq - a) : strlen(a);
        if (klen >= sizeof(key)) {
            scepter_err(err, SCEPTER_EINVAL, NULL, "flag too long");
            goto fail;
        }
        for (size_t j = 0; j < klen; j++)
            key[j] = a[j] == '-' ? '_' : a[j];
        key[klen] = '\0';
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            scepter_err(err, SCEPTER_EINVAL, key, "--%s: needs a value", key);
            goto fail;
        }
        if (strcmp(key, "config") == 0)
            continue;
        snprintf(origin, sizeof(origin), "--%s", key);
        if (cfg_set(cfg, key, value, origin, err) != 0)
            goto fail;
    }
    if (cfg_validate(cfg, err) != 0)
        goto fail;
    /* The flags, for a SIGHUP reload: they keep the highest precedence. */
    cfg->argv = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++)
        cfg->argv[i] = xstrdup(argv[i]);
    cfg->argc = argc;
    return cfg;
fail:
    cfg_free(cfg);
    return NULL;
}

static void print_value(const struct cfg *cfg, const struct cfg_key *k, FILE *fp, bool mask)
{
    const void *p = cfield(cfg, k);

    switch (k->type) {
    case CFG_TYPE_STR: {
        const char *s = *(char *const *)p;
        if (mask && (k->flags & CFG_SECRET) && !str_empty(s) && !(k->flags & CFG_PATH))
            fputs("********", fp);
        else
            fputs(s ? s : "", fp);
        break;
    }
    case CFG_TYPE_INT:
        fprintf(fp, "%lld", (long long)*(const int64_t *)p);
        break;
    case CFG_TYPE_BOOL:
        fputs(*(const bool *)p ? "true" : "false", fp);
        break;
    }
}

void cfg_print(const struct cfg *cfg, FILE *fp, bool mask)
{
    if (cfg->source_file)
        fprintf(fp, "; read from %s\n", cfg->source_file);
    for (size_t i = 0; i < ARRAY_LEN(g_keys); i++) {
        fprintf(fp, "%s = ", g_keys[i].name);
        print_value(cfg, &g_keys[i], fp, mask);
        fputc('\n', fp);
    }
}

/* Word-wrap help text as "; " comment lines of at most 96 columns. */
static void print_comment(FILE *fp, const char *text)
{
    const char *p = text;

    while (*p) {
        size_t take = strlen(p);
        if (take > 94) {
            take = 94;
            while (take > 0 && p[take] != ' ')
                take--;
            if (take == 0)
                take = 94;
        }
        fprintf(fp, "; %.*s\n", (int)take, p);
        p += take;
        while (*p == ' ')
            p++;
    }
}

void cfg_print_example(FILE *fp)
{
    size_t ki = 0;

    fputs("; Scepter configuration.  Every key, its meaning and its default.\n"
          "; Each key can also be set with the environment variable SCEPTER_<KEY> (upper case),\n"
          "; or SCEPTER_<KEY>_FILE naming a file that holds the value (Docker secrets), and with\n"
          "; the flag --key=value; flags win over the environment, which wins over this file.\n"
          "; Generated by `scepter config --example`; a test keeps it in step with the code.\n",
          fp);
    for (size_t i = 0; i < ARRAY_LEN(g_layout); i++) {
        if (g_layout[i].name != NULL) {
            fprintf(fp, "\n[%s]\n", g_layout[i].name);
            print_comment(fp, g_layout[i].help);
            continue;
        }
        const struct cfg_key *k = &g_keys[ki++];
        fputc('\n', fp);
        print_comment(fp, k->help);
        if (k->type == CFG_TYPE_INT && k->min != k->max)
            fprintf(fp, "; (integer, %lld to %lld)\n", (long long)k->min, (long long)k->max);
        if (k->flags & CFG_RESTART)
            fputs("; (a change needs a restart; SIGHUP does not apply it)\n", fp);
        if (*k->def)
            fprintf(fp, "%s = %s\n", k->name, k->def);
        else
            fprintf(fp, ";%s =\n", k->name);
    }
}

void cfg_print_help(FILE *fp)
{
    for (size_t i = 0; i < ARRAY_LEN(g_keys); i++) {
        const struct cfg_key *k = &g_keys[i];
        fprintf(fp, "  --%s=%s\n", k->name,
                k->type == CFG_TYPE_INT    ? "N"
                : k->type == CFG_TYPE_BOOL ? "BOOL"
                                           : "VALUE");
        fprintf(fp, "        %s", k->help);
        if (*k->def)
            fprintf(fp, " [default: %s]", k->def);
        fputc('\n', fp);
    }
}

int cfg_restart_diff(const struct cfg *a, const struct cfg *b, char *out, size_t outlen)
{
    int n = 0;

    if (outlen)
        out[0] = '\0';
    for (size_t i = 0; i < ARRAY_LEN(g_keys); i++) {
        const struct cfg_key *k = &g_keys[i];
        const void *pa = cfield(a, k), *pb = cfield(b, k);
        bool same;

        if (!(k->flags & CFG_RESTART))
            continue;
        switch (k->type) {
        case CFG_TYPE_STR:
            same = strcmp(*(char *const *)pa, *(char *const *)pb) == 0;
            break;
        case CFG_TYPE_INT:
            same = *(const int64_t *)pa == *(const int64_t *)pb;
            break;
        default:
            same = *(const bool *)pa == *(const bool *)pb;
            break;
        }
        if (!same) {
            if (n++)
                str_append(out, outlen, ",");
            str_append(out, outlen, k->name);
        }
    }
    return n;
}

bool cfg_list_has(const char *list, const char *item)
{
    size_t ilen = strlen(item);
    const char *p = list;

    while (p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && p[len - 1] == ' ')
            len--;
        if (len == ilen && strncmp(p, item, len) == 0)
            return true;
        p = end;
    }
    return false;
}

int cfg_workers(const struct cfg *cfg)
{
    long n;

    if (cfg->workers > 0)
        return (int)cfg->workers;
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(2 * n) : 2;
}
