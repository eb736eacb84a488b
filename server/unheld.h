// SPDX-License-Identifier: Apache-2.0
// A review whose body the server could not hold (no room under --body-memory in time): read
// through keeping only its first bytes, from which a stand-in review is made, so it is still
// answered with its uid. The API server writes request.uid, kind, resource, name, namespace,
// operation and userInfo before object, so they are all in the first bytes.
#ifndef TABLEGUARD_UNHELD_H
#define TABLEGUARD_UNHELD_H

#include <stddef.h>

// Bytes kept of a body read through.
#define UNHELD_PREFIX (64 * 1024)

// The seconds of a `timeout` query argument as the API server writes it ("10s": its webhook's
// timeoutSeconds), or 0 when `value` is NULL or not of that shape.
unsigned unheld_timeout(const char *value);

// From the first n bytes of a body longer than that, a stand-in AdmissionReview: the request's
// uid, kind, resource, name, namespace, operation, userInfo and dryRun as far as they arrived,
// with a stub object (and oldObject) of the request's kind and name in place of the ones that
// did not. The prefix is cut after its last complete member and its open objects and arrays are
// closed, then decoded as any review is (UTF-8, escaped NULs, duplicate keys). Returns the
// stand-in's JSON text (the caller frees it, *len its length), or NULL with the reason in err
// when the prefix does not decode as an AdmissionReview with a uid.
char *unheld_review(const char *prefix, size_t n, size_t *len, char *err, size_t errlen);

#endif
