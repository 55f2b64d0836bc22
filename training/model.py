"""The sequence-to-sequence LSTM: a stacked encoder and an autoregressive stacked decoder run as one loop."""

from __future__ import annotations

import keras
import numpy as np

from training.config import ModelConfig
from training.layers import (
    ApplyNormalization,
    CropContext,
    DecoderClock,
    FeedbackDecoderCell,
    FoldFeatures,
    LastStep,
    SeasonalLag,
    UnfoldFeatures,
    WaveDenormalizer,
    WaveNormalizer,
    ZeroStates,
)


def channel_width(config: ModelConfig) -> int:
    """Width of one sequence the seq2seq core sees: 1 when features are folded into the batch."""
    return 1 if config.channel_independent else config.features


def build_core(config: ModelConfig) -> keras.Model:
    """Encoder/decoder on normalized sequences: inputs (observed, clock), output (batch, len(clock), width).

    Decoder layer 1 starts from the encoder's final (h, c) and layers 2.. from zeros (the reference), or each
    decoder layer from its encoder layer ("all_layers"); the first decoder input is the last observed point
    and every later input is the previous prediction. With `seasonal_lag` each decoder step also gets the value
    one season (the observed sequence's autocorrelation peak) back, or 1..`seasons_back` seasons back.
    """
    width = channel_width(config)
    observed = keras.Input((None, width), name="observed")
    clock = keras.Input((None, 1), name="clock")
    long_history = config.reads > config.max_context  # the season from more steps than the encoder reads
    history = keras.Input((None, width), name="history") if long_history else observed
    x, encoder_states = observed, []
    for i in range(config.encoder_depth):
        final = i == config.encoder_depth - 1
        x, state_h, state_c = keras.layers.LSTM(
            config.units, return_sequences=not final, return_state=True, name=f"encoder_lstm_{i + 1}"
        )(x)
        encoder_states.append([state_h, state_c])
    seed = LastStep(name="last_observed")(observed)
    if config.decoder_state == "all_layers":  # decoder layer i starts from encoder layer i
        if config.encoder_depth != config.decoder_depth:
            raise ValueError("decoder_state='all_layers' needs equal encoder and decoder depth")
        initial_state = [seed] + [s for pair in encoder_states for s in pair]
    else:  # the reference: the encoder's final state seeds decoder layer 1, the other layers start at zero
        initial_state = [seed, *encoder_states[-1]]
        if config.decoder_depth > 1:
            initial_state += ZeroStates(config.units, 2 * (config.decoder_depth - 1), name="zero_states")(seed)
    if config.seasonal_lag:  # the season (autocorrelation peak) and the last steps, for a look one season back
        if not config.channel_independent:
            raise ValueError("seasonal_lag needs a channel-independent model")
        initial_state += SeasonalLag(config.reads, name="seasonal_lag")(history)
    cell = FeedbackDecoderCell(
        config.units,
        config.decoder_depth,
        width,
        residual=config.residual_head,
        seasonal_history=config.reads if config.seasonal_lag else 0,
        seasons_back=config.seasons_back,
        name="feedback_cell",
    )
    prediction = keras.layers.RNN(cell, return_sequences=True, name="decoder")(clock, initial_state=initial_state)
    inputs = [observed, clock, history] if long_history else [observed, clock]
    return keras.Model(inputs, prediction, name="seq2seq")


def build_model(config: ModelConfig, core: keras.Model | None = None) -> keras.Model:
    """The served model: raw wave (batch, T, features) -> completion (batch, horizon, features). It reads the last
    `config.reads` steps (crop_context); with a longer history the encoder reads the last max_context of them."""
    core = core if core is not None else build_core(config)
    wave = keras.Input((None, config.features), name="wave")
    read = CropContext(config.reads, name="crop_context")(wave)
    recent = read if config.reads == config.max_context else CropContext(config.max_context, name="crop_encoder")(read)
    normalized, mean, scale = WaveNormalizer(name="normalize")(recent)
    fold = FoldFeatures(name="fold_features") if config.channel_independent else None
    sequences = fold(normalized) if fold else normalized
    clock = DecoderClock(config.horizon, name="decoder_clock")(sequences)
    if config.reads > config.max_context:
        history = ApplyNormalization(name="normalize_history")([read, mean, scale])
        prediction = core([sequences, clock, fold(history) if fold else history])
    else:
        prediction = core([sequences, clock])
    if config.channel_independent:
        prediction = UnfoldFeatures(config.features, name="unfold_features")(prediction)
    completion = WaveDenormalizer(name="denormalize")([prediction, mean, scale])
    return keras.Model(wave, completion, name="wave_completion")


def copy_core_weights(source: keras.Model, target: keras.Model) -> None:
    """Start `target` from `source`'s weights; a weight that `target` has more input rows of (a decoder widened
    by `seasonal_lag`) gets zeros in the new rows, so the widened model first predicts exactly what `source` did."""
    values = source.get_weights()
    shapes = [tuple(w.shape) for w in target.weights]
    if len(values) != len(shapes):
        raise ValueError(f"cannot start from a model with {len(values)} weights: this one has {len(shapes)}")
    widened = []
    for value, shape in zip(values, shapes, strict=True):
        if value.shape != shape:
            if value.ndim != len(shape) or value.shape[1:] != shape[1:] or value.shape[0] > shape[0]:
                raise ValueError(f"cannot start a weight of shape {shape} from one of shape {value.shape}")
            value = np.concatenate([value, np.zeros((shape[0] - value.shape[0], *shape[1:]), value.dtype)])
        widened.append(value)
    target.set_weights(widened)
