"""The tools under comparison: how each one is invoked, installed and timed.

Every tool command runs under `/usr/bin/time` (wall seconds and peak RSS) with a deadline, so a
hung tool ends the run with an error instead of hanging it.
"""
import os, shutil, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = "bench"
CAIRN = os.path.join(ROOT, "target", "release", "cairn")
CAIRNS = ("cairn", "cairn-plain")
RUSTIC_ROOT = os.path.join(ROOT, "target", "tools", "rustic")
os.environ["PATH"] = os.path.join(RUSTIC_ROOT, "bin") + os.pathsep + os.environ.get("PATH", "")
PACKAGES = {"restic": "restic", "borg": "borgbackup"}
# No single step of any tool takes this long at full scale on the reference machine; a tool
# that does is hung, and the run stops with its output rather than waiting forever.
STEP_LIMIT_S = 3600


def sh(cmd, env=None, check=True):
    """Runs `cmd` under /usr/bin/time; returns (wall seconds, peak RSS in MiB)."""
    full = ["/usr/bin/time", "-f", "%e %M"] + cmd
    try:
        p = subprocess.run(full, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           timeout=STEP_LIMIT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(cmd)} did not finish within {STEP_LIMIT_S} s")
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "0 0"
    secs, rss_kib = last.split()[-2:]
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return float(secs), int(rss_kib) / 1024


def drop_caches():
    try:
        subprocess.run(["sync"], timeout=600)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
    except (OSError, subprocess.TimeoutExpired):
        pass


class Tool:
    def __init__(self, name, repo):
        self.name, self.repo = name, repo
        self.env = dict(os.environ, RESTIC_PASSWORD=PASSWORD, BORG_PASSPHRASE=PASSWORD,
                        BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes", BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
                        RUSTIC_PASSWORD=PASSWORD, CAIRN_PASSWORD=PASSWORD)

    def run(self, op, data=None, target=None):
        return sh(self.cmd(op, data, target), self.env)

    def cmd(self, op, data=None, target=None):
        r = self.repo
        if self.name in CAIRNS:
            # `cairn` is encrypted (the default, with the default KDF cost, as restic and
            # rustic are); `cairn-plain` is the same binary with `--encryption none`.
            plain = ["--encryption", "none"] if self.name == "cairn-plain" else []
            return {
                "init": [CAIRN, "--repo", r, "--quiet", "init"] + plain,
                "backup": [CAIRN, "--repo", r, "--quiet", "snapshot", "create", data],
                "restore": [CAIRN, "--repo", r, "--quiet", "restore", "latest", "--target", target or ""],
                "check": [CAIRN, "--repo", r, "--quiet", "repo", "check"],
                "check-data": [CAIRN, "--repo", r, "--quiet", "repo", "check", "--read-data"],
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
                # Encrypted like every other column but cairn-plain (borg's repokey mode, BLAKE2b ids and
                # AES-CTR + HMAC as restic and rustic authenticate too), so its column pays its
                # own KDF and crypto; runs before session 10 used --encryption=none.
                "init": ["borg", "init", "--encryption=repokey-blake2", r],
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


def available(name):
    if name in CAIRNS:
        return os.path.exists(CAIRN)
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
    try:
        p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           timeout=STEP_LIMIT_S)
    except subprocess.TimeoutExpired:
        return f"installing did not finish within {STEP_LIMIT_S} s ({' '.join(cmd)})"
    if p.returncode != 0 or not available(name):
        return f"installing failed ({' '.join(cmd)}): {p.stderr.strip()[-300:]}"
    print(f"{name}: installed in {time.time() - started:.0f} s", file=sys.stderr)
    return None


def version(name):
    name = "cairn" if name in CAIRNS else name
    cmd = {"cairn": [CAIRN, "--version"], "restic": ["restic", "version"],
           "borg": ["borg", "--version"], "rustic": ["rustic", "--version"]}[name]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"
