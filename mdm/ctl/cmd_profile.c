/*
 * scepterctl profile ... — work with SCEP Profiles policies offline:
 *   render     policy JSON (+ device facts) -> .mobileconfig, optionally CMS-signed
 *   check      validate a policy and list every problem
 *   variables  the device variables subjects and SANs may use, per platform
 *   verify     check a (signed) profile as a device would and print its plist
 * Problems go to stderr one per line, each naming its field; an invalid policy exits 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509_vfy.h>

#include "common/crypto.h"
#include "common/file.h"
#include "common/jsonx.h"
#include "common/xmalloc.h"
#include "mdm/ctl/ctl.h"
#include "profiles/profiles.h"

#define MAX_POLICY_FILE  (64 * 1024 * 1024)
#define MAX_PROFILE_FILE (16 * 1024 * 1024)

static void print_problems(const struct profile_problems *pr)
{
    size_t listed = 0;

    for (size_t i = 0; i < pr->n; i++) {
        fprintf(stderr, "%s: %s\n", pr->v[i].warning ? "warning" : "error", pr->v[i].msg);
        listed += !pr->v[i].warning;
    }
    if (pr->n_errors > listed)
        fprintf(stderr, "error: %zu errors in all\n", pr->n_errors);
}

/* Read and validate the policy file; prints problems.  CTL_OK, CTL_USAGE or CTL_FAIL. */
static int load_policy(const char *path, struct profile_policy *p, struct profile_problems *pr)
{
    struct scepter_error err;
    unsigned char *data = NULL;
    size_t len = 0;
    int rc;

    profile_policy_init(p);
    if (file_read(path, MAX_POLICY_FILE, &data, &len, &err) != 0) {
        fprintf(stderr, "scepterctl: %s: %s\n", path, err.msg);
        return CTL_FAIL;
    }
    rc = profile_policy_from_json((const char *)data, len, p, pr);
    free(data);
    return rc == 0 ? CTL_OK : CTL_USAGE;
}

static int write_out(const char *path, const void *data, size_t len)
{
    struct scepter_error err;

    if (path == NULL || strcmp(path, "-") == 0) {
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
            perror("scepterctl: stdout");
            return CTL_FAIL;
        }
        return CTL_OK;
    }
    if (file_write(path, data, len, 0644, &err) != 0) {
        fprintf(stderr, "scepterctl: %s\n", err.msg);
        return CTL_FAIL;
    }
    return CTL_OK;
}

static int cmd_render(int argc, char **argv)
{
    const char *policy = NULL, *device = NULL, *cert = NULL, *key = NULL, *keypw = NULL,
               *ident = NULL, *org = NULL, *outp = NULL;
    const struct ctl_opt opts[] = {
        {"policy", true, &policy},
        {"device", true, &device},
        {"sign-cert", true, &cert},
        {"sign-key", true, &key},
        {"sign-key-password", true, &keypw},
        {"identifier", true, &ident},
        {"organization", true, &org},
        {"out", true, &outp},
        {NULL, false, NULL},
    };
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct profile_template *t = NULL;
    struct profile_signer *signer = NULL;
    struct profile_device dev, *devp = NULL;
    struct scepter_error err;
    struct buf xml = BUF_INIT;
    unsigned char *signed_der = NULL, *devdata = NULL;
    size_t signed_len = 0, devlen = 0, npos;
    json_t *devjson = NULL;
    struct profile_render_opts ro;
    int rc;

    profile_policy_init(&p);
    if ((rc = ctl_parse_opts("scepterctl profile render", argc, argv, opts, NULL, 0, &npos)) != 0)
        goto out;
    if (policy == NULL || (cert == NULL) != (key == NULL)) {
        fprintf(stderr, "usage: scepterctl profile render --policy POLICY.json "
                        "[--device DEVICE.json] [--sign-cert CERT --sign-key KEY "
                        "[--sign-key-password PW]] [--identifier ID] [--organization ORG] "
                        "[--out FILE]\n");
        rc = CTL_USAGE;
        goto out;
    }
    if (device) {
        if (file_read(device, 1024 * 1024, &devdata, &devlen, &err) != 0) {
            fprintf(stderr, "scepterctl: %s: %s\n", device, err.msg);
            rc = CTL_FAIL;
            goto out;
        }
        if ((devjson = jsonx_parse_object((const char *)devdata, devlen, &err)) == NULL ||
            profile_device_from_json(devjson, &dev, &err) != 0) {
            fprintf(stderr, "error: %s: %s\n", device, err.msg);
            rc = CTL_USAGE;
            goto out;
        }
        devp = &dev;
    }
    if (cert && profile_signer_load(cert, key, keypw, &signer, &err) != 0) {
        fprintf(stderr, "scepterctl: signing: %s\n", err.msg);
        rc = CTL_FAIL;
        goto out;
    }
    if ((rc = load_policy(policy, &p, &pr)) != CTL_OK)
        goto out;
    ro.identifier = ident;
    ro.organization = org;
    if (profile_template_new(&p, &ro, &t, &pr) != 0) {
        rc = CTL_USAGE;
        goto out;
    }
    if (!profile_template_is_uniform(t) && devp == NULL) {
        size_t n;
        const char *const *vars = profile_template_variables(t, &n);
        fprintf(stderr,
                "error: the policy uses variables Scepter fills in per device (%%%s%%%s); "
                "give the device's facts with --device DEVICE.json\n",
                vars[0], n > 1 ? ", ..." : "");
        rc = CTL_USAGE;
        goto out;
    }
    if (profile_template_render(t, devp, &xml, &err) != 0) {
        fprintf(stderr, "error: %s\n", err.msg);
        rc = CTL_USAGE;
        goto out;
    }
    if (signer) {
        if (profile_sign(signer, xml.data, xml.len, &signed_der, &signed_len, &err) != 0) {
            fprintf(stderr, "scepterctl: signing: %s\n", err.msg);
            rc = CTL_FAIL;
            goto out;
        }
        rc = write_out(outp, signed_der, signed_len);
    } else {
        rc = write_out(outp, xml.data, xml.len);
    }
out:
    print_problems(&pr);
    profile_problems_clear(&pr);
    profile_policy_clear(&p);
    profile_template_free(t);
    profile_signer_free(signer);
    buf_free(&xml);
    free(signed_der);
    free(devdata);
    json_decref(devjson);
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    const char *policy = NULL, *mask = NULL;
    /* --json is scepterctl's global option (ctl_conn()->json). */
    bool json = ctl_conn()->json;
    const struct ctl_opt opts[] = {
        {"policy", true, &policy},
        {"mask-challenge", false, &mask},
        {NULL, false, NULL},
    };
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    size_t npos;
    int rc;

    profile_policy_init(&p);
    if ((rc = ctl_parse_opts("scepterctl profile check", argc, argv, opts, NULL, 0, &npos)) != 0)
        goto out;
    if (policy == NULL) {
        fprintf(stderr, "usage: scepterctl profile check --policy POLICY.json [--json "
                        "[--mask-challenge]]\n");
        rc = CTL_USAGE;
        goto out;
    }
    rc = load_policy(policy, &p, &pr);
    if (rc == CTL_OK && json) {
        /* The canonical form, as the API would answer it. */
        json_t *j = profile_policy_to_json(&p, mask ? PROFILE_JSON_MASK_CHALLENGE : 0);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else if (rc == CTL_OK) {
        printf("%s: valid\n", policy);
    }
out:
    print_problems(&pr);
    profile_problems_clear(&pr);
    profile_policy_clear(&p);
    return rc;
}

static int cmd_variables(int argc, char **argv)
{
    size_t n;
    const struct profile_variable *v = profile_variables(&n);

    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: scepterctl profile variables\n");
        return CTL_USAGE;
    }
    printf("%-22s %-28s %-28s %s\n", "VARIABLE", "MACOS POLICY", "IOS POLICY", "VALUE");
    for (size_t i = 0; i < n; i++) {
        const char *mac =
            v[i].scope == PROFILE_VAR_SERVER ? "Scepter substitutes" : "left for the Mac";
        const char *ios = v[i].scope == PROFILE_VAR_APPLE_MACOS ? "refused" : "Scepter substitutes";
        char name[40];
        snprintf(name, sizeof(name), "%%%s%%", v[i].name);
        printf("%-22s %-28s %-28s %s\n", name, mac, ios, v[i].description);
    }
    return CTL_OK;
}

static int cmd_verify(int argc, char **argv)
{
    /* --trust, not --ca: --ca is the global option that verifies the API server. */
    const char *ca = NULL, *outp = NULL, *pos[1];
    const struct ctl_opt opts[] = {
        {"trust", true, &ca},
        {"out", true, &outp},
        {NULL, false, NULL},
    };
    struct scepter_error err;
    unsigned char *data = NULL, *plist = NULL;
    size_t len = 0, plen = 0, npos = 0;
    X509_STORE *store = NULL;
    STACK_OF(X509) *cas = NULL;
    X509 *signer = NULL;
    int rc;

    if ((rc = ctl_parse_opts("scepterctl profile verify", argc, argv, opts, pos, 1, &npos)) != 0)
        goto out;
    if (npos != 1) {
        fprintf(stderr, "usage: scepterctl profile verify PROFILE [--trust CA.pem] [--out FILE]\n");
        rc = CTL_USAGE;
        goto out;
    }
    if (file_read(pos[0], MAX_PROFILE_FILE, &data, &len, &err) != 0) {
        fprintf(stderr, "scepterctl: %s: %s\n", pos[0], err.msg);
        rc = CTL_FAIL;
        goto out;
    }
    if (ca) {
        if ((cas = crypto_certs_load(ca, &err)) == NULL) {
            fprintf(stderr, "scepterctl: %s\n", err.msg);
            rc = CTL_FAIL;
            goto out;
        }
        store = X509_STORE_new();
        for (int i = 0; i < sk_X509_num(cas); i++)
            X509_STORE_add_cert(store, sk_X509_value(cas, i));
    }
    if (profile_unwrap(data, len, store, &plist, &plen, &signer, &err) != 0) {
        fprintf(stderr, "error: %s\n", err.msg);
        rc = CTL_FAIL;
        goto out;
    }
    if (signer) {
        char *subj = crypto_cert_subject(signer);
        fprintf(stderr, "signed by: %s%s\n", subj, ca ? " (trusted)" : " (chain not checked)");
        free(subj);
    } else {
        fprintf(stderr, "unsigned profile\n");
    }
    rc = write_out(outp, plist, plen);
out:
    free(data);
    free(plist);
    X509_free(signer);
    X509_STORE_free(store);
    sk_X509_pop_free(cas, X509_free);
    return rc;
}

static const struct ctl_cmd g_profile_cmds[] = {
    {"render", cmd_render,
     "render --policy POLICY.json [--device DEVICE.json] [--sign-cert C --sign-key K] "
     "[--identifier ID] [--organization ORG] [--out FILE]  -- write the .mobileconfig"},
    {"check", cmd_check,
     "check --policy POLICY.json [--json [--mask-challenge]]  -- validate, list every problem"},
    {"variables", cmd_variables, "variables  -- device variables for subjects and SANs"},
    {"verify", cmd_verify,
     "verify PROFILE [--trust CA.pem] [--out FILE]  -- check a signed profile, print its plist"},
};

int cmd_profile(int argc, char **argv)
{
    return ctl_dispatch("scepterctl profile", g_profile_cmds, ARRAY_LEN(g_profile_cmds), argc - 1,
                        argv + 1);
}
