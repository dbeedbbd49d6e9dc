/*
 * Latency statistics for scale runs: one log-linear histogram per message type (64 linear
 * sub-buckets per power of two, like HdrHistogram with 2 significant digits), so recording is
 * O(1) with fixed memory and percentiles need no stored samples.  A percentile is reported as
 * its bucket's upper bound: never below the true value and at most 1/64 above it.
 */
#include "sim.h"

#include <string.h>

#include "common/str.h"
#include "common/xmalloc.h"

#define SUB_BITS  6
#define SUB_COUNT (1u << SUB_BITS)
#define MAX_EXP   40 /* covers 2^40 us, about 12 days */
#define BUCKETS   ((MAX_EXP + 1) * SUB_COUNT)
#define MAX_TYPES 32

struct hist {
    char type[32];
    uint64_t count;
    uint64_t max;
    uint64_t sum;
    uint64_t b[BUCKETS];
};

struct sim_stats {
    struct hist *h[MAX_TYPES];
    size_t n;
};

static size_t bucket_of(uint64_t v)
{
    unsigned e;

    if (v < SUB_COUNT)
        return (size_t)v;
    e = 63u - (unsigned)__builtin_clzll(v); /* v in [2^e, 2^(e+1)) */
    if (e > MAX_EXP)
        return BUCKETS - 1;
    /* bucket (e - SUB_BITS + 1) holds [2^e, 2^(e+1)) in SUB_COUNT linear steps */
    return (size_t)(e - SUB_BITS + 1) * SUB_COUNT + (size_t)((v >> (e - SUB_BITS)) - SUB_COUNT);
}

/* The largest value that lands in bucket i. */
static uint64_t bucket_upper(size_t i)
{
    size_t blk = i / SUB_COUNT, sub = i % SUB_COUNT;
    unsigned e;

    if (blk == 0)
        return (uint64_t)sub;
    e = (unsigned)blk + SUB_BITS - 1;
    return (((uint64_t)SUB_COUNT + sub + 1) << (e - SUB_BITS)) - 1;
}

struct sim_stats *sim_stats_new(void)
{
    return xcalloc(1, sizeof(struct sim_stats));
}

void sim_stats_free(struct sim_stats *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->h[i]);
    free(s);
}

static struct hist *find(const struct sim_stats *s, const char *type)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->h[i]->type, type) == 0)
            return s->h[i];
    return NULL;
}

void sim_stats_record(struct sim_stats *s, const char *type, uint64_t usec)
{
    struct hist *h = find(s, type);

    if (h == NULL) {
        if (s->n == MAX_TYPES)
            return;
        h = xcalloc(1, sizeof(*h));
        str_copy(h->type, sizeof(h->type), type);
        s->h[s->n++] = h;
    }
    h->count++;
    h->sum += usec;
    if (usec > h->max)
        h->max = usec;
    h->b[bucket_of(usec)]++;
}

uint64_t sim_stats_count(const struct sim_stats *s, const char *type)
{
    const struct hist *h = find(s, type);

    return h ? h->count : 0;
}

uint64_t sim_stats_max(const struct sim_stats *s, const char *type)
{
    const struct hist *h = find(s, type);

    return h ? h->max : 0;
}

static uint64_t hist_percentile(const struct hist *h, double q)
{
    uint64_t rank, seen = 0;

    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    /* The smallest value v such that at least q of the samples are <= v (rank >= 1). */
    rank = (uint64_t)(q * (double)h->count + 0.999999999);
    if (rank == 0)
        rank = 1;
    for (size_t i = 0; i < BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t up = bucket_upper(i);
            return up < h->max ? up : h->max;
        }
    }
    return h->max;
}

int sim_stats_percentile(const struct sim_stats *s, const char *type, double q, uint64_t *out)
{
    const struct hist *h = find(s, type);

    if (h == NULL || h->count == 0)
        return SCEPTER_ENOTFOUND;
    *out = hist_percentile(h, q);
    return 0;
}

json_t *sim_stats_json(const struct sim_stats *s, double elapsed_s)
{
    json_t *root = json_object(), *types = json_object();
    uint64_t total = 0;

    for (size_t i = 0; i < s->n; i++) {
        const struct hist *h = s->h[i];
        json_t *t = json_object();

        json_object_set_new(t, "count", json_integer((json_int_t)h->count));
        json_object_set_new(t, "p50_us", json_integer((json_int_t)hist_percentile(h, 0.50)));
        json_object_set_new(t, "p90_us", json_integer((json_int_t)hist_percentile(h, 0.90)));
        json_object_set_new(t, "p99_us", json_integer((json_int_t)hist_percentile(h, 0.99)));
        json_object_set_new(t, "max_us", json_integer((json_int_t)h->max));
        json_object_set_new(t, "mean_us",
                            json_integer((json_int_t)(h->count ? h->sum / h->count : 0)));
        json_object_set_new(types, h->type, t);
        total += h->count;
    }
    json_object_set_new(root, "types", types);
    json_object_set_new(root, "total", json_integer((json_int_t)total));
    json_object_set_new(root, "elapsed_s", json_real(elapsed_s));
    json_object_set_new(root, "throughput_per_s",
                        json_real(elapsed_s > 0 ? (double)total / elapsed_s : 0.0));
    return root;
}
