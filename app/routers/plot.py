"""The completion of one wave drawn as a PNG image.

Built per app (`build_router`) like app/routers/predict.py, whose body it takes; no `from __future__ import
annotations` here either, for the same reason.
"""

import io
import math

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.dependencies import RegistryDep
from app.routers.predict import ERRORS, as_rows, completed
from app.schemas import RequestModels
from app.security import require_api_key
from app.validation import stamps_array

OBSERVED_COLOR = "#1f4e79"
PREDICTED_COLOR = "#d9480f"


def build_router(models: RequestModels) -> APIRouter:
    """/predict/plot with the app's /predict body; the same API key, limits, queue and deadline as /predict."""
    router = APIRouter(tags=["predict"], dependencies=[Depends(require_api_key)])
    PredictRequest = models.predict

    @router.post(
        "/predict/plot",
        response_class=Response,
        summary="Complete one wave and get a PNG chart of it",
        responses={
            **{status: answer for status, answer in ERRORS.items() if status != 415},
            200: {"content": {"image/png": {}}, "description": "one panel per feature: observed steps and completion"},
        },
    )
    async def predict_plot(body: PredictRequest, registry: RegistryDep, request: Request) -> Response:
        """The same JSON body as /predict (a flat wave too); the answer is an image/png with one panel per feature."""
        model = registry.get(body.model)
        stamps_array(body.ds, len(body.wave))  # checked as /predict checks them; the chart counts steps
        (answer,) = await completed(request, model, [body.wave], ["wave"], body.horizon, body.level)
        title = f"{model.ref.name} v{model.ref.version}: next {body.horizon} steps"
        observed = np.asarray(as_rows(body.wave), dtype=np.float64)  # gaps (None) stay gaps (NaN) in the chart
        png = await run_in_threadpool(render_png, observed, answer.prediction, model.context, title, answer.bands)
        return Response(png, media_type="image/png")

    return router


def render_png(
    observed: np.ndarray,
    predicted: np.ndarray,
    window: int,
    title: str,
    bands: dict[str, tuple[np.ndarray, np.ndarray]],
) -> bytes:
    """Small multiples: per feature the last `window` observed steps and the predicted ones after them, with the
    prediction intervals shaded (the widest lightest)."""
    from matplotlib.figure import Figure  # lazy: matplotlib loads only when a plot is asked for; Agg, no display

    steps, features = observed.shape
    start = max(0, steps - window)
    columns = 1 if features <= 6 else min(4, math.ceil(features / 6))
    rows = math.ceil(features / columns)
    figure = Figure(figsize=(7.5 * columns, 1.7 * rows + 0.9), dpi=100, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True).ravel()
    t_observed = np.arange(start, steps)
    t_predicted = np.arange(steps - 1, steps + len(predicted))  # joined to the last observed step
    for feature, ax in enumerate(axes):
        if feature >= features:
            ax.set_visible(False)
            continue
        ax.plot(t_observed, observed[start:, feature], color=OBSERVED_COLOR, linewidth=1.3, label="observed")
        joined = np.concatenate([observed[-1:, feature], predicted[:, feature]])
        widest_first = sorted(bands.items(), key=lambda item: -float(item[0]))
        for shade, (key, (lower, upper)) in enumerate(widest_first):
            alpha = 0.15 + 0.15 * shade
            band = (lower[:, feature], upper[:, feature])
            ax.fill_between(t_predicted[1:], *band, color=PREDICTED_COLOR, alpha=alpha, lw=0, label=f"{key} % interval")
        ax.plot(t_predicted, joined, color=PREDICTED_COLOR, linewidth=1.6, label="predicted")
        ax.axvline(steps - 0.5, color="#868e96", linewidth=0.8, linestyle="--")
        ax.set_ylabel(f"feature {feature + 1}", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25)
    axes[0].legend(loc="upper left", fontsize=8, frameon=False, ncols=2 + len(bands))
    shown = f"last {steps - start} of {steps} observed steps" if start else f"{steps} observed steps"
    figure.suptitle(f"{title} ({shown})", fontsize=10)
    for ax in axes[-columns:]:
        ax.set_xlabel("step", fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
