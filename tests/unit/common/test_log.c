#include <criterion/criterion.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "support/support.h"

static char *capture(enum log_format fmt, void (*fn)(void))
{
    char *dir = tu_tmpdir();
    char *path = xasprintf("%s/log", dir);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    log_init(LOG_LVL_INFO, fmt);
    log_set_fd(fd);
    fn();
    log_set_fd(2);
    close(fd);
    char *out = (char *)tu_read(path, NULL);
    tu_rmtree(dir);
    free(dir);
    free(path);
    return out;
}

static void emit(void)
{
    log_kv(LOG_LVL_INFO, "checkin", "msg", "Authenticate", "enrollment", "ABC", "skip", NULL,
           "quote", "a \"b\"", NULL);
    log_debug("hidden");
}

Test(log, logfmt_one_line_with_quoting)
{
    char *out = capture(LOG_FMT_LOGFMT, emit);
    cr_assert(
        strstr(
            out,
            "level=info event=checkin msg=Authenticate enrollment=ABC quote=\"a \\\"b\\\"\"\n") !=
            NULL,
        "%s", out);
    cr_assert(strstr(out, "skip") == NULL);
    cr_assert(strstr(out, "hidden") == NULL);
    free(out);
}

Test(log, json_lines_are_objects)
{
    char *out = capture(LOG_FMT_JSON, emit);
    cr_assert(
        strstr(out, "\"event\":\"checkin\",\"msg\":\"Authenticate\",\"enrollment\":\"ABC\"") !=
            NULL,
        "%s", out);
    cr_assert_eq(out[strlen(out) - 2], '}');
    free(out);
}

Test(log, mask_hides_secrets)
{
    char m[LOG_MASK_LEN];
    cr_assert_str_eq(log_mask("0123456789abcdef", m, sizeof(m)), "0123…(16)");
    cr_assert_str_eq(log_mask("short", m, sizeof(m)), "…(5)");
}
