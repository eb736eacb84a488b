// SPDX-License-Identifier: Apache-2.0
// `tableguard version`: one line of text, or JSON with the versions of the libraries the
// process actually loaded (asked of each library at run time, not taken from its headers).
#include "server/version.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdbool.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "server/outflag.h"

static void
usage(FILE *f)
{
    fputs("usage: tableguard version [-o|--output text|json]\n\n"
          "Prints \"tableguard VERSION (REVISION)\", or with -o json an object with version,\n"
          "revision and the run-time versions of libmicrohttpd, GnuTLS, OpenSSL, cJSON and\n"
          "libyaml. Exit status: 0, or 2 on a usage error.\n",
          f);
}

static int
print_json(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", TG_VERSION);
    cJSON_AddStringToObject(o, "revision", TG_REVISION);
    cJSON *libs = cJSON_AddObjectToObject(o, "libraries");
    cJSON_AddStringToObject(libs, "libmicrohttpd", MHD_get_version());
    cJSON_AddStringToObject(libs, "gnutls", gnutls_check_version(NULL));
    cJSON_AddStringToObject(libs, "openssl", OpenSSL_version(OPENSSL_VERSION_STRING));
    cJSON_AddStringToObject(libs, "cjson", cJSON_Version());
    cJSON_AddStringToObject(libs, "libyaml", yaml_get_version_string());
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (s == NULL) {
        fputs("tableguard version: out of memory\n", stderr);
        return 1;
    }
    puts(s);
    free(s);
    return 0;
}

int
version_main(int argc, char **argv)
{
    bool json;
    int rc = outflag_parse(argc, argv, "tableguard version", usage, &json);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (json)
        return print_json();
    printf("tableguard %s (%s)\n", TG_VERSION, TG_REVISION);
    return 0;
}
