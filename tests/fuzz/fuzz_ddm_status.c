/*
 * Fuzz target: a DDM status report (the JSON a device sends as the Data of a
 * DeclarativeManagement `status` check-in), through ddm_report_parse (mdm/ddm.c).  Nothing may
 * crash, leak or read out of bounds; a parsed report's items must carry a kind, an identifier
 * and a valid state, and a refused one must name its field.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mdm/ddm_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ddm_report r;
    struct scepter_error err;

    memset(&err, 0, sizeof(err));
    if (ddm_report_parse(data, size, &r, &err) == 0) {
        for (size_t i = 0; i < r.n; i++)
            if (r.items[i].kind == NULL || r.items[i].identifier == NULL ||
                r.items[i].valid == NULL)
                abort();
        ddm_report_clear(&r);
    } else if (err.field[0] == '\0') {
        abort();
    }
    return 0;
}
