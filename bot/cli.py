"""The ``imgbot`` command line: the same core as the Slack bot, for batch work.

Every expected failure is an ``ImgbotError``; it is printed as one line on
stderr and mapped to the documented exit status, never a traceback.
Exit statuses: 0 success, 1 an image failed / not found, 2 usage or query error.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from bot import __version__
from bot.config import SETTINGS, Settings, load_dotenv_file
from bot.core.types import Finding, IngestResult, Source
from bot.errors import ConfigError, ImgbotError, QuerySyntaxError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jfif", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", ".heic", ".heif",
                    ".avif"}

F = TypeVar("F", bound=Callable[..., Any])


def _settings_help() -> str:
    width = max(len(spec.env) for spec in SETTINGS)
    lines = [f"  {spec.env.ljust(width)}  {spec.help} (default: {spec.default or spec.unset.strip('()')})"
             for spec in SETTINGS]
    return ("Environment variables (a .env file in the working directory is read too):\n\n\b\n"
            + "\n".join(lines))


#: Exit status per error type: 2 for what the caller typed or configured, 1 for everything else.
_EXIT_STATUS: dict[type[ImgbotError], int] = {QuerySyntaxError: 2, ConfigError: 2}


def handle_errors(func: F) -> F:
    """Turn imgbot's errors into one readable line on stderr and the documented exit status."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ImgbotError as err:
            click.echo(f"Error: {err.user_message}", err=True)
            sys.exit(next((code for kind, code in _EXIT_STATUS.items() if isinstance(err, kind)), 1))

    return wrapper  # type: ignore[return-value]


def _setup_logging(settings: Settings, *, quiet_console: bool = False) -> None:
    level = getattr(logging, settings.log_level)
    handler: logging.Handler
    if quiet_console:
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, show_time=False, markup=False)
        level = max(level, logging.WARNING)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Their DEBUG lines hold request and response bodies (text read from images, tokens): never below WARNING.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "alembic", "slack_sdk"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _load_settings() -> Settings:
    load_dotenv_file(os.path.join(os.getcwd(), ".env"))
    return Settings.from_env()


def _core(settings: Settings) -> Any:
    from bot.wiring import build_core

    return build_core(settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
             epilog=_settings_help())
@click.version_option(__version__, prog_name="imgbot")
def cli() -> None:
    """imgbot: turn a team's images into searchable, reportable data (labels, text, moderation)."""


# -- analyze ----------------------------------------------------------------------------------


def iter_image_files(paths: tuple[Path, ...]) -> Iterator[Path]:
    """Named files as given; folders walked recursively for image extensions, hidden entries skipped."""
    for path in paths:
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file() and found.suffix.lower() in IMAGE_EXTENSIONS and not any(
                    part.startswith(".") for part in found.relative_to(path).parts
                ):
                    yield found
        else:
            yield path


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--concurrency", type=click.IntRange(min=1), help="Images analysed at once (IMGBOT_CONCURRENCY).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@handle_errors
def analyze(paths: tuple[Path, ...], concurrency: int | None, progress: bool | None) -> None:
    """Analyse image files and folders (recursively), storing originals and results.

    Continues past bad files; images left unfinished by an earlier run are finished first.
    Exit status: 0 all analysed, 1 any image failed, 2 usage error.
    """
    settings = _load_settings()
    if concurrency:
        settings = settings.replace(concurrency=concurrency)
    show_bar = sys.stderr.isatty() if progress is None else progress
    _setup_logging(settings, quiet_console=show_bar)
    core = _core(settings)
    failed = _analyse_files(core, list(iter_image_files(paths)), show_bar)
    core.database.dispose()
    sys.exit(1 if failed else 0)


def _analyse_files(core: Any, files: list[Path], show_bar: bool) -> int:
    """Finish leftovers, analyse ``files``, print the summary; returns how many failed."""
    core.warm_models()  # first: the pixel helpers start while the analyser is built
    core.analyzer  # noqa: B018  (build it now: a configuration problem is one message, not one per image)
    started = time.perf_counter()
    counts = {"done": 0, "reused": 0, "failed": 0, "pending": 0, "resumed": 0}
    failures: list[tuple[str, str]] = []

    sensitive: list[IngestResult] = []

    def tally(result: IngestResult) -> None:
        counts[result.outcome] += 1
        if result.outcome == "failed":
            failures.append((_name_of(result), result.reason or "unknown reason"))
        if result.sensitive:
            sensitive.append(result)

    resumed = core.finish_pending()
    for result in resumed:
        counts["resumed"] += 1
        tally(result)

    items = [(path, Source.file(str(path.resolve()))) for path in files]
    if show_bar:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("[bold]analysing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      TextColumn("{task.fields[last]}"), transient=False) as bar:
            task = bar.add_task("analyse", total=len(items), last="")

            def on_result(result: IngestResult) -> None:
                tally(result)
                bar.update(task, advance=1, last=f"{result.outcome} {_name_of(result)}")

            core.ingest_many(items, on_result=on_result)
    else:
        def on_plain(result: IngestResult) -> None:
            tally(result)
            detail = f" reason: {result.reason}" if result.outcome == "failed" else (
                f" labels={result.labels} text_lines={result.text_lines} flagged={'yes' if result.flagged else 'no'}"
            )
            click.echo(f"{result.outcome:7} id={result.image_id} {_name_of(result)}{detail}")
            for line in _finding_lines(result.sensitive):
                click.echo(f"        {line}")

        core.ingest_many(items, on_result=on_plain)

    seconds = time.perf_counter() - started
    total = len(items) + counts["resumed"]
    rate = total / seconds if seconds > 0 else 0.0
    bound = getattr(core.analyzer, "images_per_second", None)
    analysed_rate = (counts["done"] + counts["failed"]) / seconds if seconds > 0 else 0.0
    click.echo(
        f"analysed {counts['done']}, reused {counts['reused']}, failed {counts['failed']}"
        + (f", resumed {counts['resumed']}" if counts["resumed"] else "")
        + (f", in progress elsewhere {counts['pending']}" if counts["pending"] else "")
        + f" — {total} images in {seconds:.1f} s ({rate:.1f} images/s)"
    )
    if bound:
        click.echo(f"rate: {analysed_rate:.1f} images/s analysed, of a bound of {bound:g} images/s "
                   f"({analysed_rate / bound:.0%}; the {core.analyzer.name} quota per API, IMGBOT_REKOGNITION_TPS); "
                   f"up to {core.flow.target()} images in flight at the end, "
                   f"{core.flow.seconds_per_image:.2f} s each")
    if sensitive:
        click.echo(f"sensitive data in {len(sensitive)} images (masked; `imgbot search has:secret` lists them):")
        for result in sorted(sensitive, key=lambda r: r.image_id or 0):
            click.echo(f"  id={result.image_id} {_name_of(result)}: "
                       + "; ".join(_finding_lines(result.sensitive)))
    for name, reason in failures:
        click.echo(f"failed: {name}: {reason}", err=True)
    return counts["failed"]


def _finding_lines(found: Iterable[Finding]) -> list[str]:
    """``⚠ secret aws-access-key AKIA…MPLE``: kinds and masks only, never a value."""
    return [f"⚠ {f.category} {f.kind} {f.masked}" for f in found]


def _name_of(result: IngestResult) -> str:
    return Path(result.source_name).name if result.source_name else f"image {result.image_id}"


# -- search, report, show ---------------------------------------------------------------------


@cli.command()
@click.argument("query", nargs=-1)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Results per page.")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of matching images.")
@handle_errors
def search(query: tuple[str, ...], limit: int, page: int, as_json: bool) -> None:
    """Find analysed images. Words are joined, so quotes are needed only for phrases.

    \b
    Examples:
      imgbot search cat
      imgbot search label:animal conf>90 -label:dog
      imgbot search 'text:"50% off"' after:2026-01-01
      imgbot search unsafe in:#marketing
    """
    settings = _load_settings()
    _setup_logging(settings)
    core = _core(settings)
    text = " ".join(query)
    result = core.search(text, page=page, per_page=limit)
    for image_id in result.unseen:
        click.echo(f"note: no analysed image {image_id}, so like:{image_id} and dupes:{image_id} match nothing",
                   err=True)
    if as_json:
        click.echo(json.dumps([
            hit.image.to_json(label_min_confidence=settings.label_min_confidence,
                              moderation_min_confidence=settings.moderation_min_confidence)
            | {"score": round(hit.score, 3), "snippet": hit.snippet}
            for hit in result.hits
        ], indent=2, ensure_ascii=False))
    elif not result.hits:
        click.echo("No images match." if result.total == 0 else "No more results.")
    else:
        for hit in result.hits:
            image = hit.image
            labels = ", ".join(f"{label.name} {label.confidence:.0f}%"
                               for label in image.top_labels(settings.label_min_confidence))
            where = hit.sighting.source if hit.sighting else "-"
            when = hit.sighting.seen_at.strftime("%Y-%m-%d") if hit.sighting else "-"
            snippet = f'  “{hit.snippet}”' if hit.snippet else ""
            flag = "  ⚠ flagged" if image.is_flagged(settings.moderation_min_confidence) else ""
            kinds = sorted({f"{f.category}:{f.kind}" for f in image.sensitive})
            flag += f"  ⚠ {', '.join(kinds)}" if kinds else ""
            click.echo(f"#{image.id}  {when}  {where}  {labels or '(no labels)'}{snippet}{flag}")
        shown = (result.page - 1) * result.per_page + len(result.hits)
        more = f"; next: --page {result.page + 1}" if result.has_more else ""
        click.echo(f"{shown} of {result.total_text} matching images{more}", err=True)
    core.database.dispose()


@cli.command()
@click.argument("query", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "json"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to FILE instead of stdout.")
@click.option("--title", default="imgbot report", show_default=True)
@handle_errors
def report(query: tuple[str, ...], fmt: str, output: Path | None, title: str) -> None:
    """A report over every image the QUERY matches (all images when none): top labels,
    images with text, flagged images, failures, and each image's labels and text."""
    settings = _load_settings()
    _setup_logging(settings)
    core = _core(settings)
    data = core.report(" ".join(query), title=title, full_records=fmt == "json")
    rendered = core.render_report(data, fmt)
    if output:
        output.write_text(rendered, encoding="utf-8")
        click.echo(f"wrote {output} ({len(data.images)} images)", err=True)
    else:
        click.echo(rendered, nl=not rendered.endswith("\n"))
    core.database.dispose()


@cli.command()
@click.argument("id_or_sha256")
@click.option("--json", "as_json", is_flag=True, help="Print the full stored result as JSON.")
@handle_errors
def show(id_or_sha256: str, as_json: bool) -> None:
    """Everything stored about one image, by id or SHA-256 (or its first 8+ characters). Exit 1 if not found."""
    settings = _load_settings()
    _setup_logging(settings)
    core = _core(settings)
    record = core.show(id_or_sha256)
    data = record.to_json(moderation_min_confidence=settings.moderation_min_confidence)
    data["raw_available"] = True
    data["near_duplicates"] = [{"id": image_id, "distance": bits} for image_id, bits in
                               (core.near_duplicates(record.id) if record.phash is not None else [])]
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(f"image {record.id}  {record.sha256}")
        click.echo(f"  status: {record.status}" + (f" — {record.failure_reason}" if record.failure_reason else ""))
        click.echo(f"  {record.format} {record.width}×{record.height}, {record.byte_size:,} bytes; "
                   f"stored at {record.storage_uri or '-'}")
        if record.provider:
            versions = ", ".join(f"{k} {v}" for k, v in record.model_versions.items())
            click.echo(f"  analysed by {record.provider}" + (f" ({versions})" if versions else ""))
        for sighting in record.sightings:
            gone = " (deleted)" if sighting.deleted else ""
            link = f" {sighting.permalink}" if sighting.permalink else ""
            name = f" {sighting.name}" if sighting.source_kind == "slack" else ""
            click.echo(f"  seen {sighting.seen_at:%Y-%m-%d %H:%M} at {sighting.source}{name}{link}{gone}")
        if record.labels:
            click.echo("  labels:")
            for label in record.labels:
                parents = f"  ← {', '.join(label.parents)}" if label.parents else ""
                count = len(label.instances)
                boxes = f"  [{count} box{'' if count == 1 else 'es'}]" if count else ""
                click.echo(f"    {label.name} {label.confidence:.1f}%{parents}{boxes}")
        if record.lines:
            click.echo("  text:")
            for line in record.lines:
                click.echo(f"    “{line.text}” ({line.confidence:.0f}%)")
        if record.moderation:
            click.echo("  moderation:")
            for item in record.moderation:
                parent = f" (under {item.parent_name})" if item.parent_name else ""
                click.echo(f"    {item.name}{parent} {item.confidence:.1f}%")
        if record.moderation_decision:
            d = record.moderation_decision
            click.echo(f"  moderator: {d.decision} by {d.user_id} at {d.decided_at:%Y-%m-%d %H:%M}")
        if record.people:
            click.echo(f"  people: {record.people}")
        if record.faces:
            click.echo(f"  faces: {len(record.faces)}")
        if record.properties is not None:
            props = record.properties
            colours = ", ".join(f"{c.css_color} {c.pixel_percent:.0f}% ({c.hex_code}, {c.simplified_color})"
                                for c in props.dominant_colors)
            click.echo(f"  colours ({props.source}): {colours or '-'}")
            flags = f"  ⚠ {', '.join(record.quality_flags)}" if record.quality_flags else ""
            click.echo(f"  quality: brightness {props.brightness:.0f}, sharpness {props.sharpness:.0f}, "
                       f"contrast {props.contrast:.0f}{flags}")
        near = core.near_duplicates(record.id) if record.phash is not None else []
        if near:
            click.echo("  near-duplicates: " + ", ".join(f"#{image_id} ({bits} bits)" for image_id, bits in near[:10]))
        if record.sensitive:
            click.echo("  sensitive data (masked):")
            for line in _finding_lines(record.sensitive):
                click.echo(f"    {line}")
    core.database.dispose()


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("imgbot-report.md"),
              show_default=True, help="Where to write the Markdown report.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@handle_errors
def demo(output: Path, progress: bool | None) -> None:
    """Analyse the bundled sample images, show a few searches and write a report.

    Uses the configured settings, so by default it runs offline: the local engine, a SQLite
    file and a folder under ./data.
    """
    from bot.samples import sample_paths

    settings = _load_settings()
    show_bar = sys.stderr.isatty() if progress is None else progress
    _setup_logging(settings, quiet_console=show_bar)
    core = _core(settings)
    click.echo(f"Analysing {len(sample_paths())} sample images with the {settings.analyzer} analyser…")
    failed = _analyse_files(core, sample_paths(), show_bar)
    for query in ("label:animal", "text:sale", "label:advertisement", "people>0", "unsafe"):
        page = core.search(query, per_page=5)
        click.echo(f"\n$ imgbot search {query}   ({page.total_text} match{'es' if page.total != 1 else ''})")
        for hit in page.hits:
            labels = ", ".join(f"{label.name} {label.confidence:.0f}%"
                               for label in hit.image.top_labels(settings.label_min_confidence, 4))
            name = Path(hit.sighting.name).name if hit.sighting else "?"
            snippet = f"  “{hit.snippet}”" if hit.snippet else ""
            click.echo(f"  #{hit.image.id} {name}: {labels or '(no labels)'}{snippet}")
    data = core.report("", title="imgbot demo report", full_records=False)
    output.write_text(core.render_report(data, "md"), encoding="utf-8")
    click.echo(f"\nReport written to {output} ({len(data.images)} images). Try: imgbot search cat, imgbot show 1")
    core.database.dispose()
    sys.exit(1 if failed else 0)


# -- database, serving ------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@handle_errors
def db_upgrade() -> None:
    """Apply every pending migration (safe to run on every deploy)."""
    from db.migrate import current_revision, head_revision, upgrade
    from db.session import Database

    settings = _load_settings()
    _setup_logging(settings)
    database = Database(settings.database_url)
    before = current_revision(database.engine)
    upgrade(database.engine)
    after = current_revision(database.engine)
    database.dispose()
    click.echo(f"database at {after} (head {head_revision()})" + ("" if before == after else f", was {before}"))


@cli.command("rescan-text")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@handle_errors
def rescan_text(progress: bool | None) -> None:
    """Look for secrets and personal data in the text of every analysed image again, and mask them.

    For images analysed before a change to the detectors (``imgbot db upgrade`` does it once for
    images analysed before findings existed). Adds findings, never removes them; with
    IMGBOT_TEXT_INSIGHTS=comprehend it also asks Comprehend. Safe to run again.
    """
    from db.rescan import count_with_text
    from db.rescan import rescan_text as rescan

    settings = _load_settings()
    show_bar = sys.stderr.isatty() if progress is None else progress
    _setup_logging(settings, quiet_console=show_bar)
    core = _core(settings)
    with core.database.engine.connect() as connection:
        total = count_with_text(connection)
    with core.database.engine.begin() as connection:
        if show_bar:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            with Progress(TextColumn("[bold]rescanning"), BarColumn(), MofNCompleteColumn()) as bar:
                task = bar.add_task("rescan", total=total)
                summary = rescan(connection, pii=core.pii_detector,
                                 on_image=lambda _id, _added: bar.update(task, advance=1))
        else:
            summary = rescan(connection, pii=core.pii_detector)
    if core.database.engine.dialect.name == "sqlite":
        with core.database.engine.connect() as connection:  # the masked pages replace the old ones in the file
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    click.echo(f"rescanned {summary.images} images with text: {summary.changed} masked, "
               f"{summary.findings} findings added"
               + (f", {summary.insight_failures} not read by Comprehend (run again)" if summary.insight_failures
                  else ""))
    core.database.dispose()


@cli.command("rescan-images")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@handle_errors
def rescan_images(progress: bool | None) -> None:
    """Compute colours, quality and the near-duplicate hash of analysed images that have none
    (analysed before this version), from their stored originals. Safe to run again.

    Exit status: 0, or 1 when some original could not be read.
    """
    settings = _load_settings()
    show_bar = sys.stderr.isatty() if progress is None else progress
    _setup_logging(settings, quiet_console=show_bar)
    core = _core(settings)
    if show_bar:
        from rich.progress import Progress, SpinnerColumn, TextColumn

        with Progress(SpinnerColumn(), TextColumn("[bold]looking at images[/] {task.completed}")) as bar:
            task = bar.add_task("rescan", total=None)
            done, failed = core.rescan_looks(on_image=lambda _id, _ok: bar.update(task, advance=1))
    else:
        done, failed = core.rescan_looks()
    images = "image" if done == 1 else "images"
    click.echo(f"colours, quality and hashes for {done} {images}" + (f", {failed} failed (see the log)" if failed
                                                                   else ""))
    core.database.dispose()
    sys.exit(1 if failed else 0)


@db.command("current")
@handle_errors
def db_current() -> None:
    """Print the schema revision of the database and of this version of imgbot."""
    from db.migrate import current_revision, head_revision
    from db.session import Database

    settings = _load_settings()
    database = Database(settings.database_url)
    click.echo(f"database at {current_revision(database.engine)} (head {head_revision()})")
    database.dispose()


@cli.command()
@handle_errors
def serve() -> None:
    """Run the Slack bot: Socket Mode with SLACK_APP_TOKEN, else HTTP on $PORT (POST /slack/events)."""
    settings = _load_settings()
    _setup_logging(settings)
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set: `imgbot serve` needs the Slack app's bot token (xoxb-…).")
    if not settings.slack_app_token and not settings.slack_signing_secret:
        raise ConfigError("SLACK_SIGNING_SECRET is not set: HTTP mode needs it to verify requests from Slack "
                          "(or set SLACK_APP_TOKEN for Socket Mode).")
    from bot.slack.app import serve as serve_slack

    core = _core(settings)
    core.warm_models()
    core.warm_indexes()
    serve_slack(settings, core)


@cli.command()
@click.option("--once", is_flag=True, help="Finish what is waiting, then exit.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds between looks for new work in the database.")
@handle_errors
def worker(once: bool, interval: float) -> None:
    """Analyse queued work: pending and retryable images from the database and, with
    IMGBOT_QUEUE_URL, the SQS queue's jobs (Slack messages, images, S3 event notifications)."""
    from bot.queue import build_queue

    settings = _load_settings()
    _setup_logging(settings)
    core = _core(settings)
    if not once:
        core.warm_models()
        core.warm_indexes()
    log = logging.getLogger("imgbot.worker")
    queue = build_queue(settings)
    log.info("worker started (concurrency=%s, %s)", settings.concurrency or "automatic",
             f"queue {settings.queue_url}" if queue is not None else "database only")
    try:
        if queue is not None:
            _consume(core, queue, once=once, interval=interval)
            return
        while True:
            results = core.finish_pending()
            if once:
                failed = sum(1 for r in results if r.outcome == "failed")
                click.echo(f"finished {len(results)} images, {failed} failed")
                break
            if not results:
                time.sleep(interval)
    except KeyboardInterrupt:
        log.info("worker stopped")
    finally:
        core.database.dispose()


def _consume(core: Any, queue: Any, *, once: bool, interval: float) -> None:
    """Run the queue consumer until SIGTERM/SIGINT (or, with ``once``, until the queue is empty)."""
    import threading

    from bot.queue.handlers import build_handlers
    from bot.queue.worker import QueueWorker, WorkerOptions

    stop = threading.Event()
    handlers = build_handlers(core)
    leftovers = core.finish_pending()  # what a crash left in the database first, as `analyze` does
    consumer = QueueWorker(queue, handlers.as_dict(), concurrency=core.settings.max_in_flight, room=core.flow.room,
                           options=WorkerOptions(idle_interval=max(interval, 1.0) * 12), idle=core.finish_pending)
    try:
        with _stopped_by_signals(stop):
            stats = consumer.run(stop, once=once)
    finally:
        handlers.close()
    if once:
        click.echo(f"finished {len(leftovers)} images from the database and {stats.received} jobs from the queue "
                   f"({stats.done} done, {stats.retried} to retry, {stats.busy} busy elsewhere, {stats.left} left)")


@contextlib.contextmanager
def _stopped_by_signals(stop: Any) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (work in hand is finished first); the old handlers come back after."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@cli.command()
@click.argument("location")
@click.option("--once", is_flag=True, help="One pass over the new objects, then exit.")
@click.option("--interval", type=click.FloatRange(min=1.0), default=60.0, show_default=True,
              help="Seconds between listings.")
@click.option("--from-start", is_flag=True,
              help="List the whole prefix again (objects already analysed are skipped without downloading).")
@handle_errors
def watch(location: str, once: bool, interval: float, from_start: bool) -> None:
    """Analyse new objects under s3://BUCKET/PREFIX, each once: lists after a stored watermark.

    Every object is offered (images are recognised by content; anything else fails with a
    reason). With --once, exit status 1 when an object failed or could not be read.
    For every new key, whatever its name, also send the bucket's event notifications to
    the IMGBOT_QUEUE_URL queue: `imgbot worker` handles them the same way.
    """
    import threading

    from bot.aws import make_client
    from bot.s3watch import S3Location, S3Watcher, WatchResult
    from db.session import is_transient

    settings = _load_settings()
    _setup_logging(settings)
    target = S3Location.parse(location)
    core = _core(settings)
    watcher = S3Watcher(core, make_client("s3", settings))
    watcher.check(target)
    log = logging.getLogger("imgbot.watch")
    stop = threading.Event()

    def show(result: WatchResult) -> None:
        detail = f" reason: {result.reason}" if result.reason and result.outcome != "done" else ""
        image = f" id={result.result.image_id}" if result.result and result.result.image_id else ""
        click.echo(f"{result.outcome:7}{image} {target.uri(result.key)}{detail}")

    failed = 0
    first = True
    try:
        with _stopped_by_signals(stop):
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    results = watcher.scan(target, on_result=show, from_start=from_start and first)
                except Exception as err:  # S3 or the database unavailable: the next pass tries again
                    if once or not (getattr(err, "retryable", False) or is_transient(err)):
                        raise
                    log.warning("watching %s failed, trying again in %.0f s: %s", target, interval,
                                getattr(err, "detail", repr(err)))
                    stop.wait(interval)
                    continue
                first = False
                new = [r for r in results if r.outcome != "seen"]
                counts = {outcome: sum(1 for r in new if r.outcome == outcome)
                          for outcome in ("done", "reused", "failed", "pending", "skipped", "unreachable", "gone")}
                failed += counts["failed"] + counts["unreachable"]
                if new or once:
                    click.echo(
                        f"watched {target}: {len(new)} new — analysed {counts['done']}, reused {counts['reused']}, "
                        f"failed {counts['failed']}, skipped {counts['skipped']}"
                        + (f", unreadable for now {counts['unreachable']}" if counts["unreachable"] else "")
                        + f" ({time.perf_counter() - started:.1f} s)"
                    )
                if once:
                    break
                stop.wait(interval)
    finally:
        core.database.dispose()
    sys.exit(1 if once and failed else 0)


def main() -> None:
    cli(prog_name="imgbot")


if __name__ == "__main__":
    main()
