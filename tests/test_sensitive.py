"""Secrets and personal data in text read from images: found however OCR cut them, never kept whole."""

from __future__ import annotations

import pytest

from bot.core.sensitive import Finding, find_sensitive, iban_ok, luhn_ok
from bot.core.types import BoundingBox, TextDetection

BOX = BoundingBox(0.1, 0.1, 0.5, 0.05)
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SLACK_TOKEN = "xoxb-123456789012-1234567890123-abcdefghijABCDEFGHIJklmn"


def lines(*texts: str) -> list[TextDetection]:
    return [TextDetection(id=n, kind="LINE", text=text, confidence=99.0, box=BOX) for n, text in enumerate(texts)]


def kinds(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.category, f.kind) for f in findings}


@pytest.mark.parametrize(("text", "kind"), [
    (f"export AWS_ACCESS_KEY_ID={AWS_KEY_ID}", "aws-access-key"),
    (f"token: {SLACK_TOKEN}", "slack-token"),
    ("https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", "slack-webhook"),
    ("GITHUB_TOKEN=ghp_1234567890abcdefghijABCDEFGHIJ123456", "github-token"),
    ("key AIzaSyA1234567890abcdefghijklmnopqrstuv", "google-api-key"),
    ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe-live-key"),
    ("-----BEGIN RSA PRIVATE KEY-----", "private-key"),
    ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "jwt"),
    ("password: hunter2!", "password"),
    (f"aws_secret_access_key = {AWS_SECRET}", "aws-secret-key"),
])
def test_each_kind_of_secret_is_found(text: str, kind: str) -> None:
    assert ("secret", kind) in kinds(find_sensitive(lines(text)))


@pytest.mark.parametrize("text", [
    "A KIAIOSFODNN7EXAMPLE",  # cut inside the prefix the scan looks for first
    "XOXB-123456789012-1234567890123-ABCDEFGHIJABCDEFGHIJKLMN",  # Slack's pattern ignores case
    "gh p_1234567890abcdefghijABCDEFGHIJ123456",
    "(AI zaSyA1234567890abcdefghijklmnopqrstuv)",  # and in brackets
])
def test_a_token_cut_inside_its_prefix_or_in_other_case_is_still_found(text: str) -> None:
    assert [f.category for f in find_sensitive(lines(text))] == ["secret"]


def test_a_key_read_with_spaces_or_split_over_two_lines_is_still_found() -> None:
    spaced = find_sensitive(lines("AKIA IOSF ODNN 7EXA MPLE"))
    split = find_sensitive(lines("AWS key: AKIAIOSFOD", "NN7EXAMPLE and more"))

    assert ("secret", "aws-access-key") in kinds(spaced)
    assert ("secret", "aws-access-key") in kinds(split)
    assert next(f for f in split if f.kind == "aws-access-key").line_ids == (0, 1)


def test_the_secret_of_a_key_pair_shown_together_is_found_without_its_name() -> None:
    found = kinds(find_sensitive(lines(f"Access key ID {AWS_KEY_ID}", f"Secret access key {AWS_SECRET}")))

    assert {("secret", "aws-access-key"), ("secret", "aws-secret-key")} <= found


def test_a_finding_keeps_a_masked_form_never_the_value() -> None:
    findings = find_sensitive(lines(f"{AWS_KEY_ID} {SLACK_TOKEN}", "card 4111 1111 1111 1111", "sales@acme.com"))
    masked = {f.kind: f.masked for f in findings}

    assert masked["aws-access-key"] == "AKIA…MPLE"
    assert masked["card"] == "•••• 1111"
    assert masked["email"] == "s•••@acme.com"
    for finding in findings:
        assert AWS_KEY_ID not in finding.masked and SLACK_TOKEN not in finding.masked
        assert "4111111111111111" not in finding.masked.replace(" ", "")


@pytest.mark.parametrize("text", [
    "xAKIAIOSFODNN7EXAMPLE is a product code",  # AKIA inside a word
    "order 4111 1111 1111 1112",  # 16 digits failing the Luhn check
    "GB82 WEST 1234 5698 7654 33",  # an IBAN failing its checksum
    "a plain banner: SUMMER SALE 50% OFF",
])
def test_look_alikes_are_not_findings(text: str) -> None:
    found = kinds(find_sensitive(lines(text)))

    assert not {k for k in found if k[0] == "secret"}
    assert ("pii", "card") not in found and ("pii", "iban") not in found


def test_personal_data_is_found_and_tagged() -> None:
    found = kinds(find_sensitive(lines("Call +1 415 555 2671", "or write to jane.doe@example.org",
                                       "IBAN GB82 WEST 1234 5698 7654 32", "Visa 4111-1111-1111-1111")))

    assert found >= {("pii", "phone"), ("pii", "email"), ("pii", "iban"), ("pii", "card")}


def test_the_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


def test_each_finding_is_reported_once() -> None:
    findings = find_sensitive(lines(f"key {AWS_KEY_ID}", f"again {AWS_KEY_ID}"))

    assert [f.kind for f in findings].count("aws-access-key") == 1


def test_a_token_does_not_run_on_into_the_words_after_it() -> None:
    findings = find_sensitive(lines(f"SLACK_BOT_TOKEN={SLACK_TOKEN}", "card 4111 1111 1111 1111 exp 12/29",
                                    f"token {SLACK_TOKEN[:40]} {SLACK_TOKEN[40:]} please rotate"))
    tokens = [f for f in findings if f.kind == "slack-token"]

    assert [f.masked for f in tokens] == ["xoxb…klmn"]
    assert tokens[0].line_ids == (0, 2)


def test_a_token_read_in_pieces_is_covered_to_its_end_even_when_a_piece_looks_plain() -> None:
    [token] = find_sensitive(lines("xoxa-2-123456789012-abcdefghijk lmnopqrstuvwxyz"))
    assert token.kind == "slack-token" and token.spans == ((0, 0, 47),)


def test_a_secret_key_split_over_lines_is_found_by_its_name_alone() -> None:
    console = find_sensitive(lines("Secret access key", f"{AWS_SECRET[:25]}", f"{AWS_SECRET[25:]}  Show"))
    named = find_sensitive(lines(f"aws_secret_access_key = {AWS_SECRET[:22]}", AWS_SECRET[22:]))
    unnamed = find_sensitive(lines("checksum", "a" * 20 + "B1" + "c" * 18))

    assert ("secret", "aws-secret-key") in kinds(console) and ("secret", "aws-secret-key") in kinds(named)
    assert not kinds(unnamed)
