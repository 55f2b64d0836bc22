"""The plain approach, for comparison only: one `model.predict` call per request, no batching."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from fastapi import FastAPI

from app.schemas import request_models
from app.settings import get_settings
from training.loading import load_model

settings = get_settings()
PredictRequest = request_models(settings.limits).predict
loaded = load_model(settings.store, settings.model_name, settings.model_version)
app = FastAPI(title="plain baseline")


@app.get("/health/ready")
def ready() -> dict:
    return {"status": "ok"}


@app.post("/predict")
def predict(request: PredictRequest) -> dict:
    wave = np.asarray(request.wave, np.float32)[None]
    prediction = loaded.model.predict(wave, verbose=0)[0][: request.horizon]
    return {"prediction": prediction.tolist(), "horizon": request.horizon}
