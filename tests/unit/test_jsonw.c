// SPDX-License-Identifier: Apache-2.0
// Unit tests for util/jsonw: every value is the text cJSON prints for it, so records written
// directly read back as records printed from a tree did.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "util/jsonw.h"

// What cJSON prints for the string s.
static char *
cjson_string(const char *s)
{
    cJSON *j = cJSON_CreateString(s);
    assert_non_null(j);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    assert_non_null(out);
    return out;
}

static void
assert_str_as_cjson(const char *s)
{
    struct jsonw w = {0};
    jsonw_str(&w, s);
    char *want = cjson_string(s);
    assert_string_equal(w.buf, want);
    assert_int_equal(w.len, strlen(want));
    // And it reads back as the same bytes.
    cJSON *back = cJSON_Parse(w.buf);
    assert_true(cJSON_IsString(back));
    assert_string_equal(back->valuestring, s);
    cJSON_Delete(back);
    free(want);
    jsonw_free(&w);
}

// Every byte value but NUL, alone and between letters: control characters, quote, backslash,
// DEL and every byte >= 0x80 (which alone is not UTF-8; cJSON copies it as it is, and so does
// the writer: the decoder refuses bodies that are not UTF-8 before anything reaches a record).
static void
every_byte_is_escaped_as_cjson_escapes_it(void **state)
{
    (void)state;
    for (int c = 1; c < 256; c++) {
        char one[2] = {(char)c, 0};
        char mid[6] = {'a', (char)c, 'b', (char)c, (char)c, 0};
        assert_str_as_cjson(one);
        assert_str_as_cjson(mid);
        // At every offset of a longer string, so that words read eight bytes at a time meet it
        // in every lane, next to its neighbours' bytes too.
        for (int at = 0; at < 20; at++) {
            char run[28];
            memset(run, 'x', sizeof run - 1);
            run[sizeof run - 1] = '\0';
            run[at] = (char)c;
            run[at + 1] = (char)(c ^ 0x80 ? c ^ 0x80 : 1);
            assert_str_as_cjson(run);
        }
    }
    // Exactly these escapes, with lowercase hex.
    struct jsonw w = {0};
    jsonw_str(&w, "\"\\/\b\f\n\r\t\x01\x1f\x7f");
    assert_string_equal(w.buf, "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"");
    jsonw_free(&w);
}

// Non-ASCII text (UTF-8 of two, three and four bytes), invalid UTF-8 (a lone continuation byte,
// a truncated sequence, an overlong form, a surrogate) and long strings with escapes far apart.
static void
non_ascii_and_invalid_utf8_are_copied(void **state)
{
    (void)state;
    assert_str_as_cjson("orders-é-表-😀");
    assert_str_as_cjson("\x80 \xc3 \xe2\x82 \xc0\xaf \xed\xa0\x80 \xff\xfe");
    char big[5000];
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = i % 997 == 0 ? '\n' : i % 499 == 0 ? '"' : (char)('a' + i % 26);
    big[sizeof big - 1] = '\0';
    assert_str_as_cjson(big);
    assert_str_as_cjson("");
}

// NULL is "" (a string item without a value prints so) or null; numbers, booleans and raw text
// as they are; the buffer grows and stays NUL-terminated.
static void
values_and_growth(void **state)
{
    (void)state;
    struct jsonw w = {0};
    jsonw_lit(&w, "{\"a\":");
    jsonw_str(&w, NULL);
    jsonw_lit(&w, ",\"b\":");
    jsonw_str_or_null(&w, NULL);
    jsonw_lit(&w, ",\"c\":");
    jsonw_uint(&w, 0);
    jsonw_lit(&w, ",\"d\":");
    jsonw_uint(&w, 18446744073709551615u);
    jsonw_lit(&w, ",\"e\":");
    jsonw_bool(&w, true);
    jsonw_lit(&w, ",\"f\":");
    jsonw_bool(&w, false);
    jsonw_lit(&w, ",\"g\":");
    jsonw_uint(&w, 403);
    jsonw_lit(&w, "}");
    assert_string_equal(w.buf, "{\"a\":\"\",\"b\":null,\"c\":0,\"d\":18446744073709551615,"
                               "\"e\":true,\"f\":false,\"g\":403}");
    assert_int_equal(w.len, strlen(w.buf));
    cJSON *back = cJSON_Parse(w.buf);
    char *again = cJSON_PrintUnformatted(back);
    // cJSON prints a number past 2^53 as a double; every other member prints back the same.
    assert_non_null(strstr(again, "{\"a\":\"\",\"b\":null,\"c\":0,\"d\":"));
    assert_non_null(strstr(again, ",\"e\":true,\"f\":false,\"g\":403}"));
    free(again);
    cJSON_Delete(back);
    jsonw_free(&w);
    assert_null(w.buf);
    for (int i = 0; i < 100000; i++)
        jsonw_str(&w, "\x01");
    assert_int_equal(w.len, 100000 * 8);
    assert_int_equal(strlen(w.buf), w.len);
    jsonw_free(&w);
    jsonw_free(&w); // a no-op on an empty struct
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_byte_is_escaped_as_cjson_escapes_it),
        cmocka_unit_test(non_ascii_and_invalid_utf8_are_copied),
        cmocka_unit_test(values_and_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
