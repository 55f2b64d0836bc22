"""The served models by name, and the default one that answers requests which do not choose."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.model_service import ServedModel


class UnknownModelError(LookupError):
    """A request named a model this server does not serve; the message names the served ones."""


def parse_model_list(text: str) -> dict[str, str | None]:
    """`name[:version],...` (WAVE_MODELS) as {name: version or None}; ValueError for an empty or repeated name."""
    chosen: dict[str, str | None] = {}
    for item in text.split(","):
        name, _, version = (part.strip() for part in item.partition(":"))
        if not name:
            raise ValueError(f"empty model name in {text!r}: write name[:version],...")
        if name in chosen:
            raise ValueError(f"model {name!r} is named twice in {text!r}")
        chosen[name] = version or None
    return chosen


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
