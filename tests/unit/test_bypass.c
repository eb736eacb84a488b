// SPDX-License-Identifier: Apache-2.0
// Unit tests for policy/bypass: override policies and patch traits that switch protection off.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/bypass.h"
#include "tests/unit/minimal_policy.h"

// Judges the first table of an Application with one aws-dynamodb-kro component "orders" carrying
// `traits` (JSON array text), and `policies` (JSON array text).
static struct bypass_result
judge(const char *traits, const char *policies)
{
    char buf[8192];
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"core.oam.dev/v1beta1\",\"kind\":\"Application\",\"metadata\":{"
             "\"name\":\"shop\"},\"spec\":{\"components\":[{\"name\":\"orders\",\"type\":"
             "\"aws-dynamodb-kro\",\"properties\":{\"tableName\":\"orders-prod\"},\"traits\":%s}],"
             "\"policies\":%s}}",
             traits, policies);
    cJSON *app = cJSON_Parse(buf);
    assert_non_null(app);
    struct policy *p = load();
    struct transition_slots slots;
    transition_slots(policy_spec(p), app, &slots);
    assert_int_equal(slots.count, 1);
    struct bypass_result r;
    bypass_weakest(policy_spec(p), app, &slots.items[0], &r);
    transition_slots_free(&slots);
    cJSON_Delete(app);
    policy_unref(p);
    return r;
}

#define DP POLICY_DELETION_PROTECTION
#define OVERRIDE(body) "[{\"name\":\"ov\",\"type\":\"override\",\"properties\":" body "}]"

static void
override_policies(void **state)
{
    (void)state;
    struct bypass_result r = judge("[]", "[]");
    assert_int_equal(r.value[DP], BYPASS_NONE);
    assert_int_equal(r.value[POLICY_PITR], BYPASS_NONE);
    // Properties false on the trait, for the component by name.
    r = judge("[]", OVERRIDE("{\"components\":[{\"name\":\"orders\",\"traits\":[{\"type\":"
                             "\"dynamodb-protection-kro\",\"properties\":{\"deletionProtection\":"
                             "false}}]}]}"));
    assert_int_equal(r.value[DP], BYPASS_OFF);
    assert_int_equal(r.value[POLICY_PITR], BYPASS_NONE);
    assert_non_null(strstr(r.why[DP], "override policy \"ov\" sets deletionProtection: false"));
    // By type, with disable: both off.
    r = judge("[]", OVERRIDE("{\"components\":[{\"type\":\"aws-dynamodb-kro\",\"traits\":[{"
                             "\"type\":\"dynamodb-protection-kro\",\"disable\":true}]}]}"));
    assert_int_equal(r.value[DP], BYPASS_OFF);
    assert_int_equal(r.value[POLICY_PITR], BYPASS_OFF);
    assert_non_null(strstr(r.why[DP], "disables the dynamodb-protection-kro trait"));
    // Another component, another type, or not in the selector: nothing.
    r = judge("[]", OVERRIDE("{\"components\":[{\"name\":\"other\",\"traits\":[{\"type\":"
                             "\"dynamodb-protection-kro\",\"disable\":true}]},{\"type\":\"web\","
                             "\"traits\":[{\"type\":\"dynamodb-protection-kro\",\"disable\":true}]}"
                             "]}"));
    assert_int_equal(r.value[DP], BYPASS_NONE);
    r = judge("[]", OVERRIDE("{\"selector\":[\"web\"],\"components\":[{\"traits\":[{\"type\":"
                             "\"dynamodb-protection-kro\",\"disable\":true}]}]}"));
    assert_int_equal(r.value[DP], BYPASS_NONE);
    // True, or an unrelated trait: nothing; the weakest of several overrides counts.
    r = judge("[]", "[{\"name\":\"a\",\"type\":\"override\",\"properties\":{\"components\":[{"
                    "\"traits\":[{\"type\":\"dynamodb-protection-kro\",\"properties\":{"
                    "\"deletionProtection\":true}}]}]}},{\"name\":\"b\",\"type\":\"override\","
                    "\"properties\":{\"components\":[{\"name\":\"ord*\",\"traits\":[{\"type\":"
                    "\"dynamodb-protection-kro\",\"properties\":{\"pointInTimeRecovery\":false}}]"
                    "}]}}]");
    assert_int_equal(r.value[DP], BYPASS_NONE);
    assert_int_equal(r.value[POLICY_PITR], BYPASS_OFF);
    assert_non_null(strstr(r.why[POLICY_PITR], "override policy \"b\""));
    // Shapes that cannot be judged are errors for the tables they may name.
    r = judge("[]", OVERRIDE("{\"components\":{\"name\":\"orders\"}}"));
    assert_int_equal(r.value[DP], BYPASS_ERROR);
    assert_non_null(strstr(r.why[DP], "no list of components"));
    r = judge("[]", OVERRIDE("{\"components\":[{\"name\":7}]}"));
    assert_int_equal(r.value[DP], BYPASS_ERROR);
    r = judge("[]", OVERRIDE("{\"components\":[{\"traits\":[{\"type\":\"dynamodb-protection-kro\","
                             "\"properties\":{\"deletionProtection\":\"false\"}}]}]}"));
    assert_int_equal(r.value[DP], BYPASS_ERROR);
    assert_int_equal(r.value[POLICY_PITR], BYPASS_NONE);
    r = judge("[]", OVERRIDE("{\"components\":[{\"traits\":[{\"type\":\"dynamodb-protection-kro\","
                             "\"disable\":\"yes\"}]}]}"));
    assert_int_equal(r.value[DP], BYPASS_ERROR);
    // An error outranks an off.
    r = judge("[]", "[{\"name\":\"a\",\"type\":\"override\",\"properties\":{\"components\":[{"
                    "\"traits\":[{\"type\":\"dynamodb-protection-kro\",\"disable\":true}]}]}},"
                    "{\"name\":\"b\",\"type\":\"override\",\"properties\":[]}]");
    assert_int_equal(r.value[DP], BYPASS_ERROR);
    assert_non_null(strstr(r.why[DP], "override policy \"b\""));
}

static void
patch_traits(void **state)
{
    (void)state;
    struct bypass_result r;
    r = judge("[{\"type\":\"json-patch\",\"properties\":{\"operations\":[{\"op\":\"replace\","
              "\"path\":\"/spec/deletionProtectionEnabled\",\"value\":false}]}}]",
              "[]");
    assert_int_equal(r.value[DP], BYPASS_OFF);
    assert_int_equal(r.value[POLICY_PITR], BYPASS_NONE);
    assert_non_null(strstr(r.why[DP], "component \"orders\" has a json-patch operation 1 that "
                                      "sets /spec/deletionProtectionEnabled to false"));
    r = judge("[{\"type\":\"json-patch\",\"properties\":{\"operations\":[{\"op\":\"remove\","
              "\"path\":\"/spec/pointInTimeRecoveryEnabled\"}]}}]",
              "[]");
    assert_int_equal(r.value[POLICY_PITR], BYPASS_OFF);
    assert_int_equal(r.value[DP], BYPASS_NONE);
    // Replacing the whole spec without the fields removes both.
    r = judge("[{\"type\":\"json-patch\",\"properties\":{\"operations\":[{\"op\":\"add\","
              "\"path\":\"/spec\",\"value\":{\"tableName\":\"x\",\"deletionProtectionEnabled\":"
              "true}}]}}]",
              "[]");
    assert_int_equal(r.value[DP], BYPASS_NONE);
    assert_int_equal(r.value[POLICY_PITR], BYPASS_OFF);
    // Other paths, true values and tests: nothing; a string value and a copy: errors.
    r = judge("[{\"type\":\"json-patch\",\"properties\":{\"operations\":[{\"op\":\"add\",\"path\":"
              "\"/spec/deletionProtectionEnabledX\",\"value\":false},{\"op\":\"test\",\"path\":"
              "\"/spec/deletionProtectionEnabled\",\"value\":false},{\"op\":\"add\",\"path\":"
              "\"/spec/deletionProtectionEnabled\",\"value\":true}]}}]",
              "[]");
    assert_int_equal(r.value[DP], BYPASS_NONE);
    r = judge("[{\"type\":\"json-patch\",\"properties\":{\"operations\":[{\"op\":\"add\",\"path\":"
              "\"/spec/deletionProtectionEnabled\",\"value\":\"false\"},{\"op\":\"copy\",\"from\":"
              "\"/x\",\"path\":\"/spec/pointInTimeRecoveryEnabled\"}]}}]",
              "[]");
    assert_int_equal(r.value[DP], BYPASS_ERROR);
    assert_int_equal(r.value[POLICY_PITR], BYPASS_ERROR);
    r = judge("[{\"type\":\"json-patch\",\"properties\":{\"operations\":{}}}]", "[]");
    assert_int_equal(r.value[DP], BYPASS_ERROR);
    // json-merge-patch: false, null (delete), a null spec; and inside an override policy.
    r = judge("[{\"type\":\"json-merge-patch\",\"properties\":{\"spec\":{"
              "\"deletionProtectionEnabled\":false,\"pointInTimeRecoveryEnabled\":null}}}]",
              "[]");
    assert_int_equal(r.value[DP], BYPASS_OFF);
    assert_int_equal(r.value[POLICY_PITR], BYPASS_OFF);
    assert_non_null(strstr(r.why[POLICY_PITR], "deletes"));
    r = judge("[{\"type\":\"json-merge-patch\",\"properties\":{\"spec\":null}}]", "[]");
    assert_int_equal(r.value[DP], BYPASS_OFF);
    r = judge("[{\"type\":\"json-merge-patch\",\"properties\":{\"spec\":{\"tableName\":\"x\"}}}]",
              "[]");
    assert_int_equal(r.value[DP], BYPASS_NONE);
    r = judge("[{\"type\":\"json-merge-patch\",\"properties\":\"spec\"}]", "[]");
    assert_int_equal(r.value[DP], BYPASS_ERROR);
    r = judge("[]", OVERRIDE("{\"components\":[{\"name\":\"orders\",\"traits\":[{\"type\":"
                             "\"json-merge-patch\",\"properties\":{\"spec\":{"
                             "\"deletionProtectionEnabled\":false}}}]}]}"));
    assert_int_equal(r.value[DP], BYPASS_OFF);
    assert_non_null(strstr(r.why[DP], "override policy \"ov\" has a json-merge-patch trait"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(override_policies),
        cmocka_unit_test(patch_traits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
