// SPDX-License-Identifier: Apache-2.0
// A slot holding the current version of a reference-counted object (the policy, the serving
// certificate). Readers take a reference and finish on the version they took while a reload
// swaps in the next one.
#ifndef TABLEGUARD_HOLDER_H
#define TABLEGUARD_HOLDER_H

struct holder_type {
    void *(*ref)(void *obj);
    void (*unref)(void *obj);
};

struct holder;

// Creates a slot holding `obj` (its reference moves into the slot; obj may be NULL).
struct holder *holder_new(const struct holder_type *type, void *obj);
// Returns the current object with a reference the caller drops with type->unref; NULL if empty.
void *holder_get(struct holder *h);
// Replaces the current object with `obj` (its reference moves in); the old one is released once
// its last reader drops it.
void holder_set(struct holder *h, void *obj);
// Releases the slot and its reference; holder_free(NULL) is a no-op.
void holder_free(struct holder *h);

#endif
