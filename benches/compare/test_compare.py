"""Checks of the harness's own logic, without any backup tool or server:

    python3 -m unittest discover -s benches/compare

the corpora are deterministic and well formed, the rounds rotate, and the table shows the
median and range and compares encrypted cairn with the best peer.
"""
import hashlib, json, os, struct, tempfile, unittest, zlib

import compare, report
from corpora import EventsCorpus, TreeCorpus


def digest(root):
    h = hashlib.sha256()
    for r, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(r, f)
            h.update(os.path.relpath(p, root).encode())
            if os.path.islink(p):
                h.update(os.readlink(p).encode())
            else:
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


class Corpora(unittest.TestCase):
    def build(self, make, hours=2):
        with tempfile.TemporaryDirectory() as d:
            c = make(os.path.join(d, "data"))
            c.initial()
            states = [digest(c.path)]
            for _ in range(hours):
                c.hour()
                states.append(digest(c.path))
            return states

    def test_events_are_deterministic_framed_json_in_sealed_segments(self):
        a = self.build(lambda p: EventsCorpus(p, 0.004))
        self.assertEqual(a, self.build(lambda p: EventsCorpus(p, 0.004)))
        self.assertEqual(len(set(a)), len(a), "every hour changes the corpus")
        with tempfile.TemporaryDirectory() as d:
            c = EventsCorpus(d, 0.004)
            c.initial()
            names = sorted(os.listdir(d))
            self.assertGreater(len(names), 3)
            offset = 0
            for n in names:
                self.assertEqual(int(n.split(".")[0]), offset, "a segment is named after its first offset")
                body = open(os.path.join(d, n), "rb").read()
                self.assertLessEqual(len(body), c.segment_bytes)
                at = 0
                while at < len(body):
                    off, length, crc = struct.unpack_from("<QII", body, at)
                    payload = body[at + 16:at + 16 + length]
                    self.assertEqual((off, zlib.crc32(payload)), (offset, crc))
                    self.assertIn("tenant", json.loads(payload))
                    at, offset = at + 16 + length, offset + 1

    def test_tree_is_a_deterministic_copy_that_changes_every_hour(self):
        with tempfile.TemporaryDirectory() as src:
            for i in range(300):
                os.makedirs(os.path.join(src, f"d{i % 7}"), exist_ok=True)
                with open(os.path.join(src, f"d{i % 7}", f"f{i}"), "wb") as f:
                    f.write((b"line %d\n" % i) * (i + 1))
            a = self.build(lambda p: TreeCorpus(p, 1e-4, src))
            self.assertEqual(a, self.build(lambda p: TreeCorpus(p, 1e-4, src)))
            self.assertEqual(len(set(a)), len(a), "every hour changes the corpus")


class Rounds(unittest.TestCase):
    def test_every_tool_leads_a_round_in_turn(self):
        tools = ["cairn", "cairn-plain", "restic"]
        self.assertEqual([compare.rotated(tools, r)[0] for r in range(4)], ["cairn", "cairn-plain", "restic", "cairn"])
        self.assertEqual(sorted(compare.rotated(tools, 1)), sorted(tools))


class Table(unittest.TestCase):
    def test_cells_show_median_and_range_and_ratio_uses_encrypted_cairn(self):
        samples = {
            "cairn": {row: [(4.0, 50), (1.0, 60), (2.0, 40)] for row in report.ROWS},
            "cairn-plain": {row: [(9.0, 10)] * 3 for row in report.ROWS},
            "restic": {row: [(1.0, 70)] * 3 for row in report.ROWS},
        }
        text = report.table({"pg": (samples, {})}, ["cairn", "cairn-plain", "restic"])
        first = next(l for l in text.splitlines() if report.FIRST in l)
        self.assertIn("2.00 [1.00–4.00] (60 MiB)", first)
        self.assertIn("| 2.00× |", first, "median of encrypted cairn / restic, not cairn-plain's 9")
        hourly = next(l for l in text.splitlines() if report.HOURLY in l)
        self.assertIn("| 0.50× | ≥ 2× ✗ |", hourly, "times: best peer / cairn")


if __name__ == "__main__":
    unittest.main()
