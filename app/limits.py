"""Request limits: read once from the environment (WAVE_LIMIT_*), documented in the OpenAPI schema."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Limits(BaseSettings):
    """What one request may carry; each field is the environment variable WAVE_LIMIT_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="WAVE_LIMIT_")

    min_steps: int = Field(60, ge=1, description="fewest observed steps per wave (the model may need more)")
    max_steps: int = Field(5000, ge=1, description="most observed steps per wave")
    max_features: int = Field(64, ge=1, description="most values per row (the model fixes the exact count)")
    max_horizon: int = Field(150, ge=1, description="most predicted steps (the model's horizon may be lower)")
    max_waves: int = Field(256, ge=1, description="most waves in one batch request")
    max_total_steps: int = Field(100_000, ge=1, description="most observed steps over all waves of one request")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest request body; larger gets 413")
    max_abs_value: float = Field(1e12, gt=0, description="largest magnitude of an input value")
    max_gap_fraction: float = Field(
        0.5, ge=0, le=1, description="largest share of a feature's steps that may be gaps (filled before the model)"
    )


LIMITS = Limits()
