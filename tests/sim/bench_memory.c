/*
 * bench_memory: resident memory per idle simulated device.  Creates an engine with N device
 * records, then gives every device its state (facts, an enrollment with its own certificate
 * signed by a test CA, push token, PushMagic) and reports the RSS growth per device.
 * Usage: bench_memory [N] (default 100000).  Prints one JSON line.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/ec.h>

#include "common/plistx.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tests/sim/sim.h"

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static const char profile_xml[] =
    "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>"
    "<key>PayloadType</key><string>Configuration</string><key>PayloadVersion</key><integer>1"
    "</integer><key>PayloadIdentifier</key><string>org.example.enroll</string>"
    "<key>PayloadUUID</key><string>A0000000-0000-4000-8000-000000000000</string>"
    "<key>PayloadContent</key><array>"
    "<dict><key>PayloadType</key><string>com.apple.security.scep</string><key>PayloadVersion"
    "</key><integer>1</integer><key>PayloadIdentifier</key><string>org.example.scep</string>"
    "<key>PayloadUUID</key><string>A0000000-0000-4000-8000-000000000001</string>"
    "<key>PayloadContent</key><dict><key>URL</key><string>http://127.0.0.1/scep</string>"
    "</dict></dict>"
    "<dict><key>PayloadType</key><string>com.apple.mdm</string><key>PayloadVersion</key>"
    "<integer>1</integer><key>PayloadIdentifier</key><string>org.example.mdm</string>"
    "<key>PayloadUUID</key><string>A0000000-0000-4000-8000-000000000002</string>"
    "<key>ServerURL</key><string>https://127.0.0.1:8443/mdm</string><key>Topic</key>"
    "<string>com.apple.mgmt.External.x</string><key>IdentityCertificateUUID</key>"
    "<string>A0000000-0000-4000-8000-000000000001</string></dict>"
    "</array></dict></plist>";

int main(int argc, char **argv)
{
    int64_t n = 100000;
    struct sim_engine_opts o;
    struct sim_engine *e;
    struct scepter_error err;
    struct sim_profile *p;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    long base, after_records, after_state;

    if (argc > 1 && str_to_i64(argv[1], 1, 1000000, &n) != 0) {
        fprintf(stderr, "usage: bench_memory [N]\n");
        return 2;
    }
    if (sim_profile_parse(profile_xml, sizeof(profile_xml) - 1, NULL, &p, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    memset(&o, 0, sizeof(o));
    o.enroll_url = "https://127.0.0.1:1/mdm/enroll";
    o.devices = (unsigned)n;
    base = rss_kb();
    if (sim_engine_new(&o, &e, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    after_records = rss_kb();
    for (uint32_t i = 0; i < (uint32_t)n; i++) {
        struct sim_facts f;
        struct sim_device *d;
        X509 *c = X509_new();

        sim_facts_generate(&f, (enum sim_platform)(i % 3), 1, i);
        /* A distinct certificate per device (as SCEP issues), signed quickly with EC. */
        X509_set_version(c, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(c), (long)i + 1);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_ASC,
                                   (const unsigned char *)f.udid, -1, -1, 0);
        X509_set_issuer_name(c, X509_get_subject_name(c));
        X509_gmtime_adj(X509_getm_notBefore(c), 0);
        X509_gmtime_adj(X509_getm_notAfter(c), 86400);
        X509_set_pubkey(c, key);
        X509_sign(c, key, EVP_sha256());
        d = sim_device_new(&f);
        if (sim_device_enroll(d, p, c, key, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        X509_free(c);
        sim_engine_adopt(e, i, d);
    }
    after_state = rss_kb();
    printf("{\"devices\":%lld,\"rss_base_kb\":%ld,\"record_bytes_per_device\":%.1f,"
           "\"enrolled_bytes_per_device\":%.1f}\n",
           (long long)n, base, (double)(after_records - base) * 1024.0 / (double)n,
           (double)(after_state - base) * 1024.0 / (double)n);
    sim_engine_free(e);
    sim_profile_free(p);
    EVP_PKEY_free(key);
    return 0;
}
