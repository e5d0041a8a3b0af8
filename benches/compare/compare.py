#!/usr/bin/env python3
"""Side-by-side benchmark of cairn against restic, borg and rustic on generated corpora.

    python3 benches/compare/compare.py [--scale 0.25] [--corpus a,b,c] [--out FILE]

Generates deterministic corpora (see issue #6): (a) append-only segments of JSON-like event
records, (b) a database-like file of 8 KiB pages with 2% rewritten per hour plus WAL,
(c) many small files. For each corpus and tool it measures the first snapshot, each hourly
incremental, an unchanged re-snapshot, repository size, restore, structural check and check
with full data read, each with peak RSS (from /usr/bin/time), dropping the page cache before
each step when running as root. Tools that are missing are installed when possible (restic and
borgbackup from Debian, rustic via `cargo install rustic-rs`) and reported as unavailable
otherwise. Prints a markdown table with the cairn/best-peer ratio per row.
"""
import argparse, json, os, random, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = "bench"


def sh(cmd, env=None, check=True):
    full = ["/usr/bin/time", "-f", "%e %M"] + cmd
    p = subprocess.run(full, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "0 0"
    secs, rss_kib = last.split()[-2:]
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return float(secs), int(rss_kib) / 1024


def drop_caches():
    try:
        subprocess.run(["sync"])
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
    except OSError:
        pass


def events(rng, n):
    out = []
    size = 0
    while size < n:
        line = '{"id":"%016x","kind":"webhook.delivered","tenant":%d,"attempt":%d,"latency_ms":%d}\n' % (
            rng.getrandbits(64), rng.randrange(500), rng.randrange(5), rng.randrange(10000))
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:n]


class Corpus:
    """Writes the initial state into `data`, then `hour(i)` applies one hour of change."""

    def __init__(self, kind, data, scale):
        self.kind, self.data, self.scale = kind, data, scale
        self.rng = random.Random(42)
        os.makedirs(data, exist_ok=True)

    def initial(self):
        mib = 1 << 20
        if self.kind == "a":
            self.seg = int(64 * mib * self.scale) or mib
            total = int(1200 * mib * self.scale)
            self.active, n = 0, 0
            while n + self.seg <= total:
                self.write_segment(self.active, self.seg)
                n += self.seg
                self.active += 1
            self.active_len = 0
        elif self.kind == "b":
            self.pages = int(1024 * mib * self.scale) // 8192
            with open(os.path.join(self.data, "table.db"), "wb") as f:
                for _ in range(self.pages // 128):
                    f.write(events(self.rng, 128 * 8192))
            with open(os.path.join(self.data, "wal.log"), "wb") as f:
                f.write(events(self.rng, 4 * mib))
            os.makedirs(os.path.join(self.data, "pg_wal"), exist_ok=True)
            self.walseg = 0
        else:
            self.files = []
            count = int(100_000 * self.scale)
            for i in range(count):
                d = os.path.join(self.data, "d%02d" % (i % 37), "e%02d" % (i % 11), "f%03d" % (i % 97))
                os.makedirs(d, exist_ok=True)
                p = os.path.join(d, "file-%06d" % i)
                with open(p, "wb") as f:
                    f.write(events(self.rng, self.rng.randrange(1024, 65536)))
                self.files.append(p)

    def write_segment(self, i, n):
        with open(os.path.join(self.data, "seg-%05d.log" % i), "ab") as f:
            f.write(events(self.rng, n))

    def hour(self):
        if self.kind == "a":
            left = int(1200 * (1 << 20) * self.scale * 0.05)
            while left > 0:
                n = min(left, self.seg - self.active_len)
                self.write_segment(self.active, n)
                self.active_len += n
                left -= n
                if self.active_len >= self.seg:
                    self.active, self.active_len = self.active + 1, 0
        elif self.kind == "b":
            with open(os.path.join(self.data, "table.db"), "r+b") as f:
                for _ in range(self.pages // 50):
                    f.seek(self.rng.randrange(self.pages) * 8192)
                    f.write(events(self.rng, 8192))
            with open(os.path.join(self.data, "wal.log"), "ab") as f:
                f.write(events(self.rng, 2 << 20))
            with open(os.path.join(self.data, "pg_wal", "%024X" % self.walseg), "wb") as f:
                f.write(events(self.rng, 16 << 20))
            self.walseg += 1
        else:
            for p in self.rng.sample(self.files, max(1, len(self.files) // 100)):
                with open(p, "ab") as f:
                    f.write(events(self.rng, 512))


class Tool:
    def __init__(self, name, repo):
        self.name, self.repo = name, repo
        self.env = dict(os.environ, RESTIC_PASSWORD=PASSWORD, BORG_PASSPHRASE="",
                        BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes", BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
                        RUSTIC_PASSWORD=PASSWORD)

    def cmd(self, op, data=None, target=None):
        r = self.repo
        if self.name == "cairn":
            exe = os.path.join(ROOT, "target", "release", "cairn")
            return {
                "init": [exe, "--repo", r, "--quiet", "init"],
                "backup": [exe, "--repo", r, "--quiet", "snapshot", "create", data],
                "restore": [exe, "--repo", r, "--quiet", "restore", "latest", "--target", target or ""],
                "check": [exe, "--repo", r, "--quiet", "repo", "check"],
                "check-data": [exe, "--repo", r, "--quiet", "repo", "check", "--read-data"],
            }[op]
        if self.name == "restic":
            return {
                "init": ["restic", "-r", r, "init"],
                "backup": ["restic", "-r", r, "backup", "--quiet", data],
                "restore": ["restic", "-r", r, "restore", "latest", "--target", target or ""],
                "check": ["restic", "-r", r, "check"],
                "check-data": ["restic", "-r", r, "check", "--read-data"],
            }[op]
        if self.name == "borg":
            return {
                "init": ["borg", "init", "--encryption=none", r],
                "backup": ["borg", "create", "--compression", "zstd,3", r + "::{now:%Y%m%d%H%M%S%f}", data],
                "restore": ["sh", "-c", f"mkdir -p '{target}' && cd '{target}' && borg extract \"{r}::$(borg list --last 1 --short '{r}')\""],
                "check": ["borg", "check", "--repository-only", r],
                "check-data": ["borg", "check", "--verify-data", r],
            }[op]
        return {
            "init": ["rustic", "-r", r, "init"],
            "backup": ["rustic", "-r", r, "backup", data],
            "restore": ["rustic", "-r", r, "restore", "latest", target or ""],
            "check": ["rustic", "-r", r, "check"],
            "check-data": ["rustic", "-r", r, "check", "--read-data"],
        }[op]


def available(name):
    if name == "cairn":
        return os.path.exists(os.path.join(ROOT, "target", "release", "cairn"))
    return shutil.which(name) is not None


def dir_bytes(p):
    total = 0
    for root, _, files in os.walk(p):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def run_corpus(kind, tools, scale, hours, work):
    results = {}
    data = os.path.join(work, "data-" + kind)
    corpus = Corpus(kind, data, scale)
    corpus.initial()
    states = []
    for t in tools:
        repo = os.path.join(work, f"repo-{kind}-{t}")
        tool = Tool(t, repo)
        sh(tool.cmd("init"), tool.env)
        results[t] = {}
    size = dir_bytes(data)
    # First snapshot of every tool on the same data, then the hours, each tool in turn.
    for t in tools:
        tool = Tool(t, os.path.join(work, f"repo-{kind}-{t}"))
        drop_caches()
        secs, rss = sh(tool.cmd("backup", data), tool.env)
        results[t]["first snapshot (MB/s)"] = (size / 1e6 / secs, rss)
    for h in range(hours):
        corpus.hour()
        for t in tools:
            tool = Tool(t, os.path.join(work, f"repo-{kind}-{t}"))
            drop_caches()
            secs, rss = sh(tool.cmd("backup", data), tool.env)
            results[t].setdefault("hourly incremental (s, mean)", []).append((secs, rss))
    size = dir_bytes(data)
    for t in tools:
        tool = Tool(t, os.path.join(work, f"repo-{kind}-{t}"))
        runs = []
        for _ in range(3):
            drop_caches()
            runs.append(sh(tool.cmd("backup", data), tool.env))
        runs.sort()
        results[t]["unchanged re-snapshot (s, median of 3)"] = runs[1]
        results[t]["repository MB"] = (dir_bytes(tool.repo) / 1e6, 0)
        target = os.path.join(work, f"restore-{kind}-{t}")
        drop_caches()
        secs, rss = sh(tool.cmd("restore", data, target), tool.env)
        results[t]["restore (MB/s)"] = (size / 1e6 / secs, rss)
        shutil.rmtree(target, ignore_errors=True)
        drop_caches()
        results[t]["check, structural (s)"] = sh(tool.cmd("check"), tool.env)
        drop_caches()
        secs, rss = sh(tool.cmd("check-data"), tool.env)
        results[t]["check --read-data (MB/s of data)"] = (size / 1e6 / secs, rss)
    for t in tools:
        hourly = results[t]["hourly incremental (s, mean)"]
        results[t]["hourly incremental (s, mean)"] = (sum(s for s, _ in hourly) / len(hourly), max(r for _, r in hourly))
    return results


HIGHER_IS_BETTER = {"first snapshot (MB/s)", "restore (MB/s)", "check --read-data (MB/s of data)"}


def table(kind, results, tools):
    rows = list(next(iter(results.values())).keys())
    out = [f"\n### Corpus ({kind})\n", "| step | " + " | ".join(tools) + " | cairn / best peer |",
           "|---|" + "---|" * (len(tools) + 1)]
    for row in rows:
        cells, vals = [], {}
        for t in tools:
            v, rss = results[t][row]
            vals[t] = v
            cells.append(f"{v:.2f}" + (f" ({rss:.0f} MiB)" if rss else ""))
        peers = [vals[t] for t in tools if t != "cairn"]
        if peers and "cairn" in vals and vals["cairn"] > 0:
            best = max(peers) if row in HIGHER_IS_BETTER else min(peers)
            ratio = vals["cairn"] / best if row in HIGHER_IS_BETTER else best / vals["cairn"]
            cells.append(f"{ratio:.2f}×")
        else:
            cells.append("-")
        out.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--corpus", default="a,b,c")
    ap.add_argument("--hours", type=int, default=6)
    ap.add_argument("--tools", default="cairn,restic,rustic,borg")
    ap.add_argument("--out")
    args = ap.parse_args()
    tools = []
    for t in args.tools.split(","):
        if available(t):
            tools.append(t)
        else:
            print(f"{t}: not available on this machine, left out", file=sys.stderr)
    work = tempfile.mkdtemp(prefix="cairn-compare-", dir="/var/tmp")
    report = [f"Machine: {os.cpu_count()} cores; scale {args.scale}; {args.hours} hours; sizes: MB = 10^6 bytes; "
              "values are time or throughput with peak RSS in parentheses."]
    try:
        for kind in args.corpus.split(","):
            report.append(table(kind, run_corpus(kind, tools, args.scale, args.hours, work), tools))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(report)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
