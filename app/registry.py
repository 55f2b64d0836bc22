"""The served models by name, and the default one that answers requests which do not choose; loading them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from app.metrics import Metrics
from app.model_service import ServedModel, load_served_model
from app.settings import Settings, parse_model_list
from model_store import ModelNotFoundError, list_models


class UnknownModelError(LookupError):
    """A request named a model this server does not serve; the message names the served ones."""


@dataclass
class ModelRegistry:
    """Every served model by name; `default` names the one used when a request names none."""

    models: dict[str, ServedModel]
    default: str

    def __post_init__(self) -> None:
        if self.default not in self.models:
            raise ValueError(f"the default model {self.default!r} is not among the served ones: {self.listing()}")

    def get(self, name: str | None = None) -> ServedModel:
        """The named model (the default one for None), or UnknownModelError naming the served models."""
        model = self.models.get(self.default if name is None else name)
        if model is None:
            raise UnknownModelError(f"unknown model {name!r}; this server serves {self.listing()}")
        return model

    def replace(self, model: ServedModel) -> ServedModel:
        """Serve `model` in place of the served model of the same name; returns the one it replaces."""
        old = self.get(model.ref.name)
        self.models = {**self.models, model.ref.name: model}
        return old

    def listing(self) -> str:
        """The served names, e.g. "'wave' (default), 'tiny'"."""
        return ", ".join(f"{name!r}{' (default)' if name == self.default else ''}" for name in self.models)

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(list(self.models.values()))

    def __len__(self) -> int:
        return len(self.models)


def chosen_models(settings: Settings) -> dict[str, str]:
    """{name: version} to serve: WAVE_MODELS, or every model in the store; the default model must be one of them."""
    chosen = parse_model_list(settings.models) if settings.models else dict.fromkeys(list_models(settings.store))
    if settings.model_name not in chosen:
        served = ", ".join(repr(name) for name in chosen) or "none"
        where = "WAVE_MODELS" if settings.models else f"the store {settings.store}"
        raise ModelNotFoundError(f"the default model {settings.model_name!r} is not in {where} (it has {served})")
    chosen.setdefault(settings.model_name, None)
    if chosen[settings.model_name] is None:
        chosen[settings.model_name] = settings.model_version
    return {name: version or "latest" for name, version in chosen.items()}


def load_registry(settings: Settings, metrics: Metrics) -> ModelRegistry:
    """Load every chosen model, one after the other; the first failure (a StoreError) is raised.

    Not side by side: a model's warm-up already compiles on two cores, and two loads in threads measured 3x
    slower than one after the other (two full-size models from a warm compile cache on 2 cores: 18 s, 5.5 s).
    """
    models = {
        name: load_served_model(settings, metrics, name, version) for name, version in chosen_models(settings).items()
    }
    return ModelRegistry(models, settings.model_name)
