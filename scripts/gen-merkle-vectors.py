#!/usr/bin/env python3
"""Writes tests/vectors/merkle.json: the RFC 6962 / Certificate Transparency reference leaves with
roots for sizes 0..8 and every inclusion and consistency proof, computed by the recursive
definitions of RFC 6962 section 2.1 (an implementation independent of the Rust one), and checked
against the values published in the CT reference tests (merkle_tree_test.cc, transparency-dev/merkle)."""
import hashlib, json, sys

LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
          "606162636465666768696a6b6c6d6e6f"]
D = [bytes.fromhex(x) for x in LEAVES]
H = lambda b: hashlib.sha256(b).digest()

def k_of(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k

def mth(d):
    if len(d) == 0: return H(b"")
    if len(d) == 1: return H(b"\x00" + d[0])
    k = k_of(len(d))
    return H(b"\x01" + mth(d[:k]) + mth(d[k:]))

def path(m, d):
    if len(d) <= 1: return []
    k = k_of(len(d))
    if m < k: return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]

def subproof(m, d, b):
    n = len(d)
    if m == n: return [] if b else [mth(d)]
    k = k_of(n)
    if m <= k: return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]

PUBLISHED_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
PUBLISHED_INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
PUBLISHED_CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]

ok = True
for n, root in PUBLISHED_ROOTS.items():
    if mth(D[:n]).hex() != root:
        print(f"root {n} differs from the published value", file=sys.stderr); ok = False
for m, n, proof in PUBLISHED_INCLUSION:
    if [h.hex() for h in path(m, D[:n])] != proof:
        print(f"inclusion {m}/{n} differs", file=sys.stderr); ok = False
for m, n, proof in PUBLISHED_CONSISTENCY:
    got = [] if m == n else subproof(m, D[:n], True)
    if [h.hex() for h in got] != proof:
        print(f"consistency {m}->{n} differs", file=sys.stderr); ok = False
if not ok:
    sys.exit(1)

out = {
    "description": "RFC 6962 section 2.1 Merkle tree over the Certificate Transparency reference leaves. "
                   "Hashes are lowercase hex SHA-256. 'published' marks values that appear in the CT "
                   "reference tests; the rest follow from the RFC's recursive definitions.",
    "leaves": LEAVES,
    "leaf_hashes": [H(b"\x00" + d).hex() for d in D],
    "roots": [{"size": n, "root": mth(D[:n]).hex(), "published": n in PUBLISHED_ROOTS} for n in range(0, 9)],
    "inclusion": [
        {"index": m, "size": n, "proof": [h.hex() for h in path(m, D[:n])],
         "published": any(p[0] == m and p[1] == n for p in PUBLISHED_INCLUSION)}
        for n in range(1, 9) for m in range(n)],
    "consistency": [
        {"old_size": m, "new_size": n,
         "proof": [h.hex() for h in ([] if m in (0, n) else subproof(m, D[:n], True))],
         "published": any(p[0] == m and p[1] == n for p in PUBLISHED_CONSISTENCY)}
        for n in range(0, 9) for m in range(0, n + 1)],
}
json.dump(out, open(sys.argv[1] if len(sys.argv) > 1 else "tests/vectors/merkle.json", "w"), indent=1)
print("ok")
