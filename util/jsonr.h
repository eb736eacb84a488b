// SPDX-License-Identifier: Apache-2.0
// Reading a cJSON tree: the lookups every reader of reviews, manifests and suites makes.
#ifndef TABLEGUARD_JSONR_H
#define TABLEGUARD_JSONR_H

#include <string.h>

#include <cjson/cJSON.h>

// o's member key (case-sensitive): exactly what cJSON_GetObjectItemCaseSensitive returns (the
// first member of that name; NULL when o or key is NULL, o has no such member, or the walk meets
// an item without a key first, as it does at once in an array). Inline, and each key's first
// byte is compared before strcmp is called: a review looks up about 140 keys, and the library
// call with a strcmp per member it passed was 3% of a 1-component review's instructions.
static inline cJSON *
json_get(const cJSON *o, const char *key)
{
    if (o == NULL || key == NULL)
        return NULL;
    cJSON *c = o->child;
    for (; c != NULL && c->string != NULL; c = c->next)
        if (c->string[0] == key[0] && strcmp(c->string, key) == 0)
            return c;
    return NULL;
}

// The string value of o's member key (case-sensitive), or NULL when o is not an object, has no
// such member, or the member is not a string.
const char *json_str(const cJSON *o, const char *key);

// How far json_prefetch reaches: more than a typical Application component's parsed subtree
// (about 2.7 KiB: 34 nodes of 64 bytes and their strings).
#define JSON_PREFETCH_BYTES 4096

// Asks the CPU to start loading the JSON_PREFETCH_BYTES from o on into its caches, without
// waiting for them. A decoded review's tree is allocated in parse order (server/review.c), so an
// item's members follow it in memory: a loop over a large array calls this for the next item
// while it reads the current one, and the next item's lookups, which walk its members pointer by
// pointer, then find them in the cache instead of waiting on memory at each step. Elsewhere it
// costs only the requests (one per 64-byte cache line). NULL is ignored.
static inline void
json_prefetch(const cJSON *o)
{
    if (o == NULL)
        return;
    for (int k = 0; k < JSON_PREFETCH_BYTES; k += 64)
        __builtin_prefetch((const char *)o + k);
}

#endif
