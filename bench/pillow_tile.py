"""Reference for `make bench`: the same tiling with Pillow and numpy, as
transformers' Ernie4_5_VLMoeImageProcessorPil does it (PIL BICUBIC resize,
rescale in float64, normalize in float32, patchify). Prints "<MP/s> MP/s"
(best of N runs). usage: pillow_tile.py W H N RESIZED_W RESIZED_H"""
import sys
import time

import numpy as np
from PIL import Image

w, h, n, rw, rh = (int(a) for a in sys.argv[1:6])
y, x = np.mgrid[0:h, 0:w]
v = np.where(((y // 12) % 3 == 0) & ((x * 7 + y) % 11 < 6), 30, 250)
img = Image.fromarray(np.repeat(v[:, :, None], 3, axis=2).astype(np.uint8))
mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
best = 1e30
for _ in range(n):
    t0 = time.perf_counter()
    r = img.resize((rw, rh), Image.BICUBIC)
    a = (np.asarray(r).astype(np.float64) * (1 / 255)).astype(np.float32)
    a = ((a - mean) / std).transpose(2, 0, 1)
    gh, gw = rh // 14, rw // 14
    p = a.reshape(3, gh // 2, 2, 14, gw // 2, 2, 14)
    p = p.transpose(1, 4, 2, 5, 0, 3, 6).reshape(gh * gw, 588)
    p = np.ascontiguousarray(p)
    best = min(best, time.perf_counter() - t0)
print("%.3f MP/s" % (w * h / 1e6 / best))
