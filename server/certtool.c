// SPDX-License-Identifier: Apache-2.0
// `tableguard certs generate|inspect`: the command line over the certificate library in certs/.
#include "server/certtool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "certs/certgen.h"
#include "certs/certs.h"
#include "util/xalloc.h"

#define DAY_SECONDS 86400L

static void
print_messages(const char *label, size_t n, char (*msgs)[CERTS_MESSAGE_LEN])
{
    for (size_t i = 0; i < n && i < CERTS_MAX_MESSAGES; i++)
        fprintf(stderr, "%s: %s\n", label, msgs[i]);
    if (n > CERTS_MAX_MESSAGES)
        fprintf(stderr, "%s: %zu more not shown\n", label, n - CERTS_MAX_MESSAGES);
}

static void
format_time(time_t t, char *out, size_t outlen)
{
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, outlen, "?");
}

// A DNS-1123 label, as Kubernetes requires of Service and namespace names.
static int
valid_label(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

// A DNS name for a SAN: letters, digits, '-' and '.', optionally starting with "*.".
static int
valid_dns(const char *s)
{
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    size_t n = strlen(s);
    return n > 0 && n <= 253 && s[0] != '.' && s[0] != '-' && s[n - 1] != '.' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == n &&
           strstr(s, "..") == NULL;
}

static int
valid_ip(const char *s)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int
parse_days(const char *opt, const char *s, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 36500) {
        fprintf(stderr, "certs generate: %s must be a number of days from 1 to 36500, not \"%s\"\n",
                opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

static const char generate_usage[] =
    "usage: tableguard certs generate --service NAME --namespace NS --out DIR\n"
    "         [--days N (365)] [--ca-days N (3650)] [--key-type ecdsa|rsa]\n"
    "         [--dns NAME]... [--ip ADDR]... [--force]\n"
    "Writes ca.crt, ca.key, tls.crt and tls.key into DIR (kubernetes.io/tls layout), reusing a\n"
    "valid ca.crt/ca.key found there, and prints the base64 caBundle on stdout.\n";

static const char inspect_usage[] =
    "usage: tableguard certs inspect FILE [--key KEYFILE] [--service NAME --namespace NS]\n"
    "Prints what FILE certifies; exits 1 if it is expired, not yet valid, unreadable or\n"
    "KEYFILE does not match it.\n";

struct gen_opts {
    struct certgen_leaf leaf;
    const char *out;
    long ca_days;
    enum certgen_key_type key_type;
    int force;
    const char **dns, **ips; // borrowed from argv
};

enum {
    OPT_SERVICE = 256,
    OPT_NAMESPACE,
    OPT_OUT,
    OPT_DAYS,
    OPT_CA_DAYS,
    OPT_KEY_TYPE,
    OPT_DNS,
    OPT_IP,
    OPT_FORCE,
    OPT_KEY,
    OPT_HELP
};

// Applies one generate option; returns 0, or 2 for a usage error.
static int
generate_opt(struct gen_opts *o, int c, const char *name, const char *arg)
{
    switch (c) {
    case OPT_SERVICE:
        o->leaf.service = arg;
        return 0;
    case OPT_NAMESPACE:
        o->leaf.ns = arg;
        return 0;
    case OPT_OUT:
        o->out = arg;
        return 0;
    case OPT_DAYS:
        return parse_days("--days", arg, &o->leaf.days) ? 2 : 0;
    case OPT_CA_DAYS:
        return parse_days("--ca-days", arg, &o->ca_days) ? 2 : 0;
    case OPT_FORCE:
        o->force = 1;
        return 0;
    case OPT_DNS:
        if (!valid_dns(arg))
            break;
        o->dns[o->leaf.ndns++] = arg;
        return 0;
    case OPT_IP:
        if (!valid_ip(arg))
            break;
        o->ips[o->leaf.nips++] = arg;
        return 0;
    case OPT_KEY_TYPE:
        if (strcmp(arg, "ecdsa") != 0 && strcmp(arg, "rsa") != 0)
            break;
        o->key_type = strcmp(arg, "rsa") == 0 ? CERTGEN_KEY_RSA : CERTGEN_KEY_ECDSA;
        return 0;
    default:
        fputs(generate_usage, stderr);
        return 2;
    }
    fprintf(stderr, "certs generate: invalid --%s \"%s\"\n", name, arg);
    return 2;
}

static int
generate_parse(int argc, char **argv, struct gen_opts *o)
{
    static const struct option longopts[] = {{"service", required_argument, NULL, OPT_SERVICE},
                                             {"namespace", required_argument, NULL, OPT_NAMESPACE},
                                             {"out", required_argument, NULL, OPT_OUT},
                                             {"days", required_argument, NULL, OPT_DAYS},
                                             {"ca-days", required_argument, NULL, OPT_CA_DAYS},
                                             {"key-type", required_argument, NULL, OPT_KEY_TYPE},
                                             {"dns", required_argument, NULL, OPT_DNS},
                                             {"ip", required_argument, NULL, OPT_IP},
                                             {"force", no_argument, NULL, OPT_FORCE},
                                             {"help", no_argument, NULL, OPT_HELP},
                                             {NULL, 0, NULL, 0}};
    int c, rc, idx = 0;

    optind = 0; // the caller's main may have run getopt already
    while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        if (c == OPT_HELP) {
            fputs(generate_usage, stdout);
            return 0;
        }
        if ((rc = generate_opt(o, c, longopts[idx].name, optarg)) != 0)
            return rc;
    }
    if (optind != argc || o->leaf.service == NULL || o->leaf.ns == NULL || o->out == NULL) {
        fprintf(stderr, "certs generate: --service, --namespace and --out are required%s\n%s",
                optind != argc ? ", and no other arguments" : "", generate_usage);
        return 2;
    }
    if (!valid_label(o->leaf.service) || !valid_label(o->leaf.ns)) {
        fprintf(stderr, "certs generate: --service and --namespace must be DNS labels "
                        "(lower-case letters, digits and '-', at most 63)\n");
        return 2;
    }
    return -1; // parsed, go on
}

// mkdir -p: creates dir and its missing parents. Returns 0 or -1 with errno set.
static int
make_dirs(const char *dir)
{
    char *copy = xstrdup(dir);
    int rc = 0;

    for (char *p = copy + 1; rc == 0 && *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, 0755) != 0 && errno != EEXIST)
            rc = -1;
        *p = '/';
    }
    if (rc == 0 && mkdir(copy, 0755) != 0 && errno != EEXIST)
        rc = -1;
    free(copy);
    return rc;
}

static void
join_path(char *out, size_t outlen, const char *dir, const char *name)
{
    snprintf(out, outlen, "%s/%s", dir, name);
}

// Loads a CA from dir/ca.crt and dir/ca.key when both are there and usable. Sets *ca/*ca_key to
// NULL and returns 0 when there is none (or when force allows replacing a bad one); -1 when
// there is one that cannot be used.
static int
load_existing_ca(const struct gen_opts *o, X509 **ca, EVP_PKEY **ca_key)
{
    char crt[4096], key[4096];
    struct certs_report rep;

    join_path(crt, sizeof(crt), o->out, "ca.crt");
    join_path(key, sizeof(key), o->out, "ca.key");
    if (certs_load_ca(crt, key, o->leaf.now, ca, ca_key, &rep) == 0)
        return 0;
    print_messages(o->force ? "warning" : "error", rep.nerrors, rep.errors);
    if (o->force) {
        fprintf(stderr, "certs generate: replacing the CA in %s; update every caBundle\n", o->out);
        return 0;
    }
    fprintf(stderr, "certs generate: pass --force to replace the CA in %s\n", o->out);
    return -1;
}

static int
write_all(const struct gen_opts *o, X509 *ca, EVP_PKEY *ca_key, int new_ca, X509 *leaf,
          EVP_PKEY *key, char *err, size_t errlen)
{
    char path[4096];

    join_path(path, sizeof(path), o->out, "ca.key");
    if (new_ca && certgen_write_pem(path, NULL, ca_key, 0600, err, errlen) != 0)
        return -1;
    join_path(path, sizeof(path), o->out, "ca.crt");
    if (new_ca && certgen_write_pem(path, ca, NULL, 0644, err, errlen) != 0)
        return -1;
    join_path(path, sizeof(path), o->out, "tls.key");
    if (certgen_write_pem(path, NULL, key, 0600, err, errlen) != 0)
        return -1;
    join_path(path, sizeof(path), o->out, "tls.crt");
    return certgen_write_pem(path, leaf, NULL, 0644, err, errlen);
}

// Creates (or reuses) the CA, issues the serving certificate, writes the four files and prints
// the caBundle. Returns the exit code.
static int
generate_run(const struct gen_opts *o)
{
    X509 *ca = NULL, *leaf = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    char err[512], cn[256], when[32];
    char *bundle = NULL;
    int new_ca, rc = 1;

    if (load_existing_ca(o, &ca, &ca_key) != 0)
        return 1;
    new_ca = ca == NULL;
    if (new_ca) {
        snprintf(cn, sizeof(cn), "tableguard CA for %s.%s", o->leaf.service, o->leaf.ns);
        if ((ca_key = certgen_key_new(o->key_type, err, sizeof(err))) == NULL ||
            (ca = certgen_ca_new(ca_key, cn, o->ca_days, o->leaf.now, err, sizeof(err))) == NULL)
            goto out;
    }
    if ((key = certgen_key_new(o->key_type, err, sizeof(err))) == NULL ||
        (leaf = certgen_leaf_new(&o->leaf, key, ca, ca_key, err, sizeof(err))) == NULL ||
        (bundle = certgen_ca_bundle(ca, err, sizeof(err))) == NULL ||
        write_all(o, ca, ca_key, new_ca, leaf, key, err, sizeof(err)) != 0)
        goto out;
    format_time(certs_time(X509_get0_notAfter(leaf)), when, sizeof(when));
    fprintf(stderr, "%s CA; wrote %s/tls.crt and tls.key for %s.%s.svc, valid until %s\n",
            new_ca ? "created" : "reused", o->out, o->leaf.service, o->leaf.ns, when);
    if (ASN1_TIME_compare(X509_get0_notAfter(leaf), X509_get0_notAfter(ca)) == 0)
        fprintf(stderr, "warning: the serving certificate ends with its CA on %s\n", when);
    printf("%s\n", bundle);
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "certs generate: %s\n", err);
    free(bundle);
    X509_free(leaf);
    EVP_PKEY_free(key);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return rc;
}

static int
cmd_generate(int argc, char **argv)
{
    struct gen_opts o = {.leaf = {.days = 365, .now = time(NULL)}, .ca_days = 3650};
    char path[4096];
    int rc;

    o.dns = xcalloc((size_t)argc, sizeof(*o.dns));
    o.ips = xcalloc((size_t)argc, sizeof(*o.ips));
    o.leaf.dns = o.dns;
    o.leaf.ips = o.ips;
    if ((rc = generate_parse(argc, argv, &o)) == -1) {
        join_path(path, sizeof(path), o.out, "tls.crt");
        if (make_dirs(o.out) != 0) {
            fprintf(stderr, "certs generate: %s: cannot create: %s\n", o.out, strerror(errno));
            rc = 1;
        } else if (!o.force && access(path, F_OK) == 0) {
            fprintf(stderr, "certs generate: %s exists; pass --force to replace it\n", path);
            rc = 1;
        } else {
            rc = generate_run(&o);
        }
    }
    free(o.dns);
    free(o.ips);
    return rc;
}

static void
print_report(const char *file, const char *key, const struct certs_report *rep, time_t now)
{
    char nb[32], na[32];

    format_time(rep->not_before, nb, sizeof(nb));
    format_time(rep->not_after, na, sizeof(na));
    printf("file:       %s\n", file);
    printf("subject:    %s\n", rep->subject);
    printf("issuer:     %s\n", rep->issuer);
    printf("sans:       %s\n", rep->sans[0] ? rep->sans : "(none)");
    printf("not before: %s\n", nb);
    printf("not after:  %s\n", na);
    printf("days left:  %ld\n", (long)(rep->not_after - now) / DAY_SECONDS);
    printf("key type:   %s\n", rep->key_type);
    if (rep->key_match == 1)
        printf("key:        %s matches\n", key);
    else if (rep->key_match == 0)
        printf("key:        %s does NOT match\n", key);
    else
        printf("key:        not checked%s\n", key ? "" : " (pass --key)");
}

static int
cmd_inspect(int argc, char **argv)
{
    static const struct option longopts[] = {{"key", required_argument, NULL, OPT_KEY},
                                             {"service", required_argument, NULL, OPT_SERVICE},
                                             {"namespace", required_argument, NULL, OPT_NAMESPACE},
                                             {"help", no_argument, NULL, OPT_HELP},
                                             {NULL, 0, NULL, 0}};
    const char *key = NULL, *service = NULL, *ns = NULL;
    struct certs_report rep;
    time_t now = time(NULL);
    int c, rc;

    optind = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == OPT_HELP) {
            fputs(inspect_usage, stdout);
            return 0;
        } else if (c == OPT_KEY) {
            key = optarg;
        } else if (c == OPT_SERVICE) {
            service = optarg;
        } else if (c == OPT_NAMESPACE) {
            ns = optarg;
        } else {
            fputs(inspect_usage, stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || (service == NULL) != (ns == NULL)) {
        fprintf(stderr, "certs inspect: one FILE, and --service with --namespace or neither\n%s",
                inspect_usage);
        return 2;
    }
    rc = certs_check_pair(argv[optind], key, service, ns, now, &rep);
    if (rep.not_after != 0)
        print_report(argv[optind], key, &rep, now);
    print_messages("warning", rep.nwarnings, rep.warnings);
    print_messages("error", rep.nerrors, rep.errors);
    return rc == 0 ? 0 : 1;
}

static const char certs_usage[] =
    "usage: tableguard certs generate --service NAME --namespace NS --out DIR [options]\n"
    "       tableguard certs inspect FILE [--key KEYFILE] [--service NAME --namespace NS]\n"
    "Run with --help after a subcommand for its options.\n";

int
certtool_main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } cmds[] = {{"generate", cmd_generate}, {"inspect", cmd_inspect}};
    int rc;

    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
                      strcmp(argv[0], "help") == 0)) {
        fputs(certs_usage, stdout);
        return 0;
    }
    for (size_t i = 0; argc >= 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[0], cmds[i].name) == 0) {
            rc = cmds[i].run(argc, argv);
            fflush(stdout);
            return rc;
        }
    }
    if (argc >= 1)
        fprintf(stderr, "certs: unknown command \"%s\"\n", argv[0]);
    fputs(certs_usage, stderr);
    return 2;
}
