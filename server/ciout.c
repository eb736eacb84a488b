// SPDX-License-Identifier: Apache-2.0
// JUnit XML and SARIF 2.1.0 for CI. Both are renderings of the results the commands already
// build as JSON, so the text, JSON, JUnit and SARIF outputs cannot disagree.
#include "server/ciout.h"
#include "util/jsonr.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

// XML 1.0 text or attribute value: escapes markup and drops the control characters XML 1.0
// cannot carry at all.
static void
xml(FILE *out, const char *s)
{
    for (; s != NULL && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '<')
            fputs("&lt;", out);
        else if (c == '>')
            fputs("&gt;", out);
        else if (c == '&')
            fputs("&amp;", out);
        else if (c == '"')
            fputs("&quot;", out);
        else if (c == '\n' || c == '\t')
            fprintf(out, "&#%d;", c);
        else if (c >= 0x20 || c == '\r')
            fputc(c, out);
    }
}

static int
count(const cJSON *cases, const char *suite, const char *key)
{
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        if (suite != NULL &&
            (json_str(c, "suite") == NULL || strcmp(json_str(c, "suite"), suite) != 0))
            continue;
        n += key == NULL || cJSON_GetObjectItemCaseSensitive(c, key) != NULL;
    }
    return n;
}

static void
junit_case(FILE *out, const cJSON *c)
{
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(c, "line");
    fputs("    <testcase name=\"", out);
    xml(out, json_str(c, "name"));
    fputs("\" classname=\"", out);
    xml(out, json_str(c, "classname"));
    fputc('"', out);
    if (json_str(c, "file") != NULL) {
        fputs(" file=\"", out);
        xml(out, json_str(c, "file"));
        fputc('"', out);
    }
    if (cJSON_IsNumber(line) && line->valueint > 0)
        fprintf(out, " line=\"%d\"", line->valueint);
    fputs(">\n", out);
    const char *kinds[] = {"error", "failure"};
    for (size_t k = 0; k < 2; k++) {
        const char *text = json_str(c, kinds[k]);
        if (text == NULL)
            continue;
        fprintf(out, "      <%s message=\"", kinds[k]);
        xml(out, text);
        fputs("\" type=\"", out);
        xml(out, k == 0                       ? "error"
                 : json_str(c, "failureType") ? json_str(c, "failureType")
                                              : "failure");
        fputs("\">", out);
        xml(out, text);
        fprintf(out, "</%s>\n", kinds[k]);
    }
    if (json_str(c, "output") != NULL) {
        fputs("      <system-out>", out);
        xml(out, json_str(c, "output"));
        fputs("</system-out>\n", out);
    }
    fputs("    </testcase>\n", out);
}

int
ciout_junit(const cJSON *cases, const char *name, FILE *out)
{
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"", out);
    xml(out, name);
    fprintf(out, "\" tests=\"%d\" failures=\"%d\" errors=\"%d\">\n", count(cases, NULL, NULL),
            count(cases, NULL, "failure"), count(cases, NULL, "error"));
    const char *open = NULL;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        const char *suite = json_str(c, "suite") ? json_str(c, "suite") : "";
        if (open == NULL || strcmp(open, suite) != 0) {
            if (open != NULL)
                fputs("  </testsuite>\n", out);
            fputs("  <testsuite name=\"", out);
            xml(out, suite);
            fprintf(out, "\" tests=\"%d\" failures=\"%d\" errors=\"%d\">\n",
                    count(cases, suite, NULL), count(cases, suite, "failure"),
                    count(cases, suite, "error"));
            open = suite;
        }
        junit_case(out, c);
    }
    if (open != NULL)
        fputs("  </testsuite>\n", out);
    fputs("</testsuites>\n", out);
    return ferror(out) ? -1 : 0;
}

// ---- SARIF ---------------------------------------------------------------------------------

static const char *
level(const char *action)
{
    return action == NULL                ? "error"
           : strcmp(action, "deny") == 0 ? "error"
           : strcmp(action, "warn") == 0 ? "warning"
                                         : "note";
}

static cJSON *
text_message(const char *text)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "text", text ? text : "");
    return m;
}

static cJSON *
location(const char *file, int line, const char *logical)
{
    cJSON *loc = cJSON_CreateObject();
    cJSON *phys = cJSON_AddObjectToObject(loc, "physicalLocation");
    cJSON *art = cJSON_AddObjectToObject(phys, "artifactLocation");
    cJSON_AddStringToObject(art, "uri", file);
    if (line > 0)
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(phys, "region"), "startLine", line);
    if (logical != NULL) {
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "name", logical);
        cJSON_AddStringToObject(l, "kind", "object");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(loc, "logicalLocations"), l);
    }
    return loc;
}

static int
rule_index(const struct policy_spec *s, const char *name)
{
    for (size_t i = 0; name != NULL && i < s->rule_count; i++)
        if (strcmp(s->rules[i].name, name) == 0)
            return (int)i;
    return -1;
}

static cJSON *
driver(const struct policy_spec *s)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "name", "tableguard");
    cJSON_AddStringToObject(d, "version", TG_VERSION);
    cJSON *rules = cJSON_AddArrayToObject(d, "rules");
    for (size_t i = 0; i < s->rule_count; i++) {
        const struct policy_rule *r = &s->rules[i];
        cJSON *rd = cJSON_CreateObject();
        cJSON_AddStringToObject(rd, "id", r->name);
        char text[256];
        snprintf(text, sizeof text, "policy rule %s (%s)", r->name, policy_action_name(r->action));
        cJSON_AddItemToObject(rd, "shortDescription", text_message(text));
        cJSON_AddStringToObject(cJSON_AddObjectToObject(rd, "defaultConfiguration"), "level",
                                level(policy_action_name(r->action)));
        cJSON_AddItemToArray(rules, rd);
    }
    return d;
}

// The results of one manifest: a rule hit each, or its error.
static void
manifest_results(cJSON *out, const cJSON *res, const struct policy_spec *s)
{
    const char *file = json_str(res, "source") ? json_str(res, "source") : "";
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(res, "line");
    int doc_line = cJSON_IsNumber(line) ? line->valueint : 0;
    char logical[300];
    snprintf(logical, sizeof logical, "%s/%s",
             json_str(res, "kind") ? json_str(res, "kind") : "object",
             json_str(res, "name") ? json_str(res, "name") : "");
    if (json_str(res, "error") != NULL) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "ruleId", "manifest-error");
        cJSON_AddStringToObject(r, "level", "error");
        cJSON_AddItemToObject(r, "message", text_message(json_str(res, "error")));
        cJSON_AddItemToArray(cJSON_AddArrayToObject(r, "locations"),
                             location(file, doc_line, NULL));
        cJSON_AddItemToArray(out, r);
        return;
    }
    const cJSON *hit;
    cJSON_ArrayForEach(hit, cJSON_GetObjectItemCaseSensitive(res, "rules"))
    {
        const cJSON *hl = cJSON_GetObjectItemCaseSensitive(hit, "line");
        cJSON *r = cJSON_CreateObject();
        const char *name = json_str(hit, "name");
        cJSON_AddStringToObject(r, "ruleId", name ? name : "");
        int idx = rule_index(s, name);
        if (idx >= 0)
            cJSON_AddNumberToObject(r, "ruleIndex", idx);
        cJSON_AddStringToObject(r, "level", level(json_str(hit, "action")));
        cJSON_AddItemToObject(r, "message", text_message(json_str(hit, "message")));
        char comp[700];
        snprintf(comp, sizeof comp, "%s/%s", logical,
                 json_str(hit, "component") ? json_str(hit, "component") : "");
        cJSON_AddItemToArray(
            cJSON_AddArrayToObject(r, "locations"),
            location(file, cJSON_IsNumber(hl) && hl->valueint > 0 ? hl->valueint : doc_line, comp));
        cJSON_AddItemToArray(out, r);
    }
}

int
ciout_sarif(const cJSON *results, const struct policy *p, int exit_code, FILE *out)
{
    const struct policy_spec *s = policy_spec(p);
    cJSON *log = cJSON_CreateObject();
    cJSON_AddStringToObject(log, "version", "2.1.0");
    cJSON *run = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(log, "runs"), run);
    cJSON_AddItemToObject(cJSON_AddObjectToObject(run, "tool"), "driver", driver(s));
    cJSON *inv = cJSON_CreateObject();
    cJSON_AddBoolToObject(inv, "executionSuccessful", exit_code != 2);
    cJSON_AddNumberToObject(inv, "exitCode", exit_code);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(run, "invocations"), inv);
    cJSON *rs = cJSON_AddArrayToObject(run, "results");
    const cJSON *res;
    cJSON_ArrayForEach(res, results) manifest_results(rs, res, s);
    char *text = cJSON_Print(log);
    int rc = text != NULL && fputs(text, out) >= 0 && fputc('\n', out) != EOF ? 0 : -1;
    free(text);
    cJSON_Delete(log);
    return rc;
}
