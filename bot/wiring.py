"""Builds everything from settings: the one place that knows which adapter is which.

``build_core(settings)`` returns a ``Core``: the facade the CLI, the Slack app and
the worker call. It knows nothing of Slack or AWS itself.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.core.flow import FlowControl
from bot.core.looks import InlineLooks
from bot.core.pipeline import Pipeline
from bot.core.pixel_processes import PixelProcesses
from bot.core.ports import Analyzer, Embedder, Looker, PiiDetector, Storage
from bot.core.records import ImageRecord, ReportData, SearchPage, SightingRecord
from bot.core.search import Query
from bot.core.types import IngestResult, Source
from bot.errors import ImgbotError, NotFound, QuerySyntaxError
from db import queries
from db.session import Database
from db.visuals import EmbeddingCache, HashCache

log = logging.getLogger("imgbot.core")


@dataclass
class Core:
    settings: Settings
    database: Database
    storage: Storage
    analyzer_factory: Callable[[], Analyzer]
    _analyzer: Analyzer | None = field(default=None, init=False, repr=False)
    _analyzer_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _pipeline: Pipeline | None = field(default=None, init=False, repr=False)
    _flow: FlowControl | None = field(default=None, init=False, repr=False)
    _pii_detector: PiiDetector | None = field(default=None, init=False, repr=False)
    _hashes: HashCache | None = field(default=None, init=False, repr=False)
    _embedder: Embedder | None = field(default=None, init=False, repr=False)
    _vectors: EmbeddingCache | None = field(default=None, init=False, repr=False)
    _embedder_checked: bool = field(default=False, init=False, repr=False)
    _looker: Looker | None = field(default=None, init=False, repr=False)

    @property
    def analyzer(self) -> Analyzer:
        """Built on first use, so `search` and `report` never load models or AWS clients."""
        with self._analyzer_lock:
            if self._analyzer is None:
                self._analyzer = self.analyzer_factory()
            return self._analyzer

    @property
    def flow(self) -> FlowControl:
        """How many images this process works on at once, shared by every caller of the pipeline.

        Sized from the analyser's rate (``images_per_second``, when it has one) and the measured
        time per image, at most IMGBOT_CONCURRENCY (or the automatic ceiling) and
        IMGBOT_MAX_INFLIGHT_MB of image data."""
        with self._analyzer_lock:
            built = self._flow
        if built is None:
            rate = getattr(self.analyzer, "images_per_second", None)
            with self._analyzer_lock:
                if self._flow is None:
                    self._flow = FlowControl(rate=float(rate) if rate else None, cap=self.settings.max_in_flight,
                                             budget_bytes=self.settings.max_inflight_bytes)
                built = self._flow
        return built

    @property
    def pii_detector(self) -> PiiDetector | None:
        """Amazon Comprehend with IMGBOT_TEXT_INSIGHTS=comprehend (built on first use), else None."""
        if self.settings.text_insights != "comprehend":
            return None
        with self._analyzer_lock:
            if self._pii_detector is None:
                from bot.analyzers.comprehend import ComprehendPii

                self._pii_detector = ComprehendPii(self.settings)
            return self._pii_detector

    @property
    def embedder(self) -> Embedder | None:
        """The offline engine's image embedder when its extra is installed (whatever the analyser), else None."""
        with self._analyzer_lock:
            if not self._embedder_checked:
                self._embedder_checked = True
                if self.settings.embeddings == "off":
                    return None
                # The embedder's module imports its runtime lazily, so ask for the packages themselves.
                if any(importlib.util.find_spec(module) is None for module in ("onnx", "onnxruntime")):
                    log.info("no image embeddings: the offline engine's extra is not installed (like: is off)")
                else:
                    from bot.analyzers.local.embedding import ImageEmbedder
                    from bot.analyzers.local.models import shared

                    self._embedder = shared(ImageEmbedder)  # one model per process, however many cores
            return self._embedder

    @property
    def looker(self) -> Looker:
        """Where each image's colours, quality, hash and embedding are computed: helper processes
        (IMGBOT_PIXEL_PROCESSES, shared by every core in this process), or the analysis threads."""
        if self._looker is None:
            processes = self.settings.pixel_process_count
            looker: Looker
            if processes > 0 and self.embedder is not None:
                from bot.analyzers.local.embedding import ImageEmbedder  # each helper builds its own

                looker = PixelProcesses.shared(processes, ImageEmbedder)
            elif processes > 0:
                looker = PixelProcesses.shared(processes, None)
            else:
                looker = InlineLooks(lambda: self.embedder)
            with self._analyzer_lock:
                if self._looker is None:
                    self._looker = looker
        return self._looker

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = Pipeline(
                database=self.database, storage=self.storage, analyzer_factory=lambda: self.analyzer,
                settings=self.settings, flow=self.flow, pii_detector=lambda: self.pii_detector,
                looker=lambda: self.looker,
            )
        return self._pipeline

    # -- writing ---------------------------------------------------------------------------

    def ingest(self, data: bytes, source: Source) -> IngestResult:
        """Hash, dedupe, store, analyse and persist one image (blocking)."""
        return self.pipeline.ingest(data, source)

    def ingest_many(
        self,
        items: Iterable[tuple[Path | bytes, Source]],
        on_result: Callable[[IngestResult], None] | None = None,
    ) -> list[IngestResult]:
        """Ingest many images on a bounded pool; ``on_result`` is called as each finishes."""
        return self.pipeline.ingest_many(items, on_result=on_result)

    def finish_pending(self, on_result: Callable[[IngestResult], None] | None = None) -> list[IngestResult]:
        """Finish images a crash left pending, and retry failures that may succeed now."""
        return self.pipeline.finish_pending(on_result=on_result)

    def resume_image(self, image_id: int) -> IngestResult | None:
        """Finish one recorded image, by id (a queued job); None when it needs no work."""
        return self.pipeline.resume_image(image_id)

    def seen(self, sources: Collection[Source]) -> set[str]:
        """The keys of the sources already recorded as sightings (their images need no second look)."""
        from db import work_queries

        with self.database.transaction() as session:
            return work_queries.seen_sources(session, list(sources))

    def delete_slack_file(self, file_id: str) -> list[int]:
        """A file was deleted in Slack: hide its sightings; drop the stored copy if unused. Returns image ids."""
        with self.database.transaction() as session:
            orphaned = queries.delete_sightings(session, file_id=file_id, now=_now())
        return self._drop_orphans(orphaned)

    def delete_slack_message(self, channel_id: str, message_ts: str) -> list[int]:
        """A message was deleted in Slack: hide the sightings of its files."""
        with self.database.transaction() as session:
            orphaned = queries.delete_sightings(session, channel_id=channel_id, message_ts=message_ts, now=_now())
        return self._drop_orphans(orphaned)

    def _drop_orphans(self, orphaned: list[tuple[int, str | None]]) -> list[int]:
        """Delete stored copies nothing uses any more; a failure leaves the copy, never the deletion undone."""
        for image_id, key in orphaned:
            if not key:
                continue
            try:
                self.storage.delete(key)
            except ImgbotError as err:
                log.warning("image=%s stored copy %s not deleted: %s", image_id, key, err.detail)
        return [image_id for image_id, _ in orphaned]

    def home_summary(self, channels: Collection[str]) -> HomeSummary:
        """What the App Home shows a user: counts over the images posted in ``channels`` only."""
        from db import channel_stats, queries

        visible = sorted(set(channels))
        week = self.search("last 7d", channels=visible, per_page=1) if visible else None
        with self.database.transaction() as session:
            totals = channel_stats.totals(session, visible, label_floor=int(self.settings.label_min_confidence),
                                          moderation_floor=int(self.settings.moderation_min_confidence))
            awaiting = queries.flagged_awaiting_review(session, visible, self.settings.moderation_min_confidence)
        top = sorted(totals.labels.items(), key=lambda item: (-item[1], item[0]))[:5]
        return HomeSummary(analysed=totals.analysed, analysed_this_week=week.total if week else 0,
                           week_is_estimate=bool(week and week.total_is_estimate), top_labels=tuple(top),
                           awaiting_review=awaiting)

    def channel_mode(self, channel_id: str) -> str:
        """What imgbot does in ``channel_id``: the mode its members set, else IMGBOT_DEFAULT_MODE."""
        from db import channel_settings

        with self.database.transaction() as session:
            return channel_settings.mode_of(session, channel_id) or self.settings.default_mode

    def set_channel_mode(self, channel_id: str, mode: str, user_id: str | None) -> None:
        """Set ``channel_id``'s mode (one of ``bot.config.CHANNEL_MODES``), for every process at once."""
        from bot.config import CHANNEL_MODES
        from db import channel_settings

        if mode not in CHANNEL_MODES:
            raise ValueError(f"unknown mode {mode!r}")
        with self.database.transaction() as session:
            channel_settings.set_mode(session, channel_id, mode, user_id, _now())

    def record_moderation_decision(self, image_id: int, decision: str, user_id: str) -> None:
        """Record a moderator's Confirm/Dismiss (``confirmed`` or ``dismissed``)."""
        with self.database.transaction() as session:
            queries.record_moderation_decision(session, image_id, decision, user_id, _now())

    # -- reading ---------------------------------------------------------------------------

    def search(
        self, query: str, *, channels: Collection[str] | None = None, page: int = 1, per_page: int = 10
    ) -> SearchPage:
        """Run the query language; ``channels`` (when given) limits results to Slack sightings in them.

        Raises ``QuerySyntaxError`` for a malformed query.
        """
        from bot.core.search import parse_query
        from db.search import search_images

        parsed = self._resolve_duplicates(parse_query(query))
        with self.database.transaction() as session:
            return search_images(
                session, parsed, query_text=query, channels=channels, page=page, per_page=per_page,
                label_min_confidence=self.settings.label_min_confidence,
                moderation_min_confidence=self.settings.moderation_min_confidence,
            )

    def report(
        self, query: str = "", *, channels: Collection[str] | None = None, title: str | None = None,
        full_records: bool = True,
    ) -> ReportData:
        """Summaries over every image (done or failed) the query matches. ``full_records=False`` loads
        only what a Markdown or CSV report shows (a JSON report needs the full records)."""
        from bot.core.search import parse_query
        from db.search import report_data

        parsed = self._resolve_duplicates(parse_query(query))
        with self.database.transaction() as session:
            return report_data(
                session, parsed, query_text=query, channels=channels, title=title or "imgbot report",
                label_min_confidence=self.settings.label_min_confidence,
                moderation_min_confidence=self.settings.moderation_min_confidence,
                now=_now(), full_records=full_records,
                side_session=self.database.transaction if self.database.shared_between_connections else None,
                likeness=vectors.likeness if (vectors := self.vectors) is not None else None,
            )

    @property
    def hashes(self) -> HashCache:
        """This process's near-duplicate index (perceptual hashes in memory), loaded on first use."""
        with self._analyzer_lock:
            if self._hashes is None:
                self._hashes = HashCache(self.database.engine)
            return self._hashes

    @property
    def vectors(self) -> EmbeddingCache | None:
        """This process's "more like this" index, or None without the offline engine's embedder."""
        embedder = self.embedder
        if embedder is None:
            return None
        with self._analyzer_lock:
            if self._vectors is None:
                self._vectors = EmbeddingCache(self.database.engine, embedder.version)
            return self._vectors

    def warm_models(self) -> threading.Thread:
        """Get the pixel helpers (or this process's embedder) ready on a background thread, while the
        first images are stored and analysed.

        A helper takes 0.7 s to start and load its embedder (1.6 s before the edited model was
        cached). Left to the first image that needs it, that time held up every image behind it at
        the start of a batch."""
        looker = self.looker

        def warm() -> None:
            try:
                looker.warm()
            except Exception as err:  # noqa: BLE001 - the first image to need it reports it
                log.warning("image embedder not preloaded: %r", err)

        thread = threading.Thread(target=warm, name="imgbot-model-warmup", daemon=True)
        thread.start()
        return thread

    def warm_indexes(self) -> threading.Thread:
        """Load the near-duplicate and "more like this" indexes on a background thread.

        At a million images that takes 10-20 s; a long-running ``serve`` or ``worker`` starts it
        at once, so neither the first ``dupes:``/``like:`` nor the first reply's "posted before"
        check waits for it (either waits only for what is left)."""

        def load() -> None:
            started = time.monotonic()
            try:
                hashes = self.hashes
                hashes.refresh()
                vectors = self.vectors
                if vectors is not None:
                    vectors.refresh()
            except Exception as err:  # noqa: BLE001 - the first search loads them instead
                log.warning("indexes not preloaded (the first search will load them): %r", err)
                return
            log.info("indexes loaded: %d hashes, %d embeddings in %.1f s", len(hashes.index),
                     len(vectors.index) if vectors is not None else 0, time.monotonic() - started)

        thread = threading.Thread(target=load, name="imgbot-index-warmup", daemon=True)
        thread.start()
        return thread

    def near_duplicates(self, image_id: int) -> list[tuple[int, int]]:
        """(image id, differing bits) of the images that look like ``image_id``, closest first.

        With embeddings: hashes within ``DUPLICATE_HASH_ALONE`` bits, or within
        ``DUPLICATE_HASH_WITH_EMBEDDING`` and alike by embedding (a crop, a caption strip);
        without: hashes within ``DUPLICATE_MAX_DISTANCE``."""
        from bot.core import nearby
        from bot.core import vectors as vectors_module

        vectors = self.vectors
        if vectors is None:
            return self.hashes.near(image_id)
        close = self.hashes.near(image_id, nearby.DUPLICATE_HASH_WITH_EMBEDDING)
        unsure = [found for found, bits in close if bits > nearby.DUPLICATE_HASH_ALONE]
        # At a million images a hash has thousands of loose candidates: their sign codes, in memory,
        # rule out the ones too unlike to be worth reading a vector for.
        vectors.refresh()
        codes = vectors.index.distances(image_id, unsure) or {}
        unlike = {found for found, bits in codes.items() if bits > vectors_module.DUPLICATE_MAX_CODE_BITS}
        stored = vectors.vectors([image_id, *(found for found in unsure if found not in unlike)])
        mine = stored.get(image_id)

        def alike(found: int, bits: int) -> bool:
            similarity = float(stored[found] @ mine) if mine is not None and found in stored else None
            if found in unlike:
                similarity = 0.0  # its sign code is too far for cosine 0.82
            return nearby.is_near_duplicate(bits, similarity)

        return [(found, bits) for found, bits in close if alike(found, bits)]

    def similar_images(self, image_id: int, limit: int = 500) -> list[tuple[int, float]]:
        """(image id, cosine) of the images that look most like ``image_id`` (``like:``), best first."""
        vectors = self.vectors
        return vectors.similar(image_id, limit) if vectors is not None else []

    def rescan_looks(self, on_image: Callable[[int, bool], None] | None = None) -> tuple[int, int]:
        """Colours, quality, a hash and an embedding for analysed images that lack them (analysed before
        they existed, or by another embedding model), from their stored originals; colours already
        stored (Rekognition's) are kept. Returns (done, failed); ``on_image(image_id, ok)`` after each."""
        from bot.core.intake import prepare_image
        from bot.core.types import Analysis
        from db import visuals

        done = failed = last_id = 0
        while True:
            with self.database.engine.connect() as connection:
                batch = visuals.images_without_looks(
                    connection, last_id, model=self.embedder.version if self.embedder is not None else None)
            if not batch:
                return done, failed
            for image_id, sha256, key in batch:
                last_id = image_id
                try:
                    prepared = prepare_image(self.storage.get(key), max_bytes=self.settings.max_bytes,
                                             max_pixels=self.settings.max_pixels, sha256=sha256)
                    with self.database.engine.connect() as connection:  # Rekognition's colours stay
                        stored = visuals.stored_properties(connection, image_id)
                    seen = self.looker.look(prepared, Analysis(provider="stored", properties=stored))
                except Exception as err:  # one unreadable original fails alone
                    log.warning("image=%s colours and quality not computed: %r", image_id, err)
                    failed += 1
                    if on_image is not None:
                        on_image(image_id, False)
                    continue
                assert seen.properties is not None
                with self.database.engine.begin() as connection:
                    visuals.save(connection, image_id, seen.properties, seen.phash, seen.embedding,
                                 seen.embedding_model)
                done += 1
                if on_image is not None:
                    on_image(image_id, True)

    def earlier_posts(self, image_id: int) -> list[SightingRecord]:
        """The oldest live Slack posts of ``image_id`` itself (the same file posted again) and of its
        near-duplicates; the caller leaves out the post it is answering."""
        near = [found for found, _ in self.near_duplicates(image_id)][:200]
        with self.database.transaction() as session:
            return queries.live_slack_sightings(session, [image_id, *near])

    def _resolve_duplicates(self, query: Query) -> Query:
        """``dupes:ID`` terms with their candidates from the hash index (the SQL then scopes them)."""
        from bot.core.search import And, DupesFilter, LikeFilter, Not, Or

        def resolve(term: Any) -> Any:
            if isinstance(term, DupesFilter):
                return DupesFilter(term.image_id, tuple(i for i, _ in self.near_duplicates(term.image_id)))
            if isinstance(term, LikeFilter):
                if self.vectors is None:
                    raise QuerySyntaxError(
                        "like: needs image embeddings, which come from the offline engine: install imgbot with "
                        'its local extra (pip install "imgbot[local]"), leave IMGBOT_EMBEDDINGS at auto, then run '
                        f"imgbot rescan-images. Near-duplicates work without them: dupes:{term.image_id}")
                return LikeFilter(term.image_id, tuple(self.similar_images(term.image_id)))
            if isinstance(term, Not):
                return Not(resolve(term.term))
            if isinstance(term, (And, Or)):
                return type(term)(tuple(resolve(t) for t in term.terms))
            return term

        if not any(isinstance(term, (DupesFilter, LikeFilter)) for term, _ in query.leaves()):
            return query
        return dataclasses.replace(query, where=resolve(query.where))

    def render_report(self, data: ReportData, fmt: str = "md") -> str:
        from bot.core.report import render_report

        return render_report(data, fmt)

    def show(self, id_or_sha: str | int) -> ImageRecord:
        """One image by numeric id or (a prefix of at least 8 characters of) its SHA-256."""
        with self.database.transaction() as session:
            record = queries.find_image(session, str(id_or_sha))
        if record is None:
            raise NotFound(f"No image with id or SHA-256 {id_or_sha!r}.")
        return record

    def original(self, image_id: int) -> bytes:
        record = self.show(image_id)
        if not record.storage_key:
            raise NotFound(f"Image {image_id} has no stored original.")
        return self.storage.get(record.storage_key)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class HomeSummary:
    analysed: int
    analysed_this_week: int
    week_is_estimate: bool  # "1,000+": searches count to their cap
    top_labels: tuple[tuple[str, int], ...]
    awaiting_review: int


def build_core(settings: Settings, *, storage: Storage | None = None,
               analyzer_factory: Callable[[], Analyzer] | None = None) -> Core:
    """Open the database (migrating an empty one), pick storage and analyser from settings."""
    from bot.analyzers import available_analyzers, build_analyzer
    from bot.storage import build_storage

    if analyzer_factory is None and settings.analyzer not in available_analyzers():
        build_analyzer(settings)  # raises ConfigError naming the known analysers
    database = Database(settings.database_url)
    try:
        database.ensure_schema()
        return Core(
            settings=settings,
            database=database,
            storage=storage if storage is not None else build_storage(settings),
            analyzer_factory=analyzer_factory or (lambda: build_analyzer(settings)),
        )
    except BaseException:
        database.dispose()  # close its pooled connection now, not whenever the garbage collector runs
        raise
