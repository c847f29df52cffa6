"""Every sentence imgbot says in Slack, in one place (as bolt's ``logger/messages.py`` does).

Each is a tiny function so the wording can be read, reviewed and tested together.
They return plain text; callers escape anything that came from outside.
"""

from __future__ import annotations


def not_an_image(name: str) -> str:
    return f"{name} does not look like a picture, so I skipped it."


def missing_files_read_scope() -> str:
    return (
        "Slack would not hand me the file: it sent a sign-in page instead. "
        "The app is probably missing the `files:read` permission; ask whoever installed imgbot to "
        "add it (it is in slack-manifest.yml) and reinstall the app."
    )


def not_slack_file_host() -> str:
    return "That file is not stored on Slack, so I did not download it."


def too_large(limit_bytes: int) -> str:
    return f"The picture is larger than the {limit_bytes // (1024 * 1024)} MB I accept."


def download_failed() -> str:
    return "I could not download the picture from Slack. I will try again later."


def file_refused() -> str:
    return "Slack would not let me read this file, so it was not analysed."


def file_unavailable() -> str:
    return ("The file is no longer available to me in Slack (it may have been deleted, "
            "or shared from another organisation).")


def analysis_failed_generic() -> str:
    return "Something went wrong while I was looking at this picture."


def unexpected_error() -> str:
    return "Something unexpected went wrong on my side; the team running imgbot can find the details in its log."


def search_no_results(query: str) -> str:
    return f"No pictures match {query}."


def membership_failed() -> str:
    return "I could not check which channels you are in, so I cannot search right now. Please try again in a minute."


def report_not_in_channel() -> str:
    return "Invite me to this channel (`/invite @imgbot`) and I will post the full report file here."


def report_upload_failed() -> str:
    return "I could not upload the full report file here."


def moderation_flagged() -> str:
    return "This picture may break the content rules; a moderator has been asked to look."


def moderation_flagged_no_channel() -> str:
    return "This picture may break the content rules."


def moderation_decision(decision: str, user_id: str) -> str:
    verb = "confirmed" if decision == "confirmed" else "dismissed"
    return f"Flag {verb} by <@{user_id}>."


# -- /imgbot (channel modes) ------------------------------------------------------------------------

MODE_DESCRIPTIONS = {
    "full": "every picture gets 👀, a reply in its thread with what I found, an annotated copy, then ✅ / ⚠️ / ❌",
    "quiet": "pictures are analysed and searchable; only ✅ / ⚠️ / ❌ reactions, and a reply only when a "
             "picture is flagged or could not be analysed",
    "on-demand": "nothing until someone asks: react with 🔍, use the message's *Analyse images* shortcut or "
                 "mention @imgbot in its thread; then what `full` gives, once",
    "off": "I do nothing here: pictures are not downloaded, stored or searchable",
}


def mode_help(current: str, channel_id: str) -> str:
    modes = "\n".join(f"• `{mode}`: {text}" for mode, text in MODE_DESCRIPTIONS.items())
    return (f"imgbot is in *{current}* mode in <#{channel_id}>.\n{modes}\n"
            "Any member of the channel can change it: `/imgbot mode quiet`.\n"
            "Also: `/imgsearch label:dog last 7d` to search, `/imgreport this month` for a report.")


def mode_set(user_id: str, mode: str) -> str:
    return f"<@{user_id}> set imgbot to {mode} here."


def mode_unchanged(mode: str) -> str:
    return f"imgbot is already in {mode} mode here."


def unknown_mode(given: str) -> str:
    shown = given.replace("`", "'")[:40]
    return (f"`{shown}` is not a mode. The modes are {', '.join(f'`{m}`' for m in MODE_DESCRIPTIONS)}. "
            "Example: `/imgbot mode quiet`")


def unknown_imgbot_command(given: str) -> str:
    shown = given.replace("`", "'")[:40]
    return (f"I do not know `/imgbot {shown}`. Try `/imgbot mode quiet` to change what I do in this channel, "
            "or `/imgbot help`.")


def mode_needs_membership() -> str:
    return "Only members of this channel can change what imgbot does here."


def mode_needs_channel() -> str:
    return "Modes are set per channel: run `/imgbot mode quiet` in the channel itself."


def nothing_to_analyse() -> str:
    return "That message has no pictures for me to analyse. Ask on a message with an image in it."


def off_here() -> str:
    return ("imgbot is off in this channel, so I leave its pictures alone. "
            "A member can change that: `/imgbot mode full`.")


def mode_set_not_announced() -> str:
    return "Done, but I could not announce it in the channel (am I a member of it?)."


# -- sensitive data ----------------------------------------------------------------------------

_KIND_NAMES = {
    "aws-access-key": "an AWS access key ID", "aws-secret-key": "an AWS secret access key",
    "slack-token": "a Slack token", "slack-webhook": "a Slack webhook URL", "github-token": "a GitHub token",
    "google-api-key": "a Google API key", "stripe-live-key": "a Stripe live key", "private-key": "a private key",
    "jwt": "a login token (JWT)", "password": "a password", "pin": "a PIN", "card": "a payment card number",
    "card-cvv": "a card security code", "card-expiry": "a card expiry date", "email": "an email address",
    "phone": "a phone number", "iban": "a bank account number (IBAN)", "bank-account": "a bank account number",
    "name": "a person's name", "address": "a postal address", "ssn": "a social security number",
}


def kind_name(kind: str) -> str:
    """``aws-access-key`` → "an AWS access key ID"; unknown kinds as words ("passport number")."""
    return _KIND_NAMES.get(kind, kind.replace("-", " "))


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def sensitive_warning(kinds: list[str]) -> str:
    """The thread's warning: what it seems to show, who can read it, what to do; never a character of it."""
    names = _listed(list(dict.fromkeys(kind_name(kind) for kind in kinds)))
    if any(kind in {"card", "card-cvv", "card-expiry"} for kind in kinds) and all(
            kind in {"card", "card-cvv", "card-expiry"} for kind in kinds):
        action = "Delete the message now; if the card is real, its holder should ask the bank to replace it."
    elif kinds == ["password"]:
        action = "Delete the message now, then change the password: deleting does not undo that it was seen."
    else:
        action = ("Delete the message now, then rotate the key: make a new one and revoke this one "
                  "(deleting does not undo that it was seen).")
    return (f"This image seems to show {names}. Everyone in this channel can read it. {action} "
            "I have not kept it: it is masked in search and reports.")


def security_notice(kinds: list[str], channel_id: str, user_id: str | None) -> str:
    """For IMGBOT_SECURITY_CHANNEL: where and what kind, never the image or the value."""
    names = _listed(list(dict.fromkeys(kind_name(kind) for kind in kinds)))
    who = f", posted by <@{user_id}>," if user_id else ""
    return f"An image in <#{channel_id}>{who} seems to show {names}. The thread has been warned."


# -- how an image looks ------------------------------------------------------------------------


def quality_flag(flag: str, *, width: int, height: int) -> str:
    """``blurry`` → "blurry"; ``small`` → "1,024 px: small for print"."""
    if flag == "small":
        return f"{max(width, height):,} px: small for print"
    if flag == "dark":
        return "dark"
    return "blurry" if flag == "blurry" else flag
