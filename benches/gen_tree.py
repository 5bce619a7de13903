#!/usr/bin/env python3
"""Generates a realistic-ish tree: N small files of 1-64 KiB plus a few big files, compressible ~3-5x
with zstd -1 (log lines, CSV rows and JSON with random ids, numbers and words; some incompressible
binary). Usage: gen_tree.py DIR TOTAL_MIB [SMALL_FILES]"""
import os, random, sys

out, total_mib = sys.argv[1], int(sys.argv[2])
small = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
rnd = random.Random(42)
words = [''.join(rnd.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rnd.randint(3, 10))) for _ in range(3000)]
levels = ['INFO', 'WARN', 'DEBUG', 'ERROR']

def line(i):
    k = i % 3
    if k == 0:
        return '2024-%02d-%02dT%02d:%02d:%02d.%03dZ %s [%s] %s id=%08x took=%dms\n' % (
            rnd.randint(1, 12), rnd.randint(1, 28), rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59),
            rnd.randint(0, 999), rnd.choice(levels), rnd.choice(words), ' '.join(rnd.choices(words, k=rnd.randint(3, 12))),
            rnd.getrandbits(32), rnd.randint(1, 5000))
    if k == 1:
        return '%d,%s,%s,%.4f,%d,%s\n' % (rnd.getrandbits(40), rnd.choice(words), rnd.choice(words),
                                          rnd.random() * 1000, rnd.randint(0, 10**6), rnd.choice(levels))
    return '{"user":"%s","event":"%s","value":%d,"ts":%d,"tags":["%s","%s"]}\n' % (
        rnd.choice(words), rnd.choice(words), rnd.randint(0, 10**9), 1700000000 + rnd.randint(0, 10**7),
        rnd.choice(words), rnd.choice(words))

# A 16 MiB pool of text plus 1 MiB of random bytes; files are built from slices of it.
pool = ''.join(line(i) for i in range(200000)).encode()
while len(pool) < 16 << 20:
    pool += pool[: (16 << 20) - len(pool)]
noise = os.urandom(1 << 20)

def chunk(n):
    if rnd.random() < 0.1:
        s = rnd.randrange(0, len(noise) - n) if n < len(noise) else 0
        return noise[s:s + n]
    s = rnd.randrange(0, len(pool) - n)
    return pool[s:s + n]

os.makedirs(out, exist_ok=True)
written = 0
for i in range(small):
    d = os.path.join(out, 'd%02d' % (i % 50), 's%03d' % (i % 7))
    os.makedirs(d, exist_ok=True)
    n = rnd.randint(1024, 64 * 1024)
    with open(os.path.join(d, 'f%05d.%s' % (i, rnd.choice(['log', 'csv', 'json', 'dat']))), 'wb') as f:
        f.write(chunk(min(n, 900 * 1024)))
    written += n
os.symlink('d00/s000', os.path.join(out, 'latest'))
big_total = max(total_mib * (1 << 20) - written, 0)
nbig = max(1, big_total // (120 << 20)) if big_total > 0 else 0
os.makedirs(os.path.join(out, 'big'), exist_ok=True)
for b in range(nbig):
    size = big_total // nbig
    with open(os.path.join(out, 'big', 'blob%d.bin' % b), 'wb') as f:
        left = size
        while left > 0:
            n = min(left, 4 << 20)
            f.write(chunk(n) if n < (4 << 20) else pool[rnd.randrange(0, len(pool) - n):][:n])
            left -= n
    written += size
print('%d MiB in %d small files and %d big files' % (written >> 20, small, nbig))
