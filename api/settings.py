"""Settings: one pydantic-settings object read from ``JOURNEYGRAPH_*`` variables and ``.env``.

Only the composition root (``api.bootstrap``) reads them; everything else receives
what it needs as arguments. ``get_settings()`` is cached and is a FastAPI
dependency, so tests override it instead of patching the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "journeygraph-development-secret"


class Settings(BaseSettings):
    """Configuration of the service, the CLI and the stores they open."""

    model_config = SettingsConfigDict(
        env_prefix="JOURNEYGRAPH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    mode: Literal["development", "production"] = Field(
        default="development",
        description="production refuses to start with the default secret",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(DEFAULT_SECRET), description="signs embed tokens and hashes API keys"
    )
    data_dir: Path = Field(default=Path("var"), description="where the embedded store lives")

    backend: Literal["embedded", "gremlin"] = "embedded"
    store_path: Path | None = Field(
        default=None, description="embedded store file; default <data_dir>/journeygraph.db"
    )
    durability: Literal["normal", "full"] = "normal"

    gremlin_url: str | None = Field(default=None, description="ws://host:8182/gremlin")
    gremlin_dialect: Literal["janusgraph", "neptune", "tinkergraph"] = "janusgraph"
    gremlin_batch_size: int = Field(default=200, ge=1, le=10_000)
    neptune_iam: bool = Field(default=False, description="sign Neptune requests with SigV4")
    aws_region: str | None = None

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    demo_customers: int = Field(default=2000, ge=1, le=5_000_000)
    demo_seed: int = 7

    ingest_dir: Path | None = Field(
        default=None,
        description="identity index, lake, quarantine and checkpoints; default <data_dir>/ingest",
    )
    hub_threshold: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="an identifier seen beside more anchors (MSISDNs) than this never stitches",
    )
    ingest_chunk_rows: int = Field(default=100_000, ge=100, le=5_000_000)
    milestones_dir: Path | None = Field(
        default=None,
        description="milestone definitions added with `milestones add` (beside the shipped "
        "ones) and the change-feed follower's cursor; default <ingest_dir>/milestones",
    )

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.backend == "gremlin" and not self.gremlin_url:
            raise ValueError(
                "JOURNEYGRAPH_GREMLIN_URL is required when JOURNEYGRAPH_BACKEND=gremlin"
            )
        return self

    @property
    def embedded_path(self) -> Path:
        """The embedded store file."""
        return self.store_path or self.data_dir / "journeygraph.db"

    @property
    def ingest_path(self) -> Path:
        """The ingest working folder."""
        return self.ingest_dir or self.data_dir / "ingest"

    @property
    def milestones_path(self) -> Path:
        """The folder of added milestone definitions."""
        return self.milestones_dir or self.ingest_path / "milestones"

    def check_production_ready(self) -> None:
        """Refuse insecure defaults outside development mode."""
        if self.mode == "production" and self.secret_key.get_secret_value() == DEFAULT_SECRET:
            raise ValueError(
                "JOURNEYGRAPH_SECRET_KEY is the built-in development secret; set a random "
                "secret (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`) "
                "before running in production mode"
            )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests override this dependency)."""
    return Settings()
