"""The comparison's tables: median [min–max] per step and tool, ratios, targets and ceilings.

`results[tool][row]` is the list of (value, peak RSS MiB) samples of one step: one per round,
or one per hour for the hourly incremental. Ratios and targets use medians and compare the
encrypted `cairn` with the best peer; `cairn-plain` is shown beside it.
"""
import os, statistics

from tools import CAIRNS

FIRST, HOURLY, UNCHANGED, REPO = "first snapshot (MB/s)", "hourly incremental (s)", "unchanged re-snapshot (s)", "repository MB"
RESTORE, CHECK, CHECK_DATA, PEAK = "restore (MB/s)", "check, structural (s)", "check --read-data (MB/s of data)", "peak RSS over all steps (MiB)"
ROWS = [FIRST, HOURLY, UNCHANGED, REPO, RESTORE, CHECK, CHECK_DATA]
HIGHER_IS_BETTER = {FIRST, RESTORE, CHECK_DATA}
# Issues #6 and #21: the minimum of cairn / best peer per row (repository bytes: best / cairn).
TARGETS = {FIRST: 2.0, UNCHANGED: 3.0, RESTORE: 1.1, CHECK_DATA: 2.0, REPO: 1.0}
HOURLY_TARGET_CORPORA = {"a", "events", "pg"}
RSS_LIMIT_MIB = 128


def summary(samples):
    """(median, min, max, peak RSS) of one step's samples."""
    values = [v for v, _ in samples]
    return statistics.median(values), min(values), max(values), max(r for _, r in samples)


def cell(samples):
    med, lo, hi, rss = summary(samples)
    text = f"{med:.2f}" + (f" [{lo:.2f}–{hi:.2f}]" if len(samples) > 1 else "")
    return text + (f" ({rss:.0f} MiB)" if rss else "")


def ceiling_of(row, ceilings):
    """What this machine could do at best for a throughput row, from the measured ceilings."""
    cpu, read, cores = ceilings.get("cpu"), ceilings.get("cold read (MB/s)"), os.cpu_count() or 1
    if not cpu or not read:
        return None
    decode = cores * cpu["unzstd_blake3_mb_s"]
    if row == FIRST:
        return min(read, cores * cpu["write_path_mb_s"])
    if row == RESTORE:
        return min(ceilings["write (MB/s)"], decode)
    if row == CHECK_DATA:
        # Packs are read at about the corpus's cold read speed and hold `ratio` times less.
        return min(read * cpu["ratio"], decode)
    return None


def ratio_and_target(kind, row, vals, tools):
    peers = [vals[t] for t in tools if t not in CAIRNS]
    if row == PEAK:
        return "-", f"≤ {RSS_LIMIT_MIB} MiB " + ("✓" if vals.get("cairn", 1e9) <= RSS_LIMIT_MIB else "✗")
    if not peers or vals.get("cairn", 0) <= 0:
        return "-", "-"
    best = max(peers) if row in HIGHER_IS_BETTER else min(peers)
    ratio = vals["cairn"] / best if row in HIGHER_IS_BETTER else best / vals["cairn"]
    target = 2.0 if row == HOURLY and kind in HOURLY_TARGET_CORPORA else TARGETS.get(row)
    if row == RESTORE and "restic" in vals:
        vs_restic = vals["cairn"] / vals["restic"]
        met = ratio >= 1.1 and vs_restic >= 2.0
        return f"{ratio:.2f}×", f"≥ 1.1× best, ≥ 2× restic ({vs_restic:.2f}×) " + ("✓" if met else "✗")
    if target:
        return f"{ratio:.2f}×", f"≥ {target:g}× " + ("✓" if ratio >= target else "✗")
    return f"{ratio:.2f}×", "-"


def table(all_results, tools):
    out = ["| corpus | step | " + " | ".join(tools) + " | cairn / best peer | target | cairn / machine ceiling |",
           "|---|---|" + "---|" * (len(tools) + 3)]
    for kind, (results, ceilings) in all_results.items():
        for row in ROWS + [PEAK]:
            if row == PEAK:
                vals = {t: max(summary(s)[3] for s in results[t].values()) for t in tools}
                cells = [f"{vals[t]:.0f}" for t in tools]
            else:
                vals = {t: summary(results[t][row])[0] for t in tools}
                cells = [cell(results[t][row]) for t in tools]
            ratio_cell, target_cell = ratio_and_target(kind, row, vals, tools)
            ceiling = ceiling_of(row, ceilings)
            ceiling_cell = f"{vals['cairn'] / ceiling:.0%} of {ceiling:.0f}" if ceiling and "cairn" in vals else "-"
            out.append(f"| ({kind}) | {row} | " + " | ".join(cells) + f" | {ratio_cell} | {target_cell} | {ceiling_cell} |")
    return "\n".join(out)


def ceilings_table(all_results):
    out = ["| corpus | cold read, 8 readers (MB/s) | sequential write, no fsync (MB/s) | chunk + BLAKE3, 1 core (MB/s) "
           "| zstd, 1 core (MB/s; ratio) | write path, 1 core (MB/s) | unzstd + BLAKE3, 1 core (MB/s) |",
           "|---|---|---|---|---|---|---|"]
    for kind, (_, c) in all_results.items():
        if not c:
            continue
        cpu = c.get("cpu") or {}
        out.append(f"| ({kind}) | {c['cold read (MB/s)']:.0f} | {c['write (MB/s)']:.0f} | {cpu.get('fastcdc_blake3_mb_s', '?')} | "
                   f"{cpu.get('zstd_mb_s', '?')} (level {cpu.get('zstd_level', '?')}; {cpu.get('ratio', '?')}) | "
                   f"{cpu.get('write_path_mb_s', '?')} | {cpu.get('unzstd_blake3_mb_s', '?')} |")
    return "\n".join(out)


def write_into(path, text, marker="compare"):
    """Replaces the text between the `marker` markers of `path` (appends them if absent)."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    old = open(path).read() if os.path.exists(path) else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(new)
