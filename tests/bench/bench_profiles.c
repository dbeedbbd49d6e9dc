/*
 * bench_profiles — how fast a policy save renders every targeted device's profile.
 *   bench_profiles [DEVICES]   (default 100000)
 * Prints microseconds per device for: the per-device template (an iOS policy whose subject and
 * SANs carry server-side variables), a uniform template (macOS, device-resolved variables),
 * the one-shot libplist path for comparison, and CMS signing (on a smaller sample).  Timing is
 * reported, never asserted: speed targets live here, not in unit tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "profiles/profiles.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* CPU time of this process: less disturbed by other work on a shared machine. */
static double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static const char *const g_ios_policy =
    "{\"name\": \"Bench iPads\", \"platform\": \"ios\","
    " \"scep\": {\"url\": \"https://scep.example.com/scep\", \"name\": \"WiFi\","
    "   \"challenge\": \"s3cret\", \"key_size\": 2048,"
    "   \"fingerprint\": \"11:22:33:44:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99\","
    "   \"subject\": \"/C=US/O=Example & Co/OU=%Model%/CN=%SerialNumber%\","
    "   \"key_usage\": [\"signing\", \"encryption\"],"
    "   \"subject_alt_name\": {\"rfc822_name\": \"%UDID%@devices.example.com\","
    "      \"dns_name\": \"%ComputerName%.example.com\", \"uri\": \"urn:udid:%HardwareUUID%\"}},"
    " \"targets\": {\"device_groups\": [\"all\"]}}";

static const char *const g_mac_policy =
    "{\"name\": \"Bench Macs\", \"platform\": \"macos\","
    " \"scep\": {\"url\": \"https://scep.example.com/scep\", \"key_size\": 2048,"
    "   \"subject\": \"/O=Example/CN=%HardwareUUID%\"},"
    " \"targets\": {\"device_groups\": [\"all\"]}}";

struct fleet {
    char (*udid)[48], (*serial)[32], (*name)[48];
    struct profile_device *dev;
};

static void fleet_make(struct fleet *f, size_t n, const char *platform)
{
    f->udid = xcalloc(n, sizeof(*f->udid));
    f->serial = xcalloc(n, sizeof(*f->serial));
    f->name = xcalloc(n, sizeof(*f->name));
    f->dev = xcalloc(n, sizeof(*f->dev));
    for (size_t i = 0; i < n; i++) {
        snprintf(f->udid[i], sizeof(f->udid[i]), "00008030-%016zX", i * 7919u);
        snprintf(f->serial[i], sizeof(f->serial[i]), "DMP%09zu", i);
        snprintf(f->name[i], sizeof(f->name[i]), "Field <iPad> #%zu", i);
        f->dev[i] = (struct profile_device){f->udid[i], f->serial[i], f->name[i], "iPad13,4",
                                            "iPad Pro", "18.1",       platform};
    }
}

static void fleet_free(struct fleet *f)
{
    free(f->udid);
    free(f->serial);
    free(f->name);
    free(f->dev);
}

static struct profile_template *prepare(const char *json, struct profile_policy *p, double *us)
{
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct profile_render_opts o = {"com.scepter.policy.1", "Bench"};
    struct profile_template *t = NULL;
    double t0;

    if (profile_policy_from_json(json, strlen(json), p, &pr) != 0) {
        fprintf(stderr, "bench policy invalid: %s\n", pr.v[0].msg);
        exit(1);
    }
    t0 = now_us();
    if (profile_template_new(p, &o, &t, &pr) != 0) {
        fprintf(stderr, "template failed\n");
        exit(1);
    }
    *us = now_us() - t0;
    profile_problems_clear(&pr);
    return t;
}

/* Render every device, keeping a copy of each profile as a server would until it is stored. */
static double render_all(const struct profile_template *t, const struct fleet *f, size_t n,
                         size_t *bytes, double *cpu)
{
    struct buf b = BUF_INIT;
    struct scepter_error err;
    double t0 = now_us(), c0 = cpu_us();

    *bytes = 0;
    for (size_t i = 0; i < n; i++) {
        buf_reset(&b);
        if (profile_template_render(t, &f->dev[i], &b, &err) != 0) {
            fprintf(stderr, "render failed: %s\n", err.msg);
            exit(1);
        }
        char *copy = xmemdup(b.data, b.len);
        *bytes += b.len;
        free(copy);
    }
    double us = now_us() - t0;
    *cpu = cpu_us() - c0;
    buf_free(&b);
    return us;
}

static struct profile_signer *make_signer(void)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    X509 *cert = X509_new();
    struct profile_signer *s = NULL;
    struct scepter_error err;

    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               (const unsigned char *)"Bench Signer", -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_sign(cert, key, EVP_sha256());
    if (profile_signer_new(cert, key, NULL, &s, &err) != 0) {
        fprintf(stderr, "signer: %s\n", err.msg);
        exit(1);
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return s;
}

int main(int argc, char **argv)
{
    int64_t n64 = 100000;
    struct profile_policy ios, mac;
    struct fleet f;
    double prep_ios, prep_mac, us;
    size_t bytes, n;

    if (argc > 1 && str_to_i64(argv[1], 1, 10000000, &n64) != 0) {
        fprintf(stderr, "usage: bench_profiles [DEVICES]\n");
        return 2;
    }
    n = (size_t)n64;
    fleet_make(&f, n, "ipados");

    /* Warm-up (OpenSSL's RNG for the UUIDs, libplist): report the steady state. */
    profile_template_free(prepare(g_ios_policy, &ios, &prep_ios));
    profile_policy_clear(&ios);
    struct profile_template *ti = prepare(g_ios_policy, &ios, &prep_ios);
    struct profile_template *tm = prepare(g_mac_policy, &mac, &prep_mac);
    printf("bench_profiles: %zu devices\n", n);
    printf("  prepare template (validate + libplist build)   %8.1f us (iOS), %.1f us (macOS)\n",
           prep_ios, prep_mac);

    double cpu;
    us = render_all(ti, &f, n, &bytes, &cpu);
    printf("  per-device template, 6 substitutions (iOS)     %8.3f us/device  (cpu %.3f; %.0f ms "
           "total, %zu bytes/profile)\n",
           us / (double)n, cpu / (double)n, us / 1000.0, bytes / n);

    for (size_t i = 0; i < n; i++)
        f.dev[i].platform = "macos";
    us = render_all(tm, &f, n, &bytes, &cpu);
    printf("  uniform template (macOS), rendered per device  %8.3f us/device  (cpu %.3f; "
           "is_uniform=%d: one rendering can be shared)\n",
           us / (double)n, cpu / (double)n, profile_template_is_uniform(tm));

    /* The one-shot path builds the whole plist per device: what the template saves. */
    size_t m = n < 5000 ? n : 5000;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct profile_render_opts o = {"com.scepter.policy.1", "Bench"};
    for (size_t i = 0; i < m; i++)
        f.dev[i].platform = "ipados";
    double t0 = now_us();
    for (size_t i = 0; i < m; i++) {
        char *xml = NULL;
        size_t len;
        if (profile_render(&ios, &f.dev[i], &o, &xml, &len, &pr) != 0) {
            fprintf(stderr, "one-shot render failed\n");
            return 1;
        }
        free(xml);
        profile_problems_clear(&pr);
    }
    us = now_us() - t0;
    printf("  one-shot profile_render (no template), %zu dev %8.3f us/device\n", m, us / (double)m);

    /* Signing: RSA-2048 CMS per device profile. */
    struct profile_signer *s = make_signer();
    struct buf b = BUF_INIT;
    struct scepter_error err;
    size_t k = n < 2000 ? n : 2000;
    t0 = now_us();
    for (size_t i = 0; i < k; i++) {
        unsigned char *der = NULL;
        size_t dlen;
        buf_reset(&b);
        if (profile_template_render(ti, &f.dev[i], &b, &err) != 0 ||
            profile_sign(s, b.data, b.len, &der, &dlen, &err) != 0) {
            fprintf(stderr, "sign failed: %s\n", err.msg);
            return 1;
        }
        free(der);
    }
    us = now_us() - t0;
    printf("  template + CMS sign (RSA-2048), %zu devices     %8.1f us/device\n", k,
           us / (double)k);
    buf_free(&b);
    profile_signer_free(s);
    profile_template_free(ti);
    profile_template_free(tm);
    profile_policy_clear(&ios);
    profile_policy_clear(&mac);
    fleet_free(&f);
    return 0;
}
