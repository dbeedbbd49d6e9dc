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
    } seen[64];
    size_t nseen = 0, nroutes;
    const struct api_route *routes = mdm_api_routes(&nroutes);

    for (line = strtok_r(doc, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "  /", 3) == 0 && line[strlen(line) - 1] == ':') {
            snprintf(cur, sizeof(cur), "%.*s", (int)strlen(line) - 3, line + 2);
            cr_assert_lt(nseen, 64);
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
    } served[64];
    size_t nserved = 0;
    for (size_t r = 0; r < nroutes; r++) {
        size_t i = 0;
        while (i < nserved && strcmp(served[i].pattern, routes[r].pattern) != 0)
            i++;
        if (i == nserved) {
            cr_assert_lt(nserved, 64);
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
