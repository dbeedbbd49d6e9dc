/*
 * SIGHUP: re-read the configuration (file, environment; the original flags are not
 * re-applied) and apply the settings that may change while running.  Settings flagged
 * CFG_RESTART keep their running value and are named in a warning.
 */
#include <string.h>

#include "common/log.h"
#include "mdm/server_int.h"

extern char **environ;

void mdm_reload(struct mdm_runtime *rt)
{
    struct scepter_error err;
    struct cfg *next = cfg_load(rt->srv->cfg->source_file ? rt->srv->cfg->source_file : "", 0, NULL,
                                environ, &err);
    enum log_level lvl;
    enum log_format fmt;
    char restart[512];

    if (next == NULL) {
        log_warnx("SIGHUP: configuration not reloaded: %s", err.msg);
        return;
    }
    if (cfg_restart_diff(rt->srv->cfg, next, restart, sizeof(restart)) > 0)
        log_warnx("SIGHUP: changes to %s need a restart and were not applied", restart);
    if (log_level_parse(next->log_level, &lvl) == 0 &&
        log_format_parse(next->log_format, &fmt) == 0)
        log_init(lvl, fmt);
    mdm_live_set(rt->srv, next);
    log_kv(LOG_LVL_INFO, "reload", "log_level", next->log_level, "log_format", next->log_format,
           "webhook_url", *next->webhook_url ? next->webhook_url : NULL, NULL);
    cfg_free(next);
}
