#!/usr/bin/env python3
"""Side-by-side benchmark of cairn against restic, rustic and borg, in rounds, on real and generated data.

    bash scripts/compare.sh [--quick] [--scale 1.0] [--corpus pg,events,tree] [--hours 6] [--rounds 3] [--tools ...]

(`scripts/compare.sh` installs the build dependencies and PostgreSQL, builds cairn in release
mode and runs this script as root so the page cache can be dropped.) Corpora (issue #21, the
default): `pg`, a real PostgreSQL data directory and WAL archive under pgbench (pg.py);
`events`, append-only segments of framed JSON event records; `tree`, a copy of this machine's
/usr/share (corpora.py). Issue #6's generated corpora `a`, `b`, `c` stay selectable
(`--corpus a,b,c` or `--corpus all`).

For each corpus every step runs for every tool in turn, in --rounds rounds (the tool order
rotates by one each round), with the page cache dropped before every run: the first snapshot
(a fresh repository per round), then --hours hourly incrementals (each hour all tools in turn
on the same state), repository size, an unchanged re-snapshot, restore, structural check and
check with full data read, each with peak RSS (from /usr/bin/time). The table shows the median
and [min–max] over rounds (hourly: over hours). Missing peers are installed (restic and
borgbackup from Debian, rustic with `cargo install rustic-rs`); a peer that cannot be installed
is named in the report. It also measures the machine's ceilings (ceilings.py). Progress goes to
stderr with the elapsed time; the report goes to stdout and between the markers of
docs/performance.md (`compare` for a,b,c only, `compare-real` otherwise), or to --out FILE.
"""
import argparse, os, shutil, sys, tempfile, time

import ceilings, report
from corpora import EventsCorpus, SyntheticCorpus, TreeCorpus
from pg import PgCorpus
from report import CHECK, CHECK_DATA, FIRST, HOURLY, REPO, RESTORE, UNCHANGED
from tools import ROOT, Tool, available, drop_caches, install, version

STARTED = time.time()
ALL_CORPORA = ["pg", "events", "tree", "a", "b", "c"]
# --quick: ~15 minutes for pg,events,tree with all five tools on the reference machine (a full
# run at --scale 1 takes ~75); rounds stay at 3, so the noise is still measured.
QUICK = {"scale": 0.15, "hours": 3}
FULL = {"scale": 1.0, "hours": 6}


def log(msg):
    secs = int(time.time() - STARTED)
    print(f"[{secs // 60:3d}:{secs % 60:02d}] {msg}", file=sys.stderr, flush=True)


def make_corpus(kind, work, scale, tree_source):
    data = os.path.join(work, "data")
    if kind in ("a", "b", "c"):
        return SyntheticCorpus(kind, data, scale)
    if kind == "events":
        return EventsCorpus(data, scale)
    if kind == "tree":
        return TreeCorpus(data, scale, tree_source)
    return PgCorpus(work, scale, log)


def rotated(tools, r):
    """Round r's tool order: no tool always runs first (after the deletion of a previous step's
    files, or on a machine whose speed drifts during a round)."""
    k = r % len(tools)
    return tools[k:] + tools[:k]


class CorpusRun:
    """Every step of the comparison on one corpus; `results[tool][row]` = [(value, RSS MiB)]."""

    def __init__(self, kind, corpus, tools, args, work):
        self.kind, self.corpus, self.tools, self.args, self.work = kind, corpus, tools, args, work
        self.results = {t: {} for t in tools}
        self.final = {t: Tool(t, self.repo(t, args.rounds - 1)) for t in tools}

    def repo(self, t, r):
        return os.path.join(self.work, f"repo-{t}-r{r}")

    def record(self, t, row, value, rss, what):
        self.results[t].setdefault(row, []).append((value, rss))
        log(f"({self.kind}) {what}: {t} {value:.2f} {row.split('(')[-1].rstrip(')')}")

    def rounds(self, row, run, value=lambda secs: secs):
        """Runs `run(tool, round)` for every tool in turn, --rounds times, caches dropped."""
        for r in range(self.args.rounds):
            for t in rotated(self.tools, r):
                drop_caches()
                secs, rss = run(t, r)
                self.record(t, row, value(secs), rss, f"round {r + 1}/{self.args.rounds} {row}")

    def first_snapshots(self, size):
        """A fresh repository per round: forget + prune would leave each tool's repository
        and local cache in a tool-specific state (borg needs `compact`, restic and rustic
        repack), so a later round would no longer be a first snapshot."""
        def run(t, r):
            tool = Tool(t, self.repo(t, r))
            tool.run("init")
            drop_caches()
            return tool.run("backup", self.corpus.path)
        for r in range(self.args.rounds):
            for t in rotated(self.tools, r):
                secs, rss = run(t, r)
                self.record(t, FIRST, size / 1e6 / secs, rss, f"round {r + 1}/{self.args.rounds} first snapshot")
            if r < self.args.rounds - 1:  # only the last round's repositories go on to the hours
                for t in self.tools:
                    shutil.rmtree(self.repo(t, r), ignore_errors=True)

    def hours(self):
        for h in range(self.args.hours):
            self.corpus.hour()
            for t in rotated(self.tools, h):
                drop_caches()
                secs, rss = self.final[t].run("backup", self.corpus.path)
                self.record(t, HOURLY, secs, rss, f"hour {h + 1}/{self.args.hours}")

    def restores(self, size):
        """Every restore stays on disk until the step ends (when the disk has room): ext4
        without a journal (this VM's) skips inodes freed in the last 1-6 minutes when it
        allocates new ones, so a restore right after another's deletion pays for it."""
        need = size * self.args.rounds * len(self.tools)
        keep = shutil.disk_usage(self.work).free > need * 1.2 + (5 << 30)
        if not keep:
            log(f"({self.kind}) restore: not enough free disk to keep {need / 1e9:.1f} GB of restores; "
                "each round's restores are deleted before the next round")
        targets = []
        for r in range(self.args.rounds):
            if not keep:
                for target in targets:
                    shutil.rmtree(target, ignore_errors=True)
            for t in rotated(self.tools, r):
                targets.append(os.path.join(self.work, f"restore-{t}-r{r}"))
                drop_caches()
                secs, rss = self.final[t].run("restore", None, targets[-1])
                self.record(t, RESTORE, size / 1e6 / secs, rss, f"round {r + 1}/{self.args.rounds} restore")
        for target in targets:
            shutil.rmtree(target, ignore_errors=True)

    def run(self):
        log(f"({self.kind}) generating the corpus")
        self.corpus.initial()
        size = ceilings.dir_bytes(self.corpus.path)
        log(f"({self.kind}) corpus ready: {size / 1e6:.0f} MB")
        self.first_snapshots(size)
        self.hours()
        for t in self.tools:
            self.results[t][REPO] = [(ceilings.dir_bytes(self.final[t].repo) / 1e6, 0)]
        size = ceilings.dir_bytes(self.corpus.path)
        log(f"({self.kind}) after the hours: {size / 1e6:.0f} MB")
        self.rounds(UNCHANGED, lambda t, r: self.final[t].run("backup", self.corpus.path))
        self.restores(size)
        self.rounds(CHECK, lambda t, r: self.final[t].run("check"))
        self.rounds(CHECK_DATA, lambda t, r: self.final[t].run("check-data"), lambda secs: size / 1e6 / secs)
        if self.args.no_ceilings:
            return self.results, {}
        log(f"({self.kind}) measuring the machine's ceilings")
        return self.results, ceilings.measure(self.corpus.path, self.work)


def run_corpus(kind, tools, args, work):
    """Runs one corpus in its own directory under `work`, removed afterwards."""
    work = os.path.join(work, kind)
    os.makedirs(work)
    corpus = make_corpus(kind, work, args.scale, args.tree_source)
    try:
        return CorpusRun(kind, corpus, tools, args, work).run()
    finally:
        corpus.close()
        shutil.rmtree(work, ignore_errors=True)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"a ~15-minute preset: {QUICK} unless given")
    ap.add_argument("--scale", type=float, help="corpus size factor (1.0: ~1-1.5 GB per corpus)")
    ap.add_argument("--corpus", default="pg,events,tree", help=f"comma-separated, of {','.join(ALL_CORPORA)}, or all")
    ap.add_argument("--hours", type=int)
    ap.add_argument("--rounds", type=int, default=3, help="runs of every step but the hours (median and range)")
    ap.add_argument("--tools", default="cairn,cairn-plain,restic,rustic,borg")
    ap.add_argument("--tree-source", default="/usr/share", help="the directory the tree corpus copies from")
    ap.add_argument("--no-ceilings", action="store_true", help="skip measuring the machine's ceilings (smoke runs)")
    ap.add_argument("--out", help="file whose compare markers receive the report ('-' to only print; "
                    "default docs/performance.md)")
    args = ap.parse_args()
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.corpora = ALL_CORPORA if args.corpus == "all" else args.corpus.split(",")
    unknown = [k for k in args.corpora if k not in ALL_CORPORA]
    if unknown or args.rounds < 1 or args.hours < 1:
        ap.error(f"unknown corpus {unknown} (known: {', '.join(ALL_CORPORA)})" if unknown else "--rounds and --hours must be ≥ 1")
    return args


def install_tools(names):
    tools, missing = [], {}
    for t in names:
        why = None if available(t) else install(t)
        if why:
            missing[t] = why
            log(f"{t}: left out: {why}")
        else:
            tools.append(t)
    return tools, missing


def render(args, started, tools, missing, all_results):
    lines = [
        f"Run of {started}: `bash scripts/compare.sh{' --quick' if args.quick else ''} --scale {args.scale:g} "
        f"--corpus {','.join(args.corpora)} --hours {args.hours} --rounds {args.rounds}`, "
        f"{(time.time() - STARTED) / 60:.0f} minutes.",
        "",
        f"Machine: {ceilings.machine()}.",
        "",
        "Tools: " + "; ".join(version(t) for t in tools if t != "cairn-plain")
        + (" (cairn-plain: the same binary, `init --encryption none`)" if "cairn-plain" in tools else "") + ".",
    ]
    for t, why in missing.items():
        lines += ["", f"**{t} could not be installed and is not in this run**: {why}"]
    lines += ["", f"Cells are the median [min–max] of {args.rounds} interleaved rounds (hourly incremental: of the "
              f"{args.hours} hours), with the peak RSS in parentheses; MB = 10^6 bytes; page cache dropped before "
              "every run; ratios are encrypted cairn / best peer on medians (for times and sizes: best peer / cairn, "
              "so above 1 is always better).", "", report.table(all_results, tools)]
    if not args.no_ceilings:
        lines += ["", "Machine ceilings measured in the same run (CPU stages on the first 256 MiB of each corpus, "
                  "page cache warm, `cargo bench --bench micro -- --ceilings FILE`; the last column of the table "
                  "above compares cairn with: first snapshot min(cold read, cores × write path); restore "
                  "min(write, cores × decode); read-data check min(cold read × compression ratio, cores × decode)):",
                  "", report.ceilings_table(all_results)]
    return "\n".join(lines)


def main():
    args = parse_args()
    if os.geteuid() != 0:
        log("note: not root, so the page cache cannot be dropped between steps")
    tools, missing = install_tools(args.tools.split(","))
    log(f"corpora {','.join(args.corpora)} at scale {args.scale:g}, {args.hours} hours, {args.rounds} rounds; "
        f"tools {', '.join(tools)}")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    work = tempfile.mkdtemp(prefix="cairn-compare-", dir="/var/tmp")
    os.chmod(work, 0o755)  # the pg corpus's server runs as the postgres user
    all_results = {}
    try:
        for kind in args.corpora:
            all_results[kind] = run_corpus(kind, tools, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = render(args, started, tools, missing, all_results)
    print(text)
    out = args.out or os.path.join(ROOT, "docs", "performance.md")
    if out != "-":
        marker = "compare" if set(args.corpora) <= {"a", "b", "c"} else "compare-real"
        report.write_into(out, text, marker)
        log(f"written into {out} (markers {marker})")


if __name__ == "__main__":
    main()
