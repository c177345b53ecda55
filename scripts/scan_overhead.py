#!/usr/bin/env python3
"""Measures how much of `patchdeck-agent scan` is the agent's own work.

Runs the scan 10 times with debug logging, sums the elapsed time of every
package-manager command the agent logs, and reports the rest (parsing,
classification, JSON) as the agent's own time. Usage: BIN=path/to/patchdeck-agent scan_overhead.py
"""
import re, subprocess, time, statistics, os
bin = os.environ.get("BIN", "target/release/patchdeck-agent")
rows = []
for i in range(10):
    t = time.monotonic()
    p = subprocess.run([bin, "scan", "--no-refresh", "--json"], env={**os.environ, "PATCHDECK_LOG": "patchdeck_pkg=debug"},
                       capture_output=True, text=True)
    wall = time.monotonic() - t
    child = 0.0
    for m in re.finditer(r"finished .*elapsed=([0-9.]+)(ms|s|µs)", p.stderr):
        v, u = float(m.group(1)), m.group(2)
        child += v / 1000 if u == "ms" else (v / 1e6 if u == "µs" else v)
    rows.append((wall, child, wall - child))
for name, idx in (("wall", 0), ("in package-manager commands", 1), ("agent's own time", 2)):
    xs = [r[idx] for r in rows]
    print(f"{name:30} median {statistics.median(xs):.3f} s  (min {min(xs):.3f}, max {max(xs):.3f})")
over = [r[2] / r[1] * 100 for r in rows]
print(f"overhead: median {statistics.median(over):.1f}% of the commands' time (max {max(over):.1f}%)")
