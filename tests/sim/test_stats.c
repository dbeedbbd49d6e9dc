/*
 * Scale mode's machinery without a server: latency percentiles (histogram bounds), the
 * connection bound (FIFO, never above the limit), platform mix and deterministic facts.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/jsonx.h"
#include "tests/sim/sim.h"

Test(stats, percentiles_are_within_the_bucket_bound)
{
    struct sim_stats *s = sim_stats_new();
    uint64_t v;

    /* 1..10000 us in a shuffled order. */
    for (uint64_t i = 0; i < 10000; i++)
        sim_stats_record(s, "Idle", (i * 7919) % 10000 + 1);
    sim_stats_record(s, "TokenUpdate", 250);
    cr_assert_eq(sim_stats_count(s, "Idle"), 10000);
    cr_assert_eq(sim_stats_percentile(s, "Idle", 0.50, &v), 0);
    cr_assert(v >= 5000 && v <= 5000 * 65 / 64 + 1, "p50 %llu", (unsigned long long)v);
    cr_assert_eq(sim_stats_percentile(s, "Idle", 0.90, &v), 0);
    cr_assert(v >= 9000 && v <= 9000 * 65 / 64 + 1, "p90 %llu", (unsigned long long)v);
    cr_assert_eq(sim_stats_percentile(s, "Idle", 0.99, &v), 0);
    cr_assert(v >= 9900 && v <= 10000, "p99 %llu", (unsigned long long)v);
    cr_assert_eq(sim_stats_max(s, "Idle"), 10000);
    cr_assert_eq(sim_stats_percentile(s, "TokenUpdate", 0.99, &v), 0);
    cr_assert_eq(v, 250);
    cr_assert_eq(sim_stats_percentile(s, "Nope", 0.5, &v), SCEPTER_ENOTFOUND);
    sim_stats_free(s);
}

Test(stats, small_values_are_exact_and_outliers_show_in_p99_and_max)
{
    struct sim_stats *s = sim_stats_new();
    uint64_t v;

    for (int i = 0; i < 98; i++)
        sim_stats_record(s, "Acknowledged", 10);
    sim_stats_record(s, "Acknowledged", 3000000);
    sim_stats_record(s, "Acknowledged", 9000000);
    cr_assert_eq(sim_stats_percentile(s, "Acknowledged", 0.5, &v), 0);
    cr_assert_eq(v, 10);
    cr_assert_eq(sim_stats_percentile(s, "Acknowledged", 0.99, &v), 0);
    cr_assert(v >= 3000000 && v <= 3000000 * 65 / 64, "p99 %llu", (unsigned long long)v);
    cr_assert_eq(sim_stats_max(s, "Acknowledged"), 9000000);
    sim_stats_free(s);
}

Test(stats, json_report_has_every_type_and_throughput)
{
    struct sim_stats *s = sim_stats_new();
    json_t *j;

    sim_stats_record(s, "Authenticate", 100);
    sim_stats_record(s, "TokenUpdate", 200);
    sim_stats_record(s, "TokenUpdate", 300);
    j = sim_stats_json(s, 2.0);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 3);
    cr_assert_float_eq(json_real_value(json_object_get(j, "throughput_per_s")), 1.5, 1e-9);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(j, "types"), "TokenUpdate"), "max_us")),
                 300);
    cr_assert_not_null(
        json_object_get(json_object_get(json_object_get(j, "types"), "Authenticate"), "p99_us"));
    json_decref(j);
    sim_stats_free(s);
}

Test(pool, never_more_than_the_limit_and_fifo)
{
    struct sim_pool *p = sim_pool_new(3);
    int ids[10], granted = 0, order[10], norder = 0;

    for (int i = 0; i < 10; i++) {
        ids[i] = i;
        if (sim_pool_acquire(p, &ids[i])) {
            granted++;
        }
        cr_assert(sim_pool_in_use(p) <= 3);
    }
    cr_assert_eq(granted, 3);
    cr_assert_eq(sim_pool_waiting(p), 7);
    /* Waiter 5 gives up. */
    cr_assert(sim_pool_cancel(p, &ids[5]));
    cr_assert_not(sim_pool_cancel(p, &ids[5]));
    /* Release one at a time: the slot passes to the oldest waiter. */
    for (int round = 0; round < 20 && (sim_pool_in_use(p) > 0); round++) {
        int *next = sim_pool_release(p);
        if (next) {
            order[norder++] = *next;
        }
        cr_assert(sim_pool_in_use(p) <= 3);
    }
    cr_assert_eq(norder, 6);
    cr_assert_eq(order[0], 3);
    cr_assert_eq(order[1], 4);
    cr_assert_eq(order[2], 6);
    cr_assert_eq(order[5], 9);
    cr_assert_eq(sim_pool_peak(p), 3);
    cr_assert_eq(sim_pool_in_use(p), 0);
    cr_assert_null(sim_pool_release(p));
    sim_pool_free(p);
    sim_pool_free(NULL);
}

Test(facts, deterministic_realistic_and_unique)
{
    struct sim_facts a, b;
    struct sim_mix mix;
    struct scepter_error err;
    unsigned counts[3] = {0};

    sim_facts_generate(&a, SIM_MAC, 7, 1);
    sim_facts_generate(&b, SIM_MAC, 7, 1);
    /* the same seed gives the same device, field by field */
    cr_assert_eq(a.platform, b.platform);
    cr_assert_str_eq(a.udid, b.udid);
    cr_assert_str_eq(a.serial, b.serial);
    cr_assert_str_eq(a.device_name, b.device_name);
    cr_assert_str_eq(a.product_name, b.product_name);
    cr_assert_str_eq(a.model, b.model);
    cr_assert_str_eq(a.os_version, b.os_version);
    cr_assert_str_eq(a.build_version, b.build_version);
    cr_assert_str_eq(a.imei, b.imei);
    cr_assert_str_eq(a.wifi_mac, b.wifi_mac);
    cr_assert_str_eq(a.bt_mac, b.bt_mac);
    cr_assert_eq(a.capacity_gb, b.capacity_gb);
    cr_assert_eq(strlen(a.udid), 36);
    cr_assert_eq(strlen(a.serial), 12);
    cr_assert_str_eq(a.model, a.product_name);
    sim_facts_generate(&b, SIM_MAC, 7, 2);
    cr_assert_str_neq(a.udid, b.udid);
    sim_facts_generate(&a, SIM_IPHONE, 7, 3);
    cr_assert(strncmp(a.product_name, "iPhone", 6) == 0);
    cr_assert_eq(strlen(a.udid), 25);
    cr_assert_eq(strlen(a.imei), 18);
    sim_facts_generate(&a, SIM_IPAD, 7, 3);
    cr_assert(strncmp(a.product_name, "iPad", 4) == 0);
    cr_assert_str_eq(a.imei, "");

    cr_assert_eq(sim_mix_parse("mac=40,iphone=40,ipad=20", &mix, &err), 0);
    for (uint32_t i = 0; i < 1000; i++)
        counts[sim_mix_pick(&mix, i)]++;
    cr_assert_eq(counts[SIM_MAC], 400);
    cr_assert_eq(counts[SIM_IPHONE], 400);
    cr_assert_eq(counts[SIM_IPAD], 200);
    cr_assert_eq(sim_mix_parse("mac=1,watch=2", &mix, &err), SCEPTER_EINVAL);
    cr_assert(strstr(err.msg, "watch") != NULL);
    cr_assert_eq(sim_mix_parse("mac=0", &mix, &err), SCEPTER_EINVAL);
    cr_assert_eq(sim_mix_parse("mac", &mix, &err), SCEPTER_EINVAL);
}
