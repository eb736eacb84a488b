// SPDX-License-Identifier: Apache-2.0
// Diagnostics as JSON lines on stderr: {"time","level","msg", fields...}. Thread-safe.
#ifndef TABLEGUARD_LOG_H
#define TABLEGUARD_LOG_H

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARN, LOGL_ERROR };

// Parses "debug", "info", "warn" or "error". Returns 0, or -1 when unknown.
int log_level_parse(const char *s, enum log_level *out);
void log_set_level(enum log_level level);

// Writes one line when `level` is at or above the configured level. The variable arguments are
// pairs of field name and string value, ending with NULL.
void log_msg(enum log_level level, const char *msg, ...) __attribute__((sentinel));

#endif
