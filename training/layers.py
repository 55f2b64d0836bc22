"""Small custom Keras layers of the wave model; each is serializable and safe-mode loadable."""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "wave_completion"


@keras.saving.register_keras_serializable(package=PACKAGE)
class CropContext(keras.layers.Layer):
    """Keep only the last `max_steps` observed steps (longer inputs add cost, not information)."""

    def __init__(self, max_steps: int, **kwargs):
        super().__init__(**kwargs)
        self.max_steps = max_steps

    def call(self, wave):
        return wave[:, -self.max_steps :, :]

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[:, -self.max_steps :]

    def compute_output_shape(self, input_shape):
        steps = input_shape[1]
        return (input_shape[0], None if steps is None else min(steps, self.max_steps), input_shape[2])

    def get_config(self):
        return {**super().get_config(), "max_steps": self.max_steps}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WaveNormalizer(keras.layers.Layer):
    """Per-wave, per-feature standardization over the observed window.

    Returns (normalized wave, mean, scale). The scale has a floor relative to the mean and an absolute floor,
    so a constant feature normalizes to zeros instead of NaN. With a mask (batch, time), only the unmasked steps
    count and masked steps normalize to zero: a left-padded wave gets the statistics of its real steps.
    """

    def __init__(self, relative_floor: float = 1e-7, absolute_floor: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.relative_floor = relative_floor
        self.absolute_floor = absolute_floor

    def call(self, wave, mask=None):
        anchor = wave[:, -1:, :]  # shift first: float32 keeps precision for small waves on large offsets
        shifted = wave - anchor
        if mask is None:
            shifted_mean = ops.mean(shifted, axis=1, keepdims=True)
            centered = shifted - shifted_mean
            std = ops.sqrt(ops.mean(ops.square(centered), axis=1, keepdims=True))
        else:
            weight = ops.cast(mask, wave.dtype)[:, :, None]
            count = ops.sum(weight, axis=1, keepdims=True)
            shifted_mean = ops.sum(shifted * weight, axis=1, keepdims=True) / count
            centered = (shifted - shifted_mean) * weight
            std = ops.sqrt(ops.sum(ops.square(centered), axis=1, keepdims=True) / count)
        mean = anchor + shifted_mean
        scale = std + self.relative_floor * ops.abs(mean) + self.absolute_floor
        return centered / scale, mean, scale

    def compute_mask(self, inputs, mask=None):
        return [mask, None, None]

    def compute_output_shape(self, input_shape):
        stats = (input_shape[0], 1, input_shape[2])
        return input_shape, stats, stats

    def get_config(self):
        return {
            **super().get_config(),
            "relative_floor": self.relative_floor,
            "absolute_floor": self.absolute_floor,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class WaveDenormalizer(keras.layers.Layer):
    """Inverse of WaveNormalizer: prediction * scale + mean."""

    def call(self, inputs):
        normalized, mean, scale = inputs
        return normalized * scale + mean

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class FoldFeatures(keras.layers.Layer):
    """(batch, time, features) -> (batch * features, time, 1): each feature becomes its own sequence."""

    def call(self, wave):
        shape = ops.shape(wave)
        per_feature = ops.transpose(wave, (0, 2, 1))
        return ops.reshape(per_feature, (shape[0] * shape[2], shape[1], 1))

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        features = ops.shape(inputs)[2]
        return ops.reshape(ops.repeat(mask[:, None, :], features, axis=1), (-1, ops.shape(mask)[1]))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] * input_shape[2]
        return (batch, input_shape[1], 1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class UnfoldFeatures(keras.layers.Layer):
    """Inverse of FoldFeatures: (batch * features, time, 1) -> (batch, time, features)."""

    def __init__(self, features: int, **kwargs):
        super().__init__(**kwargs)
        self.features = features

    def call(self, sequences):
        shape = ops.shape(sequences)
        per_feature = ops.reshape(sequences, (-1, self.features, shape[1]))
        return ops.transpose(per_feature, (0, 2, 1))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // self.features
        return (batch, input_shape[1], self.features)

    def get_config(self):
        return {**super().get_config(), "features": self.features}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LastStep(keras.layers.Layer):
    """The last observed point, which seeds the decoder."""

    def call(self, sequences):
        return sequences[:, -1, :]  # waves are padded on the left, so the last step is always real

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package=PACKAGE)
class DecoderClock(keras.layers.Layer):
    """A zero sequence of `horizon` steps: it only tells the decoder RNN how many steps to run."""

    def __init__(self, horizon: int, **kwargs):
        super().__init__(**kwargs)
        self.horizon = horizon

    def call(self, sequences):
        return ops.zeros((ops.shape(sequences)[0], self.horizon, 1), dtype=sequences.dtype)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.horizon, 1)

    def get_config(self):
        return {**super().get_config(), "horizon": self.horizon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FeedbackDecoderCell(keras.layers.Layer):
    """One decoder step: stacked LSTM cells and a Dense head, fed its own previous prediction.

    State: [previous prediction, h_1, c_1, ..., h_depth, c_depth]. The clock input is ignored. With `residual`,
    the head predicts the change from the previous prediction, which is added to it.
    """

    def __init__(self, units: int, depth: int, output_dim: int, residual: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.depth = depth
        self.output_dim = output_dim
        self.residual = residual
        self.cells = [keras.layers.LSTMCell(units, name=f"decoder_lstm_{i + 1}") for i in range(depth)]
        self.head = keras.layers.Dense(output_dim, name="decoder_head")
        self.state_size = [output_dim] + [units] * (2 * depth)
        self.output_size = output_dim

    def build(self, input_shape):
        width = self.output_dim
        for cell in self.cells:
            cell.build((None, width))
            width = self.units
        self.head.build((None, self.units))

    def call(self, inputs, states, training=False):
        x = states[0]
        new_states = []
        for i, cell in enumerate(self.cells):
            x, (h, c) = cell(x, [states[1 + 2 * i], states[2 + 2 * i]], training=training)
            new_states += [h, c]
        prediction = self.head(x) + states[0] if self.residual else self.head(x)
        return prediction, [prediction, *new_states]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "depth": self.depth,
            "output_dim": self.output_dim,
            "residual": self.residual,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ZeroStates(keras.layers.Layer):
    """Zero initial (h, c) pairs for the decoder layers that do not receive the encoder state."""

    def __init__(self, units: int, count: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.count = count

    def call(self, reference):
        zeros = ops.zeros((ops.shape(reference)[0], self.units), dtype=reference.dtype)
        return [zeros] * self.count

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return [(input_shape[0], self.units)] * self.count

    def get_config(self):
        return {**super().get_config(), "units": self.units, "count": self.count}
