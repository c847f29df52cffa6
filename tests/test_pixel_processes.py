"""Colours, quality, hash and embedding in helper processes: the same looks as in a thread, a helper
that dies replaced, and the setting that chooses between them."""

from __future__ import annotations

import io
import logging
import os
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bot.analyzers.local.embedding import ImageEmbedder
from bot.config import Settings
from bot.core.looks import InlineLooks, look
from bot.core.pixel_processes import PixelProcesses
from bot.core.types import Analysis, DominantColor, ImageProperties, PreparedImage, Source
from bot.errors import ConfigError
from bot.storage.memory import MemoryStorage
from bot.wiring import build_core
from tests.fakes.analyzer import FakeAnalyzer

CRASH_COLOUR = (255, 0, 0)


def picture(colour: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> bytes:
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).ellipse((100, 80, 400, 360), fill=(colour[2], colour[0], colour[1]))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def prepared(data: bytes) -> PreparedImage:
    from bot.core.intake import prepare_image

    return prepare_image(data, max_bytes=50 * 2**20, max_pixels=50_000_000)


class CrashingEmbedder:
    """Kills its process on a pure red pixel in the corner, as a decoder crashing on a hostile file would."""

    version = "crashing-test-embedder"

    def embed(self, image: Any) -> Any:
        if image.convert("RGB").getpixel((0, 0)) == CRASH_COLOUR:
            os._exit(3)
        vector = np.zeros(256, dtype=np.float32)
        vector[0] = 1.0
        return vector


def test_a_helper_process_sees_what_a_thread_sees() -> None:
    image = prepared(picture((20, 120, 200)))
    helpers = PixelProcesses(1, ImageEmbedder)
    try:
        helpers.warm()
        from_helper = helpers.look(image, Analysis(provider="fake"))
    finally:
        helpers.close()
    in_thread = look(image, Analysis(provider="fake"), ImageEmbedder())

    assert from_helper.properties == in_thread.properties
    assert from_helper.properties is not None and from_helper.properties.dominant_colors
    assert from_helper.phash == in_thread.phash
    assert from_helper.embedding_model == in_thread.embedding_model == ImageEmbedder().version
    assert from_helper.embedding is not None and in_thread.embedding is not None
    cosine = float(np.frombuffer(from_helper.embedding, "<f2").astype(np.float32)
                   @ np.frombuffer(in_thread.embedding, "<f2").astype(np.float32))
    assert cosine > 0.999


def test_colours_the_analyser_gave_are_kept_and_not_computed_again() -> None:
    given = ImageProperties(brightness=1.0, sharpness=2.0, contrast=3.0, source="rekognition", dominant_colors=(
        DominantColor(red=1, green=2, blue=3, hex_code="#010203", css_color="black", simplified_color="black",
                      pixel_percent=100.0),))
    helpers = PixelProcesses(1, None)
    try:
        seen = helpers.look(prepared(picture((200, 200, 20))), Analysis(provider="fake", properties=given))
    finally:
        helpers.close()
    assert seen.properties is given
    assert seen.phash is not None and seen.embedding is None


def test_a_helper_that_dies_is_replaced_and_the_next_image_gets_its_looks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    helpers = PixelProcesses(1, CrashingEmbedder)
    try:
        fine = helpers.look(prepared(picture((0, 200, 0))), Analysis(provider="fake"))
        assert fine.embedding_model == "crashing-test-embedder"
        with caplog.at_level(logging.WARNING, logger="imgbot.looks"), pytest.raises(Exception) as raised:
            helpers.look(prepared(picture(CRASH_COLOUR)), Analysis(provider="fake"))
        assert type(raised.value).__name__ == "BrokenProcessPool"
        assert "helper process died" in caplog.text  # tried once more in a new helper, which died too
        after = helpers.look(prepared(picture((0, 0, 200))), Analysis(provider="fake"))
        with pytest.raises(Exception) as died_again:  # two more deaths, but an image came back in between:
            helpers.look(prepared(picture(CRASH_COLOUR)), Analysis(provider="fake"))
        assert type(died_again.value).__name__ == "BrokenProcessPool"
        again = helpers.look(prepared(picture((0, 0, 150))), Analysis(provider="fake"))  # no rest yet
    finally:
        helpers.close()
    assert after.properties is not None and after.embedding is not None
    assert again.properties is not None


def test_helpers_that_keep_dying_rest_and_the_images_meanwhile_are_saved_without_looks(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from concurrent.futures.process import BrokenProcessPool

    from bot.core import pixel_processes

    monkeypatch.setattr(pixel_processes, "DEATHS_BEFORE_REST", 2)  # the image's pool and its retry's
    monkeypatch.setattr(pixel_processes, "REST_SECONDS", 3.0)
    helpers = PixelProcesses(1, CrashingEmbedder)
    core = build_core(settings.replace(pixel_processes=1), storage=MemoryStorage(),
                      analyzer_factory=lambda: FakeAnalyzer())
    core._looker = helpers
    try:
        with caplog.at_level(logging.WARNING, logger="imgbot.looks"), pytest.raises(BrokenProcessPool):
            helpers.look(prepared(picture(CRASH_COLOUR)), Analysis(provider="fake"))
        assert "died 2 times in a row: they rest 3 s" in caplog.text
        with caplog.at_level(logging.WARNING):
            resting = core.ingest(picture((0, 0, 200)), Source.file("blue.png"))
        assert helpers._pool is None  # no helper started while they rest
        assert resting.outcome == "done" and core.show(resting.image_id).properties is None  # type: ignore[arg-type]
        assert "HelpersResting" in caplog.text
        time.sleep(3.1)
        rested = core.ingest(picture((0, 200, 0)), Source.file("green.png"))
        assert core.show(rested.image_id).properties is not None  # type: ignore[arg-type]
        assert core.rescan_looks()[1] == 0  # the image saved meanwhile gets its looks
        assert core.show(resting.image_id).properties is not None  # type: ignore[arg-type]
    finally:
        helpers.close()
        core.database.dispose()


def test_an_image_whose_helper_died_is_still_analysed_and_saved(settings: Settings) -> None:
    core = build_core(settings.replace(pixel_processes=1), storage=MemoryStorage(),
                      analyzer_factory=lambda: FakeAnalyzer())
    core._looker = PixelProcesses(1, CrashingEmbedder)
    try:
        crashed = core.ingest(picture(CRASH_COLOUR), Source.file("red.png"))
        fine = core.ingest(picture((0, 0, 200)), Source.file("blue.png"))
        assert crashed.outcome == "done" and fine.outcome == "done"
        assert core.show(crashed.image_id).properties is None  # type: ignore[arg-type]
        assert core.show(fine.image_id).properties is not None  # type: ignore[arg-type]
    finally:
        core._looker.close()
        core.database.dispose()


@pytest.mark.parametrize(("cores", "expected"), [(1, 0), (2, 1), (3, 1), (8, 4), (64, 4)])
def test_automatic_helper_processes_are_one_per_two_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, expected: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert Settings.from_env({}).pixel_process_count == expected
    assert Settings.from_env({"IMGBOT_PIXEL_PROCESSES": "2"}).pixel_process_count == 2


def test_the_setting_chooses_helpers_or_the_analysis_threads(settings: Settings) -> None:
    cores = [build_core(settings.replace(pixel_processes=n), storage=MemoryStorage()) for n in (1, 1, 0)]
    try:
        on, again, off = (core.looker for core in cores)
    finally:
        for core in cores:
            core.database.dispose()
    assert isinstance(on, PixelProcesses) and on is again  # one set of helpers per process
    assert isinstance(off, InlineLooks)
    with pytest.raises(ConfigError, match="IMGBOT_PIXEL_PROCESSES.*expected auto or a whole number"):
        Settings.from_env({"IMGBOT_PIXEL_PROCESSES": "some"})
    with pytest.raises(ConfigError, match="IMGBOT_PIXEL_PROCESSES"):
        Settings.from_env({"IMGBOT_PIXEL_PROCESSES": "-1"})
