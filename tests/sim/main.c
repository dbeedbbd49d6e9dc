/*
 * scepter-sim: the device simulator's command line.  Enrolls N simulated Macs, iPhones and
 * iPads against a Scepter server (profile from --enroll-url, identity by SCEP or PKCS#12,
 * Authenticate + TokenUpdate), registers their push tokens with the APNs test server, then
 * answers pushes until --duration runs out or, with --until-idle, until nothing happens for a
 * while.  Prints a JSON report (latency percentiles per message type, throughput, counters)
 * and can write every device's UDID/platform/state to --state-file.  See README.md.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/crypto.h"
#include "common/file.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tests/sim/sim.h"

static void usage(FILE *f)
{
    fputs(
        "usage: scepter-sim --enroll-url URL [options]\n"
        "  --server URL           base URL of the server; --enroll-url defaults to URL/mdm/enroll\n"
        "  --enroll-url URL       where devices download the enrollment profile\n"
        "  --ca FILE              PEM roots trusted for the server's TLS (and profile signers)\n"
        "  --verify-profile-chain check signed profiles' signer chains against --ca\n"
        "  --devices N            number of devices (default 1000)\n"
        "  --platform-mix SPEC    e.g. mac=40,iphone=40,ipad=20 (the default)\n"
        "  --seed N               make UDIDs, serials, tokens and choices reproducible\n"
        "  --concurrency N        devices talking to the server at once (default 64)\n"
        "  --enroll-threads N     devices downloading the profile and getting their identity\n"
        "                         at once, on threads of their own (default 4)\n"
        "  --notnow-rate P        chance of NotNow for InstallProfile/RemoveProfile\n"
        "  --slow-rate P --slow-ms MS   share of slow devices and their delay per reply\n"
        "  --drop-rate P          chance of dropping the connection after a command\n"
        "  --retry-ms MS          re-poll delay after NotNow or a drop (default 2000)\n"
        "  --apns-control URL     the APNs test server's control API (http://127.0.0.1:PORT)\n"
        "  --push-port N          port of the push callback listener (default: ephemeral)\n"
        "  --shared-key           one RSA key for every device's SCEP request (scale runs)\n"
        "  --enroll-only          enroll the devices, report, exit (enrollment-rate bench)\n"
        "  --duration S           serve pushes for S seconds\n"
        "  --until-idle           serve pushes until idle for --idle-ms (default 3000)\n"
        "  --report json|text     report format on stdout (default json)\n"
        "  --state-file FILE      write the report with every device's state to FILE\n"
        "  --ready-file FILE      write \"enrolled N\" to FILE once enrollment is over\n"
        "  --log-level LEVEL      error, warn, info, debug\n",
        f);
}

static int parse_double(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);

    if (end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "scepter-sim: --%s: \"%s\" is not a number in [%g, %g]\n", name, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_int(const char *name, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (str_to_i64(s, lo, hi, out) != 0) {
        fprintf(stderr, "scepter-sim: --%s: \"%s\" is not an integer in [%lld, %lld]\n", name, s,
                (long long)lo, (long long)hi);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"server", required_argument, NULL, 's'},
        {"enroll-url", required_argument, NULL, 'e'},
        {"ca", required_argument, NULL, 'c'},
        {"verify-profile-chain", no_argument, NULL, 'V'},
        {"devices", required_argument, NULL, 'n'},
        {"platform-mix", required_argument, NULL, 'm'},
        {"seed", required_argument, NULL, 'S'},
        {"concurrency", required_argument, NULL, 'C'},
        {"enroll-threads", required_argument, NULL, 'T'},
        {"notnow-rate", required_argument, NULL, 'N'},
        {"slow-rate", required_argument, NULL, 'r'},
        {"slow-ms", required_argument, NULL, 'w'},
        {"drop-rate", required_argument, NULL, 'd'},
        {"retry-ms", required_argument, NULL, 'R'},
        {"apns-control", required_argument, NULL, 'a'},
        {"push-port", required_argument, NULL, 'p'},
        {"shared-key", no_argument, NULL, 'k'},
        {"enroll-only", no_argument, NULL, 'E'},
        {"duration", required_argument, NULL, 't'},
        {"until-idle", no_argument, NULL, 'i'},
        {"idle-ms", required_argument, NULL, 'I'},
        {"report", required_argument, NULL, 'o'},
        {"state-file", required_argument, NULL, 'f'},
        {"ready-file", required_argument, NULL, 'F'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sim_engine_opts o;
    struct sim_engine *e = NULL;
    struct scepter_error err;
    const char *server = NULL, *ca = NULL, *report = "json", *state_file = NULL, *ready_file = NULL;
    char *enroll_default = NULL;
    bool enroll_only = false, until_idle = false;
    double duration = 0;
    int64_t v, idle_ms = 3000;
    int c, rc = 1;
    enum log_level lvl = LOG_LVL_WARN;
    json_t *rep = NULL;
    char *text = NULL;

    memset(&o, 0, sizeof(o));
    memset(&err, 0, sizeof(err));
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            server = optarg;
            break;
        case 'e':
            o.enroll_url = optarg;
            break;
        case 'c':
            ca = optarg;
            break;
        case 'V':
            o.verify_profile_chain = true;
            break;
        case 'n':
            if (parse_int("devices", optarg, 1, 1000000, &v) != 0)
                return 2;
            o.devices = (unsigned)v;
            break;
        case 'm':
            if (sim_mix_parse(optarg, &o.mix, &err) != 0) {
                fprintf(stderr, "scepter-sim: --%s\n", err.msg);
                return 2;
            }
            break;
        case 'S':
            if (parse_int("seed", optarg, 0, INT64_MAX, &v) != 0)
                return 2;
            o.seed = (uint64_t)v;
            break;
        case 'C':
            if (parse_int("concurrency", optarg, 1, 100000, &v) != 0)
                return 2;
            o.concurrency = (unsigned)v;
            break;
        case 'T':
            if (parse_int("enroll-threads", optarg, 1, 256, &v) != 0)
                return 2;
            o.enroll_threads = (unsigned)v;
            break;
        case 'N':
            if (parse_double("notnow-rate", optarg, 0, 1, &o.notnow_rate) != 0)
                return 2;
            break;
        case 'r':
            if (parse_double("slow-rate", optarg, 0, 1, &o.slow_rate) != 0)
                return 2;
            break;
        case 'w':
            if (parse_int("slow-ms", optarg, 0, 600000, &v) != 0)
                return 2;
            o.slow_ms = (int)v;
            break;
        case 'd':
            if (parse_double("drop-rate", optarg, 0, 1, &o.drop_rate) != 0)
                return 2;
            break;
        case 'R':
            if (parse_int("retry-ms", optarg, 1, 3600000, &v) != 0)
                return 2;
            o.retry_ms = (int)v;
            break;
        case 'a':
            o.apns_control = optarg;
            break;
        case 'p':
            if (parse_int("push-port", optarg, 0, 65535, &v) != 0)
                return 2;
            o.push_port = (int)v;
            break;
        case 'k':
            o.shared_key = true;
            break;
        case 'E':
            enroll_only = true;
            break;
        case 't':
            if (parse_double("duration", optarg, 0, 7 * 86400, &duration) != 0)
                return 2;
            break;
        case 'i':
            until_idle = true;
            break;
        case 'I':
            if (parse_int("idle-ms", optarg, 100, 3600000, &idle_ms) != 0)
                return 2;
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
                fprintf(stderr, "scepter-sim: --report: \"%s\" is not json or text\n", optarg);
                return 2;
            }
            report = optarg;
            break;
        case 'f':
            state_file = optarg;
            break;
        case 'F':
            ready_file = optarg;
            break;
        case 'l':
            if (log_level_parse(optarg, &lvl) != 0) {
                fprintf(stderr,
                        "scepter-sim: --log-level: \"%s\" is not error, warn, info or "
                        "debug\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "scepter-sim: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    log_init(lvl, LOG_FMT_TEXT);
    if (o.enroll_url == NULL && server) {
        enroll_default = xasprintf("%s/mdm/enroll", server);
        o.enroll_url = enroll_default;
    }
    if (o.enroll_url == NULL) {
        fprintf(stderr, "scepter-sim: --enroll-url (or --server) is required\n");
        usage(stderr);
        return 2;
    }
    if (!enroll_only && !until_idle && duration <= 0) {
        fprintf(stderr, "scepter-sim: give --enroll-only, --until-idle or --duration\n");
        return 2;
    }
    if (ca) {
        STACK_OF(X509) *certs = crypto_certs_load(ca, &err);
        if (certs == NULL) {
            fprintf(stderr, "scepter-sim: --ca: %s\n", err.msg);
            goto out;
        }
        o.trust = X509_STORE_new();
        for (int i = 0; i < sk_X509_num(certs); i++)
            X509_STORE_add_cert(o.trust, sk_X509_value(certs, i));
        sk_X509_pop_free(certs, X509_free);
    }
    if (sim_engine_new(&o, &e, &err) != 0) {
        fprintf(stderr, "scepter-sim: %s\n", err.msg);
        goto out;
    }
    if (o.apns_control && sim_engine_register_apns(e, &err) != 0) {
        fprintf(stderr, "scepter-sim: %s\n", err.msg);
        goto out;
    }
    rc = 0;
    if (sim_engine_enroll_all(e, duration > 0 ? duration : 3600, &err) != 0) {
        fprintf(stderr, "scepter-sim: %s\n", err.msg);
        rc = 1;
    }
    if (ready_file) {
        /* What a driving script waits for: enrollment is over, pushes are being served. */
        json_t *now = sim_engine_report(e, false);
        char *line = xasprintf("enrolled %lld\n",
                               (long long)json_integer_value(
                                   json_object_get(json_object_get(now, "counters"), "enrolled")));
        struct scepter_error e2;
        if (file_write(ready_file, line, strlen(line), 0644, &e2) != 0) {
            fprintf(stderr, "scepter-sim: --ready-file: %s\n", e2.msg);
            rc = 1;
        }
        free(line);
        json_decref(now);
    }
    if (!enroll_only && rc == 0)
        sim_engine_run(e, duration, until_idle, (int)idle_ms);
    rep = sim_engine_report(e, false);
    if (strcmp(report, "json") == 0) {
        text = jsonx_dump(rep);
        printf("%s\n", text);
    } else {
        json_t *types = json_object_get(json_object_get(rep, "latency"), "types");
        const char *k;
        json_t *t;
        printf("%-20s %8s %10s %10s %10s %10s\n", "type", "count", "p50_us", "p90_us", "p99_us",
               "max_us");
        json_object_foreach(types, k, t)
        {
            printf("%-20s %8lld %10lld %10lld %10lld %10lld\n", k,
                   (long long)json_integer_value(json_object_get(t, "count")),
                   (long long)json_integer_value(json_object_get(t, "p50_us")),
                   (long long)json_integer_value(json_object_get(t, "p90_us")),
                   (long long)json_integer_value(json_object_get(t, "p99_us")),
                   (long long)json_integer_value(json_object_get(t, "max_us")));
        }
        printf(
            "throughput_per_s %.1f\n",
            json_real_value(json_object_get(json_object_get(rep, "latency"), "throughput_per_s")));
    }
    if (state_file) {
        json_t *full = sim_engine_report(e, true);
        char *s = jsonx_dump(full);
        if (file_write(state_file, s, strlen(s), 0644, &err) != 0) {
            fprintf(stderr, "scepter-sim: --state-file: %s\n", err.msg);
            rc = 1;
        }
        free(s);
        json_decref(full);
    }
out:
    free(text);
    json_decref(rep);
    sim_engine_free(e);
    X509_STORE_free(o.trust);
    free(enroll_default);
    return rc;
}
