// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the review path: an arbitrary body through decode, evaluation and encode
// for both webhooks, as the server runs it, with invariants on the answer; and its first bytes
// through the stand-in made for a body that could not be held (server/unheld.h).
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/patch.h"
#include "policy/policy.h"
#include "tests/fuzz/fuzz_util.h"
#include "server/admit.h"
#include "server/review.h"
#include "server/unheld.h"

// The shipped policy's shape, with an exclusion and a warn rule so every branch can be reached.
static const char POLICY[] = "apiVersion: tableguard.io/v1\n"
                             "kind: ProtectionPolicy\n"
                             "metadata:\n"
                             "  name: fuzz\n"
                             "spec:\n"
                             "  components:\n"
                             "    types: [aws-dynamodb-kro]\n"
                             "    tableNameFrom: properties.tableName\n"
                             "  trait:\n"
                             "    type: dynamodb-protection-kro\n"
                             "    defaults:\n"
                             "      deletionProtection: true\n"
                             "      pointInTimeRecovery: true\n"
                             "  exclude:\n"
                             "    namespaces: [kube-system]\n"
                             "    users: [\"system:serviceaccount:kube-system:*\"]\n"
                             "    groups: [\"system:masters\"]\n"
                             "  resources:\n"
                             "    - apiVersion: dynamodb.services.k8s.aws/v1alpha1\n"
                             "      kind: Table\n"
                             "      tableNameFrom: spec.tableName\n"
                             "      deletionProtectionFrom: spec.deletionProtectionEnabled\n"
                             "      pointInTimeRecoveryFrom: "
                             "spec.continuousBackups.pointInTimeRecoveryEnabled\n"
                             "    - apiVersion: kro.run/v1alpha1\n"
                             "      kind: DynamoDBTable\n"
                             "      tableNameFrom: spec.tableName\n"
                             "      deletionProtectionFrom: spec.deletionProtectionEnabled\n"
                             "      pointInTimeRecoveryFrom: spec.pointInTimeRecoveryEnabled\n"
                             "  rules:\n"
                             "    - name: prod-deletion-protection\n"
                             "      tables: [\"*-prod\"]\n"
                             "      require:\n"
                             "        deletionProtection: true\n"
                             "      action: deny\n"
                             "      message: \"{application}/{component}: {table} breaks {rule}\"\n"
                             "    - name: prod-point-in-time-recovery\n"
                             "      tables: [\"*-prod\"]\n"
                             "      require:\n"
                             "        pointInTimeRecovery: true\n"
                             "      action: warn\n"
                             "    - name: staging-audit\n"
                             "      tables: [\"*-staging\"]\n"
                             "      namespaces: [\"team-*\"]\n"
                             "      require:\n"
                             "        deletionProtection: true\n"
                             "      action: audit\n"
                             "    - name: prod-tables-are-kept\n"
                             "      tables: [\"*-prod\"]\n"
                             "      forbid: [remove, rename, delete]\n"
                             "    - name: staging-tables-are-kept\n"
                             "      tables: [\"*-staging\"]\n"
                             "      forbid: [remove]\n"
                             "      action: warn\n";

// What the API server demands of every 200 answer (DESIGN.md section 4).
static void
check_answer(enum admit_webhook w, const struct admit_result *res)
{
    check(res->body != NULL && strlen(res->body) == res->body_len);
    cJSON *out = cJSON_Parse(res->body);
    check(out != NULL);
    if (res->status == 400) {
        check(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(out, "error")));
        check(res->record.buf == NULL);
        cJSON_Delete(out);
        return;
    }
    check(res->status == 200 && res->record.buf != NULL);
    // The record is the text cJSON would print for its members: it parses, and prints again to
    // the same bytes.
    cJSON *record = cJSON_ParseWithLength(res->record.buf, res->record.len);
    check(cJSON_IsObject(record));
    char *again = cJSON_PrintUnformatted(record);
    check(again != NULL && strcmp(again, res->record.buf) == 0);
    cJSON_free(again);
    cJSON_Delete(record);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(out, "response");
    check(cJSON_IsObject(r));
    check(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r, "uid")));
    const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(r, "allowed");
    check(cJSON_IsBool(allowed));
    const cJSON *patch = cJSON_GetObjectItemCaseSensitive(r, "patch");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(r, "patchType");
    check((patch == NULL) == (type == NULL));
    check(w == ADMIT_MUTATE || patch == NULL);
    // A review that cannot be read faithfully is never let through unjudged.
    check(res->ev.skip != EVAL_UNREADABLE || cJSON_IsFalse(allowed));
    if (cJSON_IsFalse(allowed)) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(r, "status"), "message");
        check(cJSON_IsString(msg));
        for (const char *s = msg->valuestring; *s; s++)
            check((unsigned char)*s >= 0x20 && *s != 0x7f);
        check(strcasestr(msg->valuestring, "immutable") == NULL); // Flux's force mode acts on it
    }
    const cJSON *warnings = cJSON_GetObjectItemCaseSensitive(r, "warnings"), *wi;
    cJSON_ArrayForEach(wi, warnings)
    {
        check(cJSON_IsString(wi) && strlen(wi->valuestring) < 120);
        check(strcasestr(wi->valuestring, "immutable") == NULL);
        for (const char *s = wi->valuestring; *s; s++)
            check((unsigned char)*s >= 0x20 && *s != 0x7f);
    }
    cJSON_Delete(out);
}

// The body's first n bytes as the server keeps them of a body it could not hold: a stand-in
// is answered like any review, and carries the whole body's uid when the whole body is one.
static void
check_unheld(const struct policy *policy, const char *body, size_t size, size_t n)
{
    size_t len;
    char err[160];
    char *stand_in = unheld_review(body, n, &len, err, sizeof err);
    if (stand_in == NULL) {
        check(err[0] != '\0');
        return;
    }
    check(strlen(stand_in) == len);
    struct review_request whole;
    bool is_review = review_decode(body, size, &whole, err, sizeof err) == 0;
    struct admit_unheld u = {.bytes = size + 1, .why = "--body-memory (1 bytes) was in use"};
    for (int w = ADMIT_MUTATE; w <= ADMIT_VALIDATE; w++) {
        struct admit_result res;
        admit_handle_unheld(policy, NULL, 0, (enum admit_webhook)w, stand_in, len, &u, true, &res);
        check(res.status == 200); // the stand-in is a review: it was decoded to be made
        check_answer((enum admit_webhook)w, &res);
        check(!is_review || strcmp(res.req.uid, whole.uid) == 0);
        check(strstr(res.record.buf, ",\"notHeld\":{\"bytes\":") != NULL);
        admit_result_free(&res);
    }
    review_request_free(&whole);
    free(stand_in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    review_init(); // cheap, and what main does before serving
    const struct policy *policy = policy_once(POLICY, sizeof POLICY - 1);
    for (int w = ADMIT_MUTATE; w <= ADMIT_VALIDATE; w++) {
        struct admit_result res;
        admit_handle(policy, (enum admit_webhook)w, (const char *)data, size, true, &res);
        check_answer((enum admit_webhook)w, &res);
        // A patch that does not apply is a hard error for the user: every patch must.
        if (w == ADMIT_MUTATE && res.ev.patch != NULL) {
            cJSON *copy = cJSON_Duplicate(res.req.object, 1);
            char err[256];
            check(copy != NULL && patch_apply(copy, res.ev.patch, err, sizeof err) == 0);
            cJSON_Delete(copy);
        }
        admit_result_free(&res);
    }
    // Cut where a byte of the input says, and whole.
    check_unheld(policy, (const char *)data, size, size > 0 ? data[0] * size / 256 : 0);
    check_unheld(policy, (const char *)data, size, size);
    char arg[8] = {0};
    memcpy(arg, data, size < sizeof arg - 1 ? size : sizeof arg - 1);
    check(unheld_timeout(arg) <= 9999);
    return 0;
}
