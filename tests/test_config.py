"""The settings this work added: automatic defaults, and a bad value named in one readable error."""

from __future__ import annotations

import pytest

from bot.config import AUTO_MAX_IN_FLIGHT, Settings
from bot.errors import ConfigError


def test_concurrency_and_the_rekognition_rate_are_automatic_unless_set() -> None:
    settings = Settings.from_env({})

    assert settings.concurrency is None and settings.max_in_flight == AUTO_MAX_IN_FLIGHT
    assert settings.rekognition_tps is None  # the region's quota, chosen by the analyser
    assert settings.max_inflight_bytes == 256 * 1024 * 1024
    assert (settings.default_mode, settings.trigger_reaction) == ("full", "mag")

    chosen = Settings.from_env({"IMGBOT_CONCURRENCY": "16", "IMGBOT_REKOGNITION_TPS": "25",
                                "IMGBOT_DEFAULT_MODE": "On-Demand", "IMGBOT_TRIGGER_REACTION": ":eyes:"})
    assert (chosen.max_in_flight, chosen.rekognition_tps) == (16, 25.0)
    assert (chosen.default_mode, chosen.trigger_reaction) == ("on-demand", "eyes")


@pytest.mark.parametrize(("variable", "value"), [
    ("IMGBOT_CONCURRENCY", "0"), ("IMGBOT_CONCURRENCY", "many"), ("IMGBOT_MAX_INFLIGHT_MB", "-5"),
    ("IMGBOT_REKOGNITION_TPS", "0"), ("IMGBOT_DEFAULT_MODE", "loud"),
])
def test_a_bad_value_is_refused_with_the_variables_name(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})

    assert variable in caught.value.user_message
