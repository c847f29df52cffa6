"""How an image looks, in its Slack thread: the palette, a quality warning, and "posted before" for a
near-duplicate posted earlier in the same channel or a public one — never a private channel's."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from tests import test_slack_e2e as e2e
from tests.test_slack_e2e import PRIVATE, PUBLIC, Harness

slack, harness, app = e2e.slack, e2e.harness, e2e.app
CAT = Image.open(Path(__file__).parent.parent / "bot" / "samples" / "cat-chelsea.jpg").convert("RGB")


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def reply_text(app: Harness, data: bytes, channel: str = PUBLIC, name: str = "cat.jpg") -> str:
    ts, _, _ = app.post_images(data, channel=channel, names=[name])
    return json.dumps(app.replies(ts)[0].params, ensure_ascii=False)


def test_the_reply_shows_the_palette_and_warns_that_a_small_picture_is_small_for_print(app: Harness) -> None:
    shown = reply_text(app, jpeg(CAT))

    assert "*Colours:*" in shown and ":large_" in shown and "%" in shown
    assert f"{max(CAT.size):,} px: small for print" in shown


def test_a_near_duplicate_links_the_earlier_post_in_the_same_channel(app: Harness) -> None:
    first = reply_text(app, jpeg(CAT))
    again = reply_text(app, jpeg(CAT.resize((CAT.width // 2, CAT.height // 2)), quality=60), name="cat-small.jpg")

    assert "posted before" not in first
    assert "Looks like a picture" in again and f"/archives/{PUBLIC}/" in again


def test_the_same_file_posted_again_links_the_earlier_post(app: Harness) -> None:
    data = jpeg(CAT)
    first = reply_text(app, data)
    again = reply_text(app, data, name="cat-again.jpg")  # the same bytes: the same image, a second post

    assert "posted before" not in first
    assert "Looks like a picture" in again and f"/archives/{PUBLIC}/" in again


def test_the_same_file_posted_before_in_a_private_channel_is_not_mentioned(app: Harness) -> None:
    data = jpeg(CAT, quality=80)
    reply_text(app, data, channel=PRIVATE)
    elsewhere = reply_text(app, data, name="cat-again.jpg")

    assert "posted before" not in elsewhere and PRIVATE not in elsewhere


def test_a_near_duplicate_of_a_private_channels_picture_is_not_mentioned(app: Harness) -> None:
    reply_text(app, jpeg(CAT), channel=PRIVATE)
    elsewhere = reply_text(app, jpeg(CAT, quality=55), name="cat-again.jpg")

    assert "posted before" not in elsewhere and PRIVATE not in elsewhere


def test_dupes_of_a_private_channels_picture_answers_an_outsider_as_for_a_picture_that_is_not_there(
        app: Harness) -> None:
    from tests.test_slack_e2e import ALICE, BOB

    reply_text(app, jpeg(CAT), channel=PRIVATE)  # Alice is in the private channel, Bob is not
    assert app.core is not None
    hidden = app.core.search("").hits[0].image.id
    missing = hidden + 1000

    def answer(query: str, user: str) -> str:
        params = app.responses(app.command("/imgsearch", query, user=user))[0].params
        return json.dumps([params["text"], params["blocks"]], ensure_ascii=False)

    to_bob, to_bob_missing = answer(f"dupes:{hidden}", BOB), answer(f"dupes:{missing}", BOB)
    to_alice = answer(f"dupes:{hidden}", ALICE)

    assert f"No picture {hidden} in the channels you are in" in to_bob
    assert to_bob.replace(str(hidden), "N") == to_bob_missing.replace(str(missing), "N")  # nothing to tell apart
    assert f"No picture {hidden} " not in to_alice
