"""Service configuration, read from the environment (prefix WAVE_; request limits WAVE_LIMIT_*) by pydantic-settings."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model_store.defaults import DEFAULT_MODEL, DEFAULT_STORE
from training.gaps import MAX_GAP_FRACTION
from training.xla_flags import DEFAULT_CACHE_MAX_MB, available_cpus, default_compile_cache


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


class Limits(BaseModel):
    """What one request may carry; each field is the environment variable WAVE_LIMIT_<FIELD>."""

    min_steps: int = Field(60, ge=1, description="fewest observed steps per wave (the model may need more)")
    max_steps: int = Field(5000, ge=1, description="most observed steps per wave")
    max_features: int = Field(64, ge=1, description="most values per row (the model fixes the exact count)")
    max_horizon: int = Field(150, ge=1, description="most predicted steps (the model's horizon may be lower)")
    max_waves: int = Field(256, ge=1, description="most waves in one batch request")
    max_total_steps: int = Field(100_000, ge=1, description="most observed steps over all waves of one request")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest request body; larger gets 413")
    max_abs_value: float = Field(1e12, gt=0, description="largest magnitude of an input value")
    max_gap_fraction: float = Field(
        MAX_GAP_FRACTION,
        ge=0,
        le=1,
        description="largest share of a feature's steps that may be gaps (filled before the model)",
    )


class Settings(BaseSettings):
    """Every knob of the service; each field is an environment variable WAVE_<FIELD>, each request limit
    WAVE_LIMIT_<FIELD> (`limits`)."""

    model_config = SettingsConfigDict(
        env_prefix="WAVE_",
        env_file=None,
        protected_namespaces=(),
        env_nested_delimiter="_",  # WAVE_LIMIT_MIN_STEPS: field `limits` (alias wave_limit), then `min_steps`
        env_nested_max_split=1,
    )

    store: Path = Field(DEFAULT_STORE, description="model store folder (<store>/<name>/<version>/)")
    models: str | None = Field(
        None, description="models to serve, 'name[:version],...' (default: every model in the store, at its latest)"
    )
    model_name: str = Field(DEFAULT_MODEL, description="the default model: answers requests that name none")
    model_version: str = Field("latest", description="the default model's version when WAVE_MODELS gives none")
    host: str = Field("127.0.0.1", description="address uvicorn binds")
    port: int = Field(8000, ge=0, le=65535, description="port uvicorn binds")
    keep_alive_s: int = Field(
        75,
        ge=1,
        description="how long an idle connection stays open: longer than a proxy's or client pool's own (60 s at"
        " nginx and AWS load balancers, 5 s at httpx), so the server never closes a connection they are reusing",
    )
    log_level: str = Field("info", description="log level: debug, info, warning, error")
    log_format: Literal["json", "text"] = Field("json", description="log lines as JSON objects or plain text")
    max_batch_size: int = Field(
        32, ge=1, le=1024, description="most waves in one model call (each power of two up to it is compiled)"
    )
    max_wait_ms: float = Field(
        0.0, ge=0, description="how long a free worker waits for more waves (0: it takes what is queued)"
    )
    inference_workers: int = Field(
        default_factory=available_cpus, ge=1, description="batches run in parallel (default: one per CPU)"
    )
    max_queue: int = Field(2048, ge=1, description="most waves waiting; beyond it requests get 503 + Retry-After")
    request_timeout_s: float = Field(30.0, gt=0, description="deadline of one request's inference; then 504")
    api_key: SecretStr | None = Field(None, description="if set, inference needs header X-API-Key with this value")
    admin_token: SecretStr | None = Field(None, description="bearer token of /admin endpoints; unset: they are off")
    limits: Limits = Field(
        default_factory=Limits,
        validation_alias=AliasChoices("limits", "wave_limit"),
        description="request limits, each from WAVE_LIMIT_<FIELD>",
    )
    compile_cache: str = Field(
        default_factory=lambda: str(default_compile_cache()),
        description="folder of XLA's compiled programs, reused by the next start; empty: no cache",
    )
    compile_cache_max_mb: int = Field(
        DEFAULT_CACHE_MAX_MB,
        ge=0,
        description="the compile cache's size limit: at start the least recently used programs beyond it are "
        "deleted (0: no limit)",
    )

    @field_validator("models")
    @classmethod
    def _model_list(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # unset or blank: every model in the store
        parse_model_list(value)
        return value


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
