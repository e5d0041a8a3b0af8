"""The `pg` corpus: a real PostgreSQL (Debian's) data directory and its WAL archive under pgbench.

Layout under the corpus directory (what every tool snapshots): `pgdata/` (the data directory)
and `wal-archive/` (`archive_command` copies each finished WAL segment there, i.e.
`<data>/../wal-archive`). The server's socket and log live outside, in `pg-run/`.

Initial state: `pgbench -i` at scale 60 × --scale (~1.0 GB of relation files at --scale 1, plus
pg_wal). Each "hour": `pgbench -M prepared -c 1 -t N --random-seed S` (N = 700 × the pgbench
scale, a fixed count and one client, so the same transactions run in the same order every time; at
pgbench scale 10, 1000 transactions per scale unit rewrote 47% and then 64% of the 8 KiB pages
per hour, so 700 aims at the ~470 MiB per hour that issue #21 saw), `VACUUM`,
`CHECKPOINT`, a WAL switch, and a wait until that segment is archived. autovacuum is off so
vacuum runs at that same point every hour; checkpoints come only when the harness asks
(`checkpoint_timeout = 1d`, `max_wal_size = 2GB`). `fsync` and `synchronous_commit` are off:
how fast the load runs is not measured, and a clean shutdown writes the same files either way.

The server is stopped (fast shutdown, which checkpoints) before the tools run and started again
for the next hour's load: every tool and every round then reads byte-identical files. A live
server would race its own background writes (hint bits, the checkpointer, the archiver) against
the tools, so each tool would back up a different state. Reading a stopped data directory costs
a tool exactly what reading a live one costs; what is lost is only that a restore of it would
need WAL replay, which no step here measures.

When the harness runs as root, every PostgreSQL program runs as the `postgres` user (as
tests/pitr_postgres.rs does); otherwise as the current user.
"""
import os, shutil, socket, subprocess, sys, time

PG_LIMIT_S = 1800  # one pgbench hour at full scale takes ~1 min on the reference machine


def pg_bin_dir():
    root = "/usr/lib/postgresql"
    dirs = sorted(os.path.join(root, d, "bin") for d in os.listdir(root)
                  if os.path.exists(os.path.join(root, d, "bin", "initdb"))) if os.path.isdir(root) else []
    if not dirs:
        raise RuntimeError("PostgreSQL is not installed (scripts/compare.sh installs Debian's postgresql)")
    return dirs[-1]


def is_root():
    return os.geteuid() == 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCorpus:
    def __init__(self, work, scale, log=print):
        self.path = os.path.join(work, "data")
        self.data, self.archive = os.path.join(self.path, "pgdata"), os.path.join(self.path, "wal-archive")
        self.run_dir = os.path.join(work, "pg-run")
        self.bin, self.port, self.log = pg_bin_dir(), free_port(), log
        self.pgbench_scale = max(1, round(60 * scale))
        self.transactions = 700 * self.pgbench_scale
        self.hours, self.running = 0, False
        # The PostgreSQL user must reach its directories through the harness's work dir.
        os.chmod(work, 0o755)
        for d in (self.path, self.archive, self.run_dir):
            self.mkdir_pg(d)

    def mkdir_pg(self, d):
        os.makedirs(d, exist_ok=True)
        if is_root():
            shutil.chown(d, "postgres", "postgres")

    def pg(self, program, *args, timeout=PG_LIMIT_S):
        cmd = [os.path.join(self.bin, program)] + list(args)
        env = None
        if is_root():
            cmd = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--reset-env"] + cmd
            env = dict(PATH="/usr/bin:/bin")
        try:
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd="/")
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{program} {' '.join(args)} did not finish within {timeout} s")
        if p.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
        return p.stdout.strip()

    def conn(self):
        return ["-h", self.run_dir, "-p", str(self.port), "-U", "postgres"]

    def sql(self, query):
        return self.pg("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *self.conn(), "-d", "postgres",
                       "-c", query)

    def start(self):
        self.pg("pg_ctl", "-D", self.data, "-l", os.path.join(self.run_dir, "server.log"), "-w", "-t", "300", "start")
        self.running = True

    def stop(self):
        if self.running:
            self.pg("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "300", "stop")
            self.running = False

    def configure(self):
        conf = (f"listen_addresses = ''\nunix_socket_directories = '{self.run_dir}'\nport = {self.port}\n"
                "wal_level = replica\narchive_mode = on\n"
                f"archive_command = 'test ! -f {self.archive}/%f && cp %p {self.archive}/%f'\n"
                "max_wal_size = '2GB'\ncheckpoint_timeout = '1d'\nautovacuum = off\n"
                "fsync = off\nsynchronous_commit = off\n")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(conf)

    def initial(self):
        started = time.time()
        self.pg("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions")
        self.configure()
        self.start()
        self.pg("pgbench", *self.conn(), "-i", "-q", "-s", str(self.pgbench_scale), "postgres")
        self.settle()
        self.log(f"pg: pgbench -i -s {self.pgbench_scale} in {time.time() - started:.0f} s; {self.sizes()}")

    def hour(self):
        started = time.time()
        self.start()
        self.hours += 1
        self.pg("pgbench", *self.conn(), "-n", "-M", "prepared", "-c", "1", "-t", str(self.transactions),
                f"--random-seed={1000 + self.hours}", "postgres")
        self.settle()
        self.log(f"pg: hour {self.hours}, {self.transactions} transactions in {time.time() - started:.0f} s; {self.sizes()}")

    def settle(self):
        """Vacuum, checkpoint, archive the current WAL segment, stop: the same state every run."""
        self.sql("VACUUM")
        self.sql("CHECKPOINT")
        seg = self.sql("SELECT pg_walfile_name(pg_switch_wal())")
        deadline = time.time() + 300
        while self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < seg:
            if time.time() > deadline:
                failed = self.sql("SELECT coalesce(last_failed_wal, '') || ' ' || failed_count FROM pg_stat_archiver")
                raise RuntimeError(f"WAL segment {seg} was not archived within 300 s (failed: {failed})")
            time.sleep(0.2)
        self.stop()

    def sizes(self):
        def mb(p):
            return sum(os.lstat(os.path.join(r, f)).st_size for r, _, fs in os.walk(p) for f in fs) / 1e6
        return f"data dir {mb(self.data):.0f} MB, WAL archive {mb(self.archive):.0f} MB"

    def close(self):
        try:
            self.stop()
        except RuntimeError as e:
            print(f"pg: could not stop the server: {e}", file=sys.stderr)
