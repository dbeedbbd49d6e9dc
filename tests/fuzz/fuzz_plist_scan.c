/*
 * Fuzz target: the plist pre-scan (common/plistscan.c) on any bytes, and libplist on what it
 * accepts (through plistx_parse_dict, which scans first).  Whatever the scan lets through must
 * be safe for libplist: no crash, no stack exhaustion, no read out of bounds, bounded time.
 * The scan is also run with small limits, so that the limit paths are exercised on inputs the
 * seeds keep small.
 */
#include <stdint.h>
#include <stdlib.h>

#include "common/plistscan.h"
#include "common/plistx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct plistscan_limits small = {4, 64};
    struct plistscan_stats st;
    struct scepter_error err;
    plist_t d = NULL;

    if (plistscan_check_stats(data, size, &small, &st, &err) == 0 &&
        (st.depth > 4 || st.nodes > 64))
        abort(); /* the scan accepted what its own limits refuse */
    if (plistx_parse_dict(data, size, &d, &err) == 0) {
        size_t len;
        free(plistx_to_xml(d, &len));
        plist_free(d);
    }
    return 0;
}
