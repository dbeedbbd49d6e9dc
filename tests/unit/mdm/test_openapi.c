/*
 * docs/openapi.yaml describes exactly the routes the server answers, with the same methods.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "common/xmalloc.h"
#include "mdm/api_int.h"
#include "support/support.h"

static unsigned method_bit(const char *m)
{
    static const struct {
        const char *name;
        enum mdm_method m;
    } t[] = {{"get", MDM_GET},       {"post", MDM_POST},   {"put", MDM_PUT},
             {"delete", MDM_DELETE}, {"patch", MDM_PATCH}, {"head", MDM_HEAD}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(t[i].name, m) == 0)
            return 1u << t[i].m;
    return 0;
}

Test(openapi, documents_every_route_and_method_and_nothing_else)
{
    char *path = tu_source_path("docs/openapi.yaml");
    char *doc = (char *)tu_read(path, NULL);
    char *save = NULL, *line;
    char cur[256] = "";
    struct {
        char pattern[256];
        unsigned methods;
    } seen[128];
    size_t nseen = 0, nroutes;
    const struct api_route *routes = mdm_api_routes(&nroutes);

    for (line = strtok_r(doc, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "  /", 3) == 0 && line[strlen(line) - 1] == ':') {
            snprintf(cur, sizeof(cur), "%.*s", (int)strlen(line) - 3, line + 2);
            cr_assert_lt(nseen, 128);
            snprintf(seen[nseen].pattern, sizeof(seen[nseen].pattern), "%s", cur);
            seen[nseen++].methods = 0;
        } else if (strncmp(line, "    ", 4) == 0 && islower((unsigned char)line[4]) &&
                   line[strlen(line) - 1] == ':' && nseen > 0 && strncmp(line, "     ", 5) != 0) {
            char m[16];
            snprintf(m, sizeof(m), "%.*s", (int)strlen(line) - 5, line + 4);
            seen[nseen - 1].methods |= method_bit(m);
        } else if (line[0] != ' ' && line[0] != '#') {
            cur[0] = '\0';
            if (strncmp(line, "components:", 11) == 0)
                break;
        }
    }
    /* The route table: one row per pattern and method, folded into pattern -> methods. */
    struct {
        const char *pattern;
        unsigned methods;
    } served[128];
    size_t nserved = 0;
    for (size_t r = 0; r < nroutes; r++) {
        size_t i = 0;
        while (i < nserved && strcmp(served[i].pattern, routes[r].pattern) != 0)
            i++;
        if (i == nserved) {
            cr_assert_lt(nserved, 128);
            served[nserved].pattern = routes[r].pattern;
            served[nserved++].methods = 0;
        }
        cr_assert_eq(served[i].methods & (1u << routes[r].method), 0, "%s: two rows for one method",
                     routes[r].pattern);
        served[i].methods |= 1u << routes[r].method;
    }
    cr_assert_eq(nseen, nserved, "openapi.yaml has %zu paths, the server %zu", nseen, nserved);
    for (size_t r = 0; r < nserved; r++) {
        bool found = false;
        for (size_t i = 0; i < nseen; i++) {
            if (strcmp(seen[i].pattern, served[r].pattern) != 0)
                continue;
            found = true;
            cr_assert_eq(seen[i].methods, served[r].methods,
                         "%s: methods differ between openapi.yaml (%#x) and the server (%#x)",
                         served[r].pattern, seen[i].methods, served[r].methods);
        }
        cr_assert(found, "%s is served but not documented in docs/openapi.yaml", served[r].pattern);
    }
    free(doc);
    free(path);
}

/* Every row of the route table names the least role it needs (a row added without one is
 * refused by the server, and fails here), and every row that changes something names the
 * action its audit entry records. */
Test(openapi, every_route_has_a_role_and_every_change_an_audit_action)
{
    size_t n;
    const struct api_route *routes = mdm_api_routes(&n);
    /* POSTs that change nothing. */
    static const char *const pure[] = {"/v1/certificates/inspect", NULL};

    cr_assert_gt(n, 0);
    for (size_t r = 0; r < n; r++) {
        cr_assert(routes[r].role > API_ROLE_UNSET && routes[r].role <= API_ROLE_ADMIN,
                  "%s %s has no role in the route table (mdm/api.c)",
                  api_method_name(routes[r].method), routes[r].pattern);
        cr_assert(routes[r].role != API_ROLE_ANYONE ||
                      strcmp(routes[r].pattern, "/v1/sessions") == 0,
                  "%s: only signing in is open to anyone", routes[r].pattern);
        bool is_pure = false;
        for (const char *const *p = pure; *p; p++)
            is_pure |= strcmp(*p, routes[r].pattern) == 0;
        if (routes[r].method == MDM_GET || is_pure)
            cr_assert_null(routes[r].action, "%s %s changes nothing but has an audit action",
                           api_method_name(routes[r].method), routes[r].pattern);
        else
            cr_assert_not_null(routes[r].action, "%s %s changes something but has no audit action",
                               api_method_name(routes[r].method), routes[r].pattern);
    }
}

/* docs/openapi.yaml gives each operation the role of its route-table row as x-scepter-role. */
Test(openapi, documents_the_role_of_every_route)
{
    char *path = tu_source_path("docs/openapi.yaml");
    char *doc = (char *)tu_read(path, NULL);
    char *save = NULL, *line;
    char cur[256] = "", method[16] = "";
    size_t n, checked = 0;
    const struct api_route *routes = mdm_api_routes(&n);

    for (line = strtok_r(doc, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "components:", 11) == 0)
            break;
        if (strncmp(line, "  /", 3) == 0 && line[strlen(line) - 1] == ':') {
            snprintf(cur, sizeof(cur), "%.*s", (int)strlen(line) - 3, line + 2);
            method[0] = '\0';
        } else if (strncmp(line, "    ", 4) == 0 && islower((unsigned char)line[4]) &&
                   line[strlen(line) - 1] == ':' && strncmp(line, "     ", 5) != 0) {
            snprintf(method, sizeof(method), "%.*s", (int)strlen(line) - 5, line + 4);
        } else if (strncmp(line, "      x-scepter-role: ", 22) == 0 && *cur && *method) {
            const char *role = line + 22;
            bool found = false;
            for (size_t r = 0; r < n; r++) {
                if (strcmp(routes[r].pattern, cur) != 0 ||
                    (1u << routes[r].method) != method_bit(method))
                    continue;
                found = true;
                cr_assert_str_eq(role, api_role_name(routes[r].role),
                                 "%s %s: openapi.yaml says %s, the route table %s", method, cur,
                                 role, api_role_name(routes[r].role));
                checked++;
            }
            cr_assert(found, "%s %s has x-scepter-role but no route", method, cur);
            method[0] = '\0';
        }
    }
    cr_assert_eq(checked, n, "%zu of %zu operations have x-scepter-role in openapi.yaml", checked,
                 n);
    free(doc);
    free(path);
}
