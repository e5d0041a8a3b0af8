"""What this machine can do at best: its description, disk read/write and per-core CPU ceilings.

The CPU ceilings come from `cargo bench --bench micro -- --ceilings FILE` (cairn's own chunk,
hash and compression stages on the corpus's first 256 MiB); scripts/compare.sh compiles that
bench before the run so that nothing is compiled while measuring.
"""
import json, os, subprocess, sys, time

from tools import ROOT, drop_caches, STEP_LIMIT_S


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


def dir_bytes(p):
    total = 0
    for root, _, files in os.walk(p):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def cold_read_mb_s(data):
    """The disk's ceiling for this corpus: every file read with 8 readers, page cache dropped."""
    drop_caches()
    size = dir_bytes(data)
    t = time.time()
    subprocess.run(["sh", "-c", f"find '{data}' -type f -print0 | xargs -0 -P8 -n 64 cat > /dev/null"], check=True,
                   timeout=STEP_LIMIT_S)
    return size / 1e6 / (time.time() - t)


def write_mb_s(work):
    """Sequential write bandwidth as a restore sees it: 1 GiB written, not fsynced (no tool's
    restore fsyncs), so mostly the speed of filling the page cache."""
    target = os.path.join(work, "write-ceiling")
    t = time.time()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=16M", "count=64"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=STEP_LIMIT_S)
    secs = time.time() - t
    os.remove(target)
    return (1 << 30) / 1e6 / secs


def cpu_ceilings(data, work):
    """Per-core CPU throughput of cairn's write and read paths on this corpus's bytes."""
    sample = os.path.join(work, "ceiling-sample")
    with open(sample, "wb") as out:
        left = 256 << 20
        for root, dirs, files in os.walk(data):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(root, f)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                with open(p, "rb") as src:
                    chunk = src.read(left)
                out.write(chunk)
                left -= len(chunk)
                if left <= 0:
                    break
            if left <= 0:
                break
    try:
        p = subprocess.run(["cargo", "bench", "--quiet", "--bench", "micro", "--", "--ceilings", sample], cwd=ROOT,
                           capture_output=True, text=True, timeout=STEP_LIMIT_S)
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError, subprocess.TimeoutExpired):
        print("ceilings: could not measure the CPU ceilings", file=sys.stderr)
        return None
    finally:
        os.remove(sample)


def measure(data, work):
    return {"cold read (MB/s)": cold_read_mb_s(data), "cpu": cpu_ceilings(data, work), "write (MB/s)": write_mb_s(work)}
