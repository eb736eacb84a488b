// SPDX-License-Identifier: Apache-2.0
// Shell completion scripts written from the command table: commands, then subcommands, then
// the flags the command's --help lists (asked of the installed binary at completion time),
// then file names.
#include "server/completion.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void
usage(FILE *f)
{
    fputs("usage: tableguard completion bash|zsh\n\n"
          "Prints a completion script for the shell:\n"
          "  bash: source <(tableguard completion bash)   (or save it as\n"
          "        /usr/share/bash-completion/completions/tableguard)\n"
          "  zsh:  source <(tableguard completion zsh)    (or save it as _tableguard in $fpath)\n"
          "Exit status: 0, or 2 on a usage error.\n",
          f);
}

// Prints the distinct command names, space separated.
static void
print_commands(const struct completion_word *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen |= strcmp(w[j].name, w[i].name) == 0;
        if (!seen)
            printf("%s%s", i ? " " : "", w[i].name);
    }
}

// Prints one shell case arm per command with subcommands: `NAME) subs="A B";;`.
static void
print_sub_cases(const struct completion_word *w, size_t n, const char *indent)
{
    for (size_t i = 0; i < n; i++) {
        if (w[i].sub == NULL)
            continue;
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen |= strcmp(w[j].name, w[i].name) == 0;
        if (seen)
            continue;
        printf("%s%s) subs=\"", indent, w[i].name);
        const char *sep = "";
        for (size_t j = i; j < n; j++) {
            if (strcmp(w[j].name, w[i].name) == 0 && w[j].sub != NULL) {
                printf("%s%s", sep, w[j].sub);
                sep = " ";
            }
        }
        puts("\" ;;");
    }
}

static void
bash_script(const struct completion_word *w, size_t n)
{
    puts("# bash completion for tableguard (tableguard completion bash)\n"
         "_tableguard() {\n"
         "    local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]} subs=\"\" words");
    fputs("    local commands=\"", stdout);
    print_commands(w, n);
    puts("\"\n"
         "    if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
         "        mapfile -t COMPREPLY < <(compgen -W \"$commands --help\" -- \"$cur\")\n"
         "        return\n"
         "    fi\n"
         "    case $cmd in");
    print_sub_cases(w, n, "    ");
    puts("    esac\n"
         "    if [ -n \"$subs\" ] && [ \"$COMP_CWORD\" -eq 2 ]; then\n"
         "        mapfile -t COMPREPLY < <(compgen -W \"$subs --help\" -- \"$cur\")\n"
         "        return\n"
         "    fi\n"
         "    words=$cmd\n"
         "    [ -n \"$subs\" ] && words=\"$cmd ${COMP_WORDS[2]}\"\n"
         "    if [[ $cur == -* ]]; then\n"
         "        # shellcheck disable=SC2086\n"
         "        mapfile -t COMPREPLY < <(compgen -W \"$(\"${COMP_WORDS[0]}\" $words --help 2>&1 "
         "|\n"
         "            grep -o -- '--[a-z][a-z0-9-]*' | sort -u)\" -- \"$cur\")\n"
         "        return\n"
         "    fi\n"
         "    mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n"
         "}\n"
         "complete -o filenames -F _tableguard tableguard");
}

static void
zsh_script(const struct completion_word *w, size_t n)
{
    puts("#compdef tableguard\n"
         "# zsh completion for tableguard (tableguard completion zsh)\n"
         "_tableguard() {\n"
         "    local subs=\"\" w");
    fputs("    local -a commands=(", stdout);
    print_commands(w, n);
    puts(")\n"
         "    if (( CURRENT == 2 )); then\n"
         "        compadd -- $commands --help\n"
         "        return\n"
         "    fi\n"
         "    case $words[2] in");
    print_sub_cases(w, n, "    ");
    puts("    esac\n"
         "    if [[ -n $subs ]] && (( CURRENT == 3 )); then\n"
         "        compadd -- ${=subs} --help\n"
         "        return\n"
         "    fi\n"
         "    w=$words[2]\n"
         "    [[ -n $subs ]] && w=\"$words[2] $words[3]\"\n"
         "    if [[ $PREFIX == -* ]]; then\n"
         "        compadd -- ${(f)\"$($words[1] ${=w} --help 2>&1 | grep -o -- '--[a-z][a-z0-9-]*' "
         "| sort -u)\"}\n"
         "        return\n"
         "    fi\n"
         "    _files\n"
         "}\n"
         "if [[ $funcstack[1] == _tableguard ]]; then\n"
         "    _tableguard \"$@\"\n"
         "else\n"
         "    compdef _tableguard tableguard\n"
         "fi");
}

int
completion_main(int argc, char **argv, const struct completion_word *words, size_t n)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "bash") == 0) {
        bash_script(words, n);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "zsh") == 0) {
        zsh_script(words, n);
        return 0;
    }
    usage(stderr);
    return 2;
}
