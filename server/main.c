// SPDX-License-Identifier: Apache-2.0
// tableguard's command line: a table of commands, each handing its arguments to its module.
#include <stdio.h>
#include <string.h>

#include "server/certtool.h"
#include "server/check.h"
#include "server/lint.h"
#include "server/review.h"
#include "server/selftest.h"
#include "server/serve.h"
#include "server/suite.h"
#include "server/verify.h"
#include "server/webhooks.h"

static int
version_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("tableguard %s (%s)\n", TG_VERSION, TG_REVISION);
    return 0;
}

// Commands with a second word ("policy lint") name it; the handler sees argv from that word on.
static const struct command {
    const char *name;
    const char *sub;
    int (*run)(int argc, char **argv);
    const char *help;
} COMMANDS[] = {
    {"serve", NULL, serve_main, "serve --policy FILE --tls-cert FILE --tls-key FILE [...]"},
    {"certs", "generate", certtool_main, "certs generate --service NAME --namespace NS --out DIR"},
    {"certs", "inspect", certtool_main, "certs inspect FILE [--key FILE]"},
    {"certs", "--help", certtool_main, "certs --help"},
    {"policy", "lint", lint_main, "policy lint [--exceptions FILE] [--strict] [--print] FILE..."},
    {"check", NULL, check_main,
     "check --policy FILE [--operation CREATE|UPDATE] [--namespace NS] [--user NAME] "
     "[--output text|json] MANIFEST... | -"},
    {"test", NULL, suite_main, "test SUITE.yaml..."},
    {"audit", "verify", verify_main,
     "audit verify [--hmac-key FILE] [--checkpoint SEQ[:HASH]]... [--sealed] FILE..."},
    {"selftest", NULL, selftest_main,
     "selftest --url URL --ca FILE [--servername NAME] [--namespace NS]"},
    {"webhooks", "delete", webhooks_main,
     "webhooks delete --name NAME [--api URL] [--token FILE] [--ca FILE]"},
    {"version", NULL, version_main, "version"},
};

static void
usage(FILE *f)
{
    fputs("usage: tableguard COMMAND [ARGS]\n\ncommands:\n", f);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        fprintf(f, "  tableguard %s\n", COMMANDS[i].help);
}

int
main(int argc, char **argv)
{
    review_init();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0)
        return version_main(0, NULL);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++) {
        const struct command *c = &COMMANDS[i];
        if (strcmp(argv[1], c->name) != 0)
            continue;
        if (c->sub == NULL)
            return c->run(argc - 1, argv + 1);
        if (argc >= 3 && strcmp(argv[2], c->sub) == 0)
            return c->run(argc - 2, argv + 2);
    }
    fprintf(stderr, "tableguard: unknown command \"%s%s%s\"\n", argv[1], argc >= 3 ? " " : "",
            argc >= 3 ? argv[2] : "");
    usage(stderr);
    return 2;
}
