"""The one settings object, read from the environment once and passed down.

Every variable is declared once in ``SETTINGS`` with its default and help; the
README's table is checked against this list by a test. boto3 keeps its own
configuration (profiles, region, ``AWS_ENDPOINT_URL_*``): nothing here duplicates it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.errors import ConfigError


@dataclass(frozen=True)
class SettingSpec:
    env: str
    field: str
    default: str
    help: str
    parse: Callable[[str], Any] = str
    unset: str = "(unset)"  # how the README and --help show an empty default


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected 1/0, true/false, yes/no or on/off, got {value!r}")


def _positive_int(value: str) -> int:
    number = int(value.replace("_", ""))
    if number <= 0:
        raise ValueError(f"expected a positive whole number, got {value!r}")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value.replace("_", ""))
    if number < 0:
        raise ValueError(f"expected zero or a positive whole number, got {value!r}")
    return number


def _confidence(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 100:
        raise ValueError(f"expected a confidence between 0 and 100, got {value!r}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return number


#: What imgbot does with the images posted in a channel (see ``/imgbot mode``).
CHANNEL_MODES = ("full", "quiet", "on-demand", "off")


def _mode(value: str) -> str:
    mode = value.strip().lower()
    if mode not in CHANNEL_MODES:
        raise ValueError(f"expected one of {', '.join(CHANNEL_MODES)}, got {value!r}")
    return mode


#: Who looks for personal data besides imgbot's own detectors (IMGBOT_TEXT_INSIGHTS).
TEXT_INSIGHTS = ("none", "comprehend")


def _insights(value: str) -> str:
    chosen = value.strip().lower() or "none"
    if chosen not in TEXT_INSIGHTS:
        raise ValueError(f"expected none or comprehend, got {value!r}")
    return chosen


def _choice(value: str, choices: tuple[str, ...]) -> str:
    chosen = value.strip().lower() or choices[0]
    if chosen not in choices:
        raise ValueError(f"expected {' or '.join(choices)}, got {value!r}")
    return chosen


def _optional(value: str) -> str | None:
    return value or None


def _optional_positive_int(value: str) -> int | None:
    return _positive_int(value) if value.strip() else None


def _optional_positive_float(value: str) -> float | None:
    return _positive_float(value) if value.strip() else None


def _auto_or_count(value: str) -> int | None:
    if value.strip().lower() in {"", "auto"}:
        return None
    try:
        return _non_negative_int(value)
    except ValueError:
        raise ValueError(f"expected auto or a whole number (0 or more), got {value!r}") from None


#: Helper processes for the pixels when IMGBOT_PIXEL_PROCESSES is automatic: one per two cores, at most this.
AUTO_MAX_PIXEL_PROCESSES = 4

#: The most images one process works on at once when IMGBOT_CONCURRENCY is automatic:
#: 50 images/s at up to ~2 s per image.
AUTO_MAX_IN_FLIGHT = 128


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("DATABASE_URL", "database_url", "sqlite:///data/imgbot.db",
                "SQLAlchemy URL of the database (SQLite file or postgresql+psycopg://…)."),
    SettingSpec("IMGBOT_STORAGE", "storage_url", "file://./data/images",
                "Where originals are kept: file://FOLDER or s3://BUCKET/PREFIX (server-side encrypted)."),
    SettingSpec("IMGBOT_S3_SSE", "s3_sse", "AES256",
                "S3 server-side encryption: AES256 or aws:kms."),
    SettingSpec("IMGBOT_S3_KMS_KEY_ID", "s3_kms_key_id", "",
                "KMS key id or ARN when IMGBOT_S3_SSE=aws:kms (empty: the account's default key).", _optional),
    SettingSpec("IMGBOT_ANALYZER", "analyzer", "local",
                "Analysis engine: local (offline, models inside packages) or rekognition (Amazon Rekognition)."),
    SettingSpec("IMGBOT_FACES", "faces", "0",
                "Detect and store faces (boxes, landmarks, attributes). Off by default for privacy.", _bool),
    SettingSpec("IMGBOT_MAX_BYTES", "max_bytes", "52428800",
                "Largest accepted original, in bytes (default 50 MB).", _positive_int),
    SettingSpec("IMGBOT_MAX_PIXELS", "max_pixels", "50000000",
                "Largest accepted image, in pixels (width x height); larger ones are refused as too large.",
                _positive_int),
    SettingSpec("IMGBOT_LABEL_MIN_CONFIDENCE", "label_min_confidence", "75",
                "Labels shown and searched by default at or above this confidence (0-100).", _confidence),
    SettingSpec("IMGBOT_MODERATION_MIN_CONFIDENCE", "moderation_min_confidence", "60",
                "An image is flagged when a moderation label reaches this confidence (0-100).", _confidence),
    SettingSpec("IMGBOT_STORE_MIN_CONFIDENCE", "store_min_confidence", "50",
                "Floor below which labels and moderation labels are not stored at all (0-100).", _confidence),
    SettingSpec("IMGBOT_CONCURRENCY", "concurrency", "",
                "Most images one process works on at once (empty: automatic, from the analyser's rate and the "
                f"measured time per image, at most {AUTO_MAX_IN_FLIGHT}).", _optional_positive_int, "(automatic)"),
    SettingSpec("IMGBOT_MAX_INFLIGHT_MB", "max_inflight_mb", "256",
                "Most image data one process holds at once, in MB (originals and analysis copies in flight).",
                _positive_int),
    SettingSpec("IMGBOT_REKOGNITION_TPS", "rekognition_tps", "",
                "Rekognition calls per second, per API, this process may make (empty: the region's default "
                "quota, 50 or 5); several processes sharing an account's quota each get a share.",
                _optional_positive_float, "(the region's quota)"),
    SettingSpec("IMGBOT_REKOGNITION_IMAGE_PROPERTIES", "rekognition_image_properties", "0",
                "Ask DetectLabels for IMAGE_PROPERTIES (Rekognition's colours and quality, billed extra) and "
                "store them instead of imgbot's own, computed from the pixels.", _bool),
    SettingSpec("IMGBOT_EMBEDDINGS", "embeddings", "auto",
                "Image embeddings for like: and near-duplicates, from the offline engine's network: auto (when its "
                "extra is installed, whatever the analyser; about 10 ms of CPU per image) or off (like: is "
                "unavailable and near-duplicates go by hash alone).", lambda value: _choice(value, ("auto", "off"))),
    SettingSpec("IMGBOT_PIXEL_PROCESSES", "pixel_processes", "auto",
                "Helper processes that compute each image's colours, quality, hash and embedding: auto (one per "
                f"two cores, at most {AUTO_MAX_PIXEL_PROCESSES}; none on one core), or a number (0: in the "
                "analysis threads).", _auto_or_count),
    SettingSpec("IMGBOT_AWS_MAX_ATTEMPTS", "aws_max_attempts", "8",
                "botocore retry attempts for S3, Rekognition and SQS calls.", _positive_int),
    SettingSpec("IMGBOT_QUEUE_URL", "queue_url", "",
                "Amazon SQS queue URL; when set, `imgbot serve` only enqueues and `imgbot worker` processes "
                "(empty: serve and analyze work in-process).", _optional),
    SettingSpec("IMGBOT_LOG_LEVEL", "log_level", "INFO",
                "Log level: DEBUG, INFO, WARNING or ERROR."),
    SettingSpec("IMGBOT_ANNOTATE", "annotate", "1",
                "Upload an annotated copy (label and text boxes) into the Slack thread.", _bool),
    SettingSpec("IMGBOT_DEFAULT_MODE", "default_mode", "full",
                "What imgbot does in a channel nobody set a mode for (/imgbot mode): full (reply in the thread), "
                "quiet (reactions; a reply only for flagged or failed images), on-demand (nothing until someone "
                "asks) or off (nothing).", _mode),
    SettingSpec("IMGBOT_TRIGGER_REACTION", "trigger_reaction", "mag",
                "The reaction (emoji name, no colons) that asks imgbot to analyse a message's images.",
                lambda value: value.strip().strip(":") or "mag"),
    SettingSpec("IMGBOT_MODERATION_CHANNEL", "moderation_channel", "",
                "Slack channel id where flagged images are posted for review (empty: none).", _optional),
    SettingSpec("IMGBOT_SECURITY_CHANNEL", "security_channel", "",
                "Slack channel id told (with a link, never the value) when an image seems to show a secret or "
                "a card number (empty: only the image's thread is warned).", _optional),
    SettingSpec("IMGBOT_TEXT_INSIGHTS", "text_insights", "none",
                "Personal data found besides imgbot's own detectors: none, or comprehend (Amazon Comprehend's "
                "DetectPiiEntities on the text, secrets masked first: names, addresses…; billed per request).",
                _insights),
    SettingSpec("SLACK_BOT_TOKEN", "slack_bot_token", "",
                "Bot token (xoxb-…) of the Slack app.", _optional),
    SettingSpec("SLACK_SIGNING_SECRET", "slack_signing_secret", "",
                "Signing secret used to verify requests from Slack (HTTP mode).", _optional),
    SettingSpec("SLACK_APP_TOKEN", "slack_app_token", "",
                "App-level token (xapp-…); when set, `imgbot serve` uses Socket Mode instead of HTTP.", _optional),
    SettingSpec("SLACK_API_URL", "slack_api_url", "",
                "Base URL of the Slack Web API (empty: https://slack.com/api/); for GovSlack and tests.", _optional),
    SettingSpec("PORT", "port", "3000",
                "HTTP port of `imgbot serve` (HTTP mode); 0 picks a free port and logs it.", _non_negative_int),
)


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///data/imgbot.db"
    storage_url: str = "file://./data/images"
    s3_sse: str = "AES256"
    s3_kms_key_id: str | None = None
    analyzer: str = "local"
    faces: bool = False
    max_bytes: int = 52_428_800
    max_pixels: int = 50_000_000
    label_min_confidence: float = 75.0
    moderation_min_confidence: float = 60.0
    store_min_confidence: float = 50.0
    concurrency: int | None = None
    max_inflight_mb: int = 256
    rekognition_tps: float | None = None
    rekognition_image_properties: bool = False
    embeddings: str = "auto"
    pixel_processes: int | None = None
    aws_max_attempts: int = 8
    queue_url: str | None = None
    log_level: str = "INFO"
    annotate: bool = True
    default_mode: str = "full"
    trigger_reaction: str = "mag"
    moderation_channel: str | None = None
    security_channel: str | None = None
    text_insights: str = "none"
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str | None = None
    port: int = 3000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every declared variable; a malformed one fails with its name."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in SETTINGS:
            raw = env.get(spec.env, spec.default)
            try:
                values[spec.field] = spec.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{spec.env} is not valid: {exc}") from exc
        if values["log_level"].upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(
                f"IMGBOT_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {values['log_level']!r}"
            )
        values["log_level"] = values["log_level"].upper()
        return cls(**values)

    @property
    def max_in_flight(self) -> int:
        """The most images in flight in one process: IMGBOT_CONCURRENCY, or the automatic ceiling."""
        return self.concurrency or AUTO_MAX_IN_FLIGHT

    @property
    def pixel_process_count(self) -> int:
        """Helper processes for the pixels: IMGBOT_PIXEL_PROCESSES, or one per two cores (at most 4)."""
        if self.pixel_processes is not None:
            return self.pixel_processes
        return min(AUTO_MAX_PIXEL_PROCESSES, (os.cpu_count() or 1) // 2)

    @property
    def max_inflight_bytes(self) -> int:
        return self.max_inflight_mb * 1024 * 1024

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def load_dotenv_file(path: str = ".env") -> None:
    """Load a ``.env`` file into the environment without overriding what is already set."""
    from dotenv import load_dotenv

    load_dotenv(path, override=False)
