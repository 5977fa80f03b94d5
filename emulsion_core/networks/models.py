"""Networks for the 9-image polarisation stacks: NEWSnet ([P21] Appendix A, Tables 2 and 3),
compact alternatives, and the combined loss of eq. (1).

Input: (9, 40, 40, 1) float32, channels last (polarisation as the depth of a 3D volume).
Output: softmax over the profile's class list (``network.classes``; the paper's is
(C30keV, C100keV, fog), :data:`PAPER_CLASSES`). Carbon classes (names starting with "C") are
signal, every other class background (:func:`signal_indices`).
"""

from __future__ import annotations

import math

import numpy as np

from emulsion_core.config.paper import INPUT_SHAPE, PAPER_CLASSES
from emulsion_core.networks.tf_quiet import keras  # noqa: F401  (imports TensorFlow without its start-up noise)



class ClassListError(ValueError):
    """A network (its output size or the class list saved with it) does not match the class list
    it is used with."""


def signal_indices(classes) -> tuple:
    """Indices of the signal classes of ``classes``: the carbon samples (names starting with "C")."""
    return tuple(i for i, c in enumerate(classes) if str(c).startswith("C"))


def background_indices(classes) -> tuple:
    """Indices of the background classes of ``classes`` (fog, gamma: every non-carbon class)."""
    return tuple(i for i, c in enumerate(classes) if not str(c).startswith("C"))


def check_output(model, classes, source: str = "the network") -> None:
    """Raise :class:`ClassListError` unless ``model``'s class layer has one unit per class."""
    n = int(model.output_shape[-1])
    if n != len(classes):
        raise ClassListError(f"{source} has {n} output classes, but the class list {list(classes)} has "
                             f"{len(classes)}: it was trained with another network.classes")


def _triple(v) -> tuple:
    return tuple(int(i) for i in v) if isinstance(v, (tuple, list)) else (int(v),) * 3


BANDED_MAX_CHANNELS = 16  # DepthFoldedConv3D folds the whole depth into one product up to this many input channels
# (the default NEWSnet's 3x3x3 layers). Its speed is not established: on a 2-core AMD EPYC (AVX-512) whose speed
# drifts by tens of %, short timings said 165 -> 229 training events/s, an interleaved one 150 -> 199 (inference
# 560 -> 516), and `default` search calls showed no gain (README "Speed"). Wide layers keep the shifted copies,
# whose matrix products are already wide and cost kd / D of the banded FLOPs.


@keras.saving.register_keras_serializable(package="emulsion_core")
class DepthFoldedConv3D(keras.layers.Layer):
    """A 3D convolution with 'same' padding, the function and weights (kd, kh, kw, C, F) of
    ``keras.layers.Conv3D``, computed as one 2D convolution: the kd depth-shifted copies of the
    input are stacked as channels (:meth:`_shifted`), or, for narrow inputs (at most
    :data:`BANDED_MAX_CHANNELS` channels), the whole depth folded into the channels with a banded
    kernel (:meth:`_banded`). The polarisation depth is short (9), so this costs a few copies;
    under XLA on a 2-core AVX2 CPU one such layer ran 5-12x faster than Conv3D
    (``benchmarks/bench_newsnet.py`` prints the ratio).
    """

    def __init__(self, filters: int, kernel_size=3, strides=1, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", **kw):
        super().__init__(**kw)
        self.filters, self.use_bias = int(filters), bool(use_bias)
        self.kernel_size, self.strides = _triple(kernel_size), _triple(strides)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=self.kernel_size + (int(input_shape[-1]), self.filters),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None

    def _depth(self, depth: int) -> tuple:
        """Output depth and the 'same' padding (before, after) along depth."""
        out = -(-depth // self.strides[0])
        pad = max((out - 1) * self.strides[0] + self.kernel_size[0] - depth, 0)
        return out, pad // 2, pad - pad // 2

    def call(self, x):
        if self.kernel_size[0] > 1 and int(x.shape[-1]) <= BANDED_MAX_CHANNELS:
            return self._banded(x)
        return self._shifted(x)

    def _banded(self, x):
        """The same convolution as one 2D convolution over the whole depth: the depth and channel
        axes are folded into channels on both sides, (D C) -> (D_out F), with the kernel as a
        banded matrix in depth (zero where |d_in - d_out| exceeds the kernel's reach; built from
        the 5D kernel at every call). Wasteful in FLOPs (D / kd times), but a few wide matrix
        products instead of many narrow ones (speed: :data:`BANDED_MAX_CHANNELS`); the outputs bit
        for bit those of :meth:`_shifted` on a 2-core AMD EPYC (AVX-512)."""
        ops = keras.ops
        kd, kh, kw = self.kernel_size
        _, depth, height, width, channels = x.shape
        out, before, _ = self._depth(depth)
        band = np.zeros((kd, depth, out), np.float32)  # band[k, d_in, d_out] = 1 where d_in = d_out * stride + k - before
        for k in range(kd):
            for o in range(out):
                i = o * self.strides[0] + k - before
                if 0 <= i < depth:
                    band[k, i, o] = 1.0
        kernel = ops.einsum("kio,khwcf->hwicof", ops.convert_to_tensor(band, dtype=self.kernel.dtype), self.kernel)
        kernel = ops.reshape(kernel, (kh, kw, depth * channels, out * self.filters))
        folded = ops.reshape(ops.transpose(x, (0, 2, 3, 1, 4)), (-1, height, width, depth * channels))
        y = ops.conv(folded, kernel, strides=self.strides[1:], padding="same")
        y = ops.transpose(ops.reshape(y, (-1, y.shape[1], y.shape[2], out, self.filters)), (0, 3, 1, 2, 4))
        return y + self.bias if self.use_bias else y

    def _shifted(self, x):
        """The kd depth-shifted copies of the input stacked as channels, one 2D convolution per depth step."""
        ops = keras.ops
        kd, kh, kw = self.kernel_size
        _, depth, height, width, channels = x.shape
        out, before, after = self._depth(depth)
        x = ops.pad(x, [[0, 0], [before, after], [0, 0], [0, 0], [0, 0]])
        step = self.strides[0]
        shifted = [x[:, i:i + step * (out - 1) + 1:step] for i in range(kd)]
        x = ops.concatenate(shifted, axis=-1) if kd > 1 else shifted[0]  # channel index = i * C + c
        kernel = ops.reshape(ops.transpose(self.kernel, (1, 2, 0, 3, 4)), (kh, kw, kd * channels, self.filters))
        y = ops.conv(ops.reshape(x, (-1, height, width, kd * channels)), kernel, strides=self.strides[1:], padding="same")
        y = ops.reshape(y, (-1, out) + tuple(y.shape[1:]))
        return y + self.bias if self.use_bias else y

    def compute_output_shape(self, input_shape):
        b, depth, height, width, _ = input_shape
        return (b, self._depth(depth)[0], -(-height // self.strides[1]), -(-width // self.strides[2]), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


def _conv_bn(x, filters, kernel, strides=1, activation=True, name=None):
    layers = keras.layers
    x = DepthFoldedConv3D(filters, kernel, strides=strides, name=name and name + "_conv")(x)
    x = layers.BatchNormalization(name=name and name + "_bn")(x)
    return layers.Activation("swish", name=name and name + "_swish")(x) if activation else x


def identity_block(x, filters: int, name: str):
    """Table 2, identity shortcut: 1x1x1 (N) -> 3x3x3 (N) -> 1x1x1 (4N), added to the input."""
    y = _conv_bn(x, filters, 1, name=name + "_a")
    y = _conv_bn(y, filters, 3, name=name + "_b")
    y = _conv_bn(y, 4 * filters, 1, activation=False, name=name + "_c")
    y = keras.layers.Add(name=name + "_add")([x, y])
    return keras.layers.Activation("swish", name=name + "_out")(y)


def convolution_block(x, filters: int, name: str):
    """Table 2, convolution shortcut: main path 1x1x1 stride 2 (N) -> 3x3x3 (N) -> 1x1x1 (4N);
    shortcut 3x3x3 stride 2 (4N); added."""
    y = _conv_bn(x, filters, 1, strides=2, name=name + "_a")
    y = _conv_bn(y, filters, 3, name=name + "_b")
    y = _conv_bn(y, 4 * filters, 1, activation=False, name=name + "_c")
    s = _conv_bn(x, 4 * filters, 3, strides=2, activation=False, name=name + "_shortcut")
    y = keras.layers.Add(name=name + "_add")([s, y])
    return keras.layers.Activation("swish", name=name + "_out")(y)


def newsnet(dropout_1: float = 0.4, dropout_2: float = 0.3, dropout_3: float = 0.0, filters_1: int = 64,
            filters_2: int = 128, n_identity: int = 3, stem_filters: tuple = (32, 64),
            input_shape: tuple = INPUT_SHAPE, n_classes: int = len(PAPER_CLASSES),
            **_training_parameters) -> "keras.Model":
    """NEWSnet, Table 3; with no arguments the paper's final configuration.

    Two 3x3x3 convolutions (``stem_filters``), max pooling, dropout, a convolution-shortcut block
    and ``n_identity`` identity blocks with (N, N, 4N) filters (N = ``filters_1``), max pooling,
    dropout, the same with N = ``filters_2``, dropout (``dropout_3``, 0 in the paper), flatten,
    dense softmax over ``n_classes``. Batch normalisation and swish everywhere. Training parameters passed along
    (learning rate, ...) are ignored here.
    """
    layers = keras.layers
    inp = keras.Input(shape=input_shape, name="polarisation_stack")
    x = _conv_bn(inp, stem_filters[0], 3, name="stem1")
    x = _conv_bn(x, stem_filters[1], 3, name="stem2")
    x = layers.MaxPooling3D(pool_size=2, padding="same", name="pool1")(x)
    x = layers.Dropout(dropout_1, name="dropout1")(x)
    for stage, (filters, pool) in enumerate(((int(filters_1), True), (int(filters_2), False)), start=1):
        x = convolution_block(x, filters, name=f"res{stage}_conv")
        for i in range(int(n_identity)):
            x = identity_block(x, filters, name=f"res{stage}_id{i + 1}")
        if pool:
            x = layers.MaxPooling3D(pool_size=2, padding="same", name="pool2")(x)
            x = layers.Dropout(dropout_2, name="dropout2")(x)
    x = layers.Dropout(dropout_3, name="dropout3")(x)
    x = layers.Flatten(name="flatten")(x)
    out = layers.Dense(n_classes, activation="softmax", name="class_probabilities", dtype="float32")(x)
    return keras.Model(inp, out, name="newsnet")


def _classifier_head(x, dropout: float, n_classes: int):
    """Dropout, dense softmax over the classes (float32 output)."""
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.layers.Dense(n_classes, activation="softmax", name="class_probabilities", dtype="float32")(x)


def compact_3d(filters: tuple = (8, 16, 32), dropout: float = 0.2, input_shape: tuple = INPUT_SHAPE,
               n_classes: int = len(PAPER_CLASSES), **_ignored) -> "keras.Model":
    """A compact 3D CNN: [3x3x3 conv, BN, swish, max pool] per width, global average pool, dense.
    The first layer works at full resolution (9 x 40 x 40), so its width sets the cost."""
    layers = keras.layers
    inp = keras.Input(shape=input_shape, name="polarisation_stack")
    x = inp
    for i, f in enumerate(filters):
        x = _conv_bn(x, f, 3, name=f"block{i + 1}")
        x = layers.MaxPooling3D(pool_size=(1, 2, 2) if i == 0 else 2, padding="same", name=f"pool{i + 1}")(x)
    out = _classifier_head(layers.GlobalAveragePooling3D(name="gap")(x), dropout, n_classes)
    return keras.Model(inp, out, name="compact_3d")


def polarisation_channels_2d(filters: tuple = (32, 64, 128), dropout: float = 0.2, input_shape: tuple = INPUT_SHAPE,
                             n_classes: int = len(PAPER_CLASSES), **_ignored) -> "keras.Model":
    """A 2D CNN that takes the 9 polarisation images as channels of one image."""
    layers = keras.layers
    inp = keras.Input(shape=input_shape, name="polarisation_stack")
    x = layers.Permute((2, 3, 1, 4), name="polarisations_last")(inp)
    x = layers.Reshape(input_shape[1:3] + (input_shape[0] * input_shape[3],), name="as_channels")(x)
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, padding="same", name=f"block{i + 1}_conv")(x)
        x = layers.BatchNormalization(name=f"block{i + 1}_bn")(x)
        x = layers.Activation("swish", name=f"block{i + 1}_swish")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    out = _classifier_head(layers.GlobalAveragePooling2D(name="gap")(x), dropout, n_classes)
    return keras.Model(inp, out, name="polarisation_channels_2d")


ARCHITECTURES = {"newsnet": newsnet, "compact_3d": compact_3d, "polarisation_channels_2d": polarisation_channels_2d}


def trainable_parameters(model) -> int:
    """Number of trainable parameters."""
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


@keras.saving.register_keras_serializable(package="emulsion_core")
class CombinedLoss(keras.losses.Loss):
    """[P21] eq. (1): categorical cross-entropy over the classes plus ``lam`` times the binary
    cross-entropy of the summed signal probability (``signal_classes``: the carbon classes'
    indices, :func:`signal_indices`; (0, 1) = p(C30) + p(C100) in the paper's list) against the
    background classes. Keras applies sample weights (class balance) to the sum per event."""

    def __init__(self, lam: float = 0.53, signal_classes=(0, 1), epsilon: float = 1e-7, name="combined_loss", **kw):
        super().__init__(name=name, **kw)
        self.lam, self.signal_classes, self.epsilon = float(lam), tuple(signal_classes), float(epsilon)

    def call(self, y_true, y_pred):
        ops = keras.ops
        y_pred = ops.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        cce = -ops.sum(y_true * ops.log(y_pred), axis=-1)
        idx = list(self.signal_classes)
        p_sig = ops.clip(ops.sum(ops.take(y_pred, idx, axis=-1), axis=-1), self.epsilon, 1.0 - self.epsilon)
        t_sig = ops.sum(ops.take(y_true, idx, axis=-1), axis=-1)
        bce = -(t_sig * ops.log(p_sig) + (1.0 - t_sig) * ops.log(1.0 - p_sig))
        return cce + self.lam * bce

    def get_config(self):
        return {**super().get_config(), "lam": self.lam, "signal_classes": list(self.signal_classes),
                "epsilon": self.epsilon}


def flops_per_event(model) -> int:
    """Floating-point operations of one forward pass (2 per multiply-add of the convolutions and
    dense layers; batch normalisation, activations and pooling are not counted)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, (DepthFoldedConv3D, keras.layers.Conv3D, keras.layers.Conv2D)):
            kernel = layer.kernel.shape  # (*k, cin, cout)
            out = layer.output.shape[1:-1]
            total += 2 * math.prod(kernel) * math.prod(out)
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * math.prod(layer.kernel.shape)
    return int(total)
