// SPDX-License-Identifier: Apache-2.0
// The audit log's hash chain, shared by the writer (server/audit.c) and the verifier
// (server/verify.c): the key, the digest of a line and the parsing of a line's chain members.
#ifndef TABLEGUARD_CHAIN_H
#define TABLEGUARD_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

// A hash as hex digits.
#define CHAIN_HASH_HEX 64
// The fixed tail of every line: ,"hash":"<64 hex>"}
#define CHAIN_HASH_PREFIX ",\"hash\":\""
#define CHAIN_HASH_TAIL_LEN (sizeof(CHAIN_HASH_PREFIX) - 1 + CHAIN_HASH_HEX + 2)
// The "prev" of seq 1.
#define CHAIN_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

// How lines are hashed. Zero-initialise it; chain_free releases what it holds.
struct chain {
    unsigned char *key; // HMAC-SHA256 key; NULL: plain SHA-256
    size_t key_len;
};

// The chain members of one line.
struct chain_record {
    uint64_t seq;
    char prev[CHAIN_HASH_HEX + 1];
    char hash[CHAIN_HASH_HEX + 1];
    char event[16];
};

// Formats into err; nothing when err is NULL or errlen 0.
void chain_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Switches c to HMAC-SHA256 with the key in the file at path (16 to 4096 bytes, a trailing
// newline not counted). Returns 0, or -1 with err filled.
int chain_load_key(struct chain *c, const char *path, char *err, size_t errlen);

// Releases what c holds; c is a plain SHA-256 chain again.
void chain_free(struct chain *c);

// Digest of data as 64 lowercase hex digits: HMAC-SHA256 with a key, else SHA-256. Returns 0 or
// -1. Keeps no state between calls.
int chain_digest(struct chain *c, const char *data, size_t len, char out[CHAIN_HASH_HEX + 1]);

// Whether s (n bytes) is 64 lowercase hex digits.
bool chain_is_hex64(const char *s, size_t n);

// Splits a line (without its newline) into the hashed body and the hash, and reads the chain
// members. The body is the line with its trailing ,"hash":"..." member removed; it is written
// into line itself (len - CHAIN_HASH_TAIL_LEN + 1 bytes, the closing brace moved up). Returns 0, or
// -1 with a message for the reader.
int chain_parse_line(char *line, size_t len, struct chain_record *p, size_t *body_len, char *err,
                     size_t errlen);

// The first half of chain_parse_line: checks the hash member at the end of the line, copies it
// into p->hash (the rest of p zeroed) and cuts it off (see chain_parse_line). Returns 0, or -1
// with err filled.
int chain_split_line(char *line, size_t len, struct chain_record *p, size_t *body_len, char *err,
                     size_t errlen);

// The second half: reads seq, prev and event of a parsed body j (NULL when it did not parse) into
// p, leaving p->hash. Returns 0, or -1 with err filled when j is no object with a seq of 1 to
// 2^53 and a prev of 64 hex digits.
int chain_read_members(const cJSON *j, struct chain_record *p, char *err, size_t errlen);

/* chain_parse_line that also hands over the parsed body in *json (the caller frees it with
 * cJSON_Delete; NULL on failure), so a reader of whole records parses each line once. */
int chain_parse_record(char *line, size_t len, struct chain_record *p, size_t *body_len,
                       cJSON **json, char *err, size_t errlen);

// The first record of a file, as the readers of several files see it before walking them.
struct chain_head {
    bool found; // the first line is a record with its chain members (its hash is not checked)
    struct chain_record rec;
    char after[16]; // its "after" member, "" when it has none
};

// Reads the first line of a file (without its newline) into h; line is modified.
void chain_read_head(char *line, size_t len, struct chain_head *h);

// Whether h is a start record with "after":"reopen": the server reopened the log there.
bool chain_head_reopen(const struct chain_head *h);

/*
 * Whether the file name, whose last record is last, may end there when the file next
 * (its head) follows: it was rotated away (last is a rotate record), or the server reopened the
 * log (next begins with a start record with "after":"reopen" at seq last+1 whose prev is last's
 * hash). Returns 0, or -1 with a message for the reader in err (it names the truncation or the
 * gap).
 */
int chain_file_end(const struct chain_record *last, const char *name, const struct chain_head *next,
                   const char *next_name, char *err, size_t errlen);

#endif
