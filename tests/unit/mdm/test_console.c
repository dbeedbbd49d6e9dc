/*
 * The embedded console: every file under console/ is in the binary byte for byte (and nothing
 * else), and is served with the media type of its extension.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/xmalloc.h"
#include "mdm/console_int.h"
#include "support/support.h"

/* Compare every regular file under dir (rel: its path below console/) with its embedded copy;
 * returns how many there were. */
static size_t check_dir(const char *dir, const char *rel)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    cr_assert_not_null(d, "%s", dir);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "node_modules") == 0)
            continue;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        char *name = *rel ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0, "%s", path);
        if (S_ISDIR(st.st_mode)) {
            n += check_dir(path, name);
        } else {
            size_t len = 0;
            unsigned char *want = tu_read(path, &len);
            const struct console_asset *a = mdm_console_find(name);
            cr_assert_not_null(a, "console/%s is not embedded", name);
            cr_assert_eq(a->len, len, "console/%s: embedded %zu bytes of %zu", name, a->len, len);
            cr_assert(len == 0 || memcmp(a->data, want, len) == 0, "console/%s differs", name);
            free(want);
            n++;
        }
        free(path);
        free(name);
    }
    closedir(d);
    return n;
}

Test(console, every_file_of_console_is_embedded)
{
    char *dir = tu_source_path("console");
    size_t n = check_dir(dir, "");
    cr_assert_eq(n, console_assets_len, "%zu files under console/, %zu embedded", n,
                 console_assets_len);
    cr_assert_not_null(mdm_console_find("index.html"));
    cr_assert_null(mdm_console_find("../scepter.conf"));
    cr_assert_null(mdm_console_find(""));
    free(dir);
}

Test(console, content_type_by_extension)
{
    cr_assert_str_eq(mdm_console_content_type("index.html"), "text/html; charset=utf-8");
    cr_assert_str_eq(mdm_console_content_type("js/app.js"), "text/javascript; charset=utf-8");
    cr_assert_str_eq(mdm_console_content_type("a/style.CSS"), "text/css; charset=utf-8");
    cr_assert_str_eq(mdm_console_content_type("logo.svg"), "image/svg+xml");
    cr_assert_str_eq(mdm_console_content_type("favicon.ico"), "image/x-icon");
    cr_assert_str_eq(mdm_console_content_type("font.woff2"), "font/woff2");
    cr_assert_str_eq(mdm_console_content_type("v1.0/README"), "application/octet-stream");
    cr_assert_str_eq(mdm_console_content_type("noext"), "application/octet-stream");
}
