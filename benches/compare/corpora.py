"""The generated and copied corpora: a, b, c (issue #6), events and tree (issue #21).

Each corpus writes its initial state under `path` with `initial()`, then `hour()` applies one
"hour" of change; `close()` releases what it holds. Every random choice comes from a
`random.Random` with a fixed seed, so the same scale gives the same bytes (tree: the same bytes
for the same source directory). The PostgreSQL corpus lives in pg.py.
"""
import base64, functools, os, random, shutil, struct, time, zlib

MIB = 1 << 20


def events(rng, n):
    out = []
    size = 0
    while size < n:
        line = '{"id":"%016x","kind":"webhook.delivered","tenant":%d,"attempt":%d,"latency_ms":%d}\n' % (
            rng.getrandbits(64), rng.randrange(500), rng.randrange(5), rng.randrange(10000))
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:n]


class SyntheticCorpus:
    """Issue #6's corpora: (a) segments of one-line records, (b) 8 KiB pages + WAL, (c) small files."""

    def __init__(self, kind, data, scale):
        self.kind, self.path, self.scale = kind, data, scale
        self.rng = random.Random(42)
        os.makedirs(data, exist_ok=True)

    def initial(self):
        if self.kind == "a":
            self.seg = int(64 * MIB * self.scale) or MIB
            total = int(1200 * MIB * self.scale)
            self.active, n = 0, 0
            while n + self.seg <= total:
                self.write_segment(self.active, self.seg)
                n += self.seg
                self.active += 1
            self.active_len = 0
        elif self.kind == "b":
            self.pages = int(1024 * MIB * self.scale) // 8192
            with open(os.path.join(self.path, "table.db"), "wb") as f:
                for _ in range(self.pages // 128):
                    f.write(events(self.rng, 128 * 8192))
            with open(os.path.join(self.path, "wal.log"), "wb") as f:
                f.write(events(self.rng, 4 * MIB))
            os.makedirs(os.path.join(self.path, "pg_wal"), exist_ok=True)
            self.walseg = 0
        else:
            self.files = []
            count = int(100_000 * self.scale)
            for i in range(count):
                d = os.path.join(self.path, "d%02d" % (i % 37), "e%02d" % (i % 11), "f%03d" % (i % 97))
                os.makedirs(d, exist_ok=True)
                p = os.path.join(d, "file-%06d" % i)
                with open(p, "wb") as f:
                    f.write(events(self.rng, self.rng.randrange(1024, 65536)))
                self.files.append(p)

    def write_segment(self, i, n):
        with open(os.path.join(self.path, "seg-%05d.log" % i), "ab") as f:
            f.write(events(self.rng, n))

    def hour(self):
        if self.kind == "a":
            left = int(1200 * MIB * self.scale * 0.05)
            while left > 0:
                n = min(left, self.seg - self.active_len)
                self.write_segment(self.active, n)
                self.active_len += n
                left -= n
                if self.active_len >= self.seg:
                    self.active, self.active_len = self.active + 1, 0
        elif self.kind == "b":
            with open(os.path.join(self.path, "table.db"), "r+b") as f:
                for _ in range(self.pages // 50):
                    f.seek(self.rng.randrange(self.pages) * 8192)
                    f.write(events(self.rng, 8192))
            with open(os.path.join(self.path, "wal.log"), "ab") as f:
                f.write(events(self.rng, 2 << 20))
            with open(os.path.join(self.path, "pg_wal", "%024X" % self.walseg), "wb") as f:
                f.write(events(self.rng, 16 << 20))
            self.walseg += 1
        else:
            for p in self.rng.sample(self.files, max(1, len(self.files) // 100)):
                with open(p, "ab") as f:
                    f.write(events(self.rng, 512))

    def close(self):
        pass


EVENT_TYPES = ["order.created", "order.paid", "order.shipped", "invoice.sent", "user.login",
               "user.updated", "webhook.delivered", "webhook.failed", "payment.refunded", "cart.abandoned"]
SERVICES = ["checkout", "billing", "identity", "notifier", "inventory", "gateway"]
METHODS = ["GET", "POST", "PUT", "DELETE"]
STATUSES = [200] * 14 + [201] * 3 + [204, 400, 404, 409, 500, 503]
PLANS = ["free", "team", "business", "enterprise"]
CURRENCIES = ["EUR", "USD", "GBP"]
RECORD = ('{"event_id":"%032x","type":"%s","ts":"%s.%03dZ",'
          '"tenant":{"id":"t-%05d","plan":"%s","region":"eu-west-%d"},'
          '"source":{"service":"%s","host":"ip-10-0-%d-%d","version":"2.%d.%d"},'
          '"http":{"method":"%s","path":"/v1/%s/%d","status":%d,"latency_ms":%r},"attempt":%d,'
          '"trace":{"trace_id":"%032x","span_id":"%016x"},"amount":{"value":%d,"currency":"%s"}')


class EventsCorpus:
    """Append-only segment log of framed JSON event records (a message broker's data dir).

    Each record is a 16-byte frame (offset u64, length u32, CRC-32 u32, little-endian) and a
    compact JSON object: repeated keys, random ids, increasing timestamps, nested objects, and
    in 15% of records a base64 binary payload of 48-1536 random bytes. A segment is sealed when
    the next record would pass the segment size (64 MiB at scale 1); it is named after its first
    offset, as Kafka names them. The initial state is ~1.2 GB at scale 1; each hour appends 5%.
    """

    def __init__(self, data, scale):
        self.path, self.scale = data, scale
        self.rng = random.Random(21)
        self.segment_bytes = max(MIB, int(64 * MIB * self.scale))
        self.offset, self.clock_ms = 0, 1_764_547_200_000  # 2025-12-01T00:00:00Z
        self.active, self.active_len = None, 0
        os.makedirs(data, exist_ok=True)

    def initial(self):
        self.append(int(1200 * MIB * self.scale))

    def hour(self):
        self.append(int(1200 * MIB * self.scale * 0.05))

    def close(self):
        pass

    def record(self):
        r = self.rng
        self.clock_ms += r.randrange(0, 4)
        secs, ms = divmod(self.clock_ms, 1000)
        # Formatted directly (valid compact JSON, as json.dumps would write it): twice as fast.
        body = RECORD % (
            r.getrandbits(128), r.choice(EVENT_TYPES), _iso(secs), ms,
            r.randrange(20000), r.choice(PLANS), r.randrange(1, 4),
            r.choice(SERVICES), r.randrange(16), r.randrange(256), r.randrange(30), r.randrange(10),
            r.choice(METHODS), r.choice(SERVICES), r.randrange(10 ** 6), r.choice(STATUSES),
            round(r.expovariate(1 / 40), 2), 1 + int(r.expovariate(2)),
            r.getrandbits(128), r.getrandbits(64), r.randrange(100, 10 ** 6), r.choice(CURRENCIES))
        if r.random() < 0.15:
            body += ',"body_b64":"%s"' % base64.b64encode(r.randbytes(r.randrange(48, 1537))).decode()
        body = (body + "}").encode()
        frame = struct.pack("<QII", self.offset, len(body), zlib.crc32(body)) + body
        self.offset += 1
        return frame

    def append(self, n):
        """Appends about `n` bytes of records, sealing segments as they fill."""
        buf, f = [], None
        while n > 0:
            rec = self.record()
            if self.active is None or self.active_len + len(rec) > self.segment_bytes:
                if f:
                    f.write(b"".join(buf))
                    f.close()
                    buf = []
                self.active, self.active_len = "%020d.log" % (self.offset - 1), 0
                f = None
            if f is None:
                f = open(os.path.join(self.path, self.active), "ab")
            buf.append(rec)
            self.active_len += len(rec)
            n -= len(rec)
            if len(buf) >= 4096:
                f.write(b"".join(buf))
                buf = []
        if f:
            f.write(b"".join(buf))
            f.close()


@functools.lru_cache(maxsize=4096)
def _iso(secs):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))


class TreeCorpus:
    """Real files of this machine: a copy of a deterministic sample of `source` (/usr/share).

    The regular files and symlinks under `source`, in sorted order, are shuffled with a fixed
    seed and taken until 750 MB × scale (at scale 1 that is most of Debian's /usr/share here,
    ~44 000 files); the rest is kept back for new files. Each hour touches 1% of the files:
    60% of those are edited (an insertion, an overwrite in place or an append of bytes taken
    from another file of the tree), 40% are new (the next kept-back file, or an edited copy).
    """

    def __init__(self, data, scale, source="/usr/share"):
        self.path, self.scale, self.source = data, scale, source
        self.rng = random.Random(7)
        self.files, self.spare, self.copies = [], [], 0
        os.makedirs(data, exist_ok=True)

    def initial(self):
        found = []
        for root, dirs, names in os.walk(self.source):
            dirs.sort()
            for n in sorted(names):
                p = os.path.join(root, n)
                if os.path.islink(p) or os.path.isfile(p):
                    found.append(os.path.relpath(p, self.source))
        self.rng.shuffle(found)
        budget = int(750e6 * self.scale)
        for i, rel in enumerate(found):
            if budget <= 0:
                self.spare = found[i:]
                break
            budget -= self.copy_in(rel)

    def copy_in(self, rel):
        """Copies one entry of the source into the tree; returns its size (0 if it vanished)."""
        src, dst = os.path.join(self.source, rel), os.path.join(self.path, rel)
        try:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
                return 0
            shutil.copy2(src, dst)
        except OSError:
            return 0
        self.files.append(rel)
        return os.path.getsize(dst)

    def hour(self):
        r = self.rng
        for _ in range(max(1, len(self.files) // 100)):
            if r.random() < 0.6:
                self.edit(os.path.join(self.path, r.choice(self.files)))
            elif self.spare:
                self.copy_in(self.spare.pop())
            else:
                rel = r.choice(self.files)
                self.copies += 1
                new = "%s.%d" % (rel, self.copies)
                shutil.copy2(os.path.join(self.path, rel), os.path.join(self.path, new))
                self.files.append(new)
                self.edit(os.path.join(self.path, new))

    def edit(self, path):
        r = self.rng
        with open(os.path.join(self.path, r.choice(self.files)), "rb") as f:
            patch = f.read(r.randrange(16, 4097)) or b"\n"
        with open(path, "rb") as f:
            body = f.read()
        at = r.randrange(len(body) + 1)
        op = r.randrange(3)
        if op == 0:
            body = body[:at] + patch + body[at:]
        elif op == 1:
            body = body[:at] + patch + body[at + len(patch):]
        else:
            body += patch
        with open(path, "wb") as f:
            f.write(body)

    def close(self):
        pass
