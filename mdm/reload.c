/*
 * SIGHUP: re-read the configuration (file, environment, then the original flags again) and
 * apply it.  Every key is either applied live — a new snapshot (struct mdm_conf: the settings,
 * the device CA and its CRLs, the signing identity, the TLS root) that each worker moves to
 * at its next request, which also drops every worker's cache of verified identities — or
 * flagged CFG_RESTART in config/keys.def: those keep their running value, and each one that
 * changed is named in a warning.  A configuration that does not load (a bad value, a file that
 * does not parse, a key that does not match its certificate) changes nothing.
 */
#include <string.h>

#include "common/log.h"
#include "mdm/server_int.h"

extern char **environ;

void mdm_reload(struct mdm_runtime *rt)
{
    struct mdm_server *srv = rt->srv;
    const struct cfg *running = srv->cfg;
    struct scepter_error err;
    struct cfg *next = cfg_load(running->source_file ? running->source_file : "", running->argc,
                                running->argv, environ, &err);
    struct mdm_conf *conf;
    enum log_level lvl;
    enum log_format fmt;
    char restart[1024];

    if (next == NULL) {
        log_warnx("SIGHUP: configuration not reloaded (the running one stays): %s", err.msg);
        return;
    }
    if (cfg_restart_diff(running, next, restart, sizeof(restart)) > 0)
        log_warnx("SIGHUP: %s changed but need%s a restart: the running value%s kept", restart,
                  strchr(restart, ',') ? "" : "s", strchr(restart, ',') ? "s are" : " is");
    cfg_keep_restart(next, running);
    if ((conf = mdm_conf_new(next, &err)) == NULL) {
        log_warnx("SIGHUP: configuration not reloaded (the running one stays): %s", err.msg);
        return;
    }
    if (log_level_parse(conf->cfg->log_level, &lvl) == 0 &&
        log_format_parse(conf->cfg->log_format, &fmt) == 0)
        log_init(lvl, fmt);
    mdm_conf_publish(srv, conf);
    /* device_ca_key_file set (or the SCEP sources that win over it gone) by this reload:
     * the key pool starts now.  conf is the server's snapshot now, released only by a later
     * reload, which runs on this same thread. */
    mdm_enroll_guard_start(srv->enroll_guard, conf);
    mdm_config_warnings(conf->cfg);
    log_kv(LOG_LVL_INFO, "reload", "log_level", conf->cfg->log_level, "log_format",
           conf->cfg->log_format, "identity", conf->cfg->identity, "webhook_url",
           *conf->cfg->webhook_url ? conf->cfg->webhook_url : NULL, NULL);
}

void mdm_config_warnings(const struct cfg *cfg)
{
    if (cfg->enroll_open && cfg_enroll_hands_out_credentials(cfg))
        log_warnx("enroll_open = true: anyone who can reach /mdm/enroll gets a device credential; "
                  "use enroll_secret or enrollment tokens outside development");
    if (strcmp(cfg->reenroll, "allow") == 0)
        log_warnx("reenroll = allow: any identity from the device CA can take over an enrolled "
                  "device by its UDID; only for a lab");
    if (cfg->webhook_include_secrets)
        log_warnx("webhook_include_secrets = true: webhook events carry device secrets "
                  "(BootstrapToken, UnlockToken, ActivationLockBypassCode, push tokens) to the "
                  "receiver; anyone who reads its logs can use them");
    if (strncmp(cfg->webhook_url, "http://", 7) == 0)
        log_warnx("webhook_url is http://: events (device ids, results) travel unencrypted and "
                  "anyone on the path can read or answer them; use https://");
}
