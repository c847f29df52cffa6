"""PII detection with Amazon Comprehend, through real boto3 against ``FakeComprehend``.

boto3 finds the fake through ``AWS_ENDPOINT_URL_COMPREHEND``, as it would any endpoint.
Retry tests use botocore's standard mode with the back-off delay removed, so they
check *that* botocore retries without waiting for it.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bot.analyzers.comprehend import MAX_TEXT_BYTES, ComprehendPii, PiiEntity, chunks
from bot.config import Settings
from bot.errors import ImgbotError
from tests.fakes.aws import instant_botocore_retries, use_fake_aws
from tests.fakes.comprehend import FakeComprehend

#: botocore reads ``retries["max_attempts"]`` as retries after the first try, so a call is tried RETRIES + 1 times.
RETRIES = 2
ATTEMPTS = RETRIES + 1


@pytest.fixture(autouse=True)
def _instant_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    instant_botocore_retries(monkeypatch)


@pytest.fixture
def fake() -> Iterator[FakeComprehend]:
    with FakeComprehend() as server:
        yield server


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeComprehend) -> None:
    use_fake_aws(monkeypatch, tmp_path, comprehend=fake.endpoint_url)


@pytest.fixture
def pii(aws: None) -> ComprehendPii:
    return ComprehendPii(Settings(aws_max_attempts=RETRIES))


def found(text: str, entities: list[PiiEntity]) -> list[tuple[str, str]]:
    """``(type, the text at the entity's offsets)`` for each entity."""
    return [(entity.type, text[entity.begin:entity.end]) for entity in entities]


def sent_texts(fake: FakeComprehend) -> list[str]:
    return [call.params["Text"] for call in fake.requests]


# -- findings -----------------------------------------------------------------------------------


def test_names_addresses_emails_and_phones_come_back_with_comprehends_types_scores_and_offsets(
    fake: FakeComprehend, pii: ComprehendPii
) -> None:
    text = "Write to Jane Doe at 12 Main Street.\nOr mail jane.doe@example.com, or call (555) 010-4477."

    entities = pii.detect(text)

    assert found(text, entities) == [
        ("NAME", "Jane Doe"), ("ADDRESS", "12 Main Street"), ("EMAIL", "jane.doe@example.com"),
        ("PHONE", "(555) 010-4477"),
    ]
    assert entities[0] == PiiEntity(type="NAME", score=0.9999, begin=9, end=17, kind="name", category="pii")
    [call] = fake.requests
    assert call.params == {"Text": text, "LanguageCode": "en"}


def test_offsets_count_characters_not_utf8_bytes_when_accents_and_emoji_come_before_the_entity(
    fake: FakeComprehend, pii: ComprehendPii
) -> None:
    text = "Café ☕ naïve 🎉 — réunion avec John Smith, 7 Rue Street"

    entities = pii.detect(text)

    assert found(text, entities) == [("NAME", "John Smith"), ("ADDRESS", "7 Rue Street")]
    name = entities[0]
    assert name.begin == text.index("John Smith") < len(text[:name.begin].encode())  # characters, not bytes


def test_empty_or_whitespace_text_makes_no_call(fake: FakeComprehend, pii: ComprehendPii) -> None:
    assert pii.detect("") == []
    assert pii.detect("  \n\t\n ") == []
    assert fake.call_count() == 0


# -- chunking -----------------------------------------------------------------------------------


def test_text_over_100_kb_is_sent_in_line_aligned_chunks_of_at_most_100000_bytes_with_absolute_offsets(
    fake: FakeComprehend, pii: ComprehendPii
) -> None:
    filler = "Grüße aus Zürich, straße für straße — ünïcödé everywhere.\n"  # multi-byte: bytes ≠ characters
    lines = [f"Line {n}: Jane Doe lives at {n} Elm Street.\n" if n % 500 == 0 else filler for n in range(6000)]
    text = "".join(lines)
    assert utf8(text) > 3 * MAX_TEXT_BYTES

    entities = pii.detect(text)

    sent = sent_texts(fake)
    assert len(sent) >= 4
    assert all(utf8(chunk) <= MAX_TEXT_BYTES for chunk in sent)
    assert all(chunk.endswith("\n") for chunk in sent)  # cut at line breaks only
    assert "".join(sent) == text
    assert found(text, entities) == [
        pair for n in range(0, 6000, 500) for pair in (("NAME", "Jane Doe"), ("ADDRESS", f"{n} Elm Street"))
    ]


def test_text_under_100000_characters_but_over_100000_bytes_is_still_split(
    fake: FakeComprehend, pii: ComprehendPii
) -> None:
    text = "日本語のテキスト\n" * 8000 + "Jane Doe\n"  # 9 characters but 25 bytes a line
    assert len(text) < MAX_TEXT_BYTES < utf8(text)

    entities = pii.detect(text)

    assert fake.call_count() == 3
    assert found(text, entities) == [("NAME", "Jane Doe")]
    assert entities[0].begin == len(text) - len("Jane Doe\n")


def test_a_single_line_over_the_limit_is_cut_at_a_space_and_else_between_characters() -> None:
    line = "mot " * 40_000 + "é" * 60_000  # one line of 280,000 bytes; no space in its last 120,000

    pieces = list(chunks(line))

    assert [piece for _, piece in pieces] == ["mot " * 25_000, "mot " * 15_000, "é" * 50_000, "é" * 10_000]
    assert [start for start, _ in pieces] == [0, 100_000, 160_000, 210_000]


# -- errors and retries -------------------------------------------------------------------------


def test_a_throttle_is_retried_by_botocores_standard_retries_and_then_succeeds(
    fake: FakeComprehend, pii: ComprehendPii
) -> None:
    fake.fail_next("ThrottlingException", 400, times=RETRIES)

    entities = pii.detect("Call Jane Doe.")

    assert found("Call Jane Doe.", entities) == [("NAME", "Jane Doe")]
    assert [call.error for call in fake.requests] == ["ThrottlingException"] * RETRIES + [None]


def test_throttling_that_outlasts_the_retries_is_a_retryable_error(fake: FakeComprehend, pii: ComprehendPii) -> None:
    fake.fail_next("ThrottlingException", 400, times=10)

    with pytest.raises(ImgbotError) as raised:
        pii.detect("Call Jane Doe.")

    assert raised.value.retryable is True
    assert "busy" in raised.value.user_message
    assert fake.call_count() == ATTEMPTS


def test_a_persistent_validation_error_is_permanent_and_neither_the_error_nor_the_log_quotes_the_text(
    fake: FakeComprehend, pii: ComprehendPii, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "card 4111 1111 1111 1111 belongs to Jane Doe"
    # A service message that echoes the request, the worst case for a leak.
    fake.fail_next("ValidationException", 400, times=10, message=f"Value '{secret}' at 'text' failed")
    caplog.set_level(logging.DEBUG, logger="imgbot")

    with pytest.raises(ImgbotError) as raised:
        pii.detect(secret)

    error = raised.value
    assert error.retryable is False
    assert fake.call_count() == 1  # botocore does not retry a validation error
    assert "ValidationException" in error.detail
    shown = [error.user_message, error.detail, str(error)]
    shown += [record.getMessage() for record in caplog.records if record.name.startswith("imgbot")]
    assert not any(secret in item or "4111" in item for item in shown)
    # Nor would a traceback: the ClientError (whose message quotes the service's) is not chained.
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.parametrize(("code", "status", "retryable", "says"), [
    ("AccessDeniedException", 400, False, "comprehend:DetectPiiEntities"),
    ("UnrecognizedClientException", 400, False, "credentials"),
    ("UnsupportedLanguageException", 400, False, "English and Spanish"),
    ("TextSizeLimitExceededException", 400, False, "100 KB"),
    ("UnknownOperationException", 400, False, "AWS_ENDPOINT_URL_COMPREHEND"),
    ("InternalServerException", 500, True, "unavailable"),
])
def test_each_comprehend_error_becomes_an_imgbot_error_that_says_whether_trying_later_helps(
    fake: FakeComprehend, pii: ComprehendPii, code: str, status: int, retryable: bool, says: str
) -> None:
    fake.fail_next(code, status, times=10)

    with pytest.raises(ImgbotError) as raised:
        pii.detect("Jane Doe")

    assert raised.value.retryable is retryable
    assert says in raised.value.user_message
    assert fake.call_count() == (ATTEMPTS if retryable else 1)


def test_the_adapter_logs_no_text_and_no_entity_values(
    fake: FakeComprehend, pii: ComprehendPii, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="imgbot")

    pii.detect("Jane Doe, jane@example.com")

    messages = [record.getMessage() for record in caplog.records if record.name.startswith("imgbot")]
    assert messages  # it does log: sizes, counts and types
    assert not any("Jane" in message or "example.com" in message for message in messages)


# -- the fake refuses what Comprehend refuses ---------------------------------------------------


def test_the_fake_refuses_oversized_text_languages_pii_detection_cannot_read_and_unknown_codes(aws: None) -> None:
    client = boto3.client("comprehend")

    def error_of(**kwargs: Any) -> tuple[str, int]:
        with pytest.raises(ClientError) as raised:
            client.detect_pii_entities(**kwargs)
        response = raised.value.response
        return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]

    assert error_of(Text="a" * (MAX_TEXT_BYTES + 1), LanguageCode="en") == ("TextSizeLimitExceededException", 400)
    assert error_of(Text="é" * 50_001, LanguageCode="en") == ("TextSizeLimitExceededException", 400)
    assert error_of(Text="Jane Doe", LanguageCode="fr") == ("UnsupportedLanguageException", 400)
    assert error_of(Text="Jane Doe", LanguageCode="xx") == ("ValidationException", 400)
    assert client.detect_pii_entities(Text="a" * MAX_TEXT_BYTES, LanguageCode="es")["Entities"] == []


def test_the_fake_wants_a_sigv4_signature_a_known_target_and_both_parameters(fake: FakeComprehend) -> None:
    def post(target: str, body: dict[str, Any], authorization: str | None) -> tuple[int, str]:
        headers = {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"}
        if authorization:
            headers["Authorization"] = authorization
        request = urllib.request.Request(fake.endpoint_url + "/", data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, ""
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())["__type"]

    signed = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/comprehend/aws4_request, Signature=00"
    detect = "Comprehend_20171127.DetectPiiEntities"
    assert post(detect, {"Text": "x", "LanguageCode": "en"}, None) == (403, "MissingAuthenticationTokenException")
    assert post("Comprehend_20171127.DetectSentiment", {}, signed) == (400, "UnknownOperationException")
    assert post(detect, {"Text": "x"}, signed) == (400, "ValidationException")
    assert post(detect, {"Text": "", "LanguageCode": "en"}, signed) == (400, "ValidationException")
    assert post(detect, {"Text": "x", "LanguageCode": "en"}, signed) == (200, "")


def utf8(text: str) -> int:
    return len(text.encode("utf-8"))
