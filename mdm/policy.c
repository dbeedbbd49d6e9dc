/*
 * Mac / iOS SCEP Profiles policies reaching devices — the flow of the admin guide
 * (the Mac / iOS SCEP Profiles admin guide; docs/architecture.md, "Policies"):
 *
 * - Saving a policy queues an InstallProfile (the profile rendered for that device, variables
 *   resolved) for every targeted, enrolled device of the policy's platform — a macOS policy
 *   reaches Macs only, an iOS policy iPhones and iPads; a group with several platforms gets
 *   the policy only on the supported ones — and pushes those devices.  The policy and every
 *   command are written in one transaction (store_policy_save).  A policy without targets is
 *   saved, and the answer says it takes no effect.
 * - Updating re-queues the new profile (same PayloadIdentifier, so it replaces the installed
 *   one); removing a target or deleting the policy queues RemoveProfile for the devices that
 *   had it.
 * - A device that enrolls later, or joins a targeted group later, gets the profile then; a
 *   device that leaves a group gets RemoveProfile for what no longer reaches it.
 *
 * The profile's PayloadIdentifier is "<payload_identifier_prefix>.policy.<policy uid>", the
 * uid being fixed when the policy is created, so renames and edits replace the profile.
 */
#include <malloc.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "common/codec.h"
#include "common/crypto.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "mdm/api_int.h"
#include "mdm/commands_int.h"
#include "mdm/ddm_int.h"
#include "mdm/metrics_int.h"
#include "mdm/scep_int.h"
#include "profiles/profiles.h"

#define CHALLENGE_MASK "********"

/* ---------------------------------------------------------------------------------------- */
/* Model conversions                                                                         */

static const char *platform_name(enum profile_platform p)
{
    return profile_platform_name(p);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/*
 * The policy model of a stored policy: profiles parses its document; the targets, which the
 * store keeps as rows, are moved over (sp no longer holds them).
 */
static int from_store(struct store_policy *sp, struct profile_policy *pp, struct scepter_error *err)
{
    if (profile_policy_from_document(sp->document, pp, err) != 0)
        return SCEPTER_EINVAL;
    pp->target_devices = sp->target_devices;
    pp->n_target_devices = sp->n_target_devices;
    pp->target_groups = sp->target_groups;
    pp->n_target_groups = sp->n_target_groups;
    sp->target_devices = sp->target_groups = NULL;
    sp->n_target_devices = sp->n_target_groups = 0;
    return 0;
}

static char *identifier_of(const struct cfg *cfg, const char *uid)
{
    return xasprintf("%s.policy.%s", cfg->payload_identifier_prefix, uid);
}

/* The platforms a policy reaches: Macs, or iPhones and iPads. */
static size_t platforms_of(enum profile_platform p, enum store_platform out[2])
{
    if (p == PROFILE_PLATFORM_MACOS) {
        out[0] = STORE_PLATFORM_MACOS;
        return 1;
    }
    out[0] = STORE_PLATFORM_IOS;
    out[1] = STORE_PLATFORM_IPADOS;
    return 2;
}

static bool platform_reached(enum profile_platform pol, enum store_platform dev)
{
    enum store_platform p[2];
    size_t n = platforms_of(pol, p);
    for (size_t i = 0; i < n; i++)
        if (p[i] == dev)
            return true;
    return false;
}

/* The API JSON of a policy: its model (pp) and what the store adds (sp: id, version, ...). */
static json_t *policy_json(const struct store_policy *sp, const struct profile_policy *pp,
                           const struct cfg *cfg, bool secrets)
{
    json_t *j;
    char *ident = identifier_of(cfg, sp->uid);

    j = profile_policy_to_json(pp, secrets ? 0 : PROFILE_JSON_MASK_CHALLENGE);
    json_object_set_new(j, "id", json_integer((json_int_t)sp->id));
    json_object_set_new(j, "type", json_string(sp->type ? sp->type : "scep"));
    json_object_set_new(j, "version", json_integer((json_int_t)sp->version));
    json_object_set_new(j, "payload_identifier", json_string(ident));
    json_object_set_new(j, "created", api_time(sp->created));
    json_object_set_new(j, "updated", api_time(sp->updated));
    free(ident);
    return j;
}

/* The API JSON of a stored policy (its targets move out of sp); NULL with err if unreadable. */
static json_t *stored_policy_json(struct store_policy *sp, const struct cfg *cfg, bool secrets,
                                  struct scepter_error *err)
{
    struct profile_policy pp;
    json_t *j = NULL;

    if (from_store(sp, &pp, err) == 0) {
        j = policy_json(sp, &pp, cfg, secrets);
    } else {
        log_kv(LOG_LVL_ERROR, "policy_unreadable", "policy", sp->name, "error", err->msg, NULL);
        err->http_status = 500; /* the server's data, not the request, is wrong */
    }
    profile_policy_clear(&pp);
    return j;
}

/* ---------------------------------------------------------------------------------------- */
/* Planning the commands a save implies                                                      */

struct plan {
    struct mdm_command *cmds; /* owned */
    struct store_command *sc; /* parallel to ids; sc[i].plist points into cmds */
    const char **ids;         /* enrollment ids (owned strings) */
    size_t *cmd_of;           /* parallel to ids: index into cmds (which may move) */
    size_t n, cap;
    size_t ncmds, cmdcap;
    size_t installs, removals;
    json_t *skipped;                     /* devices that could not get the profile, with why */
    const struct profile_signer *signer; /* signs each rendering, or NULL */
    struct mdm_ctx *ctx;
    const struct mdm_scep_otc *otc; /* a one-time challenge per rendering, or NULL */
    int64_t now;
    int64_t expires; /* the policy's expires_in as a time, for every command (0 = never) */
    const struct mdm_ddm_change *ddm; /* the policy, for devices it reaches over DDM, or NULL */
    /* The policy as it was when a save turns "ddm" off (else NULL): its DDM devices get a
     * DeclarativeManagement without it beside their InstallProfile. */
    const struct mdm_ddm_change *ddm_off;
    size_t syncs; /* DeclarativeManagement commands of ddm_off */
    /* Enrollments that hold the policy's profile and get its declarations now (handover). */
    const struct store_policy_device_status *had;
    size_t nhad;
    const char **handover; /* borrowed enrollment ids */
    size_t nhandover;
    struct ddm_cache *ddm_cache; /* what every device's declarations share (owned) */
    const struct store_policy_device_status **had_sorted; /* had by enrollment id, or NULL */
    /* The policies of every target, read in one statement (store_policies_for_devices):
     * pair_dev[i] is targeted by pair_pid[i], sorted by device id; valid when pairs. */
    bool pairs;
    char **pair_dev;
    int64_t *pair_pid;
    size_t npairs;
};

static void plan_init(struct plan *p, struct mdm_ctx *ctx)
{
    memset(p, 0, sizeof(*p));
    p->skipped = json_array();
    p->ddm_cache = ddm_cache_new();
    p->signer = ctx->conf ? ctx->conf->signer : NULL;
    p->ctx = ctx;
}

#define PLAN_TRIM_AT 1000 /* plans for this many devices or more end with malloc_trim */

static void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->ncmds; i++)
        mdm_command_clear(&p->cmds[i]);
    for (size_t i = 0; i < p->n; i++)
        free((char *)p->ids[i]);
    free(p->cmds);
    free(p->sc);
    free(p->ids);
    free(p->cmd_of);
    free(p->handover);
    ddm_cache_free(p->ddm_cache);
    free(p->had_sorted);
    store_strv_free(p->pair_dev, p->npairs);
    free(p->pair_pid);
    json_decref(p->skipped);
    /* A fan-out to thousands of devices held their rendered commands: give the freed memory
     * back to the system (glibc keeps it in the arena otherwise, and RSS stays at the peak). */
    if (p->n >= PLAN_TRIM_AT)
        malloc_trim(0);
}

static struct mdm_command *plan_new_command(struct plan *p)
{
    if (p->ncmds == p->cmdcap) {
        p->cmdcap = p->cmdcap ? p->cmdcap * 2 : 16;
        p->cmds = xreallocarray(p->cmds, p->cmdcap, sizeof(*p->cmds));
    }
    return &p->cmds[p->ncmds++];
}

/* Queue command cmd (by index: the array may move) for one enrollment. */
static void plan_add(struct plan *p, size_t cmd, const char *enrollment_id,
                     enum store_policy_action action)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->sc = xreallocarray(p->sc, p->cap, sizeof(*p->sc));
        p->ids = xreallocarray(p->ids, p->cap, sizeof(*p->ids));
        p->cmd_of = xreallocarray(p->cmd_of, p->cap, sizeof(*p->cmd_of));
    }
    memset(&p->sc[p->n], 0, sizeof(p->sc[p->n]));
    p->sc[p->n].policy_action = action;
    p->cmd_of[p->n] = cmd;
    p->ids[p->n] = xstrdup(enrollment_id);
    p->n++;
    if (action == STORE_POLICY_INSTALL)
        p->installs++;
    else
        p->removals++;
}

/*
 * A device the policy reaches over Declarative Device Management (mdm/ddm.c) gets a
 * DeclarativeManagement command with its new tokens instead of InstallProfile/RemoveProfile.
 * True when it did (or the device could not be planned: then it is in p->skipped).
 */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_had(const void *a, const void *b)
{
    return strcmp((*(const struct store_policy_device_status *const *)a)->enrollment_id,
                  (*(const struct store_policy_device_status *const *)b)->enrollment_id);
}

/* Does the enrollment hold the policy's profile (its latest command an InstallProfile that is
 * installed or on its way)?  A save looks every DDM device up: had is sorted once. */
static bool holds_profile(struct plan *p, const char *enrollment_id)
{
    struct store_policy_device_status key, *kp = &key;
    const struct store_policy_device_status *const *hit;

    if (p->nhad == 0)
        return false;
    if (p->had_sorted == NULL) {
        p->had_sorted = xcalloc(p->nhad, sizeof(const struct store_policy_device_status *));
        for (size_t i = 0; i < p->nhad; i++)
            p->had_sorted[i] = &p->had[i];
        qsort(p->had_sorted, p->nhad, sizeof(const struct store_policy_device_status *), cmp_had);
    }
    memset(&key, 0, sizeof(key));
    key.enrollment_id = (char *)enrollment_id;
    hit = bsearch(&kp, p->had_sorted, p->nhad, sizeof(const struct store_policy_device_status *),
                  cmp_had);
    return hit != NULL && (*hit)->action == STORE_POLICY_INSTALL &&
           strcmp((*hit)->request_type, "InstallProfile") == 0 &&
           ((*hit)->state == STORE_PSTATE_INSTALLED || (*hit)->state == STORE_PSTATE_PENDING);
}

/* mdm_ddm_sync_command, from the target's facts and the pairs when the save read them. */
static int sync_command(struct plan *p, const char *device_id, const struct store_target_device *t,
                        const struct mdm_ddm_change *ch, bool reaches, struct mdm_command *cmd,
                        struct scepter_error *err)
{
    size_t lo = 0, hi = p->npairs, end;

    if (t == NULL || !p->pairs)
        return mdm_ddm_sync_command(p->ctx, device_id, ch, reaches, p->ddm_cache, cmd, err);
    while (lo < hi) { /* the first pair of the device */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(p->pair_dev[mid], t->device_id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (end = lo; end < p->npairs && strcmp(p->pair_dev[end], t->device_id) == 0; end++)
        ;
    return mdm_ddm_sync_command_for(p->ctx, t, p->pair_pid + lo, end - lo, ch, reaches,
                                    p->ddm_cache, cmd, err);
}

/*
 * A save for many devices reads what targets each of them in one statement, for their
 * DeclarativeManagement commands (on failure each device reads its own).
 */
static void plan_read_pairs(struct plan *p, const struct store_target_device *targets, size_t nt)
{
    struct scepter_error err;
    const char **ids;
    size_t n = 0;

    if (nt < 2 || ((p->ddm == NULL || !ddm_policy(p->ddm->pp)) && p->ddm_off == NULL))
        return;
    ids = xcalloc(nt, sizeof(const char *));
    for (size_t i = 0; i < nt; i++)
        if (strcmp(targets[i].device_id, targets[i].enrollment_id) == 0 &&
            ddm_capable(targets[i].platform, targets[i].os_version))
            ids[n++] = targets[i].device_id;
    if (n > 1) {
        if (store_policies_for_devices(p->ctx->store, ids, n, &p->pair_dev, &p->pair_pid,
                                       &p->npairs, &err) == 0)
            p->pairs = true;
        else
            log_kv(LOG_LVL_WARN, "policy_targets", "msg", err.msg, NULL);
    }
    free(ids);
}

static bool plan_ddm(struct plan *p, const char *device_id, const char *enrollment_id,
                     const struct store_target_device *t, bool reaches,
                     enum store_policy_action action)
{
    struct scepter_error err;
    struct mdm_command cmd;
    /* What a device being untargeted holds is the policy as it was. */
    const struct mdm_ddm_change *ch =
        action == STORE_POLICY_REMOVE && p->ddm_off != NULL ? p->ddm_off : p->ddm;
    int rc;

    if (ch == NULL || strcmp(device_id, enrollment_id) != 0)
        return false; /* not a DDM save, or a user channel (user-keychain policies) */
    rc = sync_command(p, device_id, t, ch, reaches, &cmd, &err);
    if (rc < 0)
        json_array_append_new(p->skipped,
                              json_pack("{s:s,s:s}", "device", device_id, "error", err.msg));
    if (rc <= 0)
        return rc < 0;
    *plan_new_command(p) = cmd;
    plan_add(p, p->ncmds - 1, enrollment_id, action);
    /* The profile stays until the declarations report active (mdm/ddm.c): no identity gap. */
    if (action == STORE_POLICY_INSTALL && holds_profile(p, enrollment_id)) {
        p->handover = xreallocarray(p->handover, p->nhandover + 1, sizeof(*p->handover));
        p->handover[p->nhandover++] = p->ids[p->n - 1];
    }
    return true;
}

/*
 * "ddm" turned off: the device that had the policy's declarations gets, beside the
 * InstallProfile just planned for it (the last entry), a DeclarativeManagement with its tokens
 * without the policy.  It is queued before the InstallProfile (so the policy's status follows
 * the profile) at a lower priority (so the device installs the profile first and has an
 * identity throughout).
 */
static void plan_ddm_off(struct plan *p, const struct store_target_device *t)
{
    const char *device_id = t->device_id, *enrollment_id = t->enrollment_id;
    struct scepter_error err;
    struct mdm_command cmd;
    int rc;

    if (p->ddm_off == NULL || strcmp(device_id, enrollment_id) != 0)
        return;
    rc = sync_command(p, device_id, t, p->ddm_off, false, &cmd, &err);
    if (rc < 0)
        log_kv(LOG_LVL_WARN, "ddm_sync_not_queued", "device", device_id, "msg", err.msg, NULL);
    if (rc <= 0)
        return;
    *plan_new_command(p) = cmd;
    plan_add(p, p->ncmds - 1, enrollment_id, STORE_POLICY_INSTALL);
    p->installs--;
    p->syncs++;
    p->sc[p->n - 1].priority = -1;
    /* swap with the InstallProfile before it */
    struct store_command sc = p->sc[p->n - 1];
    const char *id = p->ids[p->n - 1];
    size_t cmd_of = p->cmd_of[p->n - 1];
    p->sc[p->n - 1] = p->sc[p->n - 2];
    p->ids[p->n - 1] = p->ids[p->n - 2];
    p->cmd_of[p->n - 1] = p->cmd_of[p->n - 2];
    p->sc[p->n - 2] = sc;
    p->ids[p->n - 2] = id;
    p->cmd_of[p->n - 2] = cmd_of;
}

/* Point every store command at its (now stable) command buffer. */
static void plan_finish(struct plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct mdm_command *c = &p->cmds[p->cmd_of[i]];
        str_copy(p->sc[i].uuid, sizeof(p->sc[i].uuid), c->uuid);
        p->sc[i].request_type = c->request_type;
        p->sc[i].plist = (const unsigned char *)c->plist.data;
        p->sc[i].plist_len = c->plist.len;
        p->sc[i].expires = p->expires;
    }
}

static void target_device(const struct store_target_device *t, struct profile_device *d)
{
    memset(d, 0, sizeof(*d));
    d->udid = t->device_id;
    d->serial_number = t->serial_number;
    d->device_name = t->device_name;
    d->model = t->model;
    d->product_name = t->product_name;
    d->os_version = t->os_version;
    d->platform = store_platform_name(t->platform);
}

/*
 * InstallProfile for each target.  A uniform profile (no server-side variable) is rendered
 * once and is one command queued for every target (the store keeps one row for it); otherwise
 * each device gets its own rendering.
 */
static void plan_installs(struct plan *p, const struct profile_template *t,
                          const struct store_target_device *targets, size_t nt)
{
    struct buf xml = BUF_INIT;
    struct scepter_error err;
    /* A one-time challenge per device makes every rendering different. */
    bool uniform = profile_template_is_uniform(t) && p->otc == NULL;
    size_t shared = (size_t)-1;

    plan_read_pairs(p, targets, nt);

    for (size_t i = 0; i < nt; i++) {
        if (plan_ddm(p, targets[i].device_id, targets[i].enrollment_id, &targets[i], true,
                     STORE_POLICY_INSTALL))
            continue;
        if (uniform && shared != (size_t)-1) {
            plan_add(p, shared, targets[i].enrollment_id, STORE_POLICY_INSTALL);
            plan_ddm_off(p, &targets[i]);
            continue;
        }
        struct profile_device d;
        target_device(&targets[i], &d);
        buf_reset(&xml);
        if (profile_template_render(t, uniform ? NULL : &d, &xml, &err) != 0 ||
            mdm_scep_otc_apply(p->ctx, p->otc, &d, &xml, p->now, &err) != 0) {
            json_array_append_new(p->skipped, json_pack("{s:s,s:s}", "device", targets[i].device_id,
                                                        "error", err.msg));
            continue;
        }
        unsigned char *der = NULL;
        size_t der_len = 0;
        /* CMS-signed when a signing identity is configured, as the enrollment profile is. */
        if (p->signer && profile_sign(p->signer, xml.data, xml.len, &der, &der_len, &err) != 0) {
            json_array_append_new(p->skipped, json_pack("{s:s,s:s}", "device", targets[i].device_id,
                                                        "error", err.msg));
            continue;
        }
        size_t k = p->ncmds;
        if (der)
            mdm_command_install_profile(der, der_len, NULL, plan_new_command(p));
        else
            mdm_command_install_profile(xml.data, xml.len, NULL, plan_new_command(p));
        free(der);
        plan_add(p, k, targets[i].enrollment_id, STORE_POLICY_INSTALL);
        plan_ddm_off(p, &targets[i]);
        if (uniform)
            shared = k;
    }
    buf_free(&xml);
}

/* RemoveProfile for the devices in `had` that are not among the targets. */
static void plan_removals(struct plan *p, const char *identifier,
                          const struct store_policy_device_status *had, size_t nhad,
                          const struct store_target_device *targets, size_t nt)
{
    size_t shared = (size_t)-1;
    /* the targets' enrollment ids, sorted: an update of every device looks each one up */
    const char **tid = xcalloc(nt ? nt : 1, sizeof(*tid));

    for (size_t j = 0; j < nt; j++)
        tid[j] = targets[j].enrollment_id;
    qsort(tid, nt, sizeof(*tid), cmp_str);
    for (size_t i = 0; i < nhad; i++) {
        bool keep = false;
        const char *key = had[i].enrollment_id;
        if (had[i].action != STORE_POLICY_INSTALL)
            continue; /* already removed or being removed */
        if (had[i].state != STORE_PSTATE_INSTALLED && had[i].state != STORE_PSTATE_PENDING)
            continue; /* failed or cancelled: nothing on the device */
        /* By channel: a policy moved to the user keychain leaves the device channel. */
        keep = nt > 0 && bsearch(&key, tid, nt, sizeof(*tid), cmp_str) != NULL;
        if (keep ||
            plan_ddm(p, had[i].device_id, had[i].enrollment_id, NULL, false, STORE_POLICY_REMOVE))
            continue;
        if (shared == (size_t)-1) { /* one RemoveProfile command for all of them */
            shared = p->ncmds;
            mdm_command_remove_profile(identifier, NULL, plan_new_command(p));
        }
        plan_add(p, shared, had[i].enrollment_id, STORE_POLICY_REMOVE);
    }
    free(tid);
}

/*
 * A user-keychain policy (macOS) goes to the user channels of the targeted Macs rather than to
 * their device channels: *targets (the devices) is replaced by one entry per enabled user
 * channel, the device's facts copied.  A Mac without a user channel yet gets the profile when a
 * user's channel first checks in (mdm_user_channel_enrolled).
 */
static int user_channel_targets(struct mdm_ctx *ctx, struct store_target_device **targets,
                                size_t *nt, struct scepter_error *err)
{
    struct store_target_device *in = *targets, *out = NULL;
    const char **devs = xcalloc(*nt ? *nt : 1, sizeof(*devs));
    char **dv = NULL, **ev = NULL;
    size_t n = 0, k = 0;
    int rc;

    for (size_t i = 0; i < *nt; i++)
        devs[i] = in[i].device_id;
    rc = store_user_channels(ctx->store, devs, *nt, &dv, &ev, &n, err);
    free(devs);
    if (rc != 0)
        return rc;
    out = n ? xcalloc(n, sizeof(*out)) : NULL;
    for (size_t j = 0, i = 0; j < n; j++) {
        while (i < *nt && strcmp(in[i].device_id, dv[j]) != 0)
            i++;
        if (i == *nt)
            break; /* both lists are sorted by device id */
        out[k].device_id = xstrdup(in[i].device_id);
        out[k].enrollment_id = xstrdup(ev[j]);
        out[k].platform = in[i].platform;
        out[k].serial_number = dup_or_null(in[i].serial_number);
        out[k].device_name = dup_or_null(in[i].device_name);
        out[k].model = dup_or_null(in[i].model);
        out[k].product_name = dup_or_null(in[i].product_name);
        out[k].os_version = dup_or_null(in[i].os_version);
        k++;
    }
    store_strv_free(dv, n);
    store_strv_free(ev, n);
    store_target_devices_free(in, *nt);
    *targets = out;
    *nt = k;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Save, update, delete                                                                      */

static void reply_problems(struct api_call *c, const struct profile_problems *pr)
{
    api_reply_json(c, 400, profile_problems_to_json(pr));
    const struct profile_problem *first = profile_problems_first_error(pr);
    if (first)
        str_copy(c->reply->reason, sizeof(c->reply->reason), first->msg);
}

static json_t *warnings_json(const struct profile_problems *pr)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < pr->n; i++)
        if (pr->v[i].warning)
            json_array_append_new(
                arr, json_pack("{s:s,s:s}", "field", pr->v[i].field, "message", pr->v[i].msg));
    return arr;
}

static void push_plan(struct mdm_ctx *ctx, const struct plan *p)
{
    mdm_metrics_command(ctx->srv, MDM_CMD_QUEUED, "InstallProfile", p->installs);
    mdm_metrics_command(ctx->srv, MDM_CMD_QUEUED, "RemoveProfile", p->removals);
    mdm_metrics_command(ctx->srv, MDM_CMD_QUEUED, "DeclarativeManagement", p->syncs);
    if (p->n)
        mdm_push_enrollments(ctx, p->ids, p->n);
}

/*
 * Create (id 0) or update the policy from the operator's JSON; existing is the stored policy
 * on update.
 */
/* What POST and PUT name a policy sent without "name". */
static void default_name(json_t *body)
{
    json_t *name = json_object_get(body, "name");
    const char *plat = json_string_value(json_object_get(body, "platform"));
    const char *def = NULL;

    if (!json_is_object(body) || !(name == NULL || json_is_null(name) ||
                                   (json_is_string(name) && json_string_length(name) == 0)))
        return;
    if (profile_platform_parse(plat) == PROFILE_PLATFORM_MACOS)
        def = "Mac SCEP Profiles";
    else if (profile_platform_parse(plat) == PROFILE_PLATFORM_IOS)
        def = "iOS SCEP Profiles";
    if (def)
        json_object_set_new(body, "name", json_string(def));
}

static void policy_save(struct api_call *c, const struct store_policy *existing,
                        const struct profile_policy *existing_pp)
{
    struct profile_policy pp;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct profile_template *t = NULL;
    struct profile_render_opts ro;
    struct store_policy sp;
    struct store_target_device *targets = NULL;
    struct store_policy_device_status *had = NULL;
    struct scepter_error err;
    enum store_platform plats[2];
    struct plan plan;
    char uid[UUID_STR_LEN];
    char *ident = NULL;
    size_t nt = 0, nhad = 0, np, ndevices = 0;
    struct mdm_scep_otc otc;
    int rc;
    json_t *j;

    if (!api_scep_policy_fill(c))
        return; /* "use Scepter's CA" could not be filled in: nothing was allocated yet */
    plan_init(&plan, c->ctx);
    memset(&sp, 0, sizeof(sp));
    default_name(c->body);
    if (profile_policy_from_json_value(c->body, &pp, &pr) != 0) {
        reply_problems(c, &pr);
        goto out;
    }
    if (existing_pp && pp.scep_challenge && strcmp(pp.scep_challenge, CHALLENGE_MASK) == 0) {
        /* A GET's masked challenge sent back: keep the stored secret. */
        free(pp.scep_challenge);
        pp.scep_challenge = dup_or_null(existing_pp->scep_challenge);
    }
    if (existing)
        str_copy(uid, sizeof(uid), existing->uid);
    else
        uuid_new(uid);
    ident = identifier_of(c->ctx->cfg, uid);
    memset(&ro, 0, sizeof(ro));
    ro.identifier = ident;
    ro.organization = c->ctx->cfg->org_name;
    if (mdm_scep_otc_begin(c->ctx, &pp, &otc))
        plan.otc = &otc;
    plan.now = c->now;
    plan.expires = pp.expires_in ? c->now + pp.expires_in : 0;
    struct mdm_ddm_change ddm = {uid, &pp, c->now};
    plan.ddm = &ddm;
    struct mdm_ddm_change was = {uid, existing_pp, c->now};
    if (existing_pp != NULL && ddm_policy(existing_pp) && !ddm_policy(&pp))
        plan.ddm_off = &was;
    rc = profile_template_new(&pp, &ro, &t, &pr);
    mdm_scep_otc_end(&pp, &otc);
    if (rc != 0) {
        reply_problems(c, &pr);
        goto out;
    }
    np = platforms_of(pp.platform, plats);
    if (store_targets_resolve(c->ctx->store, (const char *const *)pp.target_devices,
                              pp.n_target_devices, (const char *const *)pp.target_groups,
                              pp.n_target_groups, plats, np, &targets, &nt, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    ndevices = nt;
    if (pp.keychain == PROFILE_KEYCHAIN_USER &&
        user_channel_targets(c->ctx, &targets, &nt, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    if (existing && store_policy_status(c->ctx->store, existing->id, &had, &nhad, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    plan.had = had;
    plan.nhad = nhad;
    plan_installs(&plan, t, targets, nt);
    if (existing)
        plan_removals(&plan, ident, had, nhad, targets, nt);
    plan_finish(&plan);

    sp.type = (char *)"scep";
    sp.platform = (char *)platform_name(pp.platform);
    sp.name = pp.name;
    sp.document = profile_policy_document(&pp);
    sp.target_devices = pp.target_devices;
    sp.n_target_devices = pp.n_target_devices;
    sp.target_groups = pp.target_groups;
    sp.n_target_groups = pp.n_target_groups;
    sp.uid = uid;
    sp.id = existing ? existing->id : 0;
    if (store_policy_save(c->ctx->store, &sp, plan.sc, plan.ids, plan.n, c->now, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    for (size_t i = 0; i < plan.nhandover; i++)
        if (store_ddm_handover_add(c->ctx->store, plan.handover[i], sp.id, uid, c->now, &err) != 0)
            log_kv(LOG_LVL_WARN, "ddm_handover", "enrollment", plan.handover[i], "msg", err.msg,
                   NULL);
    push_plan(c->ctx, &plan);
    log_kv(LOG_LVL_INFO, existing ? "policy_updated" : "policy_created", "policy", pp.name,
           "platform", platform_name(pp.platform), NULL);

    j = policy_json(&sp, &pp, c->ctx->cfg, false);
    json_object_set_new(j, "queued_installs", json_integer((json_int_t)plan.installs));
    json_object_set_new(j, "queued_removals", json_integer((json_int_t)plan.removals));
    json_object_set_new(j, "targeted_devices", json_integer((json_int_t)ndevices));
    if (pp.keychain == PROFILE_KEYCHAIN_USER)
        json_object_set_new(j, "targeted_user_channels", json_integer((json_int_t)nt));
    json_object_set_new(j, "not_rendered", json_incref(plan.skipped));
    json_object_set_new(j, "warnings", warnings_json(&pr));
    json_object_set_new(j, "takes_effect",
                        json_boolean(pp.n_target_devices + pp.n_target_groups > 0));
    if (pp.n_target_devices + pp.n_target_groups == 0)
        json_object_set_new(j, "message",
                            json_string("saved, but the policy has no devices or device groups "
                                        "and takes no effect until you add a target"));
    else if (nt == 0)
        json_object_set_new(j, "message",
                            json_string("saved; no enrolled device of this platform is targeted "
                                        "yet: devices get the profile when they enroll or join "
                                        "a targeted group"));
    api_reply_json(c, existing ? 200 : 201, j);
out:
    free(sp.document); /* the rest of sp is borrowed */
    store_policy_statuses_free(had, nhad);
    store_target_devices_free(targets, nt);
    profile_template_free(t);
    profile_policy_clear(&pp);
    profile_problems_clear(&pr);
    plan_free(&plan);
    free(ident);
}

static void policy_delete(struct api_call *c, const struct store_policy *existing)
{
    struct store_policy_device_status *had = NULL;
    struct scepter_error err;
    struct plan plan;
    size_t nhad = 0;
    char *ident = identifier_of(c->ctx->cfg, existing->uid);

    struct profile_policy old;
    struct mdm_ddm_change ddm = {existing->uid, &old, c->now};

    plan_init(&plan, c->ctx);
    if (profile_policy_from_document(existing->document, &old, &err) == 0)
        plan.ddm = &ddm;
    if (store_policy_status(c->ctx->store, existing->id, &had, &nhad, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    plan_removals(&plan, ident, had, nhad, NULL, 0);
    plan_finish(&plan);
    if (store_policy_delete(c->ctx->store, existing->id, plan.sc, plan.ids, plan.n, c->now, &err) !=
        0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    push_plan(c->ctx, &plan);
    log_kv(LOG_LVL_INFO, "policy_deleted", "policy", existing->name, NULL);
    api_reply_json(c, 200,
                   json_pack("{s:I,s:b,s:I}", "id", (json_int_t)existing->id, "deleted", 1,
                             "queued_removals", (json_int_t)plan.removals));
out:
    store_policy_statuses_free(had, nhad);
    plan_free(&plan);
    profile_policy_clear(&old);
    free(ident);
}

/* The console's state of a policy on a device; NULL for what is not on it (removed, ...). */
static const char *console_state(enum store_policy_state state)
{
    switch (state) {
    case STORE_PSTATE_INSTALLED:
    case STORE_PSTATE_PENDING:
    case STORE_PSTATE_REMOVING:
    case STORE_PSTATE_FAILED:
        return store_policy_state_name(state);
    case STORE_PSTATE_REMOVE_FAILED:
        return store_policy_state_name(STORE_PSTATE_FAILED);
    default:
        return NULL;
    }
}

/* {"chain": [...], "message": first description} from a stored ErrorChain, or JSON null. */
static json_t *error_json(const char *chain_json)
{
    json_t *chain = chain_json ? json_loads(chain_json, 0, NULL) : NULL;
    json_t *first;
    const char *msg = NULL;

    if (chain == NULL)
        return json_null();
    first = json_array_get(chain, 0);
    msg = json_string_value(json_object_get(first, "USEnglishDescription"));
    if (msg == NULL)
        msg = json_string_value(json_object_get(first, "LocalizedDescription"));
    return json_pack("{s:o,s:s?}", "chain", chain, "message", msg);
}

/* A query parameter as an integer in [min, max] (def when absent); false after a 400 reply. */
static bool query_int(struct api_call *c, const char *name, int64_t min, int64_t max, int64_t def,
                      int64_t *out)
{
    char *v = api_query(c, name);

    *out = def;
    if (v && str_to_i64(v, min, max, out) != 0) {
        api_reply_error(c, 400, name, "%s: '%.40s' is not an integer between %lld and %lld", name,
                        v, (long long)min, (long long)max);
        free(v);
        return false;
    }
    free(v);
    return true;
}

#define PAGE_MAX 1000

static void policy_status(struct api_call *c, const struct store_policy *sp)
{
    struct store_policy_device_status *st = NULL;
    struct scepter_error err;
    size_t n = 0, total = 0;
    int64_t limit, offset;
    char *want = api_query(c, "state");
    json_t *installed, *pending, *failed, *removed, *devices, *j;

    if (want && strcmp(want, "installed") != 0 && strcmp(want, "pending") != 0 &&
        strcmp(want, "failed") != 0 && strcmp(want, "removing") != 0) {
        api_reply_error(c, 400, "state",
                        "state: '%.40s' is not installed, pending, failed or removing", want);
        free(want);
        return;
    }
    if (!query_int(c, "limit", 1, PAGE_MAX, PAGE_MAX, &limit) ||
        !query_int(c, "offset", 0, INT64_MAX, 0, &offset)) {
        free(want);
        return;
    }
    if (store_policy_status(c->ctx->store, sp->id, &st, &n, &err) != 0) {
        free(want);
        api_reply_scepter_error(c, &err);
        return;
    }
    bool ddm = false;
    {
        struct profile_policy pp;
        if (profile_policy_from_document(sp->document, &pp, &err) == 0)
            ddm = ddm_policy(&pp);
        profile_policy_clear(&pp);
    }
    installed = json_array();
    pending = json_array();
    failed = json_array();
    removed = json_array();
    devices = json_array();
    json_t **entries = xcalloc(n ? n : 1, sizeof(json_t *));
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_pack("{s:s,s:s,s:s,s:I,s:o,s:i}", "device", st[i].device_id, "command",
                              st[i].uuid, "state", store_policy_state_name(st[i].state),
                              "policy_version", (json_int_t)st[i].policy_version, "updated",
                              api_time(st[i].updated), "notnow_count", st[i].notnow_count);
        if (st[i].error_chain_json)
            json_object_set_new(d, "error_chain", json_loads(st[i].error_chain_json, 0, NULL));
        if (st[i].enrollment_id && strcmp(st[i].enrollment_id, st[i].device_id) != 0)
            json_object_set_new(d, "channel", json_string(st[i].enrollment_id)); /* a user's */
        entries[i] = d;
    }
    /* delivery and the DDM reports: one store query for every device */
    mdm_ddm_policy_status_json(c->ctx, sp->uid, ddm, st, n, entries);
    for (size_t i = 0; i < n; i++) {
        json_t *d = entries[i];
        json_t *delivery = json_object_get(d, "delivery"); /* borrowed while d lives */
        switch (st[i].state) {
        case STORE_PSTATE_INSTALLED:
            json_array_append_new(installed, d);
            break;
        case STORE_PSTATE_PENDING:
        case STORE_PSTATE_REMOVING:
            json_array_append_new(pending, d);
            break;
        case STORE_PSTATE_FAILED:
        case STORE_PSTATE_REMOVE_FAILED:
            json_array_append_new(failed, d);
            break;
        default:
            json_array_append_new(removed, d);
        }

        /* The console's list: one row per device the policy is on or going to. */
        const char *cs = console_state(st[i].state);
        if (cs == NULL || (want && strcmp(want, cs) != 0))
            continue;
        if (total++ < (size_t)offset || json_array_size(devices) >= (size_t)limit)
            continue;
        json_array_append_new(
            devices, json_pack("{s:s,s:s?,s:s?,s:s?,s:s,s:o,s:o,s:O}", "udid", st[i].device_id,
                               "name", st[i].device_name, "serial", st[i].serial_number, "platform",
                               st[i].platform == STORE_PLATFORM_UNKNOWN
                                   ? NULL
                                   : store_platform_name(st[i].platform),
                               "state", cs, "error", error_json(st[i].error_chain_json), "updated",
                               api_time(st[i].updated), "delivery", delivery));
    }
    free(entries);
    store_policy_statuses_free(st, n);
    free(want);
    j = json_pack(
        "{s:I,s:s,s:I,s:{s:I,s:I,s:I},s:o,s:o,s:o,s:o,s:o,s:I}", "id", (json_int_t)sp->id, "name",
        sp->name, "version", (json_int_t)sp->version, "counts", "installed",
        (json_int_t)json_array_size(installed), "pending", (json_int_t)json_array_size(pending),
        "failed", (json_int_t)json_array_size(failed), "installed", installed, "pending", pending,
        "failed", failed, "removed", removed, "devices", devices, "total", (json_int_t)total);
    api_ddm_policy_status(c, sp, j); /* syncing, counts by channel (mdm/api_ddm.c) */
    api_reply_json(c, 200, j);
}

/* {installed, pending, failed} of one policy, counted as GET .../status counts them. */
static json_t *policy_counts(struct api_call *c, int64_t id)
{
    struct store_policy_device_status *st = NULL;
    struct scepter_error err;
    size_t n = 0;
    json_int_t inst = 0, pend = 0, fail = 0;

    if (store_policy_status(c->ctx->store, id, &st, &n, &err) != 0)
        log_warnx("policy %lld: %s", (long long)id, err.msg);
    for (size_t i = 0; i < n; i++) {
        enum store_policy_state s = st[i].state;
        inst += s == STORE_PSTATE_INSTALLED;
        pend += s == STORE_PSTATE_PENDING || s == STORE_PSTATE_REMOVING;
        fail += s == STORE_PSTATE_FAILED || s == STORE_PSTATE_REMOVE_FAILED;
    }
    store_policy_statuses_free(st, n);
    return json_pack("{s:I,s:I,s:I}", "installed", inst, "pending", pend, "failed", fail);
}

enum list_sort { SORT_ID, SORT_NAME, SORT_PLATFORM, SORT_UPDATED };
struct list_order {
    enum list_sort sort;
    bool desc;
};

static int cmp_policies(const void *a, const void *b, void *arg)
{
    const struct store_policy *x = *(const struct store_policy *const *)a;
    const struct store_policy *y = *(const struct store_policy *const *)b;
    const struct list_order *o = arg;
    int r = 0;

    if (o->sort == SORT_PLATFORM)
        r = strcmp(x->platform, y->platform);
    if (r == 0 && (o->sort == SORT_NAME || o->sort == SORT_PLATFORM))
        r = strcasecmp(x->name, y->name);
    if (r == 0 && o->sort == SORT_UPDATED)
        r = (x->updated > y->updated) - (x->updated < y->updated);
    if (r == 0)
        r = (x->id > y->id) - (x->id < y->id);
    return o->desc ? -r : r;
}

/* ASCII case-insensitive substring test. */
static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return n == 0;
}

/* GET /v1/policies?platform=&q=&sort=&order=&limit=&offset= */
static void policy_list(struct api_call *c)
{
    struct store_policy *list = NULL, **sel = NULL;
    struct list_order o = {SORT_ID, false};
    struct scepter_error err;
    size_t n = 0, nsel = 0;
    int64_t limit, offset;
    char *platform = api_query(c, "platform"), *q = api_query(c, "q");
    char *sort = api_query(c, "sort"), *order = api_query(c, "order");
    json_t *arr;

    if (platform && profile_platform_parse(platform) == PROFILE_PLATFORM_NONE) {
        api_reply_error(c, 400, "platform", "platform: '%.40s' is not macos or ios", platform);
        goto out;
    }
    if (sort && strcmp(sort, "name") == 0)
        o.sort = SORT_NAME;
    else if (sort && strcmp(sort, "platform") == 0)
        o.sort = SORT_PLATFORM;
    else if (sort && strcmp(sort, "updated") == 0)
        o.sort = SORT_UPDATED;
    else if (sort) {
        api_reply_error(c, 400, "sort", "sort: '%.40s' is not name, platform or updated", sort);
        goto out;
    }
    if (order && strcmp(order, "desc") == 0)
        o.desc = true;
    else if (order && strcmp(order, "asc") != 0) {
        api_reply_error(c, 400, "order", "order: '%.40s' is not asc or desc", order);
        goto out;
    }
    if (!query_int(c, "limit", 1, PAGE_MAX, INT64_MAX, &limit) ||
        !query_int(c, "offset", 0, INT64_MAX, 0, &offset))
        goto out;
    if (store_policy_list(c->ctx->store, platform, &list, &n, &err) != 0) {
        api_reply_scepter_error(c, &err);
        goto out;
    }
    sel = xcalloc(n ? n : 1, sizeof(struct store_policy *));
    for (size_t i = 0; i < n; i++)
        if (q == NULL || contains_ci(list[i].name, q))
            sel[nsel++] = &list[i];
    qsort_r(sel, nsel, sizeof(struct store_policy *), cmp_policies, &o);
    arr = json_array();
    for (size_t i = (size_t)offset; i < nsel && i - (size_t)offset < (size_t)limit; i++) {
        json_t *pj = stored_policy_json(sel[i], c->ctx->cfg, false, &err);
        if (pj == NULL)
            continue;
        /* The console's names: targets.groups (= device_groups) and the counts. */
        json_t *t = json_object_get(pj, "targets");
        json_object_set(t, "groups", json_object_get(t, "device_groups"));
        json_object_set_new(pj, "counts", policy_counts(c, sel[i]->id));
        json_array_append_new(arr, pj);
    }
    api_reply_json(c, 200, json_pack("{s:o,s:I}", "policies", arr, "total", (json_int_t)nsel));
out:
    store_policies_free(list, n);
    free(sel);
    free(platform);
    free(q);
    free(sort);
    free(order);
}

/* GET /v1/policies/{id}/preview?device=UDID: the profile that device would be sent. */
static void policy_preview(struct api_call *c, struct store_policy *sp)
{
    struct profile_policy pp;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct profile_template *t = NULL;
    struct store_device dev;
    struct profile_device d;
    struct scepter_error err;
    struct buf xml = BUF_INIT;
    char *udid = api_query(c, "device");
    char *ident = identifier_of(c->ctx->cfg, sp->uid);
    struct profile_render_opts ro = {ident, c->ctx->cfg->org_name};

    memset(&dev, 0, sizeof(dev));
    profile_policy_init(&pp);
    if (udid == NULL || *udid == '\0') {
        api_reply_error(c, 400, "device", "device: required (?device=UDID)");
        goto out;
    }
    if (store_device_get(c->ctx->store, udid, &dev, &err) != 0) {
        if (err.code == SCEPTER_ENOTFOUND)
            api_reply_error(c, 404, "device", "device: no device %.200s", udid);
        else
            api_reply_scepter_error(c, &err);
        goto out;
    }
    if (from_store(sp, &pp, &err) != 0) {
        api_reply_error(c, 500, "document", "%s", err.msg);
        goto out;
    }
    if (!platform_reached(pp.platform, dev.platform)) {
        api_reply_error(c, 400, "device",
                        "device: %.200s is a%s %s device; this %s policy does not reach it", udid,
                        dev.platform == STORE_PLATFORM_IOS ? "n" : "",
                        store_platform_name(dev.platform), platform_name(pp.platform));
        goto out;
    }
    if (profile_template_new(&pp, &ro, &t, &pr) != 0) {
        reply_problems(c, &pr);
        goto out;
    }
    d.udid = dev.id;
    d.serial_number = dev.serial_number;
    d.device_name = dev.device_name;
    d.model = dev.model;
    d.product_name = dev.product_name;
    d.os_version = dev.os_version;
    d.platform = store_platform_name(dev.platform);
    if (profile_template_render(t, &d, &xml, &err) != 0) {
        api_reply_error(c, 400, "device", "device: %.200s cannot get this profile: %s", udid,
                        err.msg);
        goto out;
    }
    c->reply->status = 200;
    c->reply->content_type = "application/x-apple-aspen-config";
    buf_reset(&c->reply->body);
    buf_append(&c->reply->body, xml.data, xml.len);
out:
    buf_free(&xml);
    profile_template_free(t);
    profile_problems_clear(&pr);
    profile_policy_clear(&pp);
    store_device_clear(&dev);
    free(ident);
    free(udid);
}

void api_policy_variables(struct api_call *c)
{
    char *plat = api_query(c, "platform");
    enum profile_platform want = profile_platform_parse(plat);
    const struct profile_variable *v;
    json_t *arr;
    size_t n;

    if (plat && want == PROFILE_PLATFORM_NONE) {
        api_reply_error(c, 400, "platform", "platform: '%.40s' is not macos or ios", plat);
        free(plat);
        return;
    }
    free(plat);
    v = profile_variables(&n);
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        bool ios = v[i].scope != PROFILE_VAR_APPLE_MACOS; /* every variable works on macOS */
        char *name;
        if (want == PROFILE_PLATFORM_IOS && !ios)
            continue;
        name = xasprintf("%%%s%%", v[i].name);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:[s,s*]}", "name", name, "description",
                                             v[i].description, "platforms", "macos",
                                             ios ? "ios" : NULL));
        free(name);
    }
    api_reply_json(c, 200, json_pack("{s:o}", "variables", arr));
}

/* POST /v1/certificates/inspect {"data": base64 of the file}: what the root-cert upload shows. */
void api_certificate_inspect(struct api_call *c)
{
    const char *f = "root_certificate";
    const char *b64 = NULL;
    unsigned char *raw = NULL, *der = NULL;
    size_t rawlen = 0, derlen = 0;
    struct scepter_error err;
    unsigned char sha1[SHA_DIGEST_LENGTH], sha256[SHA256_DIGEST_LENGTH];
    char *subject = NULL, *issuer = NULL, *h1 = NULL, *h256 = NULL;
    X509 *cert = NULL;

    if (!api_need_body(c))
        return;
    if (jsonx_get_string(c->body, "data", "", true, &b64, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return;
    }
    if (strlen(b64) > (size_t)PROFILE_MAX_ROOT_CERT / 3 * 4 + 8) {
        api_reply_error(c, 413, f, "%s: the file must be smaller than 1 MB", f);
        return;
    }
    if (base64_decode(b64, strlen(b64), true, &raw, &rawlen) != 0) {
        api_reply_error(c, 400, f, "%s: data is not base64 (send the file's bytes base64-encoded)",
                        f);
        return;
    }
    if ((cert = profile_root_cert_read(raw, rawlen, f, &err)) == NULL ||
        (der = crypto_cert_der(cert, &derlen)) == NULL) {
        if (cert)
            scepter_err(&err, SCEPTER_EINVAL, f, "%s: cannot be encoded as DER", f);
        api_reply_scepter_error(c, &err);
        goto out;
    }
    SHA1(der, derlen, sha1);
    SHA256(der, derlen, sha256);
    h1 = hex_encode(sha1, sizeof(sha1), false);
    h256 = hex_encode(sha256, sizeof(sha256), false);
    subject = crypto_cert_subject(cert);
    {
        BIO *bio = BIO_new(BIO_s_mem());
        char *p = NULL;
        X509_NAME_print_ex(bio, X509_get_issuer_name(cert), 0, XN_FLAG_RFC2253);
        long len = BIO_get_mem_data(bio, &p);
        issuer = xmemdup0(p, (size_t)len);
        BIO_free(bio);
    }
    api_reply_json(c, 200,
                   json_pack("{s:s,s:s,s:o,s:o,s:s,s:s,s:b}", "subject", subject, "issuer", issuer,
                             "not_before", api_time(crypto_cert_not_before(cert)), "not_after",
                             api_time(crypto_cert_not_after(cert)), "sha1", h1, "sha256", h256,
                             "ca", X509_check_ca(cert) != 0));
out:
    X509_free(cert);
    free(raw);
    free(der);
    free(subject);
    free(issuer);
    free(h1);
    free(h256);
}

/* GET /v1/policies */
void api_policies_list(struct api_call *c)
{
    policy_list(c);
}

/* POST /v1/policies */
void api_policy_create(struct api_call *c)
{
    if (api_need_body(c))
        policy_save(c, NULL, NULL);
}

/* The policy named by /v1/policies/{id}: false with a 404 (or the store's error) replied. */
static bool policy_of_path(struct api_call *c, struct store_policy *sp)
{
    struct scepter_error err;
    int64_t id;

    memset(sp, 0, sizeof(*sp));
    if (str_to_i64(c->seg[1], 1, INT64_MAX, &id) != 0) {
        api_reply_error(c, 404, "id", "no policy %s", c->seg[1]);
        return false;
    }
    if (store_policy_get(c->ctx->store, id, sp, &err) != 0) {
        api_reply_scepter_error(c, &err);
        return false;
    }
    return true;
}

/* GET /v1/policies/{id}[?show_secrets=true] */
void api_policy_show(struct api_call *c)
{
    struct store_policy sp;
    struct scepter_error err;
    bool secrets = false;

    if (!policy_of_path(c, &sp))
        return;
    char *v = api_query(c, "show_secrets");
    if (v && str_to_bool(v, &secrets) != 0)
        secrets = false;
    free(v);
    json_t *j = stored_policy_json(&sp, c->ctx->cfg, secrets, &err);
    if (j)
        api_reply_json(c, 200, j);
    else
        api_reply_scepter_error(c, &err);
    store_policy_clear(&sp);
}

/* What an update's audit entry compares: the stored document, the name and the targets. */
static json_t *audit_view(const struct store_policy *sp)
{
    json_t *doc = json_loads(sp->document ? sp->document : "{}", 0, NULL);
    json_t *devs = json_array(), *groups = json_array();

    if (!json_is_object(doc)) {
        json_decref(doc);
        doc = json_object();
    }
    for (size_t i = 0; i < sp->n_target_devices; i++)
        json_array_append_new(devs, json_string(sp->target_devices[i]));
    for (size_t i = 0; i < sp->n_target_groups; i++)
        json_array_append_new(groups, json_string(sp->target_groups[i]));
    json_object_set_new(doc, "name", json_string(sp->name ? sp->name : ""));
    json_object_set_new(doc, "targets",
                        json_pack("{s:o, s:o}", "devices", devs, "device_groups", groups));
    return doc;
}

/* PUT /v1/policies/{id} */
void api_policy_update(struct api_call *c)
{
    struct store_policy sp;
    struct profile_policy old;
    struct scepter_error err;
    json_t *before;

    if (!policy_of_path(c, &sp))
        return;
    /* The audit entry says what changed: the stored policy before and after (from_store takes
     * the targets out of sp). */
    before = audit_view(&sp);
    if (from_store(&sp, &old, &err) != 0) {
        err.http_status = 500;
        api_reply_scepter_error(c, &err);
    } else if (api_need_body(c)) {
        int64_t id = sp.id;
        struct store_policy now;
        policy_save(c, &sp, &old);
        if (c->reply->status >= 200 && c->reply->status <= 299 &&
            store_policy_get(c->ctx->store, id, &now, &err) == 0) {
            json_t *after = audit_view(&now);
            api_audit_diff(c, before, after);
            json_decref(after);
            store_policy_clear(&now);
        }
    }
    json_decref(before);
    profile_policy_clear(&old);
    store_policy_clear(&sp);
}

/* DELETE /v1/policies/{id} */
void api_policy_delete(struct api_call *c)
{
    struct store_policy sp;

    if (!policy_of_path(c, &sp))
        return;
    policy_delete(c, &sp);
    store_policy_clear(&sp);
}

/* GET /v1/policies/{id}/status */
void api_policy_status(struct api_call *c)
{
    struct store_policy sp;

    if (!policy_of_path(c, &sp))
        return;
    policy_status(c, &sp);
    store_policy_clear(&sp);
}

/* GET /v1/policies/{id}/preview?device=UDID */
void api_policy_preview(struct api_call *c)
{
    struct store_policy sp;

    if (!policy_of_path(c, &sp))
        return;
    policy_preview(c, &sp);
    store_policy_clear(&sp);
}

/* ---------------------------------------------------------------------------------------- */
/* Devices arriving later                                                                    */

/* Does the stored policy install into the user's keychain (its profile on user channels)? */
static bool user_keychain(const struct store_policy *sp)
{
    struct profile_policy pp;
    struct scepter_error err;
    bool user = profile_policy_from_document(sp->document, &pp, &err) == 0 &&
                pp.keychain == PROFILE_KEYCHAIN_USER;

    profile_policy_clear(&pp);
    return user;
}

/*
 * Queue the install (targeted) or the removal of one policy for one user channel of dev, in one
 * transaction; its enrollment id is added to *queued when something was queued.
 */
static void queue_user_channel(struct mdm_ctx *ctx, const struct store_policy *sp,
                               struct profile_policy *pp, const struct store_device *dev,
                               const char *channel, bool targeted, int64_t now, char ***queued,
                               size_t *nq, size_t *qcap)
{
    struct scepter_error err;
    char *ident = identifier_of(ctx->cfg, sp->uid);
    struct plan plan;

    plan_init(&plan, ctx);
    if (targeted) {
        struct profile_problems pr = PROFILE_PROBLEMS_INIT;
        struct profile_template *t = NULL;
        struct profile_render_opts ro = {ident, ctx->cfg->org_name};
        struct store_target_device td;
        struct mdm_scep_otc otc;

        memset(&td, 0, sizeof(td));
        td.device_id = dev->id;
        td.enrollment_id = (char *)channel;
        td.platform = dev->platform;
        td.serial_number = dev->serial_number;
        td.device_name = dev->device_name;
        td.model = dev->model;
        td.product_name = dev->product_name;
        td.os_version = dev->os_version;
        if (mdm_scep_otc_begin(ctx, pp, &otc))
            plan.otc = &otc;
        plan.now = now;
        int trc = profile_template_new(pp, &ro, &t, &pr);
        mdm_scep_otc_end(pp, &otc);
        if (trc == 0)
            plan_installs(&plan, t, &td, 1);
        else
            log_warnx("policy %s: stored policy no longer valid: %s", sp->name,
                      profile_problems_first_error(&pr)->msg);
        profile_template_free(t);
        profile_problems_clear(&pr);
    } else {
        struct store_policy_device_status me;
        memset(&me, 0, sizeof(me));
        me.device_id = dev->id;
        me.enrollment_id = (char *)channel;
        me.action = STORE_POLICY_INSTALL;
        me.state = STORE_PSTATE_INSTALLED;
        plan_removals(&plan, ident, &me, 1, NULL, 0);
    }
    plan_finish(&plan);
    for (size_t k = 0; k < plan.n; k++) {
        plan.sc[k].policy_id = sp->id;
        plan.sc[k].policy_version = sp->version;
    }
    if (json_array_size(plan.skipped))
        log_kv(LOG_LVL_WARN, "policy_not_rendered", "policy", sp->name, "enrollment", channel,
               "error",
               json_string_value(json_object_get(json_array_get(plan.skipped, 0), "error")), NULL);
    if (plan.n && store_enqueue_each(ctx->store, plan.sc, plan.ids, plan.n, now, &err) != 0) {
        log_warnx("policy %s for %s: %s", sp->name, channel, err.msg);
    } else if (plan.n) {
        if (*nq == *qcap) {
            *qcap = *qcap ? *qcap * 2 : 4;
            *queued = xreallocarray(*queued, *qcap, sizeof(**queued));
        }
        (*queued)[(*nq)++] = xstrdup(channel);
        mdm_metrics_command(ctx->srv, MDM_CMD_QUEUED, targeted ? "InstallProfile" : "RemoveProfile",
                            plan.n);
        log_kv(LOG_LVL_INFO, targeted ? "policy_install_queued" : "policy_remove_queued", "policy",
               sp->name, "enrollment", channel, NULL);
    }
    plan_free(&plan);
    free(ident);
}

/*
 * The user channels of a Mac (all, or only `only`): each gets the user-keychain policies that
 * target the Mac and loses those that no longer do.  Pushed when push is set.
 */
static void reconcile_user_channels(struct mdm_ctx *ctx, const char *device_id, const char *only,
                                    int64_t now, bool push)
{
    struct scepter_error err;
    struct store_device dev;
    struct store_policy *all = NULL;
    int64_t *ids = NULL;
    char **dv = NULL, **ev = NULL, **queued = NULL;
    size_t nall = 0, nids = 0, nch = 0, nq = 0, qcap = 0;
    const char *one[1] = {device_id};

    memset(&dev, 0, sizeof(dev));
    if (store_user_channels(ctx->store, one, 1, &dv, &ev, &nch, &err) != 0) {
        log_warnx("user channels of %s: %s", device_id, err.msg);
        goto out;
    }
    if (nch == 0)
        goto out; /* the common case: no user channel */
    if (store_policies_for_device(ctx->store, device_id, &ids, &nids, &err) != 0 ||
        store_device_get(ctx->store, device_id, &dev, &err) != 0 ||
        store_policy_list(ctx->store, NULL, &all, &nall, &err) != 0) {
        log_warnx("policies for %s: %s", device_id, err.msg);
        goto out;
    }
    for (size_t c = 0; c < nch; c++) {
        struct store_policy_device_status *st = NULL;
        size_t nst = 0;

        if (only && strcmp(only, ev[c]) != 0)
            continue;
        if (store_enrollment_policy_status(ctx->store, ev[c], &st, &nst, &err) != 0) {
            log_warnx("policies for %s: %s", ev[c], err.msg);
            continue;
        }
        for (size_t i = 0; i < nall; i++) {
            const struct store_policy *sp = &all[i];
            struct profile_policy pp;
            bool targeted = false, has = false, current = false;

            for (size_t k = 0; k < nids && !targeted; k++)
                targeted = ids[k] == sp->id;
            for (size_t k = 0; k < nst; k++) {
                if (st[k].policy_id != sp->id)
                    continue;
                has = st[k].action == STORE_POLICY_INSTALL &&
                      ((st[k].state == STORE_PSTATE_INSTALLED &&
                        st[k].updated >= dev.authenticated_at) ||
                       st[k].state == STORE_PSTATE_PENDING);
                current = has && st[k].policy_version == sp->version;
            }
            if (targeted && !platform_reached(profile_platform_parse(sp->platform), dev.platform))
                targeted = false;
            if (!targeted && !has)
                continue;
            if (profile_policy_from_document(sp->document, &pp, &err) != 0) {
                log_warnx("policy %s: %s", sp->name, err.msg);
                profile_policy_clear(&pp);
                continue;
            }
            if (pp.keychain != PROFILE_KEYCHAIN_USER)
                targeted = false;
            if (targeted != has || (targeted && !current))
                queue_user_channel(ctx, sp, &pp, &dev, ev[c], targeted, now, &queued, &nq, &qcap);
            profile_policy_clear(&pp);
        }
        store_policy_statuses_free(st, nst);
    }
    if (push && nq)
        mdm_push_enrollments(ctx, (const char **)queued, nq);
out:
    store_strv_free(queued, nq);
    store_strv_free(dv, nch);
    store_strv_free(ev, nch);
    store_device_clear(&dev);
    store_policies_free(all, nall);
    free(ids);
}

/*
 * Bring one device in line with the policies that target it now: InstallProfile for each
 * that reaches it and it does not have (installed or pending at the current version), and
 * RemoveProfile for policies it has but that no longer target it.  Queued in one
 * transaction per policy, then pushed.
 */
static void reconcile_device(struct mdm_ctx *ctx, const char *device_id, int64_t now, bool push)
{
    struct scepter_error err;
    struct store_device dev;
    struct store_policy *all = NULL;
    struct store_policy_device_status *st = NULL;
    int64_t *ids = NULL;
    size_t nall = 0, nids = 0, nst = 0;
    bool queued = false;

    memset(&dev, 0, sizeof(dev));
    if (store_policies_for_device(ctx->store, device_id, &ids, &nids, &err) != 0 ||
        store_enrollment_policy_status(ctx->store, device_id, &st, &nst, &err) != 0) {
        log_warnx("policies for %s: %s", device_id, err.msg);
        goto out;
    }
    if (nids == 0 && nst == 0)
        goto out; /* nothing targets it, nothing was ever queued for it: the common case */
    if (store_device_get(ctx->store, device_id, &dev, &err) != 0 ||
        store_policy_list(ctx->store, NULL, &all, &nall, &err) != 0) {
        log_warnx("policies for %s: %s", device_id, err.msg);
        goto out;
    }
    for (size_t i = 0; i < nall; i++) {
        struct store_policy *sp = &all[i];
        struct profile_policy pp;
        bool targeted = false, has = false, current = false, as_profile = false;
        const struct store_policy_device_status *mine = NULL;

        for (size_t k = 0; k < nids && !targeted; k++)
            targeted = ids[k] == sp->id;
        for (size_t k = 0; k < nst; k++) {
            if (st[k].policy_id != sp->id)
                continue;
            /* Only the current enrollment's commands are linked: Authenticate detaches the
             * earlier ones (store_authenticate), so a re-enrolled device has nothing. */
            has = st[k].action == STORE_POLICY_INSTALL &&
                  (st[k].state == STORE_PSTATE_INSTALLED || st[k].state == STORE_PSTATE_PENDING);
            current = has && st[k].policy_version == sp->version;
            as_profile = has && strcmp(st[k].request_type, "InstallProfile") == 0;
            mine = &st[k];
        }
        if (targeted && !platform_reached(profile_platform_parse(sp->platform), dev.platform))
            targeted = false;
        if (targeted && user_keychain(sp))
            targeted = false; /* its profile goes to the user channels */
        /* A device holding the profile whose OS now takes declarations (an upgrade): moved
         * if the policy goes over DDM (read below). */
        bool upgrade =
            targeted && current && as_profile && ddm_capable(dev.platform, dev.os_version);
        if (targeted == has && (!targeted || current) && !upgrade)
            continue;
        /* Only now is the document read: most policies need nothing for this device. */
        if (from_store(sp, &pp, &err) != 0) {
            log_warnx("policy %s: %s", sp->name, err.msg);
            profile_policy_clear(&pp);
            continue;
        }
        if (upgrade && !ddm_policy(&pp)) {
            profile_policy_clear(&pp);
            continue; /* stays a profile */
        }

        char *ident = identifier_of(ctx->cfg, sp->uid);
        struct plan plan;
        struct mdm_ddm_change ddm = {sp->uid, &pp, sp->updated};
        plan_init(&plan, ctx);
        plan.ddm = &ddm;
        plan.had = mine;
        plan.nhad = mine ? 1 : 0;
        if (targeted) {
            struct profile_problems pr = PROFILE_PROBLEMS_INIT;
            struct profile_template *t = NULL;
            struct profile_render_opts ro = {ident, ctx->cfg->org_name};
            struct store_target_device td;
            memset(&td, 0, sizeof(td));
            td.device_id = dev.id;
            td.enrollment_id = dev.id;
            td.platform = dev.platform;
            td.serial_number = dev.serial_number;
            td.device_name = dev.device_name;
            td.model = dev.model;
            td.product_name = dev.product_name;
            td.os_version = dev.os_version;
            struct mdm_scep_otc otc;
            if (mdm_scep_otc_begin(ctx, &pp, &otc))
                plan.otc = &otc;
            plan.now = now;
            plan.expires = pp.expires_in ? now + pp.expires_in : 0;
            int trc = profile_template_new(&pp, &ro, &t, &pr);
            mdm_scep_otc_end(&pp, &otc);
            if (trc == 0)
                plan_installs(&plan, t, &td, 1);
            else
                log_warnx("policy %s: stored policy no longer valid: %s", sp->name,
                          profile_problems_first_error(&pr)->msg);
            profile_template_free(t);
            profile_problems_clear(&pr);
        } else {
            struct store_policy_device_status me;
            memset(&me, 0, sizeof(me));
            me.device_id = dev.id;
            me.enrollment_id = dev.id;
            me.action = STORE_POLICY_INSTALL;
            me.state = STORE_PSTATE_INSTALLED;
            plan_removals(&plan, ident, &me, 1, NULL, 0);
        }
        plan_finish(&plan);
        for (size_t k = 0; k < plan.n; k++) {
            plan.sc[k].policy_id = sp->id;
            plan.sc[k].policy_version = sp->version;
        }
        if (json_array_size(plan.skipped))
            log_kv(LOG_LVL_WARN, "policy_not_rendered", "policy", sp->name, "device", device_id,
                   "error",
                   json_string_value(json_object_get(json_array_get(plan.skipped, 0), "error")),
                   NULL);
        if (plan.n && store_enqueue_each(ctx->store, plan.sc, plan.ids, plan.n, now, &err) != 0)
            log_warnx("policy %s for %s: %s", sp->name, device_id, err.msg);
        else if (plan.n) {
            queued = true;
            mdm_metrics_command(ctx->srv, MDM_CMD_QUEUED,
                                targeted ? "InstallProfile" : "RemoveProfile", plan.n);
            log_kv(LOG_LVL_INFO,
                   upgrade    ? "policy_moved_to_ddm"
                   : targeted ? "policy_install_queued"
                              : "policy_remove_queued",
                   "policy", sp->name, "device", device_id, NULL);
            for (size_t k = 0; k < plan.nhandover; k++)
                if (store_ddm_handover_add(ctx->store, plan.handover[k], sp->id, sp->uid, now,
                                           &err) != 0)
                    log_kv(LOG_LVL_WARN, "ddm_handover", "enrollment", plan.handover[k], "msg",
                           err.msg, NULL);
        }
        plan_free(&plan);
        free(ident);
        profile_policy_clear(&pp);
    }
    if (queued && push) {
        const char *e[1] = {device_id};
        mdm_push_enrollments(ctx, e, 1);
    }
out:
    store_device_clear(&dev);
    store_policies_free(all, nall);
    store_policy_statuses_free(st, nst);
    free(ids);
}

void mdm_device_enrolled(struct mdm_ctx *ctx, const char *device_id, int64_t now,
                         const struct mdm_push_data *push)
{
    struct scepter_error err;
    bool policies = true, user_channels = true;

    log_kv(LOG_LVL_INFO, "enrolled", "device", device_id, NULL);
    /* The common case, nothing targets a new device: one statement says so instead of the
     * three reads of the reconciliations (on failure they run and say what failed). */
    if (store_device_policy_probe(ctx->store, device_id, &policies, &user_channels, &err) != 0)
        policies = user_channels = true;
    if (policies)
        reconcile_device(ctx, device_id, now, false);
    if (user_channels)
        reconcile_user_channels(ctx, device_id, NULL, now, true);
    /* Apple: a device polls only after a push, so push after the first TokenUpdate — with the
     * token it just sent, no need to read it back. */
    mdm_push_one(ctx, push);
}

void mdm_policy_os_reported(struct mdm_ctx *ctx, const char *device_id, int64_t now)
{
    reconcile_device(ctx, device_id, now, true);
}

void mdm_policy_group_changed(struct mdm_ctx *ctx, const char *const *device_ids, size_t n,
                              int64_t now)
{
    for (size_t i = 0; i < n; i++) {
        reconcile_device(ctx, device_ids[i], now, true);
        reconcile_user_channels(ctx, device_ids[i], NULL, now, true);
    }
}

void mdm_user_channel_enrolled(struct mdm_ctx *ctx, const char *device_id,
                               const char *enrollment_id, int64_t now,
                               const struct mdm_push_data *push)
{
    log_kv(LOG_LVL_INFO, "user_channel_enrolled", "device", device_id, "enrollment", enrollment_id,
           NULL);
    reconcile_user_channels(ctx, device_id, enrollment_id, now, false);
    mdm_push_one(ctx, push);
}

json_t *api_device_policies(struct api_call *c, const char *device_id)
{
    struct scepter_error err;
    struct store_policy *all = NULL;
    struct store_policy_device_status *st = NULL;
    int64_t *ids = NULL;
    size_t nall = 0, nids = 0, nst = 0;
    json_t *arr = json_array();

    if (store_policies_for_device(c->ctx->store, device_id, &ids, &nids, &err) != 0 ||
        store_enrollment_policy_status(c->ctx->store, device_id, &st, &nst, &err) != 0 ||
        store_policy_list(c->ctx->store, NULL, &all, &nall, &err) != 0)
        goto out;
    for (size_t i = 0; i < nall; i++) {
        const char *state = NULL;
        bool targeted = false;
        for (size_t k = 0; k < nids; k++)
            targeted = targeted || ids[k] == all[i].id;
        for (size_t k = 0; k < nst; k++)
            if (st[k].policy_id == all[i].id)
                state = store_policy_state_name(st[k].state);
        if (targeted || state)
            json_array_append_new(arr,
                                  json_pack("{s:I,s:s,s:s,s:b,s:s?}", "id", (json_int_t)all[i].id,
                                            "name", all[i].name, "platform", all[i].platform,
                                            "targeted", targeted, "state", state));
    }
out:
    store_policies_free(all, nall);
    store_policy_statuses_free(st, nst);
    free(ids);
    return arr;
}
