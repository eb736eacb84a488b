// SPDX-License-Identifier: Apache-2.0
// Diagnostics as JSON lines on stderr, one write(2) per line so threads never interleave.
#include "server/log.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = LOGL_INFO;
static const char *const NAMES[] = {"debug", "info", "warn", "error"};

int
log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, NAMES[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void
log_set_level(enum log_level level)
{
    atomic_store(&min_level, (int)level);
}

void
log_msg(enum log_level level, const char *msg, ...)
{
    if ((int)level < atomic_load(&min_level))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);

    cJSON *line = cJSON_CreateObject();
    if (line == NULL)
        return;
    cJSON_AddStringToObject(line, "time", when);
    cJSON_AddStringToObject(line, "level", NAMES[level]);
    cJSON_AddStringToObject(line, "msg", msg);
    va_list ap;
    va_start(ap, msg);
    for (const char *key = va_arg(ap, const char *); key != NULL; key = va_arg(ap, const char *)) {
        const char *value = va_arg(ap, const char *);
        cJSON_AddStringToObject(line, key, value ? value : "");
    }
    va_end(ap);
    char *text = cJSON_PrintUnformatted(line);
    cJSON_Delete(line);
    if (text == NULL)
        return;
    size_t len = strlen(text);
    text[len] = '\n'; // cJSON allocated len+1 bytes: the NUL becomes the newline
    ssize_t w = write(STDERR_FILENO, text, len + 1);
    (void)w;
    free(text);
}
