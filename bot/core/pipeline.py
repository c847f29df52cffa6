"""hash → dedupe → check → record (pending) → store → analyse → persist, one image at a time or many.

The pending row is committed before anything slow, so a crash leaves work that
``finish_pending`` completes. The same bytes again are a new sighting of the
same image and cost no analyser call. Every finished image logs one line on
``imgbot.pipeline`` with its id, outcome and seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bot.config import Settings
from bot.core.flow import FlowControl
from bot.core.insights import add_text_insights
from bot.core.intake import prepare_image, sha256_of
from bot.core.looks import InlineLooks
from bot.core.ports import Analyzer, Looker, PendingLooks, PiiDetector, Storage
from bot.core.redaction import protect
from bot.core.types import Analysis, IngestResult, PreparedImage, Source, StoredObject
from bot.errors import ImgbotError, NotFound, StorageError
from db import queries
from db.session import Database, is_transient

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("imgbot.pipeline")

Item = tuple[Path | bytes, Source]
T = TypeVar("T")

#: Pauses between tries while the database is briefly unavailable (a restart, a failover): ~15 s in all.
#: Each try starts the image again, which is safe: every step is idempotent.
DATABASE_RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
DATABASE_DOWN = "The database was unavailable; the image will be finished by the next run or `imgbot worker`."


class Pipeline:
    def __init__(
        self, *, database: Database, storage: Storage, analyzer_factory: Callable[[], Analyzer], settings: Settings,
        flow: FlowControl | None = None, pii_detector: Callable[[], PiiDetector | None] = lambda: None,
        looker: Callable[[], Looker] = InlineLooks,
    ) -> None:
        self.database = database
        self._looker = looker
        self._pii_detector = pii_detector
        self.storage = storage
        self._analyzer_factory = analyzer_factory
        self.settings = settings
        self.flow = flow if flow is not None else FlowControl(
            rate=None, cap=settings.max_in_flight, budget_bytes=settings.max_inflight_bytes)
        self._owner = queries.lease_owner()
        self._sha_locks: dict[str, threading.Lock] = {}
        self._sha_locks_guard = threading.Lock()

    # -- one image ---------------------------------------------------------------------------

    def ingest(self, data: bytes, source: Source) -> IngestResult:
        """Analyse ``data`` seen at ``source``, or reuse the stored result for the same bytes."""
        started = time.perf_counter()
        sha256 = sha256_of(data)

        def attempt() -> IngestResult:
            with self._lock_for(sha256):
                return self._ingest_locked(data, sha256, source, started)

        with self.flow.admit(len(data)):
            result = replace(_with_database_retries(attempt, f"sha256={sha256[:12]}"), source_name=source.name)
        self._log(result, source)
        return result

    def _ingest_locked(self, data: bytes, sha256: str, source: Source, started: float) -> IngestResult:
        now = _now()
        with self.database.transaction() as session:
            state = queries.image_state(session, sha256)
            if state is not None and state.status == "done":
                sighting_id = queries.record_sighting(session, state.image_id, source, now)
                needs_restore = state.storage_key is None
        if state is not None and state.status == "done":
            if needs_restore:  # its stored copy was deleted with its last sighting; keep one again
                self._store_quietly(state.image_id, sha256, data)
            return self._summary(state.image_id, sha256, "reused", started, sighting_id=sighting_id)

        try:
            prepared = prepare_image(data, max_bytes=self.settings.max_bytes, max_pixels=self.settings.max_pixels,
                                     sha256=sha256)
        except ImgbotError as err:
            with self.database.transaction() as session:
                image_id = queries.record_image(session, sha256=sha256, byte_size=len(data), now=now)
                sighting_id = queries.record_sighting(session, image_id, source, now)
                queries.mark_failed(session, image_id, err.user_message, retryable=False, now=now)
            return IngestResult(image_id, sha256, "failed", time.perf_counter() - started, sighting_id=sighting_id,
                                reason=err.user_message, retryable=False)

        # Stored before it is recorded, so that the image, its sighting, its job and where its original
        # lies are one transaction (the key is its content's: a second worker storing it too is harmless).
        stored, storage_error = self._store(prepared)

        def record(session: Session) -> queries.Arrival:
            arrival = queries.record_arrival(session, sha256=sha256, byte_size=len(data), source=source,
                                             owner=self._owner, now=now, prepared=prepared, stored=stored)
            if arrival.claimed and storage_error is not None:
                queries.mark_failed(session, arrival.image_id, storage_error.user_message,
                                    retryable=storage_error.retryable, now=now)
            return arrival

        arrival = self.database.write(record)
        image_id, sighting_id = arrival.image_id, arrival.sighting_id
        if not arrival.claimed:
            # Another worker owns it (or has finished it): this sighting is recorded, its result will follow.
            outcome = "reused" if arrival.status == "done" else "pending"
            return self._summary(image_id, sha256, outcome, started, sighting_id=sighting_id)
        if storage_error is not None:
            log.warning("image=%s storage failed: %s", image_id, storage_error.detail)
            return IngestResult(image_id, sha256, "failed", time.perf_counter() - started, sighting_id=sighting_id,
                                reason=storage_error.user_message, retryable=storage_error.retryable)
        return self._analyse_and_save(image_id, _with_stored(prepared, stored), started, sighting_id,
                                      fresh=arrival.created)

    def _store(self, prepared: PreparedImage) -> tuple[StoredObject | None, StorageError | None]:
        try:
            return self.storage.put(storage_key(prepared.sha256, prepared.extension), prepared.data,
                                    prepared.mime_type), None
        except StorageError as err:
            return None, err

    def _store_and_analyse(
        self, image_id: int, prepared: PreparedImage, started: float, sighting_id: int | None
    ) -> IngestResult:
        """Store, record where, analyse and save an image whose job this worker has claimed."""
        stored, storage_error = self._store(prepared)
        if storage_error is not None:
            log.warning("image=%s storage failed: %s", image_id, storage_error.detail)
            return self._fail(image_id, prepared.sha256, storage_error, started, sighting_id)
        with self.database.transaction() as session:
            queries.record_stored(session, image_id, stored.key, stored.uri, _now())  # type: ignore[union-attr]
        return self._analyse_and_save(image_id, _with_stored(prepared, stored), started, sighting_id)

    def _analyse_and_save(
        self, image_id: int, prepared: PreparedImage, started: float, sighting_id: int | None, *, fresh: bool = False
    ) -> IngestResult:
        analyzer_name = "unknown"
        run_started = _now()
        analysis_started = time.perf_counter()
        looks = self._start_looks(image_id, prepared)  # in a helper process, while the analyser works
        try:
            analyzer = self._analyzer_factory()
            analyzer_name = analyzer.name
            analysis = analyzer.analyze(prepared)
        except ImgbotError as err:
            log.warning("image=%s analysis failed: %s", image_id, err.detail)
            return self._fail(image_id, prepared.sha256, err, started, sighting_id, provider=analyzer_name,
                              seconds=time.perf_counter() - analysis_started)
        except Exception as err:  # an analyser bug must fail one image, not the batch
            log.exception("image=%s analyser crashed", image_id)
            wrapped = ImgbotError("The analysis failed unexpectedly; it will be retried.", detail=repr(err),
                                  retryable=True)
            return self._fail(image_id, prepared.sha256, wrapped, started, sighting_id, provider=analyzer_name,
                              seconds=time.perf_counter() - analysis_started)
        try:
            analysis = self._protect(image_id, analysis)
        except Exception as err:  # never store text that was not checked for secrets
            log.error("image=%s the text could not be checked for secrets (%s); nothing stored",
                      image_id, type(err).__name__)
            unchecked = ImgbotError("The text read in the image could not be checked for secrets, so nothing "
                                    "was stored; it will be tried again.", detail=type(err).__name__, retryable=True)
            return self._fail(image_id, prepared.sha256, unchecked, started, sighting_id, provider=analyzer_name,
                              seconds=time.perf_counter() - analysis_started)
        try:
            if looks is not None:
                analysis = looks.applied_to(analysis)
        except Exception as err:  # colours and a hash are extras: never lose the analysis over them
            log.warning("image=%s colours and quality not computed: %r", image_id, err)
        seconds = time.perf_counter() - analysis_started
        saved = analysis
        self.database.write(lambda session: queries.save_analysis(
            session, image_id, saved, started_at=run_started, seconds=seconds, now=_now(),
            store_min_confidence=self.settings.store_min_confidence, fresh=fresh), appends=fresh)
        self.flow.observe_admitted(analysis.paced_seconds)
        return self._done(image_id, prepared.sha256, analysis, started, sighting_id)

    def _start_looks(self, image_id: int, prepared: PreparedImage) -> PendingLooks | None:
        try:
            return self._looker().start(prepared)
        except Exception as err:  # colours and a hash are extras: never lose the analysis over them
            log.warning("image=%s colours and quality not computed: %r", image_id, err)
            return None

    def _protect(self, image_id: int, analysis: Analysis) -> Analysis:
        """Mask secrets and card numbers before anything is stored; add the PII service's findings.

        A PII service that fails leaves the detectors' findings in place (the image is not lost
        for it); ``imgbot rescan-text`` adds its findings later."""
        analysis = protect(analysis)
        detector = self._pii_detector()
        if detector is not None and analysis.lines:
            try:
                analysis = add_text_insights(analysis, detector)
            except ImgbotError as err:
                log.warning("image=%s text insights failed, detectors' findings kept: %s", image_id,
                            err.detail or err.user_message)
        return analysis

    def _fail(
        self, image_id: int, sha256: str, err: ImgbotError, started: float, sighting_id: int | None,
        provider: str | None = None, seconds: float = 0.0,
    ) -> IngestResult:
        self.database.write(lambda session: queries.mark_failed(
            session, image_id, err.user_message, retryable=err.retryable, now=_now(), provider=provider,
            seconds=seconds))
        return IngestResult(image_id, sha256, "failed", time.perf_counter() - started, sighting_id=sighting_id,
                            reason=err.user_message, retryable=err.retryable)

    def _done(
        self, image_id: int, sha256: str, analysis: Analysis, started: float, sighting_id: int | None
    ) -> IngestResult:
        floor = self.settings.store_min_confidence
        threshold = self.settings.moderation_min_confidence
        return IngestResult(
            image_id, sha256, "done", time.perf_counter() - started, sighting_id=sighting_id,
            labels=sum(1 for label in analysis.labels if label.confidence >= floor),
            text_lines=len(analysis.lines),
            flagged=any(m.confidence >= threshold for m in analysis.moderation),
            sensitive=analysis.sensitive,
        )

    def _summary(
        self, image_id: int, sha256: str, outcome: str, started: float, sighting_id: int | None
    ) -> IngestResult:
        with self.database.transaction() as session:
            record = queries.load_image_records(session, [image_id])[0]
        return IngestResult(
            image_id, sha256, outcome, time.perf_counter() - started, sighting_id=sighting_id,  # type: ignore[arg-type]
            reason=record.failure_reason, labels=len(record.labels), text_lines=len(record.lines),
            flagged=record.is_flagged(self.settings.moderation_min_confidence), sensitive=record.sensitive,
        )

    def _store_quietly(self, image_id: int, sha256: str, data: bytes) -> None:
        """Keep a stored copy again for a done image whose copy was deleted with its last sighting."""
        try:
            prepared = prepare_image(data, max_bytes=self.settings.max_bytes, max_pixels=self.settings.max_pixels,
                                     sha256=sha256)
            stored = self.storage.put(storage_key(sha256, prepared.extension), data, prepared.mime_type)
        except ImgbotError as err:
            log.warning("image=%s could not store the original again: %s", image_id, err.detail)
            return
        with self.database.transaction() as session:
            queries.record_stored(session, image_id, stored.key, stored.uri, _now())

    # -- many images -------------------------------------------------------------------------

    def ingest_many(
        self, items: Iterable[Item], on_result: Callable[[IngestResult], None] | None = None
    ) -> list[IngestResult]:
        """Ingest as many at once as ``self.flow`` admits; files are read once admitted, one bad file fails alone."""
        results: list[IngestResult] = []
        cap = self.flow.cap
        with ThreadPoolExecutor(max_workers=cap, thread_name_prefix="imgbot-ingest") as pool:
            for result in _bounded_map(pool, self._ingest_item, items, cap):
                results.append(result)
                if on_result is not None:
                    on_result(result)
        return results

    def _ingest_item(self, item: Item) -> IngestResult:
        payload, _ = item
        if isinstance(payload, Path):
            try:
                size = payload.stat().st_size
            except OSError:
                size = 0  # reading it will fail below, with the reason
        else:
            size = len(payload)
        with self.flow.admit(size):
            return self._ingest_admitted(item)

    def _ingest_admitted(self, item: Item) -> IngestResult:
        payload, source = item
        if isinstance(payload, Path):
            try:
                data = payload.read_bytes()
            except OSError as err:
                result = IngestResult(None, "", "failed", 0.0, reason=f"The file could not be read ({err.strerror}).",
                                      source_name=source.name)
                self._log(result, source)
                return result
        else:
            data = payload
        try:
            return self.ingest(data, source)
        except Exception as err:  # the database stayed away: this image fails alone, the batch goes on
            if not is_transient(err):
                raise
            log.error("%s: the database is unavailable: %s", source.label, err)
            result = IngestResult(None, sha256_of(data), "failed", 0.0, reason=DATABASE_DOWN, retryable=True,
                                  source_name=source.name)
            self._log(result, source)
            return result

    def finish_pending(self, on_result: Callable[[IngestResult], None] | None = None) -> list[IngestResult]:
        """Complete images a crash left pending and retry failures that may pass now."""
        def unfinished() -> list[queries.PendingImage]:
            with self.database.transaction() as session:
                return queries.unfinished_images(session, _now())

        pending = _with_database_retries(unfinished, "finish_pending")
        results: list[IngestResult] = []
        with ThreadPoolExecutor(max_workers=self.flow.cap, thread_name_prefix="imgbot-resume") as pool:
            for result in pool.map(self._resume_retrying, pending):
                results.append(result)
                if on_result is not None:
                    on_result(result)
        return results

    def resume_image(self, image_id: int) -> IngestResult | None:
        """Finish one recorded image (a queued ``image`` job); None when it needs no work (done, gone)."""
        from db import work_queries

        with self.database.transaction() as session:
            item = work_queries.pending_image(session, image_id)
        if item is None:
            return None
        with self.flow.admit():
            return self._resume(item)

    def _resume_retrying(self, item: queries.PendingImage) -> IngestResult:
        try:
            with self.flow.admit():
                return _with_database_retries(lambda: self._resume(item), f"image={item.image_id}")
        except Exception as err:  # the database stayed away: left pending for the next run
            if not is_transient(err):
                raise
            log.error("image=%s the database is unavailable: %s", item.image_id, err)
            return IngestResult(item.image_id, item.sha256, "failed", 0.0, reason=DATABASE_DOWN, retryable=True)

    def _resume(self, item: queries.PendingImage) -> IngestResult:
        started = time.perf_counter()
        data = self._recover_original(item)
        source = Source.file(item.file_paths[0]) if item.file_paths else Source(kind="file", name="(resumed)")
        if data is None:
            err = ImgbotError("The original was lost before it was stored; please share the image again.")
            result = replace(self._fail(item.image_id, item.sha256, err, started, None), source_name=source.name)
            self._log(result, source)
            return result
        with self._lock_for(item.sha256):
            with self.database.transaction() as session:
                claimed = queries.claim_image(session, item.image_id, self._owner, _now())
            if not claimed:
                return self._summary(item.image_id, item.sha256, "pending", started, None)
            try:
                prepared = prepare_image(data, max_bytes=self.settings.max_bytes,
                                         max_pixels=self.settings.max_pixels, sha256=item.sha256)
            except ImgbotError as err:
                result = self._fail(item.image_id, item.sha256, err, started, None)
            else:
                result = self._store_and_analyse(item.image_id, prepared, started, None)
        result = replace(result, source_name=source.name)
        self._log(result, source)
        return result

    def _recover_original(self, item: queries.PendingImage) -> bytes | None:
        if item.storage_key:
            try:
                return self.storage.get(item.storage_key)
            except (NotFound, StorageError) as err:
                log.warning("image=%s stored original unavailable: %s", item.image_id, err.detail)
        for path in item.file_paths:
            try:
                data = Path(path).read_bytes()
            except OSError:
                continue
            if sha256_of(data) == item.sha256:
                return data
        return None

    # -- helpers -----------------------------------------------------------------------------

    def _lock_for(self, sha256: str) -> threading.Lock:
        with self._sha_locks_guard:
            return self._sha_locks.setdefault(sha256, threading.Lock())

    def _log(self, result: IngestResult, source: Source) -> None:
        log.info(
            "image=%s sha256=%s source=%s outcome=%s labels=%d text_lines=%d flagged=%s sensitive=%s secs=%.2f%s",
            result.image_id, result.sha256[:12], source.label, result.outcome, result.labels, result.text_lines,
            "yes" if result.flagged else "no", ",".join(sorted({f.kind for f in result.sensitive})) or "-",
            result.seconds,
            f' reason="{result.reason}"' if result.reason and result.outcome == "failed" else "",
        )


def _with_database_retries(fn: Callable[[], T], label: str) -> T:
    """Run ``fn``, again after a pause while the database error is one that may pass."""
    for delay in (*DATABASE_RETRY_DELAYS, None):
        try:
            return fn()
        except Exception as err:
            if delay is None or not is_transient(err):
                raise
            log.warning("%s: the database is unavailable (%s); trying again in %.1f s", label, type(err).__name__,
                        delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def storage_key(sha256: str, extension: str) -> str:
    """Content-addressed, fanned out by the first two hex digits: the same bytes are stored once."""
    return f"{sha256[:2]}/{sha256}.{extension}"


def _with_stored(prepared: PreparedImage, stored: StoredObject | None) -> PreparedImage:
    return replace(prepared, stored=stored)


def _bounded_map(
    pool: ThreadPoolExecutor, fn: Callable[[Item], IngestResult], items: Iterable[Item], window: int
) -> Iterator[IngestResult]:
    """Like ``pool.map`` but keeps at most ``window`` items in flight and yields in completion order."""
    in_flight: set[Future[IngestResult]] = set()
    for item in items:
        in_flight.add(pool.submit(fn, item))
        if len(in_flight) >= window:
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
    while in_flight:
        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
        yield from (future.result() for future in done)


def _now() -> datetime:
    return datetime.now(UTC)
