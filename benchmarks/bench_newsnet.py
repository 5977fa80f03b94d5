"""NEWSnet training and inference events/s next to the machine's float32 matrix-multiply FLOP/s.

Usage: python benchmarks/bench_newsnet.py [--events 512] [--width-scale 1.0 0.25] [--batch 64]
For each width it prints FLOPs per event (convolutions and dense layers, forward pass), measured
events/s, and the achieved FLOP/s as a fraction of the matmul rate (training counted as 3x the
forward FLOPs: forward + two backward products).
"""
import argparse
import time

import numpy as np

from emulsion_core import models, training
from emulsion_core.tf_quiet import keras, tf


def matmul_flops(n: int = 2048, repeats: int = 10) -> float:
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    tf.matmul(a, b).numpy()
    t = time.perf_counter()
    for _ in range(repeats):
        c = tf.matmul(a, b)
    c.numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width-scale", type=float, nargs="+", default=[1.0, 0.25])
    args = ap.parse_args()
    peak = matmul_flops()
    print(f"float32 matmul (TensorFlow, 2048^2): {peak / 1e9:.1f} GFLOP/s")
    rng = np.random.default_rng(0)
    images = rng.integers(20, 60, (args.events, 8, 40, 40), dtype=np.uint8)
    labels = np.arange(args.events) % 3
    for scale in args.width_scale:
        keras.utils.set_random_seed(0)
        net = training.build(models.PAPER_PARAMETERS, scale)
        flops = models.flops_per_event(net)
        seq = training.EventSequence(images, labels, args.batch, shuffle=True)
        net.fit(seq, epochs=1, verbose=0)
        t = time.perf_counter()
        net.fit(seq, epochs=1, verbose=0)
        train_rate = args.events / (time.perf_counter() - t)
        pseq = training.EventSequence(images, None, args.batch)
        net.predict(pseq, verbose=0)
        t = time.perf_counter()
        net.predict(pseq, verbose=0)
        infer_rate = args.events / (time.perf_counter() - t)
        print(f"NEWSnet width x{scale:g}: {models.trainable_parameters(net):,} parameters, {flops / 1e9:.3f} GFLOPs/event; "
              f"training {train_rate:.0f} events/s ({3 * flops * train_rate / peak:.0%} of matmul peak), "
              f"inference {infer_rate:.0f} events/s ({flops * infer_rate / peak:.0%})")


if __name__ == "__main__":
    main()
