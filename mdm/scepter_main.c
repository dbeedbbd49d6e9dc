/*
 * scepter — the MDM server daemon.
 *   scepter [--config FILE] [--key=value ...]     serve
 *   scepter config [--example]                    print the effective configuration
 *   scepter --help
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "config/config.h"
#include "mdm/mdm.h"

extern char **environ;

static void usage(FILE *fp)
{
    fputs("usage: scepter [--config FILE] [--KEY=VALUE ...]\n"
          "       scepter config [--example] [--config FILE] [--KEY=VALUE ...]\n"
          "\n"
          "Scepter, an Apple MDM server.  Every configuration key can be given in the INI\n"
          "file, as SCEPTER_<KEY> in the environment, or as a flag:\n\n",
          fp);
    cfg_print_help(fp);
}

int main(int argc, char **argv)
{
    struct scepter_error err;
    struct cfg *cfg;
    int config_cmd = 0;

    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "config") == 0) {
        if (argc > 2 && strcmp(argv[2], "--example") == 0) {
            cfg_print_example(stdout);
            return 0;
        }
        config_cmd = 1;
    }
    cfg = cfg_load(NULL, argc - 1 - config_cmd, argv + 1 + config_cmd, environ, &err);
    if (cfg == NULL) {
        fprintf(stderr, "scepter: %s\n", err.msg);
        return 2;
    }
    if (config_cmd) {
        cfg_print(cfg, stdout, true);
        cfg_free(cfg);
        return 0;
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
#endif
    if (mdm_serve(cfg, &err) != 0) {
        log_error("scepter: %s", err.msg);
        fprintf(stderr, "scepter: %s\n", err.msg);
        return 1;
    }
    return 0;
}
