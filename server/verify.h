// SPDX-License-Identifier: Apache-2.0
// `tableguard audit verify`: checks audit log files against their hash chain.
#ifndef TABLEGUARD_VERIFY_H
#define TABLEGUARD_VERIFY_H

// CLI: `tableguard audit verify [--hmac-key FILE] [--checkpoint SEQ[:HASH]]... [--sealed]
// FILE...` with argv[0] == "verify". Files may be given in any order; they are sorted by their
// first seq. Prints "FILE: OK (N records)" per file and a chain summary, or the first broken
// record as "FILE:LINE: message". Returns the exit status: 0 intact, 1 broken, 2 usage or an
// unreadable file.
int verify_main(int argc, char **argv);

#endif
