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
MIN_SECRET_BYTES = 32
"""The shortest secret production mode accepts (it signs embed tokens and key digests)."""


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

    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins allowed to call the API from a browser, e.g. "
        '["https://crm.example.com"]; none by default (widgets in iframes need none: '
        "they call their own origin)",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, le=1024**3, description="larger request bodies get 413"
    )
    body_timeout: float = Field(
        default=15.0, gt=0, le=600, description="seconds a client has to send its body (then 408)"
    )
    rate_limit: float = Field(
        default=1000.0,
        gt=0,
        description="requests a second per API key and worker process, on average",
    )
    rate_burst: int = Field(default=2000, ge=1, description="requests a key may send at once")

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

    engage_dir: Path | None = Field(
        default=None,
        description="the engagement database (profiles, queue, feedback, sentiment), the "
        "probe quarantine and the engine's cursor; default <data_dir>/engage",
    )
    engage_rules: Path | None = Field(
        default=None,
        description="the incident decision table (YAML); default: the shipped engage/rules.yaml",
    )
    engage_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="threshold overrides by metric or rule name, e.g. "
        '{"call_drop_rate": 0.2}; a rule name wins over its metric',
    )
    engage_cells: Path | None = Field(
        default=None,
        description="a Parquet/CSV file of known radio cells (a cell_id column); probe events "
        "naming another cell are quarantined. Unset: every cell is accepted",
    )
    engage_webhook_url: str | None = Field(
        default=None,
        description="where engagements are POSTed (the operator's SMS/push/outbound platform); "
        "unset: engagements go to a dry-run file, <engage_dir>/sent.jsonl",
    )
    engage_webhook_secret: SecretStr | None = Field(
        default=None,
        description="signs webhook bodies (HMAC-SHA256); default: the secret key",
    )
    engage_webhook_timeout: float = Field(default=5.0, gt=0, le=120)
    engage_workers: int = Field(default=4, ge=1, le=64, description="sends in flight at once")
    engage_dedupe_hours: float = Field(
        default=24.0, gt=0, description="one engagement per subscriber and rule in this window"
    )
    engage_max_attempts: int = Field(default=8, ge=1, le=100)
    engage_quiet_hours: str | None = Field(
        default="21:00-08:00", description='"HH:MM-HH:MM" local time with no contact; "" for none'
    )
    engage_timezone: str = Field(default="UTC", description="IANA zone of the quiet hours")
    engage_contact_cap: int | None = Field(
        default=2, ge=1, description="engagements sent per subscriber per 7 days at most"
    )
    sentiment_alpha: float = Field(
        default=0.3, gt=0, le=1, description="weight of the newest answer in the sentiment EWMA"
    )

    models_dir: Path | None = Field(
        default=None,
        description="the model registry (every trained version, runs.jsonl); "
        "default <data_dir>/models",
    )
    retrain_schedule: str = Field(
        default="mon,thu 03:00",
        description='when the service retrains: "DAYS HH:MM" in UTC (e.g. "mon,thu 03:00", '
        '"daily 02:30"); "" turns scheduled retraining off',
    )
    retrain_tasks: list[str] = Field(
        default_factory=lambda: ["churn", "nbo", "fraud", "csat"],
        description="tasks the schedule retrains (each promoted only if not worse)",
    )
    train_epochs: int = Field(default=5, ge=1, le=1000, description="GNN epochs per training")

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
    def keys_path(self) -> Path:
        """The API key database."""
        return self.data_dir / "keys.db"

    @property
    def ingest_path(self) -> Path:
        """The ingest working folder."""
        return self.ingest_dir or self.data_dir / "ingest"

    @property
    def milestones_path(self) -> Path:
        """The folder of added milestone definitions."""
        return self.milestones_dir or self.ingest_path / "milestones"

    @property
    def models_path(self) -> Path:
        """The model registry folder."""
        return self.models_dir or self.data_dir / "models"

    @property
    def engage_path(self) -> Path:
        """The engagement working folder."""
        return self.engage_dir or self.data_dir / "engage"

    @property
    def engage_db(self) -> Path:
        """The engagement database file."""
        return self.engage_path / "engage.db"

    def check_production_ready(self) -> None:
        """Refuse insecure defaults outside development mode."""
        secret = self.secret_key.get_secret_value()
        if self.mode == "production" and (
            DEFAULT_SECRET in secret or len(secret.encode()) < MIN_SECRET_BYTES
        ):
            raise ValueError(
                "JOURNEYGRAPH_SECRET_KEY is the built-in development secret or shorter than "
                f"{MIN_SECRET_BYTES} bytes; set a random secret (e.g. `python -c 'import "
                "secrets; print(secrets.token_urlsafe(32))'`) before running in production mode"
            )
        if self.mode == "production" and "*" in self.cors_origins:
            raise ValueError(
                "JOURNEYGRAPH_CORS_ORIGINS contains '*'; list the dashboard's origins instead"
            )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests override this dependency)."""
    return Settings()
