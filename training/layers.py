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
class ApplyNormalization(keras.layers.Layer):
    """A longer stretch of the wave normalized with the statistics WaveNormalizer found on its last steps:
    (wave - mean) / scale, masked steps zero."""

    def call(self, inputs, mask=None):
        wave, mean, scale = inputs
        normalized = (wave - mean) / scale
        if mask is not None and mask[0] is not None:
            normalized = normalized * ops.cast(mask[0], wave.dtype)[:, :, None]
        return normalized

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


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
class SeasonalLag(keras.layers.Layer):
    """A sequence's season from its autocorrelation, for a decoder that looks one season back.

    Input (batch, T, 1) with an optional mask (batch, T); returns (history, period, strength): the last `history`
    observed steps left-padded with zeros (batch, history), the lag in 2..steps/2 with the highest autocorrelation
    peak of the linearly detrended sequence (batch, 1), and that peak's autocorrelation (batch, 1); period 1 and
    strength 0 when there is no positive peak or nothing but a line (training/seasonality.py's estimate_period,
    inside the model).
    """

    def __init__(self, history: int, **kwargs):
        super().__init__(**kwargs)
        self.history = history

    def call(self, sequences, mask=None):
        x = sequences[:, -self.history :, 0]
        weight = ops.ones_like(x) if mask is None else ops.cast(mask[:, -self.history :], x.dtype)
        # a shorter sequence is first left-padded with masked zeros to `history` steps, so every number below is
        # computed on the same shapes whatever padding the caller chose: a wave gets the same season in any
        # length bucket (training/predict.py) as padded to the whole context
        padding = [[0, 0], [self.history - ops.shape(x)[1], 0]]
        x, weight = ops.pad(x * weight, padding), ops.pad(weight, padding)
        steps = self.history
        count = ops.maximum(ops.sum(weight, axis=1, keepdims=True), 1.0)
        t = ops.cast(ops.arange(steps), x.dtype)[None, :]
        t_mean = ops.sum(weight * t, axis=1, keepdims=True) / count
        x_mean = ops.sum(weight * x, axis=1, keepdims=True) / count
        dt = (t - t_mean) * weight
        slope = ops.sum(dt * (x - x_mean), axis=1, keepdims=True) / ops.maximum(
            ops.sum(dt * dt, axis=1, keepdims=True), 1e-9
        )
        residual = (x - x_mean - slope * (t - t_mean)) * weight
        size = 1 << (2 * self.history - 1).bit_length()
        real, imag = ops.rfft(residual, fft_length=size)
        power = real * real + imag * imag
        autocovariance = ops.irfft((power, ops.zeros_like(power)), fft_length=size)
        max_lag = self.history // 2
        acf = autocovariance[:, : max_lag + 2] / ops.maximum(autocovariance[:, :1], 1e-12)
        lags = ops.arange(2, max_lag + 1)
        middle, before, after = acf[:, 2 : max_lag + 1], acf[:, 1:max_lag], acf[:, 3 : max_lag + 2]
        peak = (middle > 0) & (middle >= before) & (middle >= after)
        peak = peak & (ops.cast(lags, x.dtype)[None, :] <= ops.floor(count / 2))
        score = ops.where(peak, middle, -1.0)
        strength = ops.maximum(ops.max(score, axis=1, keepdims=True), 0.0)
        # a straight line leaves only float32 rounding after detrending: its autocorrelation peaks mean nothing
        energy = ops.sum(ops.square((x - x_mean) * weight), axis=1, keepdims=True)
        strength = ops.where(autocovariance[:, :1] > 1e-6 * energy, strength, 0.0)
        best = ops.cast(ops.argmax(score, axis=1), x.dtype)[:, None] + 2.0
        period = ops.where(strength > 0, best, 1.0)
        return tuple(ops.stop_gradient(value) for value in (x, period, strength))

    def compute_mask(self, inputs, mask=None):
        return [None, None, None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.history), (input_shape[0], 1), (input_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "history": self.history}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FeedbackDecoderCell(keras.layers.Layer):
    """One decoder step: stacked LSTM cells and a Dense head, fed its own previous prediction.

    State: [previous prediction, h_1, c_1, ..., h_depth, c_depth]. The clock input is ignored. With `residual`,
    the head predicts the change from the previous prediction, which is added to it. With `seasonal_history`
    (one-channel sequences), the state also holds the last `seasonal_history` values (observed, then predicted),
    the season's period and its strength (from SeasonalLag): the values 1..`seasons_back` periods back go into the
    first LSTM cell (with the strength) and straight into the head, so the decoder can repeat a season's shape.
    Inputs beyond the first look back come last, so a model widened from one look back keeps its weights' order.
    """

    def __init__(
        self,
        units: int,
        depth: int,
        output_dim: int,
        residual: bool = False,
        seasonal_history: int = 0,
        seasons_back: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = units
        self.depth = depth
        self.output_dim = output_dim
        self.residual = residual
        self.seasonal_history = seasonal_history
        self.seasons_back = seasons_back
        if seasonal_history and output_dim != 1:
            raise ValueError("a seasonal lag needs one-channel sequences (a channel-independent model)")
        self.cells = [keras.layers.LSTMCell(units, name=f"decoder_lstm_{i + 1}") for i in range(depth)]
        self.head = keras.layers.Dense(output_dim, name="decoder_head")
        self.state_size = [output_dim] + [units] * (2 * depth)
        if seasonal_history:
            self.state_size += [seasonal_history, 1, 1]
        self.output_size = output_dim

    def build(self, input_shape):
        looks = self.seasons_back if self.seasonal_history else 0
        width = self.output_dim + looks + (1 if looks else 0)
        for cell in self.cells:
            cell.build((None, width))
            width = self.units
        self.head.build((None, self.units + looks))

    def call(self, inputs, states, training=False):
        x = states[0]
        if self.seasonal_history:
            history, period, strength = states[1 + 2 * self.depth :]
            lags = [
                ops.take_along_axis(history, ops.cast(self.seasonal_history - k * period, "int32"), axis=1)
                for k in range(1, self.seasons_back + 1)
            ]  # k periods <= the observed steps, since the period is at most half of them
            x = ops.concatenate([x, lags[0], strength, *lags[1:]], axis=1)
        new_states = []
        for i, cell in enumerate(self.cells):
            x, (h, c) = cell(x, [states[1 + 2 * i], states[2 + 2 * i]], training=training)
            new_states += [h, c]
        if self.seasonal_history:
            x = ops.concatenate([x, *lags], axis=1)
        prediction = self.head(x) + states[0] if self.residual else self.head(x)
        if self.seasonal_history:
            new_states += [ops.concatenate([history[:, 1:], prediction], axis=1), period, strength]
        return prediction, [prediction, *new_states]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "depth": self.depth,
            "output_dim": self.output_dim,
            "residual": self.residual,
            "seasonal_history": self.seasonal_history,
            "seasons_back": self.seasons_back,
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
