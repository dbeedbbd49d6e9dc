/*
 * Fuzz target: what an operator sends.  The bytes go through the JSON parser, the SCEP
 * Profiles policy validation (every field and its conversions: fingerprint, subject, root
 * certificate, variables) and template rendering, and the typed/raw command parser.
 */
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/jsonx.h"
#include "mdm/commands_int.h"
#include "profiles/profiles.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sink = 0; /* results are not checked: only crashes matter */
    struct profile_policy p;
    struct profile_problems pr = PROFILE_PROBLEMS_INIT;
    struct scepter_error err;

    if (profile_policy_from_json((const char *)data, size, &p, &pr) == 0) {
        struct profile_template *t = NULL;
        struct profile_problems pr2 = PROFILE_PROBLEMS_INIT;
        struct profile_render_opts o = {"com.scepter.policy.fuzz", "Fuzz"};
        if (profile_template_new(&p, &o, &t, &pr2) == 0) {
            struct profile_device d = {"UDID-<&>",   "SERIAL", "Name \"x\"", "iPhone14,2",
                                       "iPhone14,2", "17.0",   "ios"};
            struct buf out = BUF_INIT;
            sink += profile_template_render(t, &d, &out, &err);
            buf_free(&out);
            profile_template_free(t);
        }
        profile_problems_clear(&pr2);
    }
    profile_policy_clear(&p);
    profile_problems_clear(&pr);

    json_t *root = jsonx_parse_object((const char *)data, size, &err);
    if (root) {
        struct mdm_command cmd;
        json_t *c = json_object_get(root, "command");
        if (mdm_command_from_json(c ? c : root, &cmd, &err) == 0)
            mdm_command_clear(&cmd);
        json_decref(root);
    }
    return sink & 0;
}
