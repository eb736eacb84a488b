// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the HTTP response parser behind `selftest` and `webhooks delete`: any
// bytes a server (or something posing as one) sends, with invariants on what it accepts.
#include <stdint.h>
#include <string.h>

#include "server/client.h"
#include "tests/fuzz/fuzz_util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct client_response resp;
    char err[256];
    if (client_parse_response((const char *)data, size, &resp, err, sizeof err) == 0) {
        check(resp.status >= 100 && resp.status <= 999);
        check(resp.body != NULL && resp.body_len <= CLIENT_MAX_BODY && resp.body_len <= size);
        check(resp.body[resp.body_len] == '\0');
        client_response_free(&resp);
    } else {
        check(resp.body == NULL && err[0] != '\0');
    }
    return 0;
}
