// SPDX-License-Identifier: Apache-2.0
// The AdmissionReview v1 codec: decodes what the API server sends and encodes what it accepts.
//
// Ownership: review_decode parses into req->root, and every pointer in req points into it;
// review_request_free releases it. The tree is read-only: copy an item (cJSON_Duplicate) to
// change or keep it. review_encode returns a malloc'd string the caller frees.
#ifndef TABLEGUARD_REVIEW_H
#define TABLEGUARD_REVIEW_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

// The operation of a request, as an index: metrics and audit carry it without comparing strings.
enum review_operation {
    REVIEW_CREATE,
    REVIEW_UPDATE,
    REVIEW_DELETE,
    REVIEW_CONNECT,
    REVIEW_UNKNOWN, // not (yet) decoded: a body that is not a review
    REVIEW_OPERATION_COUNT
};

// "CREATE", "UPDATE", "DELETE", "CONNECT" or "unknown" (static).
const char *review_operation_name(enum review_operation op);

struct review_request {
    cJSON *root;                // allocated in `arena` when that is set: never detach its items
    struct review_chunk *arena; // private to review.c
    const char *uid;
    const char *operation;    // CREATE, UPDATE, DELETE or CONNECT
    enum review_operation op; // the same; REVIEW_UNKNOWN until decoded
    const char *namespace;    // "" when absent
    const char *name;         // "" when absent
    const char *username;     // "" when absent
    const char **groups;      // owned array of borrowed strings
    size_t group_count;
    bool dry_run;
    const char *group, *version, *resource; // request.resource, "" when absent
    const cJSON *object;                    // NULL when absent; may be JSON null or any other type
    const cJSON *old_object;                // likewise
    // Why the review cannot be judged faithfully (an escaped NUL in a string, nesting deeper
    // than the JSON library holds, whose containers are null in the tree), or NULL. Owned.
    char *unreadable;
    bool marked, deep; // private to review.c
    char *uid_copy;    // likewise
};

// Installs the decoder's allocator into cJSON, process-wide: inside review_decode cJSON
// allocates from one arena per body, released at once by review_request_free; elsewhere it
// allocates with xmalloc, so a cJSON call never returns NULL for want of memory. Call it once,
// before any thread starts (main does; so do the tests, fuzzers and benchmarks that decode).
// Without it decoding still works, with cJSON's own malloc and a free per node.
void review_init(void);

// Decodes an AdmissionReview v1 request body. Returns 0, or -1 with a short reason in err when
// the body is not an AdmissionReview v1 request the API server could have sent (the caller
// answers 400). A review that is one but cannot be read faithfully decodes, with the reason in
// req->unreadable. `req` needs review_request_free either way.
int review_decode(const char *body, size_t len, struct review_request *req, char *err,
                  size_t errlen);
void review_request_free(struct review_request *req);

struct review_response {
    const char *uid;
    bool allowed;
    const cJSON *patch;     // JSON Patch operations, or NULL; never given for /validate
    const char *patch_json; // the same operations already printed: used instead of patch
    const char *message;    // with allowed == false: the denial, one line
    char *const *warnings;
    size_t warning_count;
    const char *audit_decision;    // auditAnnotations "decision"
    const char *audit_rules;       // auditAnnotations "rules", comma separated, or NULL
    const char *audit_request_uid; // auditAnnotations "request-uid", or NULL to leave it out
    bool audit_patched;            // auditAnnotations "patched": "true"
    const char *audit_exceptions;  // auditAnnotations "exceptions": those that waived a rule
};

// Encodes the response AdmissionReview. Returns a NUL-terminated string; *len gets its length.
char *review_encode(const struct review_response *r, size_t *len);

// Encodes {"error": message} for an HTTP error answer.
char *review_error_body(const char *message, size_t *len);

// True when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code points past
// U+10FFFF): the check every body gets, for other readers of outside JSON to share.
bool review_utf8_valid(const char *s, size_t n);

#endif
