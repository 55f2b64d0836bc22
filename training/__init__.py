"""Offline side of the wave completion service: data, model, training, evaluation, export."""
