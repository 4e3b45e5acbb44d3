#!/usr/bin/env python3
"""bench/h2hold.py — hold N concurrent streams through a gateway over HTTP/2.

A relay holds two sockets per HTTP/1.1 stream (client + provider), so under
this sandbox's hard limit of 20,000 open files per process no HTTP/1.1 relay
can hold 10,000 streams. HTTP/2 clients multiplex: h2load opens C connections
with M concurrent streams each (C x M = N), so the gateway holds N provider
sockets and only C client sockets. While h2load runs, this samples the
gateway's process tree every 100 ms: resident memory, open files and, when a
metrics URL is given, telex's `telex_active_streams` gauge.

usage: h2hold.py URL PID BODY_FILE N CONNECTIONS [--metrics URL] [-H header]...
prints one JSON object on stdout.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request


def tree(pid):
    """pid and its descendants (nginx: master + worker)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def fds(pids):
    n = 0
    for p in pids:
        try:
            n += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return n


def active_streams(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            m = re.search(rb"^telex_active_streams (\d+)", r.read(), re.M)
            return int(m.group(1)) if m else None
    except OSError:
        return None


def main():
    args = sys.argv[1:]
    metrics, headers = None, []
    rest = []
    i = 0
    while i < len(args):
        if args[i] == "--metrics":
            metrics = args[i + 1]
            i += 2
        elif args[i] == "-H":
            headers += ["-H", args[i + 1]]
            i += 2
        else:
            rest.append(args[i])
            i += 1
    url, pid, body, n, conns = rest[0], int(rest[1]), rest[2], int(rest[3]), int(rest[4])
    pids = tree(pid)
    base = rss_kb(pids)
    peak = {"rss": base, "fds": fds(pids), "active": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak["rss"] = max(peak["rss"], rss_kb(pids))
            peak["fds"] = max(peak["fds"], fds(pids))
            if metrics:
                a = active_streams(metrics)
                if a is not None:
                    peak["active"] = max(peak["active"], a)
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.monotonic()
    cmd = ["h2load", "-c", str(conns), "-m", str(-(-n // conns)), "-n", str(n), "-d", body,
           "-H", "content-type: application/json", *headers, url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    done.set()
    t.join()
    out = p.stdout
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                    r"(\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    ttfb = re.search(r"time to 1st byte:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    result = {
        "n": n, "connections": conns, "streams_per_connection": -(-n // conns),
        "elapsed_s": round(elapsed, 2),
        "succeeded": int(req.group(4)) if req else 0,
        "failed": int(req.group(5)) if req else n,
        "errored": int(req.group(6)) if req else 0,
        "timeout": int(req.group(7)) if req else 0,
        "status_2xx": int(codes.group(1)) if codes else 0,
        "ttfb_max": ttfb.group(2) if ttfb else None,
        "rss_base_kb": base, "rss_peak_kb": peak["rss"],
        "kb_per_stream": round((peak["rss"] - base) * 1.024 / n, 2),
        "fds_peak": peak["fds"],
        "active_peak": peak["active"] if metrics else None,
        "h2load_rc": p.returncode,
    }
    if not req:
        result["h2load_tail"] = (out + p.stderr)[-400:]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
