/*
 * Device variables in SCEP subjects and subject alternative names: the table of names Scepter
 * knows, the check a policy passes at save time (unknown names are typos; on iOS only names
 * Scepter can fill in are allowed), and the templating step that turns every variable the
 * server substitutes into a marker the per-device renderer replaces.  See profiles.h for the
 * decision on which names the Mac resolves and which the server does.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "profiles/profiles_int.h"

#define S  PROFILE_VAR_SERVER
#define AI PROFILE_VAR_APPLE_IOS
#define AM PROFILE_VAR_APPLE_MACOS

/* X(name, scope, description, fact the server reads, that fact's name in errors) */
#define PV_LIST(X)                                                                                 \
    /* Apple's names, resolved by the Mac itself; Scepter fills the first three in on iOS. */      \
    X("SerialNumber", AI, "serial number", PV_FACT_SERIAL, "serial_number")                        \
    X("HardwareUUID", AI, "hardware UUID (the UDID)", PV_FACT_UDID, "udid")                        \
    X("ComputerName", AI, "computer name (on iOS: the device name)", PV_FACT_NAME, "device_name")  \
    X("LocalHostName", AM, "Bonjour local host name", PV_FACT_NONE, NULL)                          \
    X("HostName", AM, "host name", PV_FACT_NONE, NULL)                                             \
    X("MACAddress", AM, "primary Ethernet MAC address", PV_FACT_NONE, NULL)                        \
    X("AD_ComputerID", AM, "Active Directory computer ID", PV_FACT_NONE, NULL)                     \
    X("AD_ComputerName", AM, "Active Directory computer name", PV_FACT_NONE, NULL)                 \
    X("AD_Domain", AM, "Active Directory domain", PV_FACT_NONE, NULL)                              \
    X("AD_DomainForestName", AM, "Active Directory forest", PV_FACT_NONE, NULL)                    \
    X("AD_DomainGUID", AM, "Active Directory domain GUID", PV_FACT_NONE, NULL)                     \
    X("AD_DomainNameDNS", AM, "Active Directory domain DNS name", PV_FACT_NONE, NULL)              \
    X("AD_KerberosID", AM, "Active Directory Kerberos ID", PV_FACT_NONE, NULL)                     \
    /* Scepter's names, substituted by the server on every platform. */                            \
    X("UDID", S, "device id (UDID)", PV_FACT_UDID, "udid")                                         \
    X("DeviceName", S, "device name", PV_FACT_NAME, "device_name")                                 \
    X("Model", S, "model identifier, e.g. MacBookPro18,3", PV_FACT_MODEL, "model")                 \
    X("ProductName", S, "product name", PV_FACT_PRODUCT, "product_name")                           \
    X("OSVersion", S, "OS version", PV_FACT_OS, "os_version")                                      \
    X("Platform", S, "platform: macos, ios, ipados, ...", PV_FACT_PLATFORM, "platform")

#define PV_PUB(n, s, d, f, fn)  {n, s, d},
#define PV_FACT(n, s, d, f, fn) {f, fn},
static const struct profile_variable g_pub[] = {PV_LIST(PV_PUB)};
static const struct pv_entry g_vars[] = {PV_LIST(PV_FACT)};
#undef PV_PUB
#undef PV_FACT
#undef S
#undef AI
#undef AM

const struct profile_variable *profile_variables(size_t *n)
{
    *n = ARRAY_LEN(g_pub);
    return g_pub;
}

const struct pv_entry *pv_entry(size_t i)
{
    return i < ARRAY_LEN(g_vars) ? &g_vars[i] : NULL;
}

const char *pv_fact_value(const struct profile_device *d, enum pv_fact f)
{
    if (d == NULL)
        return NULL;
    switch (f) {
    case PV_FACT_UDID:
        return d->udid;
    case PV_FACT_SERIAL:
        return d->serial_number;
    case PV_FACT_NAME:
        return d->device_name;
    case PV_FACT_MODEL:
        return d->model;
    case PV_FACT_PRODUCT:
        return d->product_name;
    case PV_FACT_OS:
        return d->os_version;
    case PV_FACT_PLATFORM:
        return d->platform;
    default:
        return NULL;
    }
}

/*
 * The token starting at s ('%'), or 0: its total length ("%Name%") and the name span.
 * A name is [A-Za-z_][A-Za-z0-9_]{0,63}.
 */
static size_t token_at(const char *s, const char **name, size_t *nlen)
{
    size_t i = 1;

    if (!(isalpha((unsigned char)s[1]) || s[1] == '_'))
        return 0;
    while (i < 66 && (isalnum((unsigned char)s[i]) || s[i] == '_'))
        i++;
    if (s[i] != '%' || i > 65)
        return 0;
    *name = s + 1;
    *nlen = i - 1;
    return i + 1;
}

static int lookup(const char *name, size_t nlen)
{
    for (size_t i = 0; i < ARRAY_LEN(g_pub); i++)
        if (strlen(g_pub[i].name) == nlen && memcmp(g_pub[i].name, name, nlen) == 0)
            return (int)i;
    return -1;
}

/* Does the server substitute variable i on platform? */
static bool server_side(size_t i, enum profile_platform platform)
{
    switch (g_pub[i].scope) {
    case PROFILE_VAR_SERVER:
        return true;
    case PROFILE_VAR_APPLE_IOS:
        return platform != PROFILE_PLATFORM_MACOS;
    default:
        return false;
    }
}

size_t pv_check(const char *s, enum profile_platform platform, const char *field,
                struct profile_problems *pr)
{
    size_t nprob = 0;

    for (const char *p = s; p && *p;) {
        const char *name;
        size_t nlen, tlen;
        if (*p != '%' || (tlen = token_at(p, &name, &nlen)) == 0) {
            p++;
            continue;
        }
        int i = lookup(name, nlen);
        if (i < 0) {
            /* Case slips are the common typo: point at the right spelling. */
            const char *hint = NULL;
            for (size_t k = 0; k < ARRAY_LEN(g_vars) && !hint; k++)
                if (strlen(g_pub[k].name) == nlen && strncasecmp(g_pub[k].name, name, nlen) == 0)
                    hint = g_pub[k].name;
            if (hint)
                profile_problems_add(pr, false, field,
                                     "unknown variable %%%.*s%% (did you mean %%%s%%?)", (int)nlen,
                                     name, hint);
            else
                profile_problems_add(pr, false, field,
                                     "unknown variable %%%.*s%%; known: %%SerialNumber%%, "
                                     "%%HardwareUUID%%, %%ComputerName%%, %%UDID%%, "
                                     "%%DeviceName%%, %%Model%%, %%ProductName%%, "
                                     "%%OSVersion%%, %%Platform%% and Apple's macOS names",
                                     (int)nlen, name);
            nprob++;
        } else if (platform == PROFILE_PLATFORM_IOS && g_pub[i].scope == PROFILE_VAR_APPLE_MACOS) {
            profile_problems_add(pr, false, field,
                                 "%%%s%% is resolved only by macOS; iOS devices do not "
                                 "substitute variables and Scepter does not know this value",
                                 g_pub[i].name);
            nprob++;
        }
        p += tlen;
    }
    return nprob;
}

void pv_templatize(const char *s, enum profile_platform platform, struct buf *out, uint64_t *used)
{
    const char *lit = s;

    for (const char *p = s; *p;) {
        const char *name;
        size_t nlen, tlen;
        int i;
        if (*p != '%' || (tlen = token_at(p, &name, &nlen)) == 0 || (i = lookup(name, nlen)) < 0 ||
            !server_side((size_t)i, platform)) {
            p++;
            continue;
        }
        buf_append(out, lit, (size_t)(p - lit));
        buf_printf(out, "%c%d%c", PV_MARK, i, PV_MARK);
        *used |= (uint64_t)1 << i;
        p += tlen;
        lit = p;
    }
    buf_puts(out, lit);
}
