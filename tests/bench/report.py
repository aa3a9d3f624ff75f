#!/usr/bin/env python3
"""Renders docs/benchmarks.md and docs/img/*.png from swload's JSON lines.

usage: report.py BENCH_DIR DOCS_DIR   (tests/bench/report.sh calls it)
"""
import json
import os
import platform
import subprocess
import sys

bench, docs = sys.argv[1], sys.argv[2]
img = os.path.join(docs, "img")
os.makedirs(img, exist_ok=True)
TARGETS = ["switchyard", "switchyard-nats", "nats"]
NAMES = {"switchyard": "Switchyard (in-process bus)",
         "switchyard-nats": "Switchyard (NATS bus)",
         "nats": "nats-server WebSocket"}


def load(name):
    path = os.path.join(bench, name + ".json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"


def us(v):
    return f"{v / 1000:.1f} ms" if v >= 1000 else f"{v:.0f} µs"


def rate_table(rows):
    out = ["| server | events/s offered | deliveries/s | delivered | p50 | p99 | p99.9 | max | server CPU | nats-server CPU (bus) | generator CPU |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        flag = " (saturated)" if r["saturated"] else ""
        out.append(f"| {NAMES[r['target']]} | {r['rate']:.0f} | {r['delivered_per_s']:,.0f}{flag} | "
                   f"{100 * r['ratio']:.1f}% | {us(r['p50_us'])} | {us(r['p99_us'])} | {us(r['p999_us'])} | "
                   f"{us(r['max_us'])} | {r['server_cpu']:.0f}% | {r['nats_cpu']:.0f}% | {r['gen_cpu']:.0f}% |")
    return "\n".join(out)


def best(rows, target):
    """Highest delivery rate that still kept up (not saturated)."""
    ok = [r for r in rows if r["target"] == target and not r["saturated"]]
    anyr = [r for r in rows if r["target"] == target]
    top = max(anyr, key=lambda r: r["delivered_per_s"]) if anyr else None
    return (max(ok, key=lambda r: r["delivered_per_s"]) if ok else None), top


def plot(rows, name, title, per_event):
    dat = os.path.join(bench, name + ".dat")
    series = []
    with open(dat, "w") as f:
        for t in TARGETS:
            pts = [r for r in rows if r["target"] == t]
            if not pts:
                continue
            series.append(t)
            f.write(f"# {t}\n")
            for r in pts:
                f.write(f"{r['rate'] * per_event(r):.0f} {max(r['p50_us'], 1) / 1000:.3f} {max(r['p99_us'], 1) / 1000:.3f}\n")
            f.write("\n\n")
    png = os.path.join(img, name + ".png")
    plots = []
    for i, t in enumerate(series):
        plots.append(f"'{dat}' index {i} using 1:3 with linespoints lw 2 title '{NAMES[t]} p99'")
        plots.append(f"'{dat}' index {i} using 1:2 with linespoints dt 2 title '{NAMES[t]} p50'")
    script = f"""set terminal pngcairo size 900,520 font ',10'
set output '{png}'
set title '{title}'
set xlabel 'offered deliveries per second'
set ylabel 'publish-to-deliver latency (ms)'
set logscale y
set grid
set key top left
plot {', '.join(plots)}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=False)
    return f"img/{name}.png"


fan1 = load("fanout1k")
fan10 = load("fanout10k")
many = load("many")
idle_shared = load("idle-shared")
idle_unique = load("idle-unique")
storm = load("storm")
conns_of = lambda rows: (lambda r: r["conns"])
lines = []
w = lines.append
w("# Benchmarks\n")
w("Regenerate everything on this page (tables, plots, profile) with one command:\n")
w("```sh\ntests/bench/report.sh\n```\n")
w("It builds, then runs `build/tests/bench/swload` once per scenario; each run starts "
  "Switchyard on its in-process bus, Switchyard on NATS, and nats-server 2.9 with its "
  "WebSocket listener (`websocket { no_tls: true }`), one after the other, with the same "
  "client processes, so every ratio below is taken on the same machine in the same run.\n")
w("## Machine\n")
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
mem = sh("free -g | awk '/Mem:/{print $2}'")
nats_version = sh("nats-server --version")
commit_file = os.path.join(bench, "commit.txt")
commit = open(commit_file).read().strip() if os.path.exists(commit_file) else "?"
w(f"- Measured at commit {commit}.")
w(f"- {sh('nproc')} cores ({cpu}), {mem} GiB, Linux {platform.release()}")
w(f"- Switchyard built RelWithDebInfo (-O2); {nats_version}; node threads: 1 HTTP, "
  "1 WebSocket I/O, 1 actor, 1 nats.c delivery (defaults on 2 cores)")
w("- A process may open at most 20,000 files here, so one node holds at most ~19,900 "
  "connections; the generator spreads its connections over 2 processes (`--procs`), and "
  "binds to several 127.0.0.0/8 source addresses (`--source-ips 127.0.0.2,127.0.0.3`) where "
  "a run would pass 64k connections to one port.")
w("- Server, bus and generator share the 2 cores. Every table reports the CPU of each, "
  "read from /proc: `server CPU` above 100% means the node's threads used more than one core.\n")
w("Latency is publish-to-deliver: the publisher stamps each payload with CLOCK_MONOTONIC "
  "nanoseconds, every receiver records now - stamp in a log-linear histogram (32 buckets per "
  "power of two, ~3% precision). The publisher reaches Switchyard's in-process bus by "
  "pipelined `POST /v1/publish`, and nats-server and Switchyard's NATS bus by NATS `PUB` "
  "(a msgpack envelope for Switchyard). A step counts as saturated when deliveries fall "
  "below 97% of offered, the publisher cannot send the offered rate, p99 exceeds 200 ms, "
  "or a client is disconnected.\n")

w("## Goals\n")
g = []
b_sw, top_sw = best(fan10, "switchyard")
b_swn, top_swn = best(fan10, "switchyard-nats")
b_n, top_n = best(fan10, "nats")
if top_n and (top_sw or top_swn):
    n_max = top_n["delivered_per_s"]
    for t, top in (("switchyard", top_sw), ("switchyard-nats", top_swn)):
        if top:
            g.append(f"- Fan-out to 10k subscribers, highest deliveries/s: {NAMES[t]} "
                     f"{top['delivered_per_s']:,.0f} vs nats-server {n_max:,.0f} = "
                     f"**{top['delivered_per_s'] / n_max:.2f}x** (goal 1.5x).")
    for t in ("switchyard", "switchyard-nats"):
        same = [(r, n) for r in fan10 if r["target"] == t
                for n in fan10 if n["target"] == "nats" and abs(n["rate"] - r["rate"]) / max(r["rate"], 1) < 0.05]
        if same:
            worse = [f"{r['rate']:.0f}/s" for r, n in same if r["p99_us"] > n["p99_us"]]
            g.append(f"- p99 at the same offered load, {NAMES[t]} vs nats-server: "
                     + ("no worse at every step" if not worse else "worse at " + ", ".join(worse)) + " "
                     + "; ".join(f"{r['rate']:.0f}/s: {us(r['p99_us'])} vs {us(n['p99_us'])}" for r, n in same) + ".")
for rows, label in ((idle_shared, "one shared pattern per org"), (idle_unique, "an own topic per connection")):
    for r in rows:
        g.append(f"- Idle ({label}): {NAMES[r['target']]} held {r['conns']:,} connections, "
                 f"{r['kib_per_conn']:.2f} KiB of resident memory each "
                 f"(projects to {r['kib_per_conn'] * 1e6 / 1024 / 1024:.1f} GiB for 1M connections; goal 4 KiB), "
                 f"{r['lost']} dropped while idle.")
for name, rows in (("fan-out 1k", fan1), ("fan-out 10k", fan10), ("many topics", many)):
    for t in TARGETS:
        pts = [r for r in rows if r["target"] == t]
        ok, top = best(rows, t)
        if not pts or not top:
            continue
        sat = ok["rate"] if ok else 0
        half = [r for r in pts if r["rate"] <= sat / 2 + 1e-9]
        if half and sat:
            h = max(half, key=lambda r: r["rate"])
            g.append(f"- p99 at half the saturating rate, {name}, {NAMES[t]}: {h['rate']:.0f} events/s "
                     f"(highest step at or below half of {sat:.0f}): p99 {us(h['p99_us'])} (goal < 5 ms).")
w("\n".join(g) + "\n")

w("## 1. Fan-out: one topic, S subscribers\n")
w("`swload --scenario fanout --subs 1000 --rates 100,200,400,800,1600 --saturate --duration 4`\n")
w(rate_table(fan1) + "\n")
if fan1:
    w(f"![latency vs load, 1k subscribers]({plot(fan1, 'fanout1k', 'Fan-out to 1k subscribers', lambda r: r['conns'])})\n")
w("`swload --scenario fanout --subs 10000 --rates 12,25,50,100,200 --duration 4`\n")
w(rate_table(fan10) + "\n")
if fan10:
    w(f"![latency vs load, 10k subscribers]({plot(fan10, 'fanout10k', 'Fan-out to 10k subscribers', lambda r: r['conns'])})\n")

w("## 2. Many topics: 10k connections, own resource topic each, one wildcard per org\n")
w("100 orgs of 100 connections; each connection subscribes `events.org_K.svc.task.done.r<i>`, "
  "and the first of each org also `events.org_K.svc.task.done.*`; events are spread over the "
  "10k resource topics, so each event reaches 2 subscriptions.\n")
w("`swload --scenario many-topics --conns 10000 --per-org 100 --rates 1000,...,32000 --duration 4`\n")
w(rate_table(many) + "\n")
if many:
    w(f"![latency vs load, many topics]({plot(many, 'many', 'Many topics (10k connections, 100 orgs)', lambda r: 2)})\n")

w("## 3. Idle capacity and memory per connection\n")
w("Authenticated (Switchyard: token in the URL), subscribed, idle connections; resident memory "
  "of the server process before connecting and 12 s after the last connection was ready, "
  "divided by the connections. Kernel socket buffers are not in this figure.\n")
w("| server | subscriptions | connections | RSS | KiB per connection | 1M connections would need | dropped while idle |")
w("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for rows, label, cmd in ((idle_shared, "`events.org_K.>` shared by 100 connections", "--shared"), (idle_unique, "own topic per connection", "")):
    for r in rows:
        w(f"| {NAMES[r['target']]} | {label} | {r['conns']:,} | {r['rss_mib']:.0f} MiB | {r['kib_per_conn']:.2f} | "
          f"{r['kib_per_conn'] * 1e6 / 1024 / 1024:.1f} GiB | {r['lost']} |")
w("\n`swload --scenario idle --conns 19500 --procs 2 [--shared] --targets switchyard,nats`\n")

w("## 4. Connect storm\n")
w("10k connections opened at once (256 handshakes in flight per generator process): TCP, "
  "WebSocket upgrade, authentication, subscription, until the subscription is confirmed.\n")
w("| server | connections | connections/s |")
w("| --- | ---: | ---: |")
for r in storm:
    w(f"| {NAMES[r['target']]} | {r['conns']:,} | {r['conns_per_s']:,.0f} |")
w("\n`swload --scenario storm --conns 10000 --procs 2 --shared`\n")

w("## Where the time goes\n")
prof = os.path.join(bench, "profile.txt")
if os.path.exists(prof):
    w("`perf record -e cpu-clock -g -p <node>` for 5 s while the node (NATS bus) fans out 100 "
      "events/s to 10k subscribers (`perf report --no-children --sort dso,symbol`, entries over 1%):\n")
    dso = os.path.join(bench, "profile-dso.txt")
    if os.path.exists(dso):
        w("By binary:\n")
        w("```\n" + open(dso).read().rstrip() + "\n```\n")
    w("By function:\n")
    w("```\n" + open(prof).read().rstrip() + "\n```\n")
micro = os.path.join(bench, "micro.txt")
if os.path.exists(micro):
    w("## Micro-benchmarks of the per-event code\n")
    w("`build/tests/bench/switchyard-micro` (Google Benchmark; `tests/bench/micro.cpp`):\n")
    w("```\n" + open(micro).read().rstrip() + "\n```\n")
notes = os.path.join(os.path.dirname(__file__), "notes.md")
if os.path.exists(notes):
    w(open(notes).read())
with open(os.path.join(docs, "benchmarks.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
