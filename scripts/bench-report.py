#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# make bench, on the host: turn DIR/results.csv (the rows the guests wrote,
# scripts/guest-bench.sh) into DIR/results.md (Markdown tables) and, if
# gnuplot is installed, DIR/*.png. Medians per mode; every ratio is
# against the pinned baseline of the same guest run, with the interval of
# its per-round ratios; a ratio whose interval contains 1 is marked as not
# resolved instead of being claimed.
#
# Usage: bench-report.py DIR

import csv
import os
import shutil
import subprocess
import sys
from collections import OrderedDict, defaultdict

CASE_ORDER = ["write_bw", "read_bw", "send_bw", "write_lat", "send_lat",
              "write_bw_q1", "write_bw_q2", "write_bw_q4"]


def median(v):
    v = sorted(v)
    n = len(v)
    if not n:
        return None
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def size_str(s):
    try:
        n = int(s)
    except ValueError:
        return s
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return "%d %s" % (n >> shift, unit)
    return "%d B" % n


def fmt(v, unit=""):
    if v is None:
        return "-"
    if unit == "us" or v < 100:
        return "%.2f" % v
    return "%.0f" % v


def load(path):
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            r["raw"] = r["value"]
            try:
                r["value"] = float(r["value"]) if r["value"] != "" else None
            except ValueError:
                r["value"] = None
            rows.append(r)
    return rows


def ratio_stats(by_round, mode):
    """Median, min and max of the per-round ratios mode / pinned."""
    pin = [v["pinned"] for v in by_round.values()
           if v.get("pinned") is not None]
    oth = [v[mode] for v in by_round.values() if v.get(mode) is not None]
    if not pin or not oth:
        return None
    rr = [v[mode] / v["pinned"] for v in by_round.values()
          if v.get(mode) is not None and v.get("pinned")]
    if not rr:
        return None
    return median(rr), min(rr), max(rr), len(rr)


def steady(rows):
    """(kernel, device, case, size) -> round -> mode -> value; verdicts."""
    data = OrderedDict()
    verdict = defaultdict(dict)
    failed = defaultdict(int)
    for r in rows:
        if r["case"] not in CASE_ORDER:
            continue
        key = (r["kernel"], r["device"], r["case"], r["size"])
        data.setdefault(key, defaultdict(dict))
        if r["value"] is None:
            failed[key] += 1
        else:
            data[key][r["round"]][r["mode"]] = r["value"]
        verdict[key][r["mode"]] = r["verified"]
    keys = sorted(data, key=lambda k: (k[0] != "sodp", k[0], k[1],
                                       CASE_ORDER.index(k[2]), int(k[3])))
    return keys, data, verdict, failed


def ratio_cell(st, unit):
    if not st:
        return "-", ""
    r, lo, hi, n = st
    cell = "%.3f (%.2f..%.2f)" % (r, lo, hi)
    note = ""
    if lo <= 1.0 <= hi:
        note = "interval spans 1"
    return cell, note


def verdict_cell(v):
    bad = ["%s: %s" % (m, x) for m, x in sorted(v.items()) if x != "yes"]
    return "yes" if not bad else "**" + ", ".join(bad) + "**"


def steady_table(out, rows, kvers):
    keys, data, verdict, failed = steady(rows)
    if not keys:
        return keys, data
    out.append("## Steady state (perftest loopback)\n")
    out.append("Bandwidth in MB/s (perftest's BW average), latency in us "
               "(perftest's t_typical, the median). Medians over the "
               "rounds; each ratio is the median of the per-round ratios "
               "mode / pinned (both from the same round of one guest run), "
               "with their min..max (for latency, lower is better; rounds "
               "with a failed run are left out). \"interval spans 1\": the "
               "rounds disagree about the sign of the effect, so no "
               "effect is claimed.\n")
    out.append("| kernel | device | case | size | rounds | pinned | odp | "
               "odp/pinned | pinall | pinall/pinned | data verified | "
               "note |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in keys:
        d = data[k]
        unit = "us" if k[2].endswith("_lat") else "MB/s"
        med = {}
        for m in ("pinned", "odp", "pinall"):
            med[m] = median([v[m] for v in d.values() if m in v])
        ro, no = ratio_cell(ratio_stats(d, "odp"), unit)
        ra, na = ratio_cell(ratio_stats(d, "pinall"), unit)
        notes = []
        if no:
            notes.append("odp: " + no)
        if na:
            notes.append("pinall: " + na)
        if failed.get(k):
            notes.append("%d failed run(s)" % failed[k])
        out.append("| %s | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s "
                   "| %s |" % (k[0], k[1], k[2], size_str(k[3]), len(d),
                               fmt(med["pinned"], unit), fmt(med["odp"], unit),
                               ro, fmt(med["pinall"], unit), ra,
                               verdict_cell(verdict[k]), "; ".join(notes)))
    out.append("")
    return keys, data


def rxe_table(out, keys, data):
    """sodp rxe vs upstream rxe, side by side."""
    up = [k for k in keys if k[0] == "upstream" and k[1] == "rxe0"]
    if not up:
        return
    out.append("## rxe0: sodp vs upstream rxe ODP\n")
    out.append("The kernels differ (Debian 12's 6.12 with sodp, the "
               "backports kernel with upstream's rxe ODP), so absolute "
               "figures are shown beside pinned-vs-pinned between kernels "
               "for context; the comparison is of the ODP/pinned ratios.\n")
    out.append("| case | size | pinned sodp | pinned upstream | "
               "pinned upstream/sodp | odp/pinned sodp | "
               "odp/pinned upstream | sodp >= upstream |")
    out.append("|---|---|---|---|---|---|---|---|")
    for k in up:
        s = ("sodp", "rxe0", k[2], k[3])
        if s not in data:
            continue
        ps = median([v["pinned"] for v in data[s].values() if "pinned" in v])
        pu = median([v["pinned"] for v in data[k].values() if "pinned" in v])
        rs = ratio_stats(data[s], "odp")
        ru = ratio_stats(data[k], "odp")
        lat = k[2].endswith("_lat")
        cmp_ = "-"
        if rs and ru:
            better = rs[0] <= ru[0] if lat else rs[0] >= ru[0]
            cmp_ = "yes" if better else "no"
            # Overlapping intervals: say so rather than claim an order.
            if rs[1] <= ru[2] and ru[1] <= rs[2]:
                cmp_ += " (intervals overlap)"
        unit = "us" if lat else "MB/s"
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            k[2], size_str(k[3]), fmt(ps, unit), fmt(pu, unit),
            "%.3f" % (pu / ps) if ps and pu else "-",
            ratio_cell(rs, unit)[0], ratio_cell(ru, unit)[0], cmp_))
    out.append("")


def subpage_table(out, rows):
    sub = [r for r in rows if r["case"].startswith("subpage_")]
    if not sub:
        return
    out.append("## Data at sub-page offsets\n")
    out.append("sodp_verify: 12 accesses of 8..512 bytes at odd offsets "
               "within a page and across page boundaries, each in a page "
               "of its own; the whole destination buffer is compared after "
               "each. Value: wrong bytes.\n")
    out.append("| kernel | device | case | mode | wrong bytes | "
               "data verified |")
    out.append("|---|---|---|---|---|---|")
    for r in sub:
        v = r["value"]
        out.append("| %s | %s | %s | %s | %s | %s |" % (
            r["kernel"], r["device"], r["case"], r["mode"],
            "-" if v is None else "%d" % v,
            r["verified"] if r["verified"] == "yes" else
            "**%s**" % r["verified"]))
    out.append("")


def first_touch_table(out, rows):
    ft = [r for r in rows if r["case"].startswith("first_touch_")]
    if not ft:
        return
    groups = OrderedDict()
    for r in ft:
        groups.setdefault((r["kernel"], r["device"], r["case"], r["size"]),
                          {})[r["mode"]] = r
    out.append("## First touch (sodp_bench, 64 KiB RDMA ops over a fresh "
               "region)\n")
    out.append("MB/s of one pass; cold: the first pass over never-mirrored "
               "memory, warm: the same pages again, prefetched: the first "
               "pass after a synchronous ibv_advise_mr(PREFETCH_WRITE, "
               "FLUSH), +prefetch: with the prefetch's time counted. One "
               "run per row: no interval.\n")
    out.append("| kernel | device | op | region | pinned cold | pinned warm "
               "| odp cold | odp warm | cold/warm | prefetched/warm | "
               "+prefetch/warm | data verified |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k, g in groups.items():
        def val(m):
            r = g.get(m)
            return r["value"] if r else None

        def rat(a, b):
            a, b = val(a), val(b)
            return "%.2f" % (a / b) if a is not None and b else "-"
        ver = {m: r["verified"] for m, r in g.items()}
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s "
                   "| %s |" % (k[0], k[1], k[2][len("first_touch_"):],
                               size_str(k[3]), fmt(val("pinned-cold")),
                               fmt(val("pinned-warm")), fmt(val("odp-cold")),
                               fmt(val("odp-warm")),
                               rat("odp-cold", "odp-warm"),
                               rat("odp-prefetched", "odp-warm"),
                               rat("odp-with_prefetch", "odp-warm"),
                               verdict_cell(ver)))
    out.append("")


def reg_table(out, rows):
    """Registration time and kernel memory, pinned vs ODP."""
    sel = [r for r in rows if r["case"].split("_")[0] in ("reg", "touch")]
    if not sel:
        return
    g = OrderedDict()
    for r in sel:
        what = r["case"].split("_")[0]
        fig = r["case"][len(what) + 1:] or "us"
        g.setdefault((r["kernel"], r["device"], what, int(r["size"])),
                     {}).setdefault(r["mode"], {})[fig] = r
    out.append("## Registration and kernel memory (sodp_regbench)\n")
    out.append("reg: ibv_reg_mr + ibv_dereg_mr of untouched MAP_NORESERVE "
               "memory (us per pair); touch: registration plus every page "
               "brought in (pinned: by pinning; odp: by a synchronous "
               "prefetch). Kernel memory: the Slab and SUnreclaim growth "
               "and VmallocUsed growth of /proc/meminfo while the MR is live, per GiB. Pinning is "
               "limited to half the guest's RAM (RLIMIT_MEMLOCK without "
               "CAP_IPC_LOCK); beyond it the kernel refuses (errno shown). "
               "One run per row.\n")
    out.append("| kernel | device | what | size | pinned us | odp us | "
               "pinned/odp time | SUnreclaim KiB/GiB pinned | odp | "
               "Vmalloc KiB/GiB pinned | odp |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")

    def cell(m, fig):
        r = m.get(fig) if m else None
        if not r:
            return "-", None
        if r["verified"].startswith("refused"):
            return "refused (errno %s)" % r["verified"][8:-1], None
        return fmt(r["value"]), r["value"]
    for k in sorted(g, key=lambda k: (k[0] != "sodp", k[0], k[1], k[2],
                                      k[3])):
        p, o = g[k].get("pinned"), g[k].get("odp")
        pt, pv = cell(p, "us")
        ot, ov = cell(o, "us")
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s "
                   "|" % (k[0], k[1], k[2], size_str(k[3]), pt, ot,
                          "%.1f" % (pv / ov) if pv and ov else "-",
                          cell(p, "sunreclaim")[0], cell(o, "sunreclaim")[0],
                          cell(p, "vmalloc")[0], cell(o, "vmalloc")[0]))
    out.append("")


def inval_table(out, rows):
    """move_pages() and munmap() under a live ODP MR vs no MR."""
    sel = [r for r in rows if r["case"] in ("move_pages", "munmap")]
    if not sel:
        return
    g = OrderedDict()
    for r in sel:
        g.setdefault((r["kernel"], r["device"], r["case"], int(r["size"])),
                     {})[r["mode"]] = r
    out.append("## Invalidation (sodp_regbench inval)\n")
    out.append("The region written by the CPU; odp: registered as an ODP MR "
               "and every page mirrored (prefetch) before the call. us per "
               "call over the whole region; one run per row.\n")
    out.append("| kernel | device | call | size | no MR us | live ODP MR us "
               "| odp/none |")
    out.append("|---|---|---|---|---|---|---|")
    for k, m in g.items():
        def cell(mode):
            r = m.get(mode)
            if not r:
                return "-", None
            if r["verified"].startswith("refused"):
                return "failed (errno %s)" % r["verified"][8:-1], None
            return fmt(r["value"]), r["value"]
        nt, nv = cell("none")
        ot, ov = cell("odp")
        out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            k[0], k[1], k[2], size_str(k[3]), nt, ot,
            "%.2f" % (ov / nv) if nv and ov else "-"))
    out.append("")


def plots(d, keys, data):
    """One PNG per device: the ratios with their intervals, per series."""
    if not shutil.which("gnuplot"):
        return ["gnuplot not installed: no plots"]
    made = []
    for dev in sorted({k[1] for k in keys}):
        cases = []
        for k in keys:
            c = (k[2], k[3])
            if k[1] == dev and c not in cases:
                cases.append(c)
        series = []
        for kern in sorted({k[0] for k in keys if k[1] == dev},
                           key=lambda x: (x != "sodp", x)):
            for mode in ("odp", "pinall"):
                pts = []
                for c in cases:
                    st = None
                    if (kern, dev) + c in data:
                        st = ratio_stats(data[(kern, dev) + c], mode)
                    pts.append(st)
                if any(pts):
                    series.append(("%s %s/pinned" % (kern, mode), pts))
        if not series:
            continue
        dat = os.path.join(d, "%s.dat" % dev)
        with open(dat, "w") as f:
            for name, pts in series:
                f.write("# %s\n" % name)
                for c, st in zip(cases, pts):
                    label = "%s %s" % (c[0], size_str(c[1]).replace(" ", ""))
                    if st:
                        f.write('"%s" %f %f %f\n' % (label, st[0], st[1],
                                                       st[2]))
                    else:
                        f.write('"%s" NaN NaN NaN\n' % label)
                f.write("\n\n")
        png = os.path.join(d, "%s.png" % dev)
        n = len(series)
        cmd = ["set terminal png size 1100,500 noenhanced",
               "set output '%s'" % png,
               "set title '%s: mode / pinned (median and min..max of the rounds; "
               "latency: lower is better)'" % dev,
               "set ylabel 'ratio to pinned (log scale)'",
               "set logscale y",
               "set xtics rotate by -30",
               "set grid ytics",
               "set key outside right",
               "set offsets 0.5, 0.5, 0, 0",
               "set arrow from graph 0, first 1 to graph 1, first 1 nohead "
               "dt 2",
               "plot " + ", ".join(
                   "'%s' index %d using ($0+%f):2:3:4%s with yerrorbars "
                   "pt 7 title '%s'" % (dat, i, (i - (n - 1) / 2) * 0.12,
                                        ":xtic(1)" if i == 0 else "", name)
                   for i, (name, _) in enumerate(series))]
        r = subprocess.run(["gnuplot"], input="\n".join(cmd) + "\n",
                           text=True, capture_output=True)
        if r.returncode:
            made.append("gnuplot failed for %s: %s" % (dev, r.stderr.strip()))
        else:
            made.append("![%s](%s.png)" % (dev, dev))
    return made


def fault_table(out, rows):
    """fault_KIND rows (us per fault) with their fault and page counts."""
    sel = {}
    for r in rows:
        c = r["case"]
        if not c.startswith("fault_"):
            continue
        parts = c.split("_")
        key = (r["kernel"], r["device"], parts[1], r["size"])
        fig = parts[2] if len(parts) > 2 else "us"
        sel.setdefault(key, {})[fig] = r
    if not sel:
        return
    out.append("## Fault cost (sodp_faultbench)\n")
    out.append("Per kind, N 8-byte RDMA READs of a fresh ODP MR, one at a "
               "time, each to its own fresh 2 MiB chunk (page: never "
               "touched, MADV_NOHUGEPAGE; window: a fault-around window "
               "written by the CPU first, MADV_NOHUGEPAGE; huge: a THP "
               "written by the CPU first), each followed at once by the "
               "same READ warm. "
               "\"invalid\": sodp's MR counters did not show exactly N "
               "faults mirroring the wanted pages (and none warm), or a "
               "byte was wrong; no figure is claimed then. READ cold, "
               "READ warm: the median READs (us); us/fault: the median of "
               "the per-chunk differences; x page: us/fault over the page "
               "kind's, same device and run (the kinds take turns chunk "
               "by chunk, so this ratio is the figure to compare).\n")
    out.append("| kernel | device | kind | N | faults | pages mirrored | "
               "pages wanted | READ cold | READ warm | us/fault | "
               "x page | data verified |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in sorted(sel):
        d = sel[k]
        page = sel.get((k[0], k[1], "page", k[3]), {}).get("us")
        us = d.get("us")
        rel = "-"
        if page and us and page["value"] and us["value"] is not None:
            rel = "%.2f" % (us["value"] / page["value"])

        def val(fig):
            r = d.get(fig)
            if not r:
                return "-"
            if r["value"] is None:
                return r["raw"] or "-"
            if fig in ("us", "cold", "warm"):
                return fmt(r["value"], "us")
            return "%d" % r["value"]
        v = d.get("us", {}).get("verified", "-")
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | "
                   "%s | %s |" % (
                       k[0], k[1], k[2], k[3], val("faults"), val("pages"),
                       val("want"), val("cold"), val("warm"), val("us"),
                       rel, "yes" if v == "yes" else "**%s**" % v))
    out.append("")


def qp_table(out, rows):
    """write_bw_qN_per_q1 rows: N QPs over 1 QP, same mode, same run."""
    sel = OrderedDict()
    qs = set()
    for r in rows:
        c = r["case"]
        if not (c.startswith("write_bw_q") and c.endswith("_per_q1")):
            continue
        q = int(c[len("write_bw_q"):-len("_per_q1")])
        qs.add(q)
        key = (r["kernel"], r["device"], r["size"], r["mode"])
        sel.setdefault(key, {})[q] = r
    if not sel:
        return
    qs = sorted(qs)
    out.append("## QP scaling (ib_write_bw -q N)\n")
    out.append("Bandwidth with N QPs of one process over one MR divided by "
               "the 1-QP bandwidth of the same mode, both from the same "
               "guest run (TCG timings swing 2-3x between runs, so only "
               "ratios from one run mean anything; one perftest run "
               "each).\n")
    out.append("| kernel | device | size | mode | " +
               " | ".join("q%d/q1" % q for q in qs) + " |")
    out.append("|---|---|---|---|" + "---|" * len(qs))
    for k in sorted(sel):
        d = sel[k]
        cells = []
        for q in qs:
            r = d.get(q)
            cells.append("%.3f" % r["value"] if r and r["value"] is not None
                         else "-")
        out.append("| %s | %s | %s | %s | %s |" % (
            k[0], k[1], size_str(k[2]), k[3], " | ".join(cells)))
    out.append("")


def main():
    d = sys.argv[1]
    rows = load(os.path.join(d, "results.csv"))
    out = ["# sodp benchmark results\n"]
    kvers = []
    for name in ("kernels.txt",):
        p = os.path.join(d, name)
        if os.path.exists(p):
            with open(p) as f:
                kvers = [line.strip() for line in f if line.strip()]
    out.append("TCG guests: absolute figures depend on the host and its "
               "load; only ratios from one guest run mean anything. "
               "%d rows in results.csv.\n" % len(rows))
    for k in kvers:
        out.append("- " + k)
    if kvers:
        out.append("")
    keys, data = steady_table(out, rows, kvers)
    rxe_table(out, keys, data)
    subpage_table(out, rows)
    first_touch_table(out, rows)
    reg_table(out, rows)
    inval_table(out, rows)
    fault_table(out, rows)
    qp_table(out, rows)
    figs = plots(d, keys, data) if keys else []
    if figs:
        out.append("## Plots\n")
        out.extend(f + "\n" for f in figs)
    with open(os.path.join(d, "results.md"), "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
