/*
 * Device facts: what a simulated Mac, iPhone or iPad reports about itself.  Everything is a
 * pure function of (seed, index), so a device's UDID, serial and model are the same in every
 * run with the same --seed, and a scale run does not need to keep them in memory.  Models and
 * OS builds are real Apple identifiers (cf. the nanomdm Authenticate fixtures).
 */
#include "sim.h"

#include <stdio.h>
#include <string.h>

#include "common/str.h"

uint64_t sim_rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double sim_rand_unit(uint64_t *state)
{
    return (double)(sim_rand_next(state) >> 11) / 9007199254740992.0;
}

struct model {
    const char *product; /* ProductName */
    const char *model;   /* Model (iOS: part number) */
    const char *name;    /* ModelName */
    uint32_t capacity;   /* GB */
};

struct os {
    const char *version;
    const char *build;
};

static const struct model mac_models[] = {
    {"MacBookPro18,3", "MacBookPro18,3", "MacBook Pro", 512},
    {"Mac14,2", "Mac14,2", "MacBook Air", 256},
    {"Mac14,3", "Mac14,3", "Mac mini", 512},
    {"iMac21,1", "iMac21,1", "iMac", 256},
    {"Mac15,3", "Mac15,3", "MacBook Pro", 1000},
};
static const struct model iphone_models[] = {
    {"iPhone14,2", "MLTP3LL/A", "iPhone", 128},
    {"iPhone15,2", "MQ0T3LL/A", "iPhone", 256},
    {"iPhone16,1", "MTLG3LL/A", "iPhone", 128},
    {"iPhone14,7", "MPUF3LL/A", "iPhone", 128},
};
static const struct model ipad_models[] = {
    {"iPad13,18", "MPQ03LL/A", "iPad", 64},
    {"iPad14,3", "MNXD3LL/A", "iPad Pro", 256},
    {"iPad13,16", "MM9C3LL/A", "iPad Air", 64},
};
static const struct os mac_os[] = {
    {"14.6.1", "23G93"}, {"15.1", "24B83"}, {"13.6.9", "22G830"}, {"15.0.1", "24A348"}};
static const struct os ios_os[] = {
    {"17.5.1", "21F90"}, {"18.1", "22B83"}, {"16.7.10", "20H350"}, {"18.0.1", "22A3370"}};
static const char *const first_names[] = {"Ana",   "Ben",  "Chloe", "Dev", "Emma", "Farid",
                                          "Grace", "Hiro", "Ines",  "Jon", "Kofi", "Lena"};

const char *sim_platform_name(enum sim_platform p)
{
    switch (p) {
    case SIM_MAC:
        return "mac";
    case SIM_IPHONE:
        return "iphone";
    case SIM_IPAD:
        return "ipad";
    }
    return "?";
}

int sim_platform_parse(const char *s, enum sim_platform *out)
{
    for (int i = 0; i < SIM_PLATFORM_COUNT; i++)
        if (str_eq_nocase(s, sim_platform_name((enum sim_platform)i))) {
            *out = (enum sim_platform)i;
            return 0;
        }
    return -1;
}

static void random_chars(uint64_t *rng, const char *alphabet, char *out, size_t n)
{
    size_t alen = strlen(alphabet);

    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[sim_rand_next(rng) % alen];
    out[n] = '\0';
}

static void random_mac(uint64_t *rng, char out[18])
{
    uint64_t v = sim_rand_next(rng);

    /* Apple OUI-looking prefix; locally unique enough for a simulator. */
    snprintf(out, 18, "f0:18:98:%02x:%02x:%02x", (unsigned)(v & 0xff), (unsigned)((v >> 8) & 0xff),
             (unsigned)((v >> 16) & 0xff));
}

static void imei_make(uint64_t *rng, char out[20])
{
    int d[15] = {3, 5, 2, 0, 9, 9, 0};
    int sum = 0;

    for (int i = 7; i < 14; i++)
        d[i] = (int)(sim_rand_next(rng) % 10);
    /* Luhn check digit over the first 14 digits. */
    for (int i = 0; i < 14; i++) {
        int v = d[i];
        if (i % 2 == 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    d[14] = (10 - sum % 10) % 10;
    snprintf(out, 20, "%d%d %d%d%d%d%d%d %d%d%d%d%d%d %d", d[0], d[1], d[2], d[3], d[4], d[5], d[6],
             d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14]);
}

void sim_facts_generate(struct sim_facts *f, enum sim_platform platform, uint64_t seed,
                        uint32_t index)
{
    uint64_t rng = seed ^ ((uint64_t)index * 0xD1342543DE82EF95ULL) ^ ((uint64_t)platform << 56);
    const struct model *m;
    const struct os *o;
    char hex[17];

    memset(f, 0, sizeof(*f));
    f->platform = platform;
    (void)sim_rand_next(&rng);
    switch (platform) {
    case SIM_MAC:
        m = &mac_models[sim_rand_next(&rng) % ARRAY_LEN(mac_models)];
        o = &mac_os[sim_rand_next(&rng) % ARRAY_LEN(mac_os)];
        break;
    case SIM_IPHONE:
        m = &iphone_models[sim_rand_next(&rng) % ARRAY_LEN(iphone_models)];
        o = &ios_os[sim_rand_next(&rng) % ARRAY_LEN(ios_os)];
        break;
    default:
        m = &ipad_models[sim_rand_next(&rng) % ARRAY_LEN(ipad_models)];
        o = &ios_os[sim_rand_next(&rng) % ARRAY_LEN(ios_os)];
        break;
    }
    if (platform == SIM_MAC) {
        /* Intel/VM Macs report a UUID; the index is folded in so UDIDs never collide. */
        uint64_t a = sim_rand_next(&rng), b = sim_rand_next(&rng);
        snprintf(f->udid, sizeof(f->udid), "%08X-%04X-%04X-%04X-%04X%08X", (unsigned)(a >> 32),
                 (unsigned)((a >> 16) & 0xffff), (unsigned)(0x4000 | (a & 0x0fff)),
                 (unsigned)(0x8000 | ((b >> 48) & 0x3fff)), (unsigned)((b >> 32) & 0xffff),
                 (unsigned)index);
    } else {
        /* Newer iPhones and iPads: "00008110-" then 16 hex digits. */
        uint64_t a = sim_rand_next(&rng);
        snprintf(hex, sizeof(hex), "%08X%08X", (unsigned)(a >> 32), (unsigned)index);
        snprintf(f->udid, sizeof(f->udid), "%08X-%s", platform == SIM_IPHONE ? 0x8110u : 0x8103u,
                 hex);
    }
    random_chars(&rng, "0123456789CDFGHJKLMNPQRTVWXY", f->serial, 12);
    str_copy(f->product_name, sizeof(f->product_name), m->product);
    str_copy(f->model, sizeof(f->model), m->model);
    str_copy(f->model_name, sizeof(f->model_name), m->name);
    str_copy(f->os_version, sizeof(f->os_version), o->version);
    str_copy(f->build_version, sizeof(f->build_version), o->build);
    snprintf(f->device_name, sizeof(f->device_name), "%s's %s",
             first_names[sim_rand_next(&rng) % ARRAY_LEN(first_names)], m->name);
    if (platform == SIM_IPHONE)
        imei_make(&rng, f->imei);
    random_mac(&rng, f->wifi_mac);
    random_mac(&rng, f->bt_mac);
    f->capacity_gb = m->capacity;
}

int sim_mix_parse(const char *s, struct sim_mix *out, struct scepter_error *err)
{
    char buf[256];
    char *save = NULL, *tok;
    unsigned total = 0;

    memset(out, 0, sizeof(*out));
    if (str_copy(buf, sizeof(buf), s) >= sizeof(buf))
        return scepter_err(err, SCEPTER_EINVAL, "platform-mix", "platform-mix: too long");
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        enum sim_platform p;
        int64_t w;

        if (eq == NULL)
            return scepter_err(err, SCEPTER_EINVAL, "platform-mix",
                               "platform-mix: \"%s\" is not platform=weight", tok);
        *eq = '\0';
        if (sim_platform_parse(str_trim(tok), &p) != 0)
            return scepter_err(err, SCEPTER_EINVAL, "platform-mix",
                               "platform-mix: unknown platform \"%s\" (mac, iphone, ipad)", tok);
        if (str_to_i64(str_trim(eq + 1), 0, 1000000, &w) != 0)
            return scepter_err(err, SCEPTER_EINVAL, "platform-mix",
                               "platform-mix: weight of %s must be an integer 0..1000000", tok);
        out->weight[p] = (unsigned)w;
        total += (unsigned)w;
    }
    if (total == 0)
        return scepter_err(err, SCEPTER_EINVAL, "platform-mix",
                           "platform-mix: the weights add up to 0");
    return 0;
}

enum sim_platform sim_mix_pick(const struct sim_mix *mix, uint32_t index)
{
    unsigned total = 0, acc = 0, slot;

    for (int i = 0; i < SIM_PLATFORM_COUNT; i++)
        total += mix->weight[i];
    if (total == 0)
        return SIM_MAC;
    /* Spread the platforms evenly over the indices (index 0..total-1 covers every weight). */
    slot = (unsigned)(((uint64_t)index * 2654435761u) % total);
    for (int i = 0; i < SIM_PLATFORM_COUNT; i++) {
        acc += mix->weight[i];
        if (slot < acc)
            return (enum sim_platform)i;
    }
    return SIM_MAC;
}
