"""Service configuration, read from the environment (prefix WAVE_) by pydantic-settings."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

import model_store

DEFAULT_STORE = Path(model_store.__file__).resolve().parent


class Settings(BaseSettings):
    """Every knob of the service; each field is an environment variable WAVE_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="WAVE_", env_file=None, protected_namespaces=())

    store: Path = Field(DEFAULT_STORE, description="model store folder (<store>/<name>/<version>/)")
    model_name: str = Field("wave", description="model name inside the store")
    model_version: str = Field("latest", description="version number, or 'latest'")
    host: str = Field("127.0.0.1", description="address uvicorn binds")
    port: int = Field(8000, ge=0, le=65535, description="port uvicorn binds")
    log_level: str = Field("info", description="uvicorn and service log level")
    max_batch_size: int = Field(64, ge=1, description="most waves run through the model in one call")
    max_wait_ms: float = Field(2.0, ge=0, description="longest a wave waits for others to join its batch")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
