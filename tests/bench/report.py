#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turns the raw results of tests/bench/run.sh into docs/performance.md (and prints the tables):
load runs (results.jsonl, one wrk run a line) and the core benchmark (core.tsv)."""

import argparse
import collections
import json
import os
import re
import statistics
import sys

TICK = os.sysconf("SC_CLK_TCK")


def load_results(path):
    runs, other = [], []
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                (runs if "requests" in r and "kind" not in r else other).append(r)
    return runs, other


def load_core(path):
    rows = collections.defaultdict(list)
    headers = {}
    with open(path) as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if cols[0].startswith("#"):
                headers[cols[0][1:]] = cols[1:]
            else:
                rows[cols[0]].append(dict(zip(headers[cols[0]], cols[1:])))
    return rows


def rps(r):
    return r["requests"] * 1e6 / r["duration_us"]


def cpu_per_1000(r):
    return r["cpu_ticks"] / TICK / r["requests"] * 1000 if r["requests"] else float("nan")


def spread(values, fmt="{:.0f}"):
    """The mean, and the range across rounds when there is more than one."""
    m = statistics.mean(values)
    if len(values) == 1:
        return fmt.format(m)
    return (fmt + " ({}–{})").format(m, fmt.format(min(values)), fmt.format(max(values)))


def ms(us):
    return f"{us / 1000:.2f}"


def pair_range(r):
    """The middle half of a paired core row's per-pair ratios, or "—" for rows without pairs."""
    if r.get("ratio_lo", "-") == "-":
        return "—"
    return f"{float(r['ratio_lo']):.2f}–{float(r['ratio_hi']):.2f}"


def group(runs, **match):
    return [r for r in runs if all(r.get(k) == v for k, v in match.items())]


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def network_table(runs, mode):
    keys = []
    for r in runs:
        k = (r["payload"], r["webhook"])
        if r["mode"] == mode and k not in keys:
            keys.append(k)
    rows, ratios = [], {}
    for payload, hook in keys:
        tg = group(runs, target="tableguard", payload=payload, webhook=hook, mode=mode)
        ng = group(runs, target="nginx", payload=payload, webhook=hook, mode=mode)
        tr, nr = [rps(r) for r in tg], [rps(r) for r in ng]
        ratio = statistics.mean(tr) / statistics.mean(nr)
        ratios[(payload, hook)] = (ratio, [a / b for a, b in zip(tr, nr)])
        rows.append([
            f"`{payload}`", f"/{hook}", spread(tr), spread(nr),
            f"**{ratio:.2f}** ({min(a / b for a, b in zip(tr, nr)):.2f}–"
            f"{max(a / b for a, b in zip(tr, nr)):.2f})",
            "/".join(ms(statistics.median(r[k] for r in tg)) for k in ("p50_us", "p99_us",
                                                                         "p999_us")),
            "/".join(ms(statistics.median(r[k] for r in ng)) for k in ("p50_us", "p99_us",
                                                                         "p999_us")),
            sum(r["errors"] for r in tg) + sum(r["errors"] for r in ng),
            f"{statistics.mean(cpu_per_1000(r) for r in tg):.3f}",
            f"{statistics.mean(cpu_per_1000(r) for r in ng):.3f}",
        ])
    head = ["payload", "webhook", "tableguard req/s (range)", "nginx req/s (range)",
            "tableguard/nginx (per round)", "tableguard p50/p99/p99.9 ms",
            "nginx p50/p99/p99.9 ms", "errors", "tableguard CPU s/1000 req",
            "nginx CPU s/1000 req"]
    return table(head, rows), ratios


def verdict(ok):
    return "**met**" if ok else "**not met**"


def cpu_us(r):
    """Server CPU (all threads, user + system) per answered request, in microseconds."""
    n = r.get("cpu_requests", r["requests"])
    return r["cpu_ticks"] / TICK / n * 1e6 if n else float("nan")


def busy_us(r):
    """Everything that ran on the servers' CPU (any process, kernel threads included) per
    answered request, in microseconds; None when the run did not record it."""
    if "cpu_busy_ticks" not in r or not r["requests"]:
        return None
    return r["cpu_busy_ticks"] / TICK / r["requests"] * 1e6


def steal_share(rs):
    """The share of the servers' CPU's time the hypervisor gave to other guests during rs."""
    rs = [r for r in rs if "steal_ticks" in r]
    if not rs:
        return None
    return sum(r["steal_ticks"] for r in rs) / TICK / (sum(r["duration_us"] for r in rs) / 1e6)


def floor_ms(r):
    """The queueing floor of a closed loop: connections / throughput (Little's law), in ms. Every
    connection always has a request in the server, so the mean latency is at least this."""
    return r["connections"] / rps(r) * 1000


def rate_runs(runs, target, payload, hook):
    """The fixed-rate runs of one payload, lowest offered rate first."""
    return sorted(group(runs, target=target, payload=payload, webhook=hook, mode="rate"),
                  key=lambda r: r["offered"])


def held(r):
    """Whether the client kept the offered rate (within 3%)."""
    return r["requests"] * 1e6 / r["duration_us"] >= 0.97 * r["offered"]


def rate_note(runs, payload, hook):
    """For a p99 target row: the same requests at fixed rates (information, not the verdict)."""
    rs = rate_runs(runs, "tableguard", payload, hook)
    if not rs:
        return ""
    return "; information, at a fixed rate (h2load): " + ", ".join(
        f"p99 {ms(r['p99_us'])} ms at {r['offered']:.0f} req/s"
        + ("" if held(r) else " (rate not held)") for r in rs)


def burst(r):
    """The share of a fixed-rate run's request starts less than 50 µs after the previous one."""
    b = None if r is None else r.get("burst_share")
    if b is None or b != b:  # not recorded, or NaN (fewer than two requests)
        return "—"
    return f"{b * 100:.0f}%"


def rate_section(runs):
    """The p99 rows' requests at fixed offered rates, tableguard beside nginx."""
    keys = []
    for r in runs:
        if r["mode"] == "rate" and (r["payload"], r["webhook"]) not in keys:
            keys.append((r["payload"], r["webhook"]))
    rows = []
    for payload, hook in keys:
        for t in rate_runs(runs, "tableguard", payload, hook):
            n = next((r for r in rate_runs(runs, "nginx", payload, hook)
                      if r["offered"] == t["offered"]), None)
            rows.append([f"`{payload}`", f"/{hook}", f"{t['offered']:.0f}",
                         f"{rps(t):.0f}" + ("" if held(t) else " (not held)"),
                         "/".join(ms(t[k]) for k in ("p50_us", "p99_us", "p999_us")),
                         f"{cpu_us(t):.1f}", t["errors"],
                         "/".join(ms(n[k]) for k in ("p50_us", "p99_us", "p999_us")) if n else "—",
                         f"{cpu_us(n):.1f}" if n else "—",
                         " / ".join(burst(x) for x in (t, n))])
    head = ["payload", "webhook", "offered req/s", "tableguard answered req/s",
            "tableguard p50/p99/p99.9 ms", "tableguard CPU µs/req", "errors",
            "nginx p50/p99/p99.9 ms", "nginx CPU µs/req",
            "starts < 50 µs after the previous: tableguard / nginx"]
    return table(head, rows) if rows else ""


CPU_TARGET = 0.6  # tableguard's CPU per request at most nginx's / 0.6
CPU_ROWS = (("c1-trait-allow", "validate"), ("c1-notrait-allow", "mutate"))


def paired_ratios(runs, payload, hook, target):
    """The paired rounds of target against nginx (tests/bench/paired.py): [(round, target's µs,
    nginx's µs, nginx/target)], in round order. Only rounds where the two ran as a pair and
    nothing else: the group is exactly "target+nginx"."""
    out = []
    rows = group(runs, payload=payload, webhook=hook, mode="paired", group=f"{target}+nginx")
    for rnd in sorted({r["round"] for r in rows}):
        by = {r["target"]: r for r in rows if r["round"] == rnd}
        if target in by and "nginx" in by:
            a, b = cpu_us(by[target]), cpu_us(by["nginx"])
            out.append((rnd, a, b, b / a))
    return out


def cpu_section(runs):
    """The sequential CPU-per-request rounds of the 1-component keep-alive rows (information
    beside the paired verdict): tableguard as shipped (audit log on, batch), the same without an
    audit log, nginx; each round's runs are back to back, so the ratio is taken per round.
    Returns the table and, per (payload, hook), the text the target row quotes."""
    rows, info = [], {}
    for payload, hook in CPU_ROWS:
        by = {t: group(runs, target=t, payload=payload, webhook=hook, mode="keepalive")
              for t in ("tableguard", "tableguard-nolog", "nginx")}
        if not by["tableguard"] or not by["nginx"]:
            continue
        tg, ng = [cpu_us(r) for r in by["tableguard"]], [cpu_us(r) for r in by["nginx"]]
        nl = [cpu_us(r) for r in by["tableguard-nolog"]]
        ratio = statistics.mean(ng) / statistics.mean(tg)
        per_round = [b / a for a, b in zip(tg, ng)]
        nl_ratio = statistics.mean(ng) / statistics.mean(nl) if nl else float("nan")
        tg_busy = [b for b in (busy_us(r) for r in by["tableguard"]) if b is not None]
        ng_busy = [b for b in (busy_us(r) for r in by["nginx"]) if b is not None]
        rows.append([f"`{payload}`", f"/{hook}", spread(tg, "{:.1f}"),
                     spread(nl, "{:.1f}") if nl else "—", spread(ng, "{:.1f}"),
                     f"**{ratio:.2f}** ({', '.join(f'{x:.2f}' for x in per_round)})",
                     f"{nl_ratio:.2f}" if nl else "—",
                     f"{statistics.mean(ng) / CPU_TARGET:.1f}",
                     spread([rps(r) for r in by["tableguard"]]),
                     spread([rps(r) for r in by["tableguard-nolog"]]) if nl else "—",
                     spread([rps(r) for r in by["nginx"]]),
                     f"{statistics.mean(tg_busy):.1f} / {statistics.mean(ng_busy):.1f}"
                     if tg_busy and ng_busy else "—"])
        info[(payload, hook)] = (
            f"{statistics.mean(tg):.1f} µs against nginx {statistics.mean(ng):.1f} µs: "
            f"nginx/tableguard {ratio:.2f}, rounds {', '.join(f'{x:.2f}' for x in per_round)}"
            + (f"; without the audit log {statistics.mean(nl):.1f} µs, {nl_ratio:.2f}"
               if nl else ""))
    head = ["payload", "webhook", "tableguard µs/req (audit log, batch)",
            "tableguard µs/req (no log)", "nginx µs/req", "nginx/tableguard (per round)",
            "nginx/tableguard, no log", "limit µs (nginx / 0.6)", "tableguard req/s",
            "tableguard req/s (no log)", "nginx req/s",
            "CPU busy µs/req, all processes: tableguard / nginx"]
    return (table(head, rows) if rows else ""), info


def paired_section(runs, sequential):
    """The CPU target judged on paired rounds: per payload, the median of the rounds' ratios
    nginx/tableguard (audit log on, batch, as shipped), with every round and the min–max;
    tableguard without the log in pairs of its own. Returns the section's tables and the
    target rows; without paired rounds (a run made before them) the target rows say so, with
    the sequential figures as information, and carry no verdict."""
    rows, targets = [], []
    for payload, hook in CPU_ROWS:
        name = (f"1-component /{hook}, keep-alive: server CPU per request ≤ nginx's / "
                f"{CPU_TARGET} (audit log on, batch, as shipped)")
        seq = sequential.get((payload, hook))
        seq_text = f"; information, sequential A B A B: {seq}" if seq else ""
        tg = paired_ratios(runs, payload, hook, "tableguard")
        nl = paired_ratios(runs, payload, hook, "tableguard-nolog")
        if not tg:
            targets.append([name, "not run: no paired rounds in these results" + seq_text,
                            "not run"])
            continue
        ratios = [x[3] for x in tg]
        med = statistics.median(ratios)
        tg_us = statistics.median(x[1] for x in tg)
        ng_us = statistics.median(x[2] for x in tg)
        for label, pairs in (("tableguard (audit log, batch)", tg),
                             ("tableguard, no audit log", nl)):
            if pairs:
                rs = [x[3] for x in pairs]
                rows.append([f"`{payload}`", f"/{hook}", label, len(pairs),
                             ", ".join(f"{x[1]:.1f}" for x in pairs),
                             ", ".join(f"{x[2]:.1f}" for x in pairs),
                             ", ".join(f"{x:.3f}" for x in rs),
                             f"**{statistics.median(rs):.3f}**",
                             f"{min(rs):.3f}–{max(rs):.3f}"])
        targets.append([name, f"nginx/tableguard **{med:.2f}**, the median of {len(tg)} paired "
                        f"rounds (rounds {', '.join(f'{x:.2f}' for x in ratios)}; "
                        f"{min(ratios):.2f}–{max(ratios):.2f}); medians {tg_us:.1f} µs against "
                        f"nginx {ng_us:.1f} µs (limit {ng_us / CPU_TARGET:.1f} µs)"
                        + (f"; without the audit log, paired: "
                           f"{statistics.median(x[3] for x in nl):.2f} "
                           f"({statistics.median(x[1] for x in nl):.1f} µs)" if nl else "")
                        + seq_text, verdict(med >= CPU_TARGET)])
    head = ["payload", "webhook", "against nginx", "rounds", "its µs/req, per round",
            "nginx µs/req, per round", "nginx/it, per round", "median", "min–max"]
    return (table(head, rows) if rows else ""), targets


def floor_section(runs):
    """The host's latency floor: one keep-alive connection at a low fixed rate, tableguard and
    nginx (fixed_rate.py --mode floor)."""
    rows = []
    for target in ("tableguard", "nginx"):
        for r in group(runs, target=target, mode="floor"):
            rows.append([target, f"`{r['payload']}`", f"/{r['webhook']}", r["connections"],
                         f"{r['offered']:.0f}", r["requests"],
                         "/".join(ms(r[k]) for k in ("p50_us", "p99_us", "p999_us")),
                         ms(r["max_us"]), f"{cpu_us(r):.1f}", r["errors"]])
    head = ["server", "payload", "webhook", "connections", "offered req/s", "requests",
            "p50/p99/p99.9 ms", "max ms", "CPU µs/req", "errors"]
    return table(head, rows) if rows else ""


# ---- the server's profile (files written by run.sh into the profile directory) ----------------

GNUTLS = ("libgnutls", "libnettle", "libhogweed", "libgmp", "libtasn1", "libp11-kit",
          "libidn2", "libunistring")


def category(lib, sym):
    """The cost centre a sampled symbol belongs to, named as the profile tables name them."""
    lib = os.path.basename(lib)
    if lib.startswith("[kernel"):
        return "kernel"
    if lib.startswith(GNUTLS):
        return "GnuTLS (with nettle, hogweed, gmp)"
    if lib.startswith("libmicrohttpd"):
        return "libmicrohttpd"
    if lib.startswith("libcjson"):
        return "cJSON"
    if lib.startswith("libcrypto"):
        return "OpenSSL libcrypto (SHA-256 of the audit chain)"
    if lib.startswith("libc.so") or lib.startswith("libc-"):
        if "memset" in sym:
            return "libc memset (libmicrohttpd's pool, calloc)"
        if "malloc" in sym or "free" in sym or sym.startswith(("_int_", "unlink_chunk")):
            return "libc malloc/free"
        return "libc other (memcpy, str*, printf, fnmatch…)"
    if lib.startswith("tableguard"):
        return "tableguard's own code"
    return "other (" + lib + ")"


SYSCALLS = {"setsockopt", "sendmsg", "sendto", "send", "recv", "recvfrom", "recvmsg", "read",
            "write", "writev", "fstatat", "fstat", "stat", "lstat", "epoll_wait", "fdatasync",
            "fsync", "close", "accept4", "openat", "renameat", "rename", "unlinkat", "futex",
            "poll", "select", "getsockopt", "shutdown"}


def read_lines(path):
    try:
        with open(path) as f:
            return [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#")]
    except OSError:
        return None


def perf_summary(prof, hook):
    """Shares of the server's CPU samples: by cost centre, by system call, top symbols."""
    syms = read_lines(os.path.join(prof, f"perf-{hook}.dso,sym.txt"))
    if not syms:
        return None
    cats, top = collections.Counter(), []
    for line in syms:
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if m:
            pct, lib, sym = float(m.group(1)), m.group(2), m.group(4).strip()
            cats[category(lib, sym)] += pct
            top.append((pct, os.path.basename(lib), sym))
    # The system calls, by libc's wrappers in the user-space call chains (the kernel's own entry
    # points are often tail calls the unwinder does not see).
    calls = {}
    for line in read_lines(os.path.join(prof, f"perf-{hook}.children.txt")) or []:
        m = re.match(r"\s*([\d.]+)%\s+([\d.]+)%\s+\[\.\]\s+(\S+)$", line)
        if m:
            name = re.sub(r"^(_+|GI_|libc_)+", "", m.group(3)).removesuffix("64")
            if name in SYSCALLS:
                calls[name] = max(calls.get(name, 0.0), float(m.group(1)))
    calls = sorted(((v, n) for n, v in calls.items()), reverse=True)
    return {"categories": dict(cats), "syscalls": calls[:8], "top": top[:20]}


def callgrind_counts(path):
    """callgrind_annotate's self counts: (program total, {(object, function): instructions})."""
    lines = read_lines(path)
    if not lines:
        return None, None
    total, funcs = None, collections.Counter()
    for line in lines:
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$", line)
        if not m:
            continue
        n, rest = int(m.group(1).replace(",", "")), m.group(2)
        if rest.startswith("PROGRAM TOTALS"):
            total = n
            continue
        fm = re.match(r"(.*?):(\S+)\s+\[(.*)\]$", rest)
        if not fm:
            continue
        name, lib = re.sub(r"'\d+$", "", fm.group(2)), os.path.basename(fm.group(3))
        if name in ("clone", "start_thread", "clone3"):  # thread roots, shown inclusive
            continue
        funcs[(lib, name)] += n
    return total, funcs


def callgrind_summary(prof, hook):
    """Instructions per keep-alive request: the long run minus the short one (both open the same
    4 connections), so handshakes and warm-up cancel. Total, by cost centre, top functions."""
    parts = []
    for part in (1, 2):
        total, funcs = callgrind_counts(os.path.join(prof, f"cg-{hook}.{part}.txt"))
        try:
            with open(os.path.join(prof, f"cg-{hook}.{part}.requests")) as f:
                requests = int(f.read())
        except (OSError, ValueError):
            return None
        if total is None:
            return None
        parts.append((total, funcs, requests))
    (t1, f1, r1), (t2, f2, r2) = parts
    n = r2 - r1
    if n <= 0:
        return None
    # The audit chain's hashing, inclusive: it lands in whichever library hashes it.
    incl = [callgrind_counts(os.path.join(prof, f"cg-{hook}.{part}.incl.txt"))[1]
            for part in (1, 2)]
    chain = None
    if all(incl):
        c1, c2 = (sum(v for (_, name), v in i.items() if name == "chain_digest") for i in incl)
        chain = (c2 - c1) / n if c2 else None
    funcs = collections.Counter({k: f2[k] - f1.get(k, 0) for k in f2})
    cats = collections.Counter()
    for (lib, name), v in funcs.items():
        cats[category(lib, name)] += v
    return {"requests": n, "per_request": (t2 - t1) / n, "chain": chain,
            "categories": {k: v / n for k, v in cats.items()},
            "top": [(v / n, lib, name) for (lib, name), v in funcs.most_common(20)]}


def profile_section(prof, baselines):
    """The generated profile tables, with each baseline's figures beside them (oldest first)."""
    out = []

    def pct(d, k):
        return f"{d[k]:.1f}%" if k in d else "—"

    for hook, payload in (("validate", "c1-trait-allow"), ("mutate", "c1-notrait-allow")):
        p, c = perf_summary(prof, hook), callgrind_summary(prof, hook)
        bs = [(b.get("commit", "—"), b.get(hook, {})) for b in baselines]
        if not p and not c:
            continue
        out.append(f"### `{payload}` on /{hook}, keep-alive, audit log on (batch)\n")
        if p:
            bps = [b.get("perf", {}).get("categories", {}) for _, b in bs]
            names = sorted(set(p["categories"]).union(*bps),
                           key=lambda k: -p["categories"].get(k, 0))
            out.append("Share of the server's CPU samples (`perf record -e cpu-clock -g`, every "
                       "thread, kernel included):\n")
            out.append(table(["cost centre"] + [commit for commit, _ in bs] + ["now"],
                             [[k] + [pct(bp, k) for bp in bps]
                              + [f"{p['categories'].get(k, 0):.1f}%"] for k in names]))
            bss = [dict((n, v) for v, n in b.get("perf", {}).get("syscalls", [])) for _, b in bs]
            out.append("\nSystem calls (children: the kernel work each one causes, loopback "
                       "delivery included):\n")
            out.append(table(["system call"] + [commit for commit, _ in bs] + ["now"],
                             [[f"`{n}`"] + [pct(b, n) for b in bss] + [f"{v:.1f}%"]
                              for v, n in p["syscalls"]]))
            out.append("\nTop symbols now (self):\n")
            out.append(table(["share", "object", "symbol"],
                             [[f"{v:.2f}%", f"`{lib}`", f"`{sym}`"] for v, lib, sym in
                              p["top"][:15]]))
        if c:
            bcs = [(commit, b.get("callgrind", {})) for commit, b in bs]
            bcats = [bc.get("categories", {}) for _, bc in bcs]
            names = sorted({k for k, v in c["categories"].items() if v >= 50}.union(*bcats),
                           key=lambda k: -c["categories"].get(k, 0))
            out.append(f"\nInstructions per keep-alive request (callgrind, user space, all "
                       f"threads; a long run minus a short one on 4 connections each, so "
                       f"handshakes cancel; {c['requests']} requests): "
                       f"**{c['per_request'] / 1000:.0f} k** now"
                       + "".join(f", {bc['per_request'] / 1000:.0f} k on {commit}"
                                 for commit, bc in reversed(bcs) if bc) + ".\n")
            out.append(table(["cost centre (self)"]
                             + [f"{commit}, k instr/req" for commit, _ in bcs]
                             + ["now, k instr/req"],
                             [[k] + [f"{bcat[k] / 1000:.1f}" if k in bcat else "—"
                                     for bcat in bcats]
                              + [f"{c['categories'].get(k, 0) / 1000:.1f}"] for k in names]))
            if c.get("chain"):
                out.append(f"\nThe audit chain's SHA-256 (`chain_digest`, inclusive): "
                           f"{c['chain'] / 1000:.1f} k instructions per request, in the row of "
                           "the library that hashes it (GnuTLS now; OpenSSL libcrypto in the "
                           "earlier columns, about 29.8 k). Under valgrind neither uses the "
                           "CPU's SHA instructions, so natively it costs less than its share "
                           "here.")
            out.append("\nTop functions now (self, k instructions per request):\n")
            out.append(table(["k instr/req", "object", "function"],
                             [[f"{v / 1000:.1f}", f"`{lib}`", f"`{name}`"]
                              for v, lib, name in c["top"][:15]]))
        out.append("")
    if not out:
        return ("No profile in this run (perf not installed or not permitted, valgrind not "
                "installed, or BENCH_PROFILE=0); the profile before is in the notes below.\n")
    return "\n".join(out)


def core_method_text(core):
    """How core_bench measured (its "method" row): the section's method paragraph, and the words
    a target's verdict uses for what its ratio is."""
    m = core.get("method")
    if not m:
        return ("`core_bench` calls `admit_handle` (decode, evaluate, encode, audit record) on one "
                "core; each figure is the median of five wall-clock batches of at least 50 ms, and "
                "a ratio divides two such figures measured one after the other. `decode µs` is "
                "`review_decode` alone."), "the ratio of two wall-clock medians"
    m = m[0]
    pairs, pair_ms = int(m["pairs"]), float(m["pair_batch_ms"])
    lo, hi = pairs // 4 + 1, pairs - pairs // 4
    rounds = ("\nThe pairs of all the rows of a table are taken in rounds (one pair of each row, then the"
              "\nnext), so that each row's pairs are spread over the whole table's time: a slow or fast"
              "\nspell of the machine falls on a few pairs of every row, not on all the pairs of one.") \
        if m.get("pair_order") == "rounds" else ""
    text = f"""`core_bench` calls `admit_handle` (decode, evaluate, encode, audit record) on one core.
Every time is the CPU time of the thread that runs the reviews (`CLOCK_THREAD_CPUTIME_ID`), not
the wall clock: while the thread is preempted by other work on the machine its clock stops, and
that time is not the core's cost. It still counts what the thread's own work costs on a busy
machine (caches shared with other work, page faults, the kernel work it causes). An absolute
figure (µs/review, rules, policy load, patch) is the median of {m["batches"]} batches of
at least {float(m["batch_ms"]):.0f} ms. A ratio (an UPDATE to its CREATE, a review with 100 profiles
and 100 exceptions to the same without, a guarded object to the Application review it is held
to) is measured in pairs: a batch of at least {pair_ms:.0f} ms of one side, then one of the other,
{pairs} times in turn (A B, B A, A B, …), so that both sides of a pair see the same machine a few
milliseconds apart.{rounds}
The ratio is the median of the {pairs} pairs' ratios; beside it the middle half
of them (the {lo}th to the {hi}th of the {pairs}, sorted), and the two sides' µs in the median pair.
`decode µs` is `review_decode` alone, timed in pairs with the whole review in the same way: its share
of the review (the median of the pairs' ratios, beside it) times µs/review."""
    return text, f"the median of {pairs} paired ratios of the review thread's CPU time"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--replay", help="render again from the arguments a run saved with --save "
                    "(after editing the notes, say), without measuring anything")
    ap.add_argument("--save", help="write these arguments to a file for --replay")
    for a in ("results", "core", "out", "command", "machine", "pinning", "tls", "versions",
              "peak", "notes"):
        ap.add_argument("--" + a, required="--replay" not in sys.argv)
    ap.add_argument("--extra", action="append", default=[],
                    help="a Markdown section to include before the notes (repeatable)")
    ap.add_argument("--audit-report", help="audit_report.py --json output")
    ap.add_argument("--profile", help="run.sh's profile directory (perf and callgrind output)")
    ap.add_argument("--before", action="append",
                    help="a profile to compare with, in profile_summary's form (repeatable, "
                    "oldest first; default: profile-before.json and profile-previous.json)")
    a = ap.parse_args()
    if a.replay:
        with open(a.replay) as f:
            a = argparse.Namespace(**json.load(f))
    elif a.save:
        with open(a.save, "w") as f:
            json.dump(vars(a), f, indent=1)
    runs, other = load_results(a.results)
    core = load_core(a.core)
    core_method, core_measure = core_method_text(core)
    tg_hwm, ng_hwm = (int(x) for x in a.peak.split())

    ka, ka_ratio = network_table(runs, "keepalive")
    cpu_md, cpu_sequential = cpu_section(runs)
    paired_md, cpu_targets = paired_section(runs, cpu_sequential)
    floor_md = floor_section(runs) or "Not run in this run (results written before it)."
    if not paired_md:
        paired_md = "Not run in this run (results written before it)."
    windows = [r["window_us"] for r in runs if r["mode"] == "paired"]
    paired_s = (f"{statistics.median(windows) / 1e6:.2f} s" if windows
                else "the run's duration")
    close, _ = network_table(runs, "close")
    rate_md = rate_section(runs) or "Not measured in this run (h2load missing)."
    closed = [r for r in runs if r["mode"] == "keepalive"]
    duration_s = runs[0]["duration_us"] / 1e6
    tick_pct = f"{100 / (duration_s * TICK):.1f}%"
    st = steal_share(closed)
    steal = f"{st * 100:.1f}%" if st is not None else "not recorded"

    audit_rows = []
    for sync in ("off", "none", "batch", "always"):
        g = group(runs, mode=f"audit-{sync}")
        if g:
            label = "no `--audit-log`" if sync == "off" else f"`--audit-sync {sync}`"
            audit_rows.append([label, spread([rps(r) for r in g]),
                               "/".join(ms(statistics.median(r[k] for r in g))
                                        for k in ("p50_us", "p99_us", "p999_us")),
                               sum(r["errors"] for r in g),
                               f"{statistics.mean(cpu_per_1000(r) for r in g):.3f}"])

    reload = group(runs, mode="reload")
    reload_counts = {o.get("round", 1): o["count"] for o in other if o.get("kind") == "reloads"}
    controls = {r["round"]: r for r in group(runs, mode="reload-control")}

    review = core["review"]
    def core_us(n, trait, decision, hook):
        for r in review:
            if (r["components"], r["trait"], r["decision"], r["webhook"]) == (str(n), trait,
                                                                                decision, hook):
                return float(r["us_per_review"])
        return float("nan")

    core_rows = [[r["components"], r["trait"], r["decision"], f"/{r['webhook']}", r["bytes"],
                  r["us_per_review"], r["us_per_component"], r["decode_us"]]
                 + ([f"{float(r['decode_share']):.2f}"] if "decode_share" in r else [])
                 for r in review]
    rules_rows = [[r["rules"], r["components"], r["us_per_review"], r["us_per_rule_component"]]
                  for r in core["rules"]]
    load_rows = [[r["rules"], r["bytes"], r["ms_per_load"]] for r in core["load"]]
    patch_rows = [[r["components"], r["us_per_patch"], r["us_per_component"]]
                  for r in core["patch"]]
    update_rows = [[r["components"], f"/{r['webhook']}", r["create_us"], r["update_us"],
                    f"{float(r['ratio']):.2f}", pair_range(r)] for r in core["update"]]
    apply_rows = [[r["components"], f"/{r['webhook']}", r["create_bytes"], r["update_bytes"],
                   r["create_us"], r["update_us"], f"{float(r['ratio']):.2f}", pair_range(r),
                   f"{int(r['update_bytes']) / int(r['create_bytes']):.2f}",
                   f"{float(r['ratio']) * int(r['create_bytes']) / int(r['update_bytes']):.2f}"]
                  for r in core.get("apply", [])]
    guarded = core.get("guarded", [])
    guarded_us = {(r["object"], r["webhook"]): float(r["us_per_review"]) for r in guarded}

    def guarded_against(obj):
        """The 1-component Application review a guarded object is held to: the same operation,
        and for the bare Table (patched by /mutate, denied by /validate) the Application that
        /mutate patches and /validate denies."""
        if obj.endswith("-update"):
            return "application-1-update"
        if obj == "table-bare" and any(r["object"] == "application-1-bare" for r in guarded):
            return "application-1-bare"
        return "application-1"

    def guarded_pair(r):
        """(the Application review it is held to, its µs, the ratio) for a guarded object's row,
        None for the Application's own rows. Rows measured in pairs carry all three; older
        core.tsv files only the times, and the ratio is taken between rows."""
        if r["object"].startswith("application-"):
            return None
        if r.get("against", "-") != "-":
            return r["against"], float(r["against_us"]), float(r["ratio"])
        ref = guarded_against(r["object"])
        ref_us = guarded_us.get((ref, r["webhook"]))
        return None if ref_us is None else (ref, ref_us, float(r["us_per_review"]) / ref_us)

    guarded_rows = []
    for r in guarded:
        p = guarded_pair(r)
        guarded_rows.append([f"`{r['object']}`", f"/{r['webhook']}", r["bytes"], r["us_per_review"],
                             "—" if p is None else f"`{p[0]}` {p[1]:.2f}",
                             "—" if p is None else f"{p[2]:.2f}", pair_range(r)])
    scale = core.get("scale", [])
    scale_rows = [[f"`{r['review']}`", f"/{r['webhook']}", r["profiles"], r["exceptions"],
                   r["base_us"], r["scaled_us"], r["ratio"], pair_range(r)] for r in scale]

    # ---- targets --------------------------------------------------------------------------------
    targets = list(cpu_targets)
    for payload, hook in (("c1-notrait-allow", "mutate"), ("c1-trait-allow", "validate"),
                          ("c10-notrait-allow", "mutate"), ("c10-trait-allow", "validate")):
        g = group(runs, target="tableguard", payload=payload, webhook=hook, mode="keepalive")
        if g:
            worst = max(r["p99_us"] for r in g)
            targets.append([f"p99 ≤ 2 ms at {g[0]['connections']} connections, `{payload}` "
                            f"/{hook} (audit log on, batch; wrk's closed loop at saturation)",
                            f"{ms(worst)} ms (worst round; rounds "
                            f"{', '.join(ms(r['p99_us']) for r in g)}); queueing floor "
                            f"{g[0]['connections']} / {statistics.mean(rps(r) for r in g):.0f} "
                            f"req/s = {statistics.mean(floor_ms(r) for r in g):.2f} ms"
                            + rate_note(runs, payload, hook), verdict(worst <= 2000)])
    big = [float(r["us_per_component"]) for r in review if r["components"] == "1000"]
    targets.append(["core ≤ 2 µs per component (1000 components, every shape)",
                    f"{min(big):.2f}–{max(big):.2f} µs", verdict(max(big) <= 2.0)])
    worst_1000 = max(float(r["us_per_review"]) for r in review if r["components"] == "1000")
    targets.append(["1000-component review answered by the core in ≤ 5 ms",
                    f"{ms(worst_1000)} ms (slowest shape)", verdict(worst_1000 <= 5000)])
    per = {n: [float(r["us_per_review"]) / int(n) for r in review if r["components"] == n]
           for n in ("100", "1000")}
    lin = max(per["1000"]) / max(per["100"])
    targets.append(["core cost linear in components (µs/component at 1000 vs 100)",
                    f"{lin:.2f}×", verdict(lin <= 1.3)])
    # VmHWM only grows, so its value after the last run below 1000 components is the peak of
    # the 1- to 100-component load; the whole run adds 32 megabyte bodies in flight at once.
    small = [r["hwm_kib"] for r in runs if r["target"] == "tableguard" and
             r["mode"] == "keepalive" and not r["payload"].startswith("c1000-")]
    if small:
        targets.append(["peak RSS ≤ 32 MiB under load: 1 to 100 components, 32 connections",
                        f"{max(small) / 1024:.1f} MiB", verdict(max(small) <= 32 * 1024)])
    budget = group(runs, mode="budget")
    targets.append(["peak RSS ≤ 32 MiB under load: whole run, incl. 1000 components "
                    "(shipped `--body-memory`: 32 bodies of 0.85-1.2 MB in flight)",
                    f"{tg_hwm / 1024:.1f} MiB (nginx worker {ng_hwm / 1024:.1f} MiB)"
                    + (f"; information: the 1000-component runs alone with `--body-memory "
                       f"{budget[0]['body_memory'] >> 20} MiB` (`--max-body 8 MiB`): "
                       f"{max(r['hwm_kib'] for r in budget) / 1024:.1f} MiB at "
                       f"{', '.join(f'{rps(r):.0f}' for r in budget)} req/s "
                       f"({sum(r['errors'] for r in budget)} errors)" if budget else ""),
                    verdict(tg_hwm <= 32 * 1024)])
    soak = [o for o in other if o.get("kind") == "soak"]
    if soak:
        settled = [o["rss_kib"] for o in soak if o["t"] >= 30]
        growth = (settled[-1] - settled[0]) / 1024
        targets.append(["RSS flat over a 5-minute run (30 s to 290 s)",
                        f"{settled[0] / 1024:.1f} → {settled[-1] / 1024:.1f} MiB "
                        f"(max {max(o['rss_kib'] for o in soak) / 1024:.1f}, growth "
                        f"{growth:+.1f} MiB)", verdict(abs(growth) <= 1.0)])
    else:
        targets.append(["RSS flat over a 5-minute run", "not run (BENCH_SOAK=1)", "—"])
    def middle(r):
        return f", middle half of the pairs {pair_range(r)}" if pair_range(r) != "—" else ""

    if core["update"]:
        worst = max(core["update"], key=lambda r: float(r["ratio"]))
        ir = [f"/{r['webhook']} {int(r['update_ir']) / int(r['create_ir']):.2f}×"
              for r in core.get("update_ir", []) if int(r["create_ir"]) > 0]
        targets.append(["UPDATE with oldObject ≤ 2.2× the CREATE of the same Application (core, "
                        "1 to 1000 components, both webhooks)",
                        f"{float(worst['ratio']):.2f}× (worst: {worst['components']} components "
                        f"/{worst['webhook']}{middle(worst)}; {core_measure})"
                        + (f"; information, in instructions (callgrind) at 1000 components: "
                           + ", ".join(ir) if ir else ""),
                        verdict(float(worst["ratio"]) <= 2.2)])
    held = [(r, guarded_pair(r)) for r in guarded]
    held = [(r, p) for r, p in held if p is not None]
    if held:
        worst, (ref, ref_us, ratio) = max(held, key=lambda h: h[1][2])
        targets.append(["a guarded ACK `Table` / kro `DynamoDBTable` review costs no more than the "
                        "1-component Application review of the same operation (core, both "
                        "webhooks)", f"worst `{worst['object']}` /{worst['webhook']}: "
                        f"{float(worst['us_per_review']):.2f} µs against `{ref}` {ref_us:.2f} µs "
                        f"({ratio:.2f}×{middle(worst)}; {core_measure})",
                        verdict(all(p[2] <= 1.0 for _, p in held))])
    both = [r for r in scale if r["profiles"] == "100" and r["exceptions"] == "100"]
    if both:
        worst = max(both, key=lambda r: float(r["ratio"]))
        targets.append(["100 exceptions and 100 profiles add ≤ 10% to a 10-component review "
                        "(core)", f"worst `{worst['review']}` /{worst['webhook']}: "
                        f"{(float(worst['ratio']) - 1) * 100:+.1f}% ({worst['base_us']} → "
                        f"{worst['scaled_us']} µs{middle(worst)}; {core_measure})",
                        verdict(all(float(r["ratio"]) <= 1.10 for r in both))])
    if a.audit_report and os.path.exists(a.audit_report):
        with open(a.audit_report) as f:
            ar = json.load(f)["rows"]
        big = [r for r in ar if r["largest"]]
        small = [r for r in ar if not r["largest"]]
        if big:
            size = big[0]["bytes"]
            speeds = [r["bytes"] / r["seconds"] / 1e6 for r in big]
            growth = max(b["peak_rss_kib"] - s_["peak_rss_kib"] for b, s_ in zip(big, small)) \
                if len(small) == len(big) else 0
            measured = "; ".join(f"{r['query'].split(':')[0]}: {v:.0f} MB/s, peak "
                                 f"{r['peak_rss_kib'] / 1024:.1f} MiB" for r, v in zip(big, speeds))
            if small:
                measured += (f"; peak RSS growth from the {small[0]['bytes'] / 2**20:.0f} MiB "
                             f"prefix: {growth / 1024:+.1f} MiB")
            targets.append([f"`audit report` streams a {size / 2**30:.2f} GiB log at ≥ 200 MB/s "
                            "(10⁶ bytes) with flat memory (≤ 1 MiB more than on its first eighth), "
                            "every query", measured,
                            verdict(min(speeds) >= 200 and growth <= 1024)])
    load1000 = next(float(r["ms_per_load"]) for r in core["load"] if r["rules"] == "1000")
    targets.append(["1000-rule policy loads in ≤ 20 ms", f"{load1000:.2f} ms",
                    verdict(load1000 <= 20)])
    if reload:
        def share(r):
            return float(r["above"]) if r["above"] != "nan" else 0.0

        parts, ok = [], True
        for r in reload:
            count = reload_counts.get(r["round"], 0)
            triggers = r.get("sighups", 0) + r.get("rewrites", 0)
            ok = ok and share(r) <= 0.001 and r["errors"] == 0 and count > 0
            excess = ((share(r) - 0.001) * r["window_requests"] / triggers
                      if triggers and "window_requests" in r else None)
            parts.append(f"round {r['round']}: {share(r) * 100:.3f}% of the requests that ended "
                         f"in the half second after a reload above the p99.9 of those that ended "
                         f"between reloads ({ms(r['baseline_p999_us'])} ms; 0.1% expected"
                         + (f"; {r['window_above']} of {r['window_requests']}"
                            if "window_requests" in r else "")
                         + (f", from {r['window_stalls']} stalls of the server, against "
                            f"{r['quiet_stalls']} above it between reloads"
                            if "window_stalls" in r else "")
                         + f"), p99.9 of the run {ms(r['p999_us'])} ms, max {ms(r['max_us'])} ms, "
                         f"errors {r['errors']}; "
                         + (f"{r['sighups']} SIGHUPs and {r['rewrites']} rewrites of the policy "
                            f"file, one a second, in {r['duration_us'] / 1e6:.0f} s, "
                            if triggers else "")
                         + f"{count} policy reloads logged"
                         + (f", about {excess:.0f} request"
                            f"{'' if round(excess) == 1 else 's'} above it per reload or "
                            "SIGHUP beyond the 0.1%"
                            if excess is not None and excess >= 0.5 else ""))
        noise = [c for c in controls.values() if c["above"] != "nan"]
        if noise:
            parts.append("the same comparison in a run without reloads (the noise of this "
                         "comparison): "
                         + ", ".join(f"{share(c) * 100:.3f}%" for c in noise))
        targets.append(["a reload under load adds no request above p99.9 (`c1-trait-allow` "
                        "/validate, keep-alive, every round)", "; ".join(parts), verdict(ok)])

    slow = [o for o in other if o.get("kind") == "slow-clients"]
    hostile = [o for o in slow if o["beside"] != "none"]
    if hostile:
        alone = max(o["p99_us"] for o in slow if o["beside"] == "none")
        worst = max(o["p99_us"] for o in hostile)
        errors = sum(o["errors"] for o in hostile)
        targets.append([f"p99 ≤ 10 ms beside a slowloris client ({hostile[0]['slowloris_connections']}"
                        f" connections) and a slow-body client (`{hostile[0]['payload']}` "
                        f"/{hostile[0]['webhook']}, keep-alive, {hostile[0]['connections']} "
                        "connections)",
                        f"{ms(worst)} ms (worst round; alone {ms(alone)} ms), errors {errors}, "
                        f"slow connections closed {sum(o['slow_closed'] for o in hostile)}",
                        verdict(worst <= 10000 and errors == 0)])

    targets_md = table(["target", "measured", "verdict"], targets)
    doc = f"""# Performance

Written by `make bench` (tests/bench/run.sh); do not edit by hand: the figures are replaced on
every run. How to read them and what was changed because of them is at the end.

- **Command**: `{a.command}`
- **Machine**: {a.machine}
- **Pinning**: {a.pinning}. Other work on the machine is not stopped, so each figure is the
  mean of the rounds with their range; tableguard and nginx runs alternate (A B A B) so drift
  shows in both. The CPU-per-request target is judged on paired rounds instead, where both
  servers run at the same time.
- **TLS**: {a.tls}
- **Versions**: {a.versions}
- **Payloads**: AdmissionReview v1 requests as kube-apiserver serialises them (CREATE,
  `oldObject: null`, userInfo, options, managedFields and kubectl's last-applied annotation),
  `c<N>-<trait|notrait>-<allow|deny>`: N aws-dynamodb-kro components, with or without the
  `dynamodb-protection-kro` trait, allowed or denied by `policy/default.yaml`. nginx answers the
  same POST with the exact response tableguard gave to that payload (a static file of the same
  size), so both do the same TLS, HTTP and body reading; tableguard does the review on top.
- **Measures**: requests/s and p50/p99/p99.9 from wrk's latency histogram (h2load's
  per-request log for the fixed-rate rows and the reload rows); errors are the client's connect/read/write/timeout
  errors and non-2xx answers; CPU per request (µs, or seconds per 1000 requests) from
  utime+stime in /proc/PID/stat before and after each run: for a process that file sums every
  thread, the audit log's batch thread included, and the kernel work done in the process's
  context (system calls, the loopback delivery its sends trigger); nginx: its worker. Those
  counters are in 10 ms ticks over the scheduler's exact run time, so a {duration_s}-second run
  at full load reads to within {tick_pct} per reading. The CPU busy column counts everything that
  ran on the servers' CPU (kernel threads such as the file system's journal included), from
  /proc/stat; time the hypervisor gave to other guests is counted in neither (steal on the
  servers' CPU during the closed-loop runs: {steal}). Peak RSS is VmHWM from /proc/PID/status.

## Targets

{targets_md}

## Server CPU per request against nginx, paired (1 component, keep-alive, {runs[0]['connections']} connections)

The target is tableguard ≤ nginx / 0.6, that is nginx/tableguard ≥ 0.6, for tableguard as
shipped (audit log on, `--audit-sync batch`). Both servers run on the servers' CPU at the same
time, each loaded by its own `wrk -t1 -c{runs[0]['connections']}` (the same script and body) on
the load CPU for the same time, so each round's ratio is taken over the same seconds of the same
machine: a slow or fast spell of the host falls on both. In every round the window of the
measurement starts half a second after both wrk runs (their handshakes are made by then), lasts
{paired_s}, and ends half a second before them, so it holds neither a TLS handshake nor a
moment when one server runs alone. CPU: the scheduler's run time of every thread of the server
(/proc/PID/task/*/schedstat, in nanoseconds: tableguard's audit batch thread and the kernel work
done in the process's context included; nginx: its worker); requests: the server's own count,
read back to back with its CPU at both ends of the window (tableguard_admission_requests_total on
the metrics listener; nginx's stub_status). **The verdict is the median of the rounds' ratios.**
tableguard without an audit log is measured the same way, for information, in pairs of its own
with nginx right after the first rounds' pairs: a third server in the same round would give each
a third of the CPU instead of a half, raise every server's CPU per request more than a pair does,
and leave the target's pair measured other than as it is defined.

{paired_md}

## Server CPU per request against nginx, sequential rounds (information)

The same servers loaded one after the other (A B A B), CPU time (user + system, every thread)
from /proc/PID/stat around each run and the requests wrk counted (its handshakes included):
tableguard as shipped, a second tableguard without `--audit-log` on the same CPU, and nginx
answering the same bytes over the same TLS. Each round's three runs are back to back, so the
ratio is given per round; runs seconds apart see a different host, so these rounds spread more
than the paired ones. Requests/s are beside it.

{cpu_md}

## Latency at {runs[0]['connections']} connections: the target, and the same requests at a fixed rate

The p99 target is judged on wrk's closed-loop runs in the Targets table: {runs[0]['connections']}
connections each sending its next request as soon as the last is answered, to one server thread
on one core. That loop keeps the server saturated, so every request waits behind the others:
the mean latency is the connections divided by the throughput (Little's law, the *queueing floor*
in the target rows) and the p99 lies above it. There p99 ≤ 2 ms amounts to a throughput target:
{runs[0]['connections']} requests in 2 ms, {runs[0]['connections'] * 500} req/s or
{2000 / runs[0]['connections']:.1f} µs of CPU per request, before any tail.

For what a reader of these figures also needs, the same requests on the same {runs[0]['connections']}
connections at a fixed offered rate (h2load `--rps`, one request in flight per connection, a
warm-up second for the handshakes): the API server's busy rate, and half of what tableguard
answered in the closed loop. nginx at the same rates shows the floor of the client, TLS and
loopback. These rows are information; **the verdict is the closed-loop row in the Targets
table.** h2load paces each connection on a timer of its own and sends the requests that are due
together: the last column is the share of request starts less than 50 µs after the previous
one (evenly spaced at these rates, none would be), so the server sees bursts, not a steady
stream.

{rate_md}

## The host's latency floor (information)

One keep-alive connection at 100 req/s (h2load `--rps`, a warm-up second for the handshake):
every request finds the server idle, 10 ms after the last, so its latency is the client, TLS,
loopback and the wake-up of an idle server thread in this VM, with nothing queued. No server
answers faster on this host; nginx beside tableguard shows how much of it is the host's.

{floor_md}

## HTTPS with keep-alive, {runs[0]['connections']} connections

{ka}

## A new connection (full TLS 1.3 handshake) per request

{close}

## The audit log's cost (`c1-notrait-allow` on /mutate, keep-alive)

The log is a file on this machine's ext4 disk, rotated at 64 MiB (every 2-3 s at these rates).
The first row is the same server without an audit log, for the cost of the log itself.

{table(["mode", "req/s (range)", "p50/p99/p99.9 ms", "errors", "CPU s/1000 req"], audit_rows)}

## The core without the network

{core_method}

![time per review against components](perf-components.png)

{table(["components", "trait", "decision", "webhook", "bytes", "µs/review", "µs/component",
        "decode µs"] + (["decode share"] if review and "decode_share" in review[0] else []),
        core_rows)}

An `UPDATE` carrying the same Application as `oldObject` (what a sync that changes nothing the
policy reads sends) against its `CREATE` (`cN-trait-allow`): the transition checks pair every
table of `oldObject` with its place in `object`, on top of decoding the second object:

{table(["components", "webhook", "CREATE µs", "UPDATE µs", "ratio", "middle half of the pairs"],
        update_rows)}

The realistic UPDATE, for information (the target is judged on the rows above): `kubectl
apply` of a running Application (`cN-trait-allow-update`: object and oldObject with KubeVela's
status and managedFields, a tag changed) against its CREATE. It carries 2.7-3.1 times the
CREATE's bytes, and decoding is most of a review, so its time ratio follows its byte ratio; the
last column is the time ratio per byte:

{table(["components", "webhook", "CREATE bytes", "UPDATE bytes", "CREATE µs", "UPDATE µs",
        "time ratio", "middle half of the pairs", "byte ratio", "time ratio / byte ratio"],
        apply_rows)}

Guarded objects (an ACK `Table` bare, protected, and updated by its controller; the kro
`DynamoDBTable` KubeVela creates and re-applies) against the 1-component Application's CREATE and
UPDATE; the ratio is to the Application review of the same operation and webhook, and for the
bare Table (patched by /mutate, denied by /validate) to `application-1-bare`
(`c1-notrait-deny`, which /mutate patches and /validate denies):

{table(["object", "webhook", "bytes", "µs/review", "held to, µs", "ratio to it",
        "middle half of the pairs"], guarded_rows)}

100 profiles (listed before the shipped ones, so every table is tried against all of them) and
100 exceptions (none waives these tables, so every finding is tried against all of them) on
10-component reviews; the decision is the same with and without them:

{table(["review", "webhook", "profiles", "exceptions", "base µs", "with them µs", "ratio",
        "middle half of the pairs"], scale_rows)}

Against rules (`c10-trait-allow` on /validate; every rule matches every table and is met):

{table(["rules", "components", "µs/review", "µs per rule×component"], rules_rows)}

Policy load (`policy_load_buffer`, a policy with N rules):

{table(["rules", "bytes", "ms/load"], load_rows)}

Patch building (`eval_mutate` plus the base64 response, every component lacks the trait):

{table(["components", "µs/patch", "µs/component"], patch_rows)}
"""
    here = os.path.dirname(os.path.abspath(__file__))
    paths = a.before or [os.path.join(here, "profile-before.json"),
                         os.path.join(here, "profile-previous.json")]
    baselines = []
    for path in [paths] if isinstance(paths, str) else paths:
        if os.path.exists(path):
            with open(path) as f:
                baselines.append(json.load(f))
    if a.profile:
        doc += ("\n## The server's profile under load\n\nWritten by `make bench` from the "
                "server under the load of the CPU table (perf: its keep-alive runs, `mode` "
                "profile; callgrind: 4 connections). Beside it, the same measurement on "
                + "; on ".join(f"{b.get('commit', '—')} ({b.get('note', '')})" for b in baselines)
                + ".\n\n" + profile_section(a.profile, baselines))
    for extra in a.extra:
        with open(extra) as f:
            doc += "\n" + f.read()
    with open(a.notes) as f:
        doc += "\n" + f.read()
    with open(a.out, "w") as f:
        f.write(doc)
    print(targets_md)
    print()
    print(ka)


if __name__ == "__main__":
    main()
