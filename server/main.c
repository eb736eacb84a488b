// SPDX-License-Identifier: Apache-2.0
// tableguard's command line: a table of commands, each handing its arguments to its module.
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "server/certtool.h"
#include "server/check.h"
#include "server/completion.h"
#include "server/lint.h"
#include "server/review.h"
#include "server/selftest.h"
#include "server/serve.h"
#include "server/suite.h"
#include "server/report.h"
#include "server/verify.h"
#include "server/version.h"
#include "server/webhooks.h"

static int completion(int argc, char **argv);

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
    {"policy", "lint", lint_main, "policy lint [--exceptions FILE] [--strict] [--print] FILE..."},
    {"check", NULL, check_main,
     "check --policy FILE [--operation CREATE|UPDATE] [--namespace NS] [--user NAME] "
     "[--output text|json|junit|sarif] MANIFEST|DIR... | -"},
    {"test", NULL, suite_main, "test [--output text|json|junit] SUITE.yaml..."},
    {"audit", "verify", verify_main,
     "audit verify [--hmac-key FILE] [--checkpoint SEQ[:HASH]]... [--sealed] FILE..."},
    {"audit", "report", report_main,
     "audit report [--since T] [--until T] [--table GLOB] [--namespace GLOB] [--user GLOB] "
     "[--decision D] [--changed] [--output text|csv|json] [--hmac-key FILE] FILE..."},
    {"selftest", NULL, selftest_main,
     "selftest --url URL --ca FILE [--servername NAME] [--namespace NS]"},
    {"webhooks", "delete", webhooks_main,
     "webhooks delete --name NAME [--api URL] [--token FILE] [--ca FILE]"},
    {"completion", NULL, completion, "completion bash|zsh"},
    {"version", NULL, version_main, "version [-o text|json]"},
};

#define NCOMMANDS (sizeof COMMANDS / sizeof *COMMANDS)

static int
completion(int argc, char **argv)
{
    struct completion_word words[NCOMMANDS];
    for (size_t i = 0; i < NCOMMANDS; i++)
        words[i] = (struct completion_word){COMMANDS[i].name, COMMANDS[i].sub};
    return completion_main(argc, argv, words, NCOMMANDS);
}

// Lists the commands, or with group set only that group's subcommands ("policy --help").
static void
usage(FILE *f, const char *group)
{
    fprintf(f, "usage: tableguard %s%s\n\ncommands:\n", group ? group : "COMMAND",
            group ? " SUBCOMMAND [ARGS]" : " [ARGS]");
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (group == NULL || strcmp(COMMANDS[i].name, group) == 0)
            fprintf(f, "  tableguard %s\n", COMMANDS[i].help);
    fprintf(f, "\n\"tableguard %s --help\" describes each; \"man tableguard\" has them all.\n",
            group ? "COMMAND SUBCOMMAND" : "COMMAND [SUBCOMMAND]");
}

static bool
is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

int
main(int argc, char **argv)
{
    review_init();
    if (argc < 2) {
        usage(stderr, NULL);
        return 2;
    }
    if (is_help(argv[1])) {
        usage(stdout, NULL);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        char *args[] = {"version", NULL};
        return version_main(1, args);
    }
    bool group = false;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct command *c = &COMMANDS[i];
        if (strcmp(argv[1], c->name) != 0)
            continue;
        if (c->sub == NULL)
            return c->run(argc - 1, argv + 1);
        group = true;
        if (argc >= 3 && strcmp(argv[2], c->sub) == 0)
            return c->run(argc - 2, argv + 2);
    }
    // A group without a known subcommand: its own usage, on stdout when asked for.
    if (group && (argc < 3 || is_help(argv[2]))) {
        usage(argc < 3 ? stderr : stdout, argv[1]);
        return argc < 3 ? 2 : 0;
    }
    fprintf(stderr, "tableguard: unknown command \"%s%s%s\"\n", argv[1], group ? " " : "",
            group ? argv[2] : "");
    usage(stderr, group ? argv[1] : NULL);
    return 2;
}
