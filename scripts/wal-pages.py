#!/usr/bin/env python3
"""Which tables a relay's group commits write: pages per commit, by table, from a WAL copy.

Usage (BENCHMARKS.md, "subtree hashes keyed by completion order"):

    target/release/ants-load --data /tmp/walx latency --rate 5000 --subscribers 100 \
        --publishers 10 --seconds 6 &
    sleep 4; mkdir -p /tmp/walcopy
    cp /tmp/walx/relay.sqlite3 /tmp/walx/relay.sqlite3-wal /tmp/walcopy/
    python3 scripts/wal-pages.py /tmp/walcopy/relay.sqlite3

It reads the frames of the WAL's current generation (those with the header's salts), counts
the transactions (frames that carry a commit size) and maps each frame's page number to the
table or index owning it with SQLite's `dbstat` table, opened on the copy. Work on a copy:
opening the database replays and checkpoints the WAL.
"""

import collections
import sqlite3
import struct
import sys


def frames(wal_bytes):
    """(page number, commit size) of each frame of the WAL's current generation."""
    _magic, _version, page_size, _seq, salt1, salt2, _c1, _c2 = struct.unpack(
        ">8I", wal_bytes[:32]
    )
    offset, out = 32, []
    while offset + 24 + page_size <= len(wal_bytes):
        page, commit, frame_salt1, frame_salt2 = struct.unpack(
            ">4I", wal_bytes[offset : offset + 16]
        )
        if (frame_salt1, frame_salt2) != (salt1, salt2):
            break
        out.append((page, commit))
        offset += 24 + page_size
    return out


def main(db_path):
    with open(db_path + "-wal", "rb") as wal:
        found = frames(wal.read())
    commits = sum(1 for _, commit in found if commit)
    if not commits:
        sys.exit("no committed frames in the WAL's current generation")
    owners = {
        page: (name, kind)
        for name, page, kind in sqlite3.connect(db_path).execute(
            "SELECT name, pageno, pagetype FROM dbstat"
        )
    }
    pages = collections.Counter(owners.get(page, ("?", "?")) for page, _ in found)
    print(f"{len(found)} frames, {commits} commits, {len(found) / commits:.1f} pages per commit")
    for (name, kind), count in pages.most_common():
        print(f"  {name:<24} {kind:<9} {count / commits:6.2f} pages per commit")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
