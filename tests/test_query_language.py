"""The search query language, parser only: text in, a typed ``Query`` (or a helpful error) out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.core.search import (
    QUERY_HELP,
    And,
    ChannelFilter,
    HasFilter,
    LabelConfidence,
    LabelFilter,
    Not,
    Or,
    Query,
    SeenFilter,
    TextFilter,
    UnsafeFilter,
    UserFilter,
    Word,
    parse_query,
)
from bot.errors import ImgbotError, QuerySyntaxError

NOW = datetime(2026, 3, 18, 15, 30, tzinfo=UTC)  # a Wednesday


def where(text: str):  # type: ignore[no-untyped-def]
    return parse_query(text, now=NOW).where


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# -- terms -----------------------------------------------------------------------------------


class TestTerms:
    def test_an_empty_query_matches_everything(self):
        assert parse_query("") == Query(where=None, confidence=None)
        assert parse_query("   ").is_empty

    def test_a_free_word_is_a_word(self):
        assert where("cat") == Word("cat")

    def test_a_quoted_phrase_is_one_quoted_word(self):
        assert where('"ice cream"') == Word("ice cream", quoted=True)

    def test_curly_quotes_from_slack_clients_work_like_straight_ones(self):
        assert where("\u201cice cream\u201d") == Word("ice cream", quoted=True)

    def test_label_filter_takes_a_bare_or_quoted_name(self):
        assert where("label:dog") == LabelFilter("dog")
        assert where('label:"ice cream"') == LabelFilter("ice cream")

    def test_filter_names_are_case_insensitive(self):
        assert where("Label:Dog") == LabelFilter("Dog")

    def test_text_filter_keeps_punctuation_of_the_phrase(self):
        assert where('text:"50% off"') == TextFilter("50% off")
        assert where("text:SALE!") == TextFilter("SALE!")

    def test_unsafe_alone_and_with_a_category(self):
        assert where("unsafe") == UnsafeFilter()
        assert where("unsafe:violence") == UnsafeFilter("violence")

    def test_has_filters(self):
        assert where("has:text") == HasFilter("text")
        assert where("has:faces") == HasFilter("faces")
        assert where("has:labels") == HasFilter("labels")
        assert where("has:moderation") == HasFilter("moderation")
        assert where("has:face") == HasFilter("faces")

    def test_in_accepts_a_channel_with_or_without_hash(self):
        assert where("in:#general") == ChannelFilter("general")
        assert where("in:general") == ChannelFilter("general")

    def test_from_accepts_a_user_with_or_without_at(self):
        assert where("from:@alice") == UserFilter("alice")
        assert where("from:alice") == UserFilter("alice")


class TestSlackEscapes:
    def test_escaped_channel_with_name_matches_by_id(self):
        assert where("in:<#C0123ABC|general>") == ChannelFilter("C0123ABC", is_id=True)

    def test_escaped_channel_without_name_matches_by_id(self):
        assert where("in:<#C0123ABC>") == ChannelFilter("C0123ABC", is_id=True)

    def test_escaped_channel_with_an_empty_name_as_newer_slack_sends_it(self):
        assert where("in:<#C0123ABC|>") == ChannelFilter("C0123ABC", is_id=True)

    def test_escaped_user_with_and_without_name_matches_by_id(self):
        assert where("from:<@U0123|alice>") == UserFilter("U0123", is_id=True)
        assert where("from:<@U0123>") == UserFilter("U0123", is_id=True)

    def test_a_bare_channel_or_user_mention_filters_like_in_and_from(self):
        assert where("cat <#C0123ABC|general> <@U0123>") == And(
            (Word("cat"), ChannelFilter("C0123ABC", is_id=True), UserFilter("U0123", is_id=True))
        )

    def test_html_entities_from_slash_commands_are_decoded(self):
        query = parse_query("label:dog conf&gt;90 text:x&amp;y", now=NOW)
        assert query.confidence == LabelConfidence(90.0)
        assert query.where == And((LabelFilter("dog"), TextFilter("x&y")))

    def test_a_link_is_searched_as_its_text(self):
        assert where("<https://example.com|example>") == Word("example", quoted=True)

    def test_a_user_mention_is_not_a_channel(self):
        with pytest.raises(QuerySyntaxError, match="in: needs a channel"):
            parse_query("in:<@U0123>")


class TestConfidence:
    def test_conf_greater_than_is_exclusive(self):
        assert parse_query("label:dog conf>90").confidence == LabelConfidence(90.0, inclusive=False)

    def test_conf_at_least_is_inclusive(self):
        assert parse_query("conf>=90 label:dog").confidence == LabelConfidence(90.0, inclusive=True)

    def test_conf_applies_to_the_whole_query_and_is_not_a_term(self):
        query = parse_query("(cat OR dog) conf>85.5")
        assert query.where == Or((Word("cat"), Word("dog")))
        assert query.confidence == LabelConfidence(85.5)

    def test_conf_accepts_a_percent_sign(self):
        assert parse_query("conf>=90%").confidence == LabelConfidence(90.0, inclusive=True)


class TestDates:
    def test_after_a_day_starts_at_its_midnight_utc(self):
        assert where("after:2026-01-01") == SeenFilter(start=utc(2026, 1, 1))

    def test_before_a_day_ends_at_its_midnight_utc(self):
        assert where("before:2026-02-01") == SeenFilter(end=utc(2026, 2, 1))

    def test_on_a_day_covers_that_day(self):
        assert where("on:2026-01-15") == SeenFilter(utc(2026, 1, 15), utc(2026, 1, 16))

    def test_full_iso_datetimes_with_z_or_offset(self):
        assert where("after:2026-01-01T10:00:00Z") == SeenFilter(start=utc(2026, 1, 1, 10))
        assert where("before:2026-01-01T12:00+02:00") == SeenFilter(end=utc(2026, 1, 1, 10))

    def test_a_datetime_without_zone_is_utc(self):
        assert where("after:2026-01-01T10:30") == SeenFilter(start=utc(2026, 1, 1, 10, 30))

    def test_last_7d_24h_and_2w_are_rolling_windows(self):
        assert where("last 7d") == SeenFilter(start=NOW - timedelta(days=7))
        assert where("last 24h") == SeenFilter(start=NOW - timedelta(hours=24))
        assert where("last 2w") == SeenFilter(start=NOW - timedelta(weeks=2))
        assert where("last 2 weeks") == SeenFilter(start=NOW - timedelta(weeks=2))

    def test_today_and_yesterday_are_whole_utc_days(self):
        assert where("today") == SeenFilter(utc(2026, 3, 18), utc(2026, 3, 19))
        assert where("yesterday") == SeenFilter(utc(2026, 3, 17), utc(2026, 3, 18))

    def test_this_month_this_week_and_last_month_are_calendar_periods(self):
        assert where("this month") == SeenFilter(utc(2026, 3, 1), utc(2026, 4, 1))
        assert where("this week") == SeenFilter(utc(2026, 3, 16), utc(2026, 3, 23))
        assert where("last month") == SeenFilter(utc(2026, 2, 1), utc(2026, 3, 1))
        assert where("last week") == SeenFilter(utc(2026, 3, 9), utc(2026, 3, 16))

    def test_last_month_in_january_is_december_of_the_year_before(self):
        january = datetime(2026, 1, 10, tzinfo=UTC)
        assert parse_query("last month", now=january).where == SeenFilter(utc(2025, 12, 1), utc(2026, 1, 1))

    def test_a_naive_now_is_taken_as_utc(self):
        assert parse_query("today", now=datetime(2026, 3, 18, 1)).where == SeenFilter(
            utc(2026, 3, 18), utc(2026, 3, 19))

    def test_last_and_this_before_other_words_are_plain_words(self):
        assert where("last chance") == And((Word("last"), Word("chance")))
        assert where("this cat") == And((Word("this"), Word("cat")))

    def test_a_quoted_today_is_a_word(self):
        assert where('"today"') == Word("today", quoted=True)


# -- combining -------------------------------------------------------------------------------


class TestCombining:
    def test_terms_side_by_side_are_all_required(self):
        assert where("cat in:#pets") == And((Word("cat"), ChannelFilter("pets")))

    def test_an_explicit_and_is_the_same_as_none(self):
        assert where("cat AND dog") == where("cat dog")

    def test_or_binds_tighter_than_juxtaposition(self):
        assert where("cat OR dog in:#x") == And((Or((Word("cat"), Word("dog"))), ChannelFilter("x")))

    def test_a_chain_of_ors_is_one_or(self):
        assert where("a OR b OR c") == Or((Word("a"), Word("b"), Word("c")))

    def test_lowercase_or_is_just_a_word(self):
        assert where("cat or dog") == And((Word("cat"), Word("or"), Word("dog")))

    def test_minus_negates_a_filter_a_word_or_a_phrase(self):
        assert where("-label:cat") == Not(LabelFilter("cat"))
        assert where("dog -cat") == And((Word("dog"), Not(Word("cat"))))
        assert where('-"ice cream"') == Not(Word("ice cream", quoted=True))

    def test_a_hyphen_inside_a_word_is_not_negation(self):
        assert where("e-mail") == Word("e-mail")

    def test_double_negation_cancels(self):
        assert where("--label:cat") == Word("--label:cat")  # "--" starts a word, not two negations
        assert where("-(-label:cat)") == LabelFilter("cat")

    def test_parentheses_group_terms(self):
        assert where("(cat OR dog) (in:#a OR in:#b)") == And((
            Or((Word("cat"), Word("dog"))),
            Or((ChannelFilter("a"), ChannelFilter("b"))),
        ))

    def test_a_negated_group(self):
        assert where("cat -(in:#a OR from:bob)") == And((
            Word("cat"), Not(Or((ChannelFilter("a"), UserFilter("bob")))),
        ))

    def test_a_group_inside_or(self):
        assert where("(cat in:#a) OR dog") == Or((And((Word("cat"), ChannelFilter("a"))), Word("dog")))

    def test_leaves_report_negation(self):
        query = parse_query("cat -(dog OR label:x) -(-text:y)")
        assert list(query.leaves()) == [
            (Word("cat"), False), (Word("dog"), True), (LabelFilter("x"), True), (TextFilter("y"), False),
        ]

    def test_the_issues_example_parses(self):
        query = parse_query('label:dog text:"50% off" unsafe:violence conf>90 in:#general from:@alice '
                            "after:2026-01-01 before:2026-02-01 has:text has:faces -label:cat", now=NOW)
        assert query.confidence == LabelConfidence(90.0)
        assert isinstance(query.where, And)
        assert len(query.where.terms) == 10

    def test_words_with_sql_and_fts_syntax_are_just_words(self):
        assert where("'; DROP TABLE images; --") == And((
            Word("';"), Word("DROP"), Word("TABLE"), Word("images;"), Word("--")))
        assert where("*") == Word("*")
        assert where('"NEAR("') == Word("NEAR(", quoted=True)

    def test_a_lone_quote_mark_is_a_word_and_an_unclosed_quote_runs_to_the_end(self):
        assert where('"') == Word('"')
        assert where('text:"50% off') == TextFilter("50% off")

    def test_an_emoji_code_or_a_time_is_a_word_not_a_filter(self):
        assert where(":dog:") == Word(":dog:")
        assert where("12:30") == Word("12:30")


# -- errors ----------------------------------------------------------------------------------

BAD_QUERIES = {
    "lable:dog": 'Unknown filter "lable:". Did you mean "label:"?',
    "txt:hello": 'Did you mean "text:"?',
    "frm:alice": 'Did you mean "from:"?',
    "zzz:red": 'Unknown filter "zzz:". Filters are',
    "label:": "label: needs a label name",
    "text:": "text: needs the text",
    "in:": "in: needs a channel",
    "in:#": "in: needs a channel",
    "from:@": "from: needs a person",
    "unsafe:": "unsafe: needs a category",
    "after:": "after: needs a date",
    "after:2026-13-01": "after: needs a date like 2026-01-31",
    "before:yesterday": "before: needs a date like",
    "on:tuesday": "on: needs a date like",
    "has:cats": "has: can be text, faces, labels, moderation, secret or pii",
    "secret:awz": "Did you mean \"secret:aws\"",
    "pii:em%il": "pii: does not know",
    "conf>abc": "needs a number from 0 to 100",
    "conf>120": "needs a number from 0 to 100",
    "conf<50": "use conf> or conf>=",
    "conf>90 OR cat": "cannot be one side of OR",
    "-conf>90": "cannot be negated",
    "conf>90 conf>80": "only once",
    "(cat OR dog": 'A "(" is not closed',
    "cat)": 'There is a ")" without a matching "("',
    "()": "nothing between the parentheses",
    "cat OR": "OR needs a search term on both sides",
    "OR cat": "OR needs a search term on both sides",
    "cat OR OR dog": "OR needs a search term on both sides",
    "AND cat": "AND needs a search term on both sides",
    "- cat": '"-" must be followed by the term',
    '""': "The quotes are empty",
    "last 7y": '"7y" is not a time span',
    "NEAR(cat": 'A "(" is not closed',
}


class TestErrors:
    @pytest.mark.parametrize("text", list(BAD_QUERIES))
    def test_a_bad_query_says_what_is_wrong(self, text):
        with pytest.raises(QuerySyntaxError) as caught:
            parse_query(text, now=NOW)
        assert BAD_QUERIES[text] in caught.value.user_message

    @pytest.mark.parametrize("text", list(BAD_QUERIES))
    def test_every_error_message_ends_with_an_example(self, text):
        with pytest.raises(QuerySyntaxError) as caught:
            parse_query(text, now=NOW)
        message = caught.value.user_message
        assert "Example: " in message
        example = message.rsplit("Example: ", 1)[1]
        assert example and "\n" not in message

    def test_the_typo_message_reads_like_the_issue_asks(self):
        with pytest.raises(QuerySyntaxError) as caught:
            parse_query("lable:dog")
        assert caught.value.user_message.startswith('Unknown filter "lable:". Did you mean "label:"?')
        assert caught.value.user_message.endswith('Example: label:dog text:"50% off" after:2026-01-01')

    def test_an_unknown_filter_says_how_to_search_the_words_instead(self):
        with pytest.raises(QuerySyntaxError, match="put it in quotes"):
            parse_query("https://example.com")

    def test_examples_in_error_messages_parse(self):
        for text in BAD_QUERIES:
            with pytest.raises(QuerySyntaxError) as caught:
                parse_query(text, now=NOW)
            example = caught.value.user_message.rsplit("Example: ", 1)[1]
            for alternative in example.split(" or "):
                parse_query(alternative, now=NOW)

    def test_a_query_syntax_error_is_an_imgbot_error_with_detail_for_the_log(self):
        with pytest.raises(ImgbotError) as caught:
            parse_query("lable:dog")
        assert "lable:dog" in caught.value.detail

    def test_too_many_terms_is_an_error_not_a_huge_sql_statement(self):
        with pytest.raises(QuerySyntaxError, match="too many terms"):
            parse_query(" OR ".join(f"w{i}" for i in range(60)))

    def test_deep_nesting_is_an_error(self):
        with pytest.raises(QuerySyntaxError, match="nested parentheses"):
            parse_query("(" * 20 + "cat" + ")" * 20)

    def test_a_very_long_query_is_an_error(self):
        with pytest.raises(QuerySyntaxError, match="too long"):
            parse_query("cat " * 1000)


class TestHelp:
    def test_help_shows_every_filter_with_examples(self):
        for fragment in ("label:", "text:", "unsafe", "conf>", "in:#", "from:@", "after:", "before:",
                         "has:text", "has:faces", "-label:", " OR ", "last 7d", "this month", "today", "Examples:"):
            assert fragment in QUERY_HELP

    def test_every_example_line_in_the_help_parses(self):
        examples = QUERY_HELP.split("Examples:", 1)[1].strip().splitlines()
        assert examples
        for line in examples:
            parse_query(line.strip(), now=NOW)
