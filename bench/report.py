#!/usr/bin/env python3
"""bench/report.py — turns bench/relay.sh's results into docs/benchmarks.md
sections and gnuplot charts.

    bench/report.py RESULTS.jsonl OUT.md DOCS_DIR

Every loadgen run is one JSON line {"phase", "round", "target", "n", "load1",
"r": <loadgen summary>}. Figures are medians over the rounds; "added" means
target minus direct (the client talking to the mock itself) in the same
round, so the mock's and the client's own costs cancel out. Charts are
written to DOCS_DIR/benchmarks-*.png when gnuplot is installed.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

NAMES = {
    "direct": "direct (no relay)",
    "telex-plain": "**telex**, plain relay",
    "telex-full": "**telex**, resume + accounting",
    "telex-plain-h2": "**telex**, plain relay, HTTP/2 to the provider",
    "nginx": "nginx (proxy_buffering off)",
    "pushpin": "pushpin",
    "pyrelay": "Python Starlette relay (seeds)",
    "portkey": "Portkey gateway (Node)",
    "nullplatform": "nullplatform gateway (Node)",
}
ORDER = list(NAMES)
SHORT = {
    "direct": "direct", "telex-plain": "telex", "telex-full": "telex+resume+acct", "telex-plain-h2": "telex (h2 up)",
    "nginx": "nginx",
    "pushpin": "pushpin", "pyrelay": "pyrelay", "portkey": "portkey", "nullplatform": "nullplatform",
}


def load(path):
    runs, meta, rss_base = [], {}, {}
    meta["search_result"] = {}
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        d = json.loads(line)
        if d["phase"] == "meta":
            meta.update({k: v for k, v in d.items() if k != "phase"})
        elif d["phase"] == "rss_base":
            rss_base[d["target"]] = d["rss_kb"]
        elif d["phase"] == "search_result":
            meta["search_result"][d["target"]] = (d["good"], d["bad"])
        else:
            runs.append(d)
    return runs, meta, rss_base


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=2, unit=""):
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}{unit}"
    if abs(x) >= 10:
        return f"{x:.1f}{unit}"
    return f"{x:.{digits}f}{unit}"


def pos(x):
    return x if x is not None and x >= 0 else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}x"


class Results:
    def __init__(self, runs):
        self.runs = runs

    def select(self, phase, target, n=None):
        return [d for d in self.runs if d["phase"] == phase and d["target"] == target and (n is None or d["n"] == n)]

    def targets(self):
        seen = {d["target"] for d in self.runs}
        return [t for t in ORDER if t in seen]

    def by_round(self, phase, target, n, fn):
        """{round: fn(r)} for the runs of a target."""
        return {d["round"]: fn(d["r"]) for d in self.select(phase, target, n)}

    def median(self, phase, target, n, fn):
        return med(list(self.by_round(phase, target, n, fn).values()))

    def added(self, phase, target, n, fn):
        """Median over rounds of fn(target) - fn(direct) in the same round."""
        mine = self.by_round(phase, target, n, fn)
        base = self.by_round(phase, "direct", n, fn)
        diffs = [mine[k] - base[k] for k in mine if k in base and mine[k] is not None and base[k] is not None]
        return med(diffs)


def short_window(r):
    """The steady window was too short to mean much (streams started so late
    that the first ones finished before the last ones began)."""
    w = r.get("latency_window_ms")
    return w is None or r.get("steady_window_s", 0) < 1.0 or w["n"] < 200


def lat(key, field):
    def f(r):
        v = r.get(key)
        if key == "latency_window_ms" and short_window(r):
            v = r.get("latency_ms")  # every stamped event instead (marked † in the table)
        return v[field] if v else None
    return f


def rss_at(r):
    """RSS in the steady window; the peak when there was no steady window
    (not every stream got going), None when that is not even known."""
    p = r.get("proc") or {}
    return p.get("rss_window_kb") or p.get("rss_peak_kb") or None


def clean(r):
    return r["errors"] == 0 and r["unfinished"] == 0


def outcome(r):
    """A short note on a run that did not go cleanly."""
    notes = []
    if r["errors"]:
        kinds = ", ".join(f"{k} {v}" for k, v in r["error_kinds"].items())
        notes.append(f"{r['errors']} errors ({kinds})")
    if r["unfinished"]:
        notes.append(f"{r['unfinished']} unfinished at the {r['elapsed_s']:.0f} s cap")
    if r.get("stamped", 1) == 0 and r["events"] > 0:
        notes.append("no send stamps")
    return "; ".join(notes)


def gnuplot(script, datafiles, docs, name):
    if shutil.which("gnuplot") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        for fname, text in datafiles.items():
            with open(os.path.join(tmp, fname), "w") as f:
                f.write(text)
        out = os.path.join(docs, name)
        full = (f'set terminal pngcairo size 900,480 font "DejaVu Sans,10"\nset output "{out}"\n'
                'set style fill solid 0.85 border -1\nset grid ytics lc rgb "#dddddd"\nset key top right\n' + script)
        p = subprocess.run(["gnuplot"], input=full, text=True, cwd=tmp, capture_output=True)
        if p.returncode != 0:
            sys.stderr.write(f"report.py: gnuplot failed for {name}: {p.stderr}\n")
            return None
    return name


def main():
    results_path, out_path, docs = sys.argv[1:4]
    runs, meta, rss_base = load(results_path)
    R = Results(runs)
    T = [t for t in R.targets() if t != "telex-plain-h2"]  # the HTTP/2-upstream telex is in §9 only
    big = meta.get("big", 9900)
    levels = sorted({d["n"] for d in runs if d["phase"] == "latency"})
    md = []
    w = md.append

    # ---------------------------------------------------------------- summary of goals
    tp_nginx = R.median("throughput", "nginx", 50, lambda r: r["answers_per_s"])
    tp_telex = {t: R.median("throughput", t, 50, lambda r: r["answers_per_s"]) for t in ("telex-plain", "telex-full")}
    tp500_nginx = R.median("throughput", "nginx", 500, lambda r: r["answers_per_s"])
    tp500_telex = {t: R.median("throughput", t, 500, lambda r: r["answers_per_s"]) for t in ("telex-plain", "telex-full")}
    p99_1000 = {t: R.added("latency", t, 1000, lat("latency_window_ms", "p99")) for t in ("telex-plain", "telex-full")}
    mem = {}
    for t in T:
        if t == "direct" or t not in rss_base:
            continue
        for n, phase in ((1000, "latency"), (big, "hold")):
            v = R.median(phase, t, n, rss_at)
            if v:
                mem[(t, n)] = max(0.0, (v - rss_base[t]) * 1024 / n / 1000)  # kB (10^3) per stream
    big_runs = {t: R.select("hold", t, big) for t in T}

    w("## Relay benchmarks: telex against nginx, the seeds' Python stack, Portkey, nullplatform, pushpin")
    w("")
    w(f"`bench/relay.sh` + `bench/loadgen` + `bench/report.py` (part of `make bench`). Every gateway relays the same "
      f"`telex mock` (2 worker threads) on loopback; one worker/process each (telex `workers: 1`, nginx "
      f"`worker_processes 1`, one uvicorn / Node process), so the comparison is core for core. "
      f"Medians of {meta.get('rounds', '?')} interleaved rounds (the order of the targets rotates every round; "
      f"the throughput and latency levels of direct, telex and nginx get one more round; a slow peer that leaves answers "
      f"in flight is restarted, and every run starts once the machine is quiet — under 15 % CPU busy — so that no "
      f"gateway still working off its previous run slows the next target); \"added\" = the target's figure minus direct-to-mock's in the same round. "
      f"Peers: {meta.get('versions', '?')}.")
    w("")
    w("### Goals")
    w("")
    w("| goal | telex plain relay | telex + resume + accounting | met? |")
    w("|---|---:|---:|---|")

    def goal_row(name, a, b, ok, fmtf):
        met = "yes" if ok(a) and ok(b) else ("partly" if ok(a) or ok(b) else "no")
        if a is None and b is None:
            met = "not measured"
        w(f"| {name} | {fmtf(a)} | {fmtf(b)} | {met} |")

    if tp_nginx:
        goal_row(f"throughput ≥ nginx's (c=50: nginx {fmt(tp_nginx)} answers/s)",
                 tp_telex["telex-plain"], tp_telex["telex-full"],
                 lambda x: x is not None and x >= tp_nginx, lambda x: f"{fmt(x)} ({ratio(x, tp_nginx)})")
    if tp500_nginx:
        goal_row(f"throughput ≥ nginx's (c=500: nginx {fmt(tp500_nginx)} answers/s)",
                 tp500_telex["telex-plain"], tp500_telex["telex-full"],
                 lambda x: x is not None and x >= tp500_nginx, lambda x: f"{fmt(x)} ({ratio(x, tp500_nginx)})")
    goal_row("p99 added latency ≤ 1 ms at 1,000 streams", p99_1000["telex-plain"], p99_1000["telex-full"],
             lambda x: x is not None and x <= 1.0, lambda x: fmt(x, 3, " ms"))
    goal_row(f"≤ 16 KB per stream (at {big:,} streams)", mem.get(("telex-plain", big)), mem.get(("telex-full", big)),
             lambda x: x is not None and x <= 16, lambda x: fmt(x, 1, " KB"))

    def big_ok(t):
        rs = big_runs.get(t) or []
        return rs[0]["r"] if rs else None
    a, b = big_ok("telex-plain"), big_ok("telex-full")
    goal_row(f"{big:,} concurrent streams without errors (2 events/s each)", a, b, lambda r: r is not None and clean(r),
             lambda r: "–" if r is None else (f"{r['completed']:,}/{big:,} completed" + (f", {outcome(r)}" if outcome(r) else "")))

    def h2(t):
        rs = R.select("h2hold", t)
        return rs[0]["r"] if rs else None

    def h2_ok(r):
        return r is not None and r["succeeded"] == r["n"] and r["failed"] == 0 and r["errored"] == 0 and \
            r["timeout"] == 0 and r["status_2xx"] == r["n"]

    def h2_fmt(r):
        if r is None:
            return "–"
        s = f"{r['succeeded']:,}/{r['n']:,} completed"
        if r.get("active_peak"):
            s += f", {r['active_peak']:,} at once"
        return s
    if h2("telex-plain") or h2("telex-full"):
        hn = (h2("telex-plain") or h2("telex-full"))["n"]
        goal_row(f"{hn:,} concurrent streams without errors (HTTP/2 clients, §8)", h2("telex-plain"), h2("telex-full"),
                 h2_ok, h2_fmt)
        goal_row(f"≤ 16 KB per stream (at {hn:,} streams over HTTP/2, §8)",
                 (h2("telex-plain") or {}).get("kb_per_stream"), (h2("telex-full") or {}).get("kb_per_stream"),
                 lambda x: x is not None and x <= 16, lambda x: fmt(x, 1, " KB"))
    w("")

    w("The latency goals depend on how busy the machine was during the run (see the load line in §2): telex "
      "spends more CPU per event than nginx (§6), so it is the first to queue when other work takes the second "
      "core. The findings below include a quiet-machine check.")
    w("")

    # ---------------------------------------------------------------- throughput
    w("### 1. Throughput: 200-chunk answers, completed answers per second")
    w("")
    w("The mock answers 200 chunks with no delay (about 47 KB of events); each client connection sends its next "
      "request as soon as an answer ends (keep-alive). Runs last "
      f"{meta.get('tp_seconds', 3)} s after a 0.5 s warm-up. CPU is the gateway's user+system time per relayed event "
      "(all its processes).")
    w("")
    w("| target | c=50 answers/s | vs nginx | c=500 answers/s | vs nginx | CPU µs/event (c=50) | notes |")
    w("|---|---:|---:|---:|---:|---:|---|")
    tp_chart = []
    for t in T:
        a50 = R.median("throughput", t, 50, lambda r: r["answers_per_s"])
        a500 = R.median("throughput", t, 500, lambda r: r["answers_per_s"])
        cpu = pos(R.median("throughput", t, 50, lambda r: r.get("proc", {}).get("cpu_us_per_event")))
        notes = "; ".join(sorted({outcome(d["r"]) for d in R.select("throughput", t) if d["r"]["errors"]}))
        w(f"| {NAMES[t]} | {fmt(a50)} | {ratio(a50, tp_nginx)} | {fmt(a500)} | {ratio(a500, tp500_nginx)} | "
          f"{fmt(cpu) if t != 'direct' else '–'} | {notes} |")
        tp_chart.append((SHORT[t], a50 or 0, a500 or 0))
    w("")

    # ---------------------------------------------------------------- latency
    w("### 2. Per-event added latency at 20 events/s per stream")
    w("")
    w(f"Each stream is a {meta.get('tokens', 120)}-chunk answer at one chunk per 50 ms; streams start at 1,000–4,000 "
      "per second and latency is taken over the steady window, while every stream is open. Latency of an event = "
      "the client's receive time (CLOCK_MONOTONIC) minus the `mock_sent_ns` stamp the mock put in the chunk when it "
      "wrote it. The direct row is absolute (what the mock and client cost by themselves); the others are added to "
      f"it. \"{big:,}\" is one round.")
    w("")
    cols = levels + [big]
    w("| target | " + " | ".join(f"{n:,} p50 | {n:,} p99" for n in cols) + " |")
    w("|---|" + "---:|---:|" * len(cols))
    lat_chart = {}
    for t in T:
        cells = []
        for n in cols:
            phase = "latency" if n in levels else "big"
            if t == "direct":
                p50 = R.median(phase, t, n, lat("latency_window_ms", "p50"))
                p99 = R.median(phase, t, n, lat("latency_window_ms", "p99"))
            else:
                p50 = R.added(phase, t, n, lat("latency_window_ms", "p50"))
                p99 = R.added(phase, t, n, lat("latency_window_ms", "p99"))
            rs = R.select(phase, t, n)
            bad = rs and all(d["r"].get("latency_ms") is None for d in rs)
            mark = "†" if rs and any(short_window(d["r"]) for d in rs) else ""
            if bad:
                cells += ["n/a", "n/a"]
            else:
                cells += [fmt(p50, 3) + mark, fmt(p99, 3) + mark]
            ab99 = R.median(phase, t, n, lat("latency_window_ms", "p99"))
            if ab99 is not None and not bad:
                lat_chart.setdefault(t, []).append((n, max(ab99, 0.001)))
        w(f"| {NAMES[t]} | " + " | ".join(cells) + " |")
    w("")
    loads = []
    for t in ("direct", "telex-plain", "telex-full", "nginx"):
        ls = [f"{d['load1']:.1f}" for d in sorted(R.select("latency", t, 1000), key=lambda d: d["round"])]
        if ls:
            loads.append(f"{SHORT[t]} {', '.join(ls)}")
    if loads:
        w("Load average (1 min) when the 1,000-stream runs started, by round: " + "; ".join(loads) +
          " (2 cores; above ~1.5 the gateways compete with other work for CPU, and the p99 shows it).")
        w("")
    w("Milliseconds. \"n/a\": no stamped events (see above). †: the gateway started its streams so slowly that "
      "there was less than a second with all of them open; the figure is over every event of the run instead.")
    w("")
    notes = []
    for t in T:
        for d in R.select("latency", t) + R.select("big", t):
            o = outcome(d["r"])
            if o:
                notes.append(f"- {NAMES[t]} at {d['n']:,} streams (round {d['round']}): {o}; "
                             f"{d['r']['completed']:,} of {d['n']:,} answers completed.")
    if notes:
        w("Runs that did not complete cleanly:")
        w("")
        md.extend(sorted(set(notes)))
        w("")

    # ---------------------------------------------------------------- ttfb
    w("### 3. Time to first byte")
    w("")
    w("Request written → first response byte. \"idle\": one client, sequential requests on a kept-alive connection, "
      "200-chunk answers (the mock answers at once). \"1,000 streams\": the TTFB of the streams in the 1,000-stream "
      "latency run (they start at 2,000 per second while the others are streaming).")
    w("")
    w("| target | idle p50 (ms) | added | 1,000 streams p50 (ms) | added | 1,000 streams p99 (ms) |")
    w("|---|---:|---:|---:|---:|---:|")
    for t in T:
        i50 = R.median("ttfb", t, 1, lat("ttfb_ms", "p50"))
        ia = R.added("ttfb", t, 1, lat("ttfb_ms", "p50")) if t != "direct" else None
        l50 = R.median("latency", t, 1000, lat("ttfb_ms", "p50"))
        la = R.added("latency", t, 1000, lat("ttfb_ms", "p50")) if t != "direct" else None
        l99 = R.median("latency", t, 1000, lat("ttfb_ms", "p99"))
        w(f"| {NAMES[t]} | {fmt(i50, 3)} | {fmt(ia, 3)} | {fmt(l50, 3)} | {fmt(la, 3)} | {fmt(l99, 3)} |")
    w("")

    # ---------------------------------------------------------------- memory
    w("### 4. Gateway memory per concurrent stream")
    w("")
    w("RSS of the gateway's processes (VmRSS from /proc, summed over the process tree) in the middle of the steady "
      "window, minus the RSS of the same gateway freshly started and warmed up with a few requests, divided by the "
      "number of open streams. KB = 1,000 bytes.")
    w("")
    w(f"The 1,000 column is the 1,000-stream latency run (20 events/s); the {big:,} column is the run that holds "
      f"{big:,} streams at 2 events/s (see §7).")
    w("")
    w(f"| target | fresh RSS (MB) | RSS at 1,000 (MB) | KB/stream at 1,000 | RSS at {big:,} (MB) | KB/stream at {big:,} |")
    w("|---|---:|---:|---:|---:|---:|")
    mem_chart = []
    for t in T:
        if t == "direct" or t not in rss_base:
            continue
        r1 = R.median("latency", t, 1000, rss_at)
        rb = R.median("hold", t, big, rss_at)
        m1, mb = mem.get((t, 1000)), mem.get((t, big))
        def mark(phase, n):
            rs = R.select(phase, t, n)
            return "‡" if rs and any(d["r"]["completed"] < n for d in rs) else ""
        m1s, mbs = mark("latency", 1000), mark("hold", big)
        w(f"| {NAMES[t]} | {fmt(rss_base[t] / 1024, 1)} | {fmt(r1 / 1024 if r1 else None, 1)} | {fmt(m1, 1)}{m1s} | "
          f"{fmt(rb / 1024 if rb else None, 1)} | {fmt(mb, 1)}{mbs} |")
        mem_chart.append((SHORT[t], m1 or 0, mb or 0))
    w("")
    w("‡: not every stream got through in that run (see §2 and §7), so fewer streams than the column's count "
      "were open at once and the per-stream figure is not comparable.")
    w("")

    # ---------------------------------------------------------------- search
    w("### 5. The most 20-events/s streams each relay sustains under 10 ms p99 added latency")
    w("")
    searched = [t for t in ("telex-plain", "telex-full", "nginx") if R.select("search", t)]
    steps = sorted({d["n"] for d in runs if d["phase"] == "search"})
    w("Each step runs direct and every relay still in the race (telex plain, telex with resume + accounting, "
      f"nginx) at the same stream count: N streams of {meta.get('tokens', 120)} chunks at 20 events/s. The count "
      "grows by half; a relay "
      "drops out at the first step where its p99 added latency (steady window, against direct in the same try) "
      "reaches 10 ms or a stream fails or is cut by the time cap (a try counts only if direct's own p99 is under "
      "10 ms: a busier machine decides nothing), and each relay that dropped out gets one "
      "bisection step. A relay that fails a step is measured once more with a fresh direct run and holds if either "
      "try does (the machine is shared); the table shows each try's p99 added (ms), \"·\" where the relay was not "
      "measured in that try.")
    w("")
    w("| streams | try | direct p99 (ms) | " + " | ".join(f"{SHORT[t]} p99 added" for t in searched) + " | errors |")
    w("|---:|---:|---:|" + "---:|" * len(searched) + "---|")
    for n in steps:
        for k in sorted({d["round"] for d in R.select("search", "direct", n)}):
            def one(t):
                rs = [d for d in R.select("search", t, n) if d["round"] == k]
                if not rs:
                    return "·"
                v, d = lat("latency_window_ms", "p99")(rs[0]["r"]), direct
                return fmt(v - d if v is not None and d is not None else None, 3)
            ds = [d for d in R.select("search", "direct", n) if d["round"] == k]
            direct = lat("latency_window_ms", "p99")(ds[0]["r"]) if ds else None
            errs = "; ".join(f"{SHORT[t]}: {outcome(x['r'])}" for t in ["direct"] + searched
                             for x in R.select("search", t, n) if x["round"] == k and outcome(x["r"]))
            w(f"| {n:,} | {k} | {fmt(direct, 3)} | " + " | ".join(one(t) for t in searched) + f" | {errs} |")
    w("")
    results = meta.get("search_result") or {}
    if not results and (meta.get("search_good") or meta.get("search_bad")):  # an older relay.sh: both variants
        gb = (meta.get("search_good", 0), meta.get("search_bad", 0))
        results = {"telex-plain": gb, "telex-full": gb}
    if results:
        w("**Result** (most streams held; first count that failed):")
        w("")
        for t in ("telex-plain", "telex-full", "nginx"):
            if t not in results:
                continue
            good, bad = results[t]
            held = f"**{good:,}**" if good else "**none** of the steps"
            top = max(steps) if steps else 0
            w(f"- {NAMES[t]}: {held} held; " + (f"{bad:,} did not." if bad else
              f"every step held, up to {top:,}" + (" — the most this machine allows (see the file-descriptor "
                                                   "note below)." if top == big else ".")))
    w("")

    # ---------------------------------------------------------------- cpu
    w("### 6. CPU time per relayed event")
    w("")
    w("utime + stime of the gateway's processes (from /proc/PID/stat, 10 ms ticks) over the whole run, divided by the "
      "events the client received (connection set-up and request handling included, spread over the answer's events).")
    w("")
    nginx1000 = R.median("latency", "nginx", 1000, lambda r: r.get("proc", {}).get("cpu_us_per_event"))
    w(f"| target | µs/event at 1,000 streams × 20 ev/s | vs nginx | µs/event at {big:,} streams | µs/event flat out (c=50, 200 chunks) |")
    w("|---|---:|---:|---:|---:|")
    cpu_chart = []
    for t in T:
        if t == "direct":
            continue
        c1 = pos(R.median("latency", t, 1000, lambda r: r.get("proc", {}).get("cpu_us_per_event")))
        cb = pos(R.median("big", t, big, lambda r: r.get("proc", {}).get("cpu_us_per_event")))
        ct = pos(R.median("throughput", t, 50, lambda r: r.get("proc", {}).get("cpu_us_per_event")))
        w(f"| {NAMES[t]} | {fmt(c1)} | {ratio(c1, nginx1000)} | {fmt(cb)} | {fmt(ct)} |")
        cpu_chart.append((SHORT[t], c1 or 0, ct or 0))
    w("")

    # ---------------------------------------------------------------- hold
    w(f"### 7. Holding {big:,} concurrent streams")
    w("")
    w(f"{big:,} streams started at 4,000 per second, each a 12-chunk answer at 2 events/s (about 20,000 events/s in "
      "all — what the mock and the client can produce on this machine; at 20 events/s per stream, as in §2, the "
      "machine itself is the limit: see direct's row there). Portkey and nullplatform are not in this run (they "
      "would get the mock's 20 events/s defaults).")
    w("")
    w("| target | completed | errors | unfinished | p50 added (ms) | p99 added (ms) | TTFB p99 (ms) | KB/stream |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for t in T:
        for d in R.select("hold", t, big):
            r = d["r"]
            kinds = ", ".join(f"{k} {v}" for k, v in r["error_kinds"].items())
            p50 = R.added("hold", t, big, lat("latency_window_ms", "p50")) if t != "direct" else \
                R.median("hold", t, big, lat("latency_window_ms", "p50"))
            p99 = R.added("hold", t, big, lat("latency_window_ms", "p99")) if t != "direct" else \
                R.median("hold", t, big, lat("latency_window_ms", "p99"))
            mark = "†" if short_window(r) else ""
            w(f"| {NAMES[t]} | {r['completed']:,} | {r['errors']:,}{' (' + kinds + ')' if kinds else ''} | "
              f"{r['unfinished']:,} | {fmt(p50, 3)}{mark} | {fmt(p99, 3)}{mark} | "
              f"{fmt((r.get('ttfb_ms') or {}).get('p99'), 3)} | {fmt(mem.get((t, big)), 1) if t != 'direct' else '–'} |")
    w("")
    w("For direct the latency columns are absolute. †: less than a second with every stream open; figures over "
      "every event.")
    w("")

    # ---------------------------------------------------------------- h2hold
    h2rows = [(t, d["r"]) for t in T for d in R.select("h2hold", t)]
    if h2rows:
        hn = h2rows[0][1]["n"]
        w(f"### 8. {hn:,} concurrent streams over HTTP/2")
        w("")
        w(f"With HTTP/1.1 clients a relay holds two sockets per stream, and this sandbox's hard limit of "
          f"{meta.get('nofile', 20000):,} open files per process stops every relay just short of 10,000 streams (§7). "
          f"HTTP/2 clients multiplex: `h2load` opens {h2rows[0][1]['connections']} connections with "
          f"{h2rows[0][1]['streams_per_connection']} concurrent streams each, so the gateway holds {hn:,} provider "
          f"sockets and {h2rows[0][1]['connections']} client ones (nginx through its h2c listener, telex through its own). Each stream is "
          "the hold run's answer (12 chunks, 500 ms apart); all start at once. Memory is the peak RSS during the run "
          "minus the RSS before it; \"at once\" is the peak of telex's `telex_active_streams` gauge (sampled every "
          "100 ms).")
        w("")
        w("| target | completed | failed / errored / timed out | 2xx | at once (peak) | open files (peak) | "
          "KB/stream | seconds |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for t, r in h2rows:
            w(f"| {NAMES[t]} | {r['succeeded']:,} | {r['failed']} / {r['errored']} / {r['timeout']} | "
              f"{r['status_2xx']:,} | {fmt(r.get('active_peak'), 0) if r.get('active_peak') else '–'} | "
              f"{r['fds_peak']:,} | {fmt(r['kb_per_stream'], 1)} | {fmt(r['elapsed_s'], 1)} |")
        w("")

    # ---------------------------------------------------------------- h2up
    h2up = [(t, d) for t in ("direct", "telex-plain-h2", "nginx") for d in R.select("h2up", t)]
    if h2up:
        hn = meta.get("h2up_n", 0)
        w(f"### 9. {hn:,} streams with HTTP/1.1 clients: HTTP/2 to the provider")
        w("")
        w(f"telex with `http2: on` to the mock (`bench/telex-plain-h2.yaml`, h2c with prior knowledge) carries up to the "
          f"mock's `SETTINGS_MAX_CONCURRENT_STREAMS` (100) streams on each provider connection, so one process holds "
          f"{hn:,} streams from HTTP/1.1 clients within the {meta.get('nofile', 20000):,}-file limit: one socket per "
          f"stream plus one per hundred. nginx cannot proxy to an HTTP/2 upstream; its best is {big:,} streams (two "
          f"sockets each), measured in the same phase. Each stream is an answer of {meta.get('h2up_tokens', 12)} chunks "
          f"500 ms apart (2 events/s, as in the hold run), started at 4,000 per second; \"added\" is against direct at {hn:,} streams. KB/stream is the "
          f"RSS in the steady window minus the RSS before the run, over the streams. Provider connections left open "
          f"after the phase: {meta.get('h2up_mock_conns_after', '–')}.")
        w("")
        w("| target | streams | completed | errors | unfinished | p50 added (ms) | p99 added (ms) | TTFB p99 (ms) | "
          "KB/stream | CPU µs/event |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        direct = {d["n"]: d["r"] for t, d in h2up if t == "direct"}
        for t, d in h2up:
            r, n = d["r"], d["n"]
            kinds = ", ".join(f"{k} {v}" for k, v in r["error_kinds"].items())
            base = direct.get(n) if t != "direct" else None
            def added(field):
                v = lat("latency_window_ms", field)(r)
                if t == "direct" or v is None or base is None:
                    return v  # direct's own, or no direct run at this count (the row says "absolute")
                b = lat("latency_window_ms", field)(base)
                return None if b is None else v - b
            p = r.get("proc") or {}
            # only with every stream open at once (a steady window): else the RSS is not n streams'
            kb = (p["rss_window_kb"] - p["rss_base_kb"]) * 1024 / n / 1000 \
                if t != "direct" and p.get("rss_window_kb") and p.get("rss_base_kb") and not short_window(r) else None
            mark = "†" if short_window(r) else ""
            note = "" if t == "direct" or base else " (no direct run at this count: absolute)"
            w(f"| {NAMES[t]} | {n:,} | {r['completed']:,} | {r['errors']:,}{' (' + kinds + ')' if kinds else ''} | "
              f"{r['unfinished']:,} | {fmt(added('p50'), 3)}{mark}{note} | {fmt(added('p99'), 3)}{mark} | "
              f"{fmt((r.get('ttfb_ms') or {}).get('p99'), 3)} | {fmt(kb, 1) if kb is not None else '–'} | "
              f"{fmt(p.get('cpu_us_per_event'), 1) if t != 'direct' else '–'} |")
        w("")

    # ---------------------------------------------------------------- charts
    charts = []
    def bars(rows):
        return "".join(f'"{n}" {a} {b}\n' for n, a, b in rows)
    if tp_chart:
        c = gnuplot('set title "Completed 200-chunk answers per second (higher is better)"\n'
                    'set style data histograms\nset style histogram clustered gap 1\nset xtics rotate by -20\n'
                    'set ylabel "answers/s"\nset yrange [0:*]\n'
                    'plot "d" using 2:xtic(1) title "50 clients", "" using 3 title "500 clients"\n',
                    {"d": bars(tp_chart)}, docs, "benchmarks-throughput.png")
        if c:
            charts.append(("Throughput", c))
    if lat_chart:
        data, plots = {}, []
        for i, (t, pts) in enumerate(sorted(lat_chart.items(), key=lambda kv: ORDER.index(kv[0]))):
            data[f"l{i}"] = "".join(f"{n} {v}\n" for n, v in sorted(pts))
            plots.append(f'"l{i}" using 1:2 with linespoints lw 2 title "{SHORT[t]}"')
        script = ('set title "p99 per-event latency at 20 events/s per stream; direct = no relay (lower is better)"\n'
                  'set logscale xy\nset xlabel "concurrent streams"\nset ylabel "ms (log)"\nset key outside right\n'
                  f'set xrange [80:12500]\nset xtics ("100" 100, "1,000" 1000, "{big:,}" {big})\n'
                  'plot ' + ", ".join(plots) + "\n")
        c = gnuplot(script, data, docs, "benchmarks-latency.png")
        if c:
            charts.append(("Latency", c))
    if mem_chart:
        c = gnuplot('set title "Gateway memory per concurrent stream (lower is better)"\n'
                    'set style data histograms\nset style histogram clustered gap 1\nset xtics rotate by -20\n'
                    'set ylabel "KB per stream"\nset yrange [0:*]\n'
                    f'plot "d" using 2:xtic(1) title "1,000 streams", "" using 3 title "{big:,} streams"\n',
                    {"d": bars(mem_chart)}, docs, "benchmarks-memory.png")
        if c:
            charts.append(("Memory", c))
    if cpu_chart:
        c = gnuplot('set title "Gateway CPU per relayed event (lower is better)"\n'
                    'set style data histograms\nset style histogram clustered gap 1\nset xtics rotate by -20\n'
                    'set ylabel "µs CPU per event"\nset logscale y\n'
                    'plot "d" using 2:xtic(1) title "1,000 streams x 20 ev/s", "" using 3 title "flat out, c=50"\n',
                    {"d": bars(cpu_chart)}, docs, "benchmarks-cpu.png")
        if c:
            charts.append(("CPU", c))
    if charts:
        w("### Charts")
        w("")
        for title, f in charts:
            w(f"![{title}]({f})")
            w("")

    # ---------------------------------------------------------------- run notes
    loads = [d["load1"] for d in runs]
    w("### This run")
    w("")
    w(f"- Machine load (1-minute load average before each measurement): median {fmt(med(loads), 2)}, "
      f"max {fmt(max(loads) if loads else None, 2)} on {os.cpu_count()} cores; other engineers' test suites may "
      "have run at the same time, which is why every comparison is interleaved and repeated.")
    nofile = meta.get("nofile")
    if nofile:
        w(f"- Open files limit: {nofile:,} per process (hard limit; raising it needs CAP_SYS_RESOURCE, which this "
          f"sandbox lacks). A relay holds two sockets per stream (client + upstream), so \"10,000 streams\" runs at "
          f"{big:,}, the most that fits.")
    for k, label in (("phase_a_s", "phase A (TTFB, throughput)"), ("phase_b_levels_s", "… + latency levels"),
                     ("phase_b_search_s", "… + search"), ("total_s", "total relay benchmarks")):
        if k in meta:
            w(f"- {label}: {meta[k]} s after start.")
    w("")

    with open(out_path, "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
