#!/usr/bin/env python3
"""Side-by-side benchmark of cairn against restic, rustic and borg on generated corpora.

    bash scripts/compare.sh [--scale 1.0] [--corpus a,b,c] [--hours 6] [--tools ...]

(`scripts/compare.sh` installs the build dependencies, builds cairn in release mode and runs
this script as root so the page cache can be dropped.) Generates deterministic corpora (issue
#6): (a) append-only segments of JSON-like event records, (b) a database-like file of 8 KiB
pages with 2% rewritten per hour plus WAL, (c) many small files in a deep tree. For each corpus
and tool it measures the first snapshot, each hourly incremental, an unchanged re-snapshot
(median of 3), repository size, restore, structural check (median of 3) and check with full
data read, each with peak RSS (from /usr/bin/time), dropping the page cache before every step.
Missing peers are installed (restic and borgbackup from Debian, rustic with `cargo install
rustic-rs`); a peer that cannot be installed is named in the report. It also measures the
machine's ceilings (cold read of each corpus; per-core chunk+hash and zstd throughput via
`cargo bench --bench micro -- --ceilings`). Prints one markdown table with the cairn/best-peer
ratio per row and writes it, with the machine's details, between the `compare:begin` and
`compare:end` markers of docs/performance.md (or --out FILE).
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
                        RUSTIC_PASSWORD=PASSWORD, CAIRN_PASSWORD=PASSWORD)

    def cmd(self, op, data=None, target=None):
        r = self.repo
        if self.name in CAIRNS:
            # `cairn` is encrypted (the default, with the default KDF cost, as restic and
            # rustic are); `cairn-plain` is the same binary with `--encryption none`.
            exe = os.path.join(ROOT, "target", "release", "cairn")
            plain = ["--encryption", "none"] if self.name == "cairn-plain" else []
            return {
                "init": [exe, "--repo", r, "--quiet", "init"] + plain,
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
                # The archives check is borg's structural check (archives, items, chunk
                # references); --repository-only would read and CRC every segment instead.
                "check": ["borg", "check", "--archives-only", r],
                "check-data": ["borg", "check", "--verify-data", r],
            }[op]
        return {
            "init": ["rustic", "-r", r, "init"],
            "backup": ["rustic", "-r", r, "backup", data],
            "restore": ["rustic", "-r", r, "restore", "latest", target or ""],
            "check": ["rustic", "-r", r, "check"],
            "check-data": ["rustic", "-r", r, "check", "--read-data"],
        }[op]


RUSTIC_ROOT = os.path.join(ROOT, "target", "tools", "rustic")
os.environ["PATH"] = os.path.join(RUSTIC_ROOT, "bin") + os.pathsep + os.environ.get("PATH", "")
PACKAGES = {"restic": "restic", "borg": "borgbackup"}
CAIRNS = ("cairn", "cairn-plain")


def available(name):
    if name in CAIRNS:
        return os.path.exists(os.path.join(ROOT, "target", "release", "cairn"))
    return shutil.which(name) is not None


def install(name):
    """Installs a missing peer; returns None on success, else why it could not be installed."""
    if name in CAIRNS:
        cmd = ["cargo", "build", "--release", "--quiet"]
    elif name in PACKAGES:
        cmd = ["bash", "-c", f"source scripts/deps.sh && apt_install {PACKAGES[name]}"]
    else:
        cmd = ["cargo", "install", "--quiet", "--locked", "rustic-rs", "--root", RUSTIC_ROOT]
    print(f"{name}: not found, installing ({' '.join(cmd)})", file=sys.stderr)
    started = time.time()
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0 or not available(name):
        return f"installing failed ({' '.join(cmd)}): {p.stderr.strip()[-300:]}"
    print(f"{name}: installed in {time.time() - started:.0f} s", file=sys.stderr)
    return None


def version(name):
    name = "cairn" if name in CAIRNS else name
    cmd = {"cairn": [os.path.join(ROOT, "target", "release", "cairn"), "--version"], "restic": ["restic", "version"],
           "borg": ["borg", "--version"], "rustic": ["rustic", "--version"]}[name]
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def machine():
    def first(path, key):
        try:
            for line in open(path):
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"
    disk = subprocess.run(["findmnt", "-no", "SOURCE,FSTYPE", "-T", "/var/tmp"], capture_output=True, text=True)
    return (f"{first('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores, "
            f"{int(first('/proc/meminfo', 'MemTotal').split()[0]) // 1024} MiB RAM, Linux {os.uname().release}, "
            f"/var/tmp on {disk.stdout.strip() or '?'}")


def cold_read_mb_s(data):
    """The disk's ceiling for this corpus: every file read with 8 readers, page cache dropped."""
    drop_caches()
    size = dir_bytes(data)
    t = time.time()
    subprocess.run(["sh", "-c", f"find '{data}' -type f -print0 | xargs -0 -P8 -n 64 cat > /dev/null"], check=True)
    return size / 1e6 / (time.time() - t)


def write_mb_s(work):
    """Sequential write bandwidth as a restore sees it: 1 GiB written, not fsynced (no tool's
    restore fsyncs), so mostly the speed of filling the page cache."""
    target = os.path.join(work, "write-ceiling")
    t = time.time()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=16M", "count=64"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    secs = time.time() - t
    os.remove(target)
    return (1 << 30) / 1e6 / secs


def cpu_ceilings(data, work):
    """Per-core CPU throughput of cairn's write and read paths on this corpus's bytes."""
    sample = os.path.join(work, "ceiling-sample")
    with open(sample, "wb") as out:
        left = 256 << 20
        for root, _, files in sorted(os.walk(data)):
            for f in sorted(files):
                with open(os.path.join(root, f), "rb") as src:
                    chunk = src.read(left)
                out.write(chunk)
                left -= len(chunk)
                if left <= 0:
                    break
            if left <= 0:
                break
    p = subprocess.run(["cargo", "bench", "--quiet", "--bench", "micro", "--", "--ceilings", sample], cwd=ROOT,
                       capture_output=True, text=True)
    os.remove(sample)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(f"ceilings: could not measure: {p.stderr[-500:]}", file=sys.stderr)
        return None


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
    # Step by step, every tool in turn, so that a drift of the machine's speed (this VM's CPU
    # varies up to 2-3x between hours) lands on all tools of a row alike, not on one tool.
    tool_of = {t: Tool(t, os.path.join(work, f"repo-{kind}-{t}")) for t in tools}

    def median_of_3(t, *args):
        runs = []
        for _ in range(3):
            drop_caches()
            runs.append(sh(tool_of[t].cmd(*args), tool_of[t].env))
        runs.sort()
        return runs[1]

    for t in tools:
        results[t]["unchanged re-snapshot (s, median of 3)"] = median_of_3(t, "backup", data)
    for t in tools:
        results[t]["repository MB"] = (dir_bytes(tool_of[t].repo) / 1e6, 0)
    # Every restore stays on disk until all tools have restored: ext4 without a journal (this
    # VM's) skips inodes freed in the last 1-6 minutes when it allocates new ones, so a restore
    # right after deleting the previous tool's restore of 100 000 files spends a fifth of its
    # time in the allocator (`find_inode_bit`, `recently_deleted`): deleting each target at once
    # would penalise every tool but the first.
    for t in tools:
        target = os.path.join(work, f"restore-{kind}-{t}")
        drop_caches()
        secs, rss = sh(tool_of[t].cmd("restore", data, target), tool_of[t].env)
        results[t]["restore (MB/s)"] = (size / 1e6 / secs, rss)
    for t in tools:
        shutil.rmtree(os.path.join(work, f"restore-{kind}-{t}"), ignore_errors=True)
    for t in tools:
        results[t]["check, structural (s, median of 3)"] = median_of_3(t, "check")
    for t in tools:
        drop_caches()
        secs, rss = sh(tool_of[t].cmd("check-data"), tool_of[t].env)
        results[t]["check --read-data (MB/s of data)"] = (size / 1e6 / secs, rss)
    for t in tools:
        hourly = results[t]["hourly incremental (s, mean)"]
        results[t]["hourly incremental (s, mean)"] = (sum(s for s, _ in hourly) / len(hourly), max(r for _, r in hourly))
        results[t]["peak RSS over all steps (MiB)"] = (max(rss for _, rss in results[t].values()), 0)
    ceilings = {"cold read (MB/s)": cold_read_mb_s(data), "cpu": cpu_ceilings(data, work), "write (MB/s)": write_mb_s(work)}
    shutil.rmtree(data, ignore_errors=True)
    for t in tools:
        shutil.rmtree(os.path.join(work, f"repo-{kind}-{t}"), ignore_errors=True)
    return results, ceilings


HIGHER_IS_BETTER = {"first snapshot (MB/s)", "restore (MB/s)", "check --read-data (MB/s of data)"}
# Issue #6's target per row, as a minimum for cairn / best peer (repository bytes: best / cairn).
TARGETS = {
    "first snapshot (MB/s)": 2.0,
    "unchanged re-snapshot (s, median of 3)": 3.0,
    "restore (MB/s)": 1.1,
    "check --read-data (MB/s of data)": 2.0,
    "repository MB": 1.0,
}


def ceiling_of(row, ceilings):
    """What this machine could do at best for a throughput row, from the measured ceilings."""
    cpu, read, cores = ceilings.get("cpu"), ceilings["cold read (MB/s)"], os.cpu_count() or 1
    if not cpu:
        return None
    decode = cores * cpu["unzstd_blake3_mb_s"]
    if row == "first snapshot (MB/s)":
        return min(read, cores * cpu["write_path_mb_s"])
    if row == "restore (MB/s)":
        return min(ceilings["write (MB/s)"], decode)
    if row == "check --read-data (MB/s of data)":
        # Packs are read at about the corpus's cold read speed and hold `ratio` times less.
        return min(read * cpu["ratio"], decode)
    return None


def table(all_results, tools):
    out = ["| corpus | step | " + " | ".join(tools) + " | cairn / best peer | target | cairn / machine ceiling |",
           "|---|---|" + "---|" * (len(tools) + 3)]
    for kind, (results, ceilings) in all_results.items():
        for row in next(iter(results.values())).keys():
            cells, vals = [], {}
            for t in tools:
                v, rss = results[t][row]
                vals[t] = v
                cells.append(f"{v:.2f}" + (f" ({rss:.0f} MiB)" if rss else ""))
            peers = [vals[t] for t in tools if t not in CAIRNS]
            target = TARGETS.get(row)
            if kind == "a" and row.startswith("hourly"):
                target = 2.0
            if row.startswith("peak RSS"):
                ratio_cell = "-"
                target_cell = "≤ 128 MiB " + ("✓" if vals.get("cairn", 999) <= 128 else "✗")
            elif peers and "cairn" in vals and vals["cairn"] > 0:
                best = max(peers) if row in HIGHER_IS_BETTER else min(peers)
                ratio = vals["cairn"] / best if row in HIGHER_IS_BETTER else best / vals["cairn"]
                ratio_cell = f"{ratio:.2f}×"
                if row == "restore (MB/s)" and "restic" in vals:
                    vs_restic = vals["cairn"] / vals["restic"]
                    met = ratio >= 1.1 and vs_restic >= 2.0
                    target_cell = f"≥ 1.1× best, ≥ 2× restic ({vs_restic:.2f}×) " + ("✓" if met else "✗")
                elif target:
                    target_cell = f"≥ {target:g}× " + ("✓" if ratio >= target else "✗")
                else:
                    target_cell = "-"
            else:
                ratio_cell, target_cell = "-", "-"
            ceiling = ceiling_of(row, ceilings)
            ceiling_cell = f"{vals['cairn'] / ceiling:.0%} of {ceiling:.0f}" if ceiling and "cairn" in vals else "-"
            out.append(f"| ({kind}) | {row} | " + " | ".join(cells) + f" | {ratio_cell} | {target_cell} | {ceiling_cell} |")
    return "\n".join(out)


def ceilings_table(all_results):
    out = ["| corpus | cold read, 8 readers (MB/s) | sequential write, no fsync (MB/s) | chunk + BLAKE3, 1 core (MB/s) "
           "| zstd, 1 core (MB/s; ratio) | write path, 1 core (MB/s) | unzstd + BLAKE3, 1 core (MB/s) |",
           "|---|---|---|---|---|---|---|"]
    for kind, (_, c) in all_results.items():
        cpu = c.get("cpu") or {}
        out.append(f"| ({kind}) | {c['cold read (MB/s)']:.0f} | {c['write (MB/s)']:.0f} | {cpu.get('fastcdc_blake3_mb_s', '?')} | "
                   f"{cpu.get('zstd_mb_s', '?')} (level {cpu.get('zstd_level', '?')}; {cpu.get('ratio', '?')}) | "
                   f"{cpu.get('write_path_mb_s', '?')} | {cpu.get('unzstd_blake3_mb_s', '?')} |")
    return "\n".join(out)


def write_into(path, text):
    """Replaces the text between the compare markers of `path` (appends them if absent)."""
    begin, end = "<!-- compare:begin -->", "<!-- compare:end -->"
    old = open(path).read() if os.path.exists(path) else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(new)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="corpus size factor (1.0 = the sizes of issue #6)")
    ap.add_argument("--corpus", default="a,b,c")
    ap.add_argument("--hours", type=int, default=6)
    ap.add_argument("--tools", default="cairn,cairn-plain,restic,rustic,borg")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "performance.md"),
                    help="file whose compare markers receive the report ('-' to only print)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("note: not root, so the page cache cannot be dropped between steps", file=sys.stderr)
    tools, missing = [], {}
    for t in args.tools.split(","):
        why = None if available(t) else install(t)
        if why:
            missing[t] = why
            print(f"{t}: left out: {why}", file=sys.stderr)
        else:
            tools.append(t)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    work = tempfile.mkdtemp(prefix="cairn-compare-", dir="/var/tmp")
    all_results = {}
    try:
        for kind in args.corpus.split(","):
            print(f"corpus ({kind})...", file=sys.stderr)
            all_results[kind] = run_corpus(kind, tools, args.scale, args.hours, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"Run of {started}: `bash scripts/compare.sh --scale {args.scale:g} --corpus {args.corpus} "
        f"--hours {args.hours}`.",
        "",
        f"Machine: {machine()}.",
        "",
        "Tools: " + "; ".join(version(t) for t in tools) + ".",
    ]
    for t, why in missing.items():
        lines += ["", f"**{t} could not be installed and is not in this run**: {why}"]
    lines += ["", "Values are time or throughput with peak RSS in parentheses; MB = 10^6 bytes; page cache "
              "dropped before every step; ratios are cairn / best peer (for times and sizes: best peer / cairn, "
              "so above 1 is always better).", "", table(all_results, tools), "",
              "Machine ceilings measured in the same run (CPU stages on the first 256 MiB of each corpus, "
              "page cache warm, `cargo bench --bench micro -- --ceilings FILE`; the last column of the table "
              "above compares cairn with: first snapshot min(cold read, cores × write path); restore "
              "min(write, cores × decode); read-data check min(cold read × compression ratio, cores × decode)):",
              "", ceilings_table(all_results)]
    text = "\n".join(lines)
    print(text)
    if args.out != "-":
        write_into(args.out, text)
        print(f"written into {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
