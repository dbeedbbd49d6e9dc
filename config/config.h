/*
 * Configuration: one table of keys (config/keys.def), each with a type, a default, bounds,
 * flags and a line of help.  Values are read, in increasing precedence, from the defaults,
 * the INI file (inih), SCEPTER_<KEY> environment variables (or SCEPTER_<KEY>_FILE naming a
 * file that holds the value, for Docker secrets) and command-line flags (--key=value).
 *
 * struct cfg is a plain value built from the table; read its fields directly.
 */
#ifndef SCEPTER_CONFIG_CONFIG_H
#define SCEPTER_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/attr.h"
#include "common/error.h"

enum cfg_type { CFG_TYPE_STR, CFG_TYPE_INT, CFG_TYPE_BOOL };

#define CFG_SECRET  0x1 /* masked when printed */
#define CFG_RESTART 0x2 /* SIGHUP cannot change it */
#define CFG_PATH    0x4 /* a file path */

#define CFG_CTYPE_STR  char *
#define CFG_CTYPE_INT  int64_t
#define CFG_CTYPE_BOOL bool

struct cfg {
#define CFG_SECTION(name, help)
#define CFG_KEY(type, name, def, min, max, flags, help) CFG_CTYPE_##type name;
#include "config/keys.def"
#undef CFG_KEY
#undef CFG_SECTION
    char *source_file; /* the INI file read, or NULL */
    char **argv;       /* the command-line flags it was loaded with (for a reload) */
    int argc;
};

/* The documented length range of API keys (api_key, and keys the API creates). */
#define CFG_API_KEY_MIN 16
#define CFG_API_KEY_MAX 1024

struct cfg_key {
    const char *name;
    enum cfg_type type;
    const char *def;
    int64_t min, max;
    unsigned flags;
    const char *help;
    size_t offset; /* of the field in struct cfg */
};

/* The table, in file order. */
const struct cfg_key *cfg_keys(size_t *n);
const struct cfg_key *cfg_key_find(const char *name);

/* A configuration holding the defaults.  cfg_free(NULL) does nothing. */
struct cfg *cfg_new(void);
void cfg_free(struct cfg *cfg);

/* Set one key from text; origin ("scepter.conf:12", "SCEPTER_LISTEN", "--listen") goes
 * into the error. */
int cfg_set(struct cfg *cfg, const char *key, const char *value, const char *origin,
            struct scepter_error *err) WUR;
int cfg_load_file(struct cfg *cfg, const char *path, struct scepter_error *err) WUR;
/* Apply SCEPTER_<KEY> and SCEPTER_<KEY>_FILE from envp (NULL-terminated, e.g. environ). */
int cfg_load_env(struct cfg *cfg, char *const *envp, struct scepter_error *err) WUR;
/* Cross-key checks (e.g. a key file without its certificate). */
int cfg_validate(const struct cfg *cfg, struct scepter_error *err) WUR;

/*
 * The whole load: defaults, then the file (explicit path, else $SCEPTER_CONFIG, else
 * ./scepter.conf or /etc/scepter/scepter.conf when present), then the environment, then
 * the flags argv[0..argc).  Flags are --key=value or --key value; --config is handled here.
 * Unknown flags are an error.  Returns a new cfg or NULL with err filled.
 */
struct cfg *cfg_load(const char *path, int argc, char *const *argv, char *const *envp,
                     struct scepter_error *err);

/* Print key = value lines (secrets masked when mask) in INI syntax. */
void cfg_print(const struct cfg *cfg, FILE *fp, bool mask);
/* The documented example file: every key, its help and its default. */
void cfg_print_example(FILE *fp);
/* One line per key for --help. */
void cfg_print_help(FILE *fp);
/* Names of keys whose value differs between a and b and which need a restart; written
 * comma-separated into out.  Returns how many. */
int cfg_restart_diff(const struct cfg *a, const struct cfg *b, char *out, size_t outlen);

/* Copy the value of every CFG_RESTART key from running into next (a SIGHUP reload keeps
 * them). */
void cfg_keep_restart(struct cfg *next, const struct cfg *running);
/* Does the enrollment profile carry a credential (a PKCS#12 identity from device_ca_key_file,
 * or a SCEP challenge)?  Then /mdm/enroll must be gated. */
bool cfg_enroll_hands_out_credentials(const struct cfg *cfg);

/* Helpers for keys that hold lists. */
bool cfg_list_has(const char *list, const char *item);
/* Resolve "workers = 0" to 2 x online CPUs. */
int cfg_workers(const struct cfg *cfg);

#endif
