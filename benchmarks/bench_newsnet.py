"""NEWSnet training and inference events/s next to the machine's float32 matrix-multiply FLOP/s,
with TensorFlow's oneDNN kernels on and off.

Usage: python benchmarks/bench_newsnet.py [--events 512] [--width-scale 0.125,0.25 1.0] [--batch 64]
                                          [--precision float32 mixed_bfloat16] [--xla off|on]
                                          [--onednn both|on|off]
For each oneDNN setting (a fresh process each: ``TF_ENABLE_ONEDNN_OPTS`` is read when TensorFlow
starts) and each width it prints FLOPs per event (convolutions and dense layers, forward pass),
measured events/s (training at --batch, inference at --batch and at the scoring batch,
``scoring.INFERENCE_BATCH``) in float32 and in Keras' mixed bfloat16 policy, and the achieved FLOP/s
as a fraction of the float32 matmul rate (training counted as 3x the forward FLOPs: forward + two
backward products). First it times one 3x3x3 convolution
(forward and backward, XLA) as keras.layers.Conv3D and as the depth-folded 2D convolution NEWSnet
uses. A setting whose process crashes (the oneDNN fault of ``emulsion_core/networks/onednn_guard.py``) is
reported as such.
"""
import argparse
import os
import signal
import subprocess
import sys
import time

import numpy as np


def matmul_flops(n: int = 2048, repeats: int = 10, dtype=None) -> float:
    from emulsion_core.networks.tf_quiet import tf
    a = tf.random.normal((n, n), dtype=tf.float32)
    b = tf.random.normal((n, n), dtype=tf.float32)
    if dtype is not None:
        a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    tf.matmul(a, b).numpy()
    t = time.perf_counter()
    for _ in range(repeats):
        c = tf.matmul(a, b)
    c.numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - t)


def convolution_times(shape=(64, 9, 40, 40, 8), filters: int = 16, repeats: int = 3) -> dict:
    """Seconds per forward+backward pass of one 3x3x3 'same' convolution, Conv3D vs depth-folded."""
    from emulsion_core.networks import models
    from emulsion_core.networks.tf_quiet import keras, tf
    x = tf.random.normal(shape)
    out = {}
    for name, layer in (("Conv3D", keras.layers.Conv3D(filters, 3, padding="same")),
                        ("depth-folded", models.DepthFoldedConv3D(filters, 3))):
        layer.build(shape)

        @tf.function(jit_compile=True)
        def step(v, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(v)
                loss = tf.reduce_sum(tf.square(layer(v)))
            return tape.gradient(loss, [v] + layer.trainable_weights)

        step(x)
        t = time.perf_counter()
        for _ in range(repeats):
            step(x)[0].numpy()
        out[name] = (time.perf_counter() - t) / repeats
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width-scale", nargs="+", default=["0.125,0.25", "1.0"],
                    help="width scales: a number or stem,residual (default: the default profile's and the paper's)")
    ap.add_argument("--precision", nargs="+", default=["float32", "mixed_bfloat16"],
                    choices=["float32", "mixed_bfloat16"])
    ap.add_argument("--xla", choices=["on", "off"], default="off")
    ap.add_argument("--n-identity", type=int, default=3, help="identity blocks per stage (paper 3; default profile's search: 0)")
    ap.add_argument("--onednn", choices=["both", "on", "off"], default="both",
                    help="TensorFlow's oneDNN kernels: both (one process each, default), on or off")
    args = ap.parse_args()
    if args.onednn == "both":
        for setting in ("on", "off"):
            print(f"== oneDNN {setting} (TF_ENABLE_ONEDNN_OPTS={int(setting == 'on')})", flush=True)
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": str(int(setting == "on"))}
            proc = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--onednn", setting], env=env)
            if proc.returncode < 0:
                print(f"oneDNN {setting}: the process crashed ({signal.Signals(-proc.returncode).name})", flush=True)
        return
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = str(int(args.onednn == "on"))  # before TensorFlow is imported
    measure(args)


def widths(text: str):
    """A width scale: one number, or "stem,residual" (the default profile's 0.125,0.25)."""
    values = [float(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else values


def measure(args):
    """Print the matmul rates, the convolution timing and NEWSnet's rates (this process's oneDNN setting)."""
    from emulsion_core.config import paper
    from emulsion_core.networks import models, scoring, sequences, training
    from emulsion_core.networks.tf_quiet import keras, tf
    peak = matmul_flops()
    print(f"float32 matmul (TensorFlow, 2048^2): {peak / 1e9:.1f} GFLOP/s")
    if "mixed_bfloat16" in args.precision:
        print(f"bfloat16 matmul (TensorFlow, 2048^2): {matmul_flops(dtype=tf.bfloat16) / 1e9:.1f} GFLOP/s")
    conv = convolution_times()
    print("3x3x3 convolution 8 -> 16 filters, 64 x 9 x 40 x 40 (forward + backward): "
          + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in conv.items())
          + f"; depth-folded is {conv['Conv3D'] / conv['depth-folded']:.1f}x faster")
    rng = np.random.default_rng(0)
    images = rng.integers(20, 60, (args.events, 8, 40, 40), dtype=np.uint8)
    labels = np.arange(args.events) % 3
    for scale in args.width_scale:
        for precision in args.precision:
            keras.utils.set_random_seed(0)
            params = {**paper.PAPER_PARAMETERS, "precision": precision, "n_identity": args.n_identity}
            net = training.build(params, widths(scale), jit_compile=args.xla == "on")
            flops = models.flops_per_event(net)
            seq = sequences.EventSequence(images, labels, args.batch, shuffle=True, camera_max=255)
            net.fit(seq, epochs=1, verbose=0, shuffle=False)
            t = time.perf_counter()
            net.fit(seq, epochs=1, verbose=0, shuffle=False)
            train_rate = args.events / (time.perf_counter() - t)
            rates = []
            for batch in (args.batch, scoring.INFERENCE_BATCH):
                pseq = sequences.EventSequence(images, None, batch, camera_max=255)
                net.predict(pseq, verbose=0)
                t = time.perf_counter()
                net.predict(pseq, verbose=0)
                rates.append((batch, args.events / (time.perf_counter() - t)))
            print(f"NEWSnet width {scale}, {args.n_identity} id, {precision} (XLA {args.xla}): {models.trainable_parameters(net):,} parameters, "
                  f"{flops / 1e6:.1f} MFLOPs/event; training {train_rate:.0f} events/s at batch {args.batch} "
                  f"({3 * flops * train_rate / peak:.1%} of the float32 matmul rate); inference "
                  + ", ".join(f"{r:.0f} events/s at batch {b} ({flops * r / peak:.1%})" for b, r in rates))
            keras.backend.clear_session()


if __name__ == "__main__":
    main()
