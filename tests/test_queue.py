"""The work queue: job bodies, the consumer's rules, and SQS (moto) end to end.

At-least-once delivery must never mean twice the work: a redelivered job whose work is
done is deleted without side effects, a killed worker's job is finished by another one
after its visibility timeout, and a job nobody can handle ends in the dead-letter queue.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.queue import MalformedJob, Task, parse_job, slack_message_job
from bot.queue.handlers import build_handlers
from bot.queue.memory import MemoryQueue
from bot.queue.sqs import SqsQueue
from bot.queue.worker import QueueWorker, WorkerOptions
from bot.slack.app import build_client
from bot.slack.jobs import JobOptions, SlackJobs
from bot.storage.memory import MemoryStorage
from bot.wiring import Core, build_core
from db import models, slack_queries
from tests import slack_helpers as sh
from tests.fakes.analyzer import FakeAnalyzer
from tests.fakes.aws import moto_server, use_fake_aws
from tests.fakes.slack_api import FakeSlack
from tests.images import make_image

PUBLIC, ALICE = "C0PUBLIC01", "U0ALICE001"
FAST = JobOptions(retry_delays=(0.3, 0.6), sweep_interval=0.5, stale_after=60.0, file_shared_delay=0.4,
                  pending_wait=10.0, lease=4.0, queue_grace=60.0)
QUICK = WorkerOptions(retry_delays=(1, 1), busy_delay=1, wait_seconds=1, idle_interval=3600)


# -- job bodies ----------------------------------------------------------------------------------


def test_job_bodies_name_slack_messages_images_and_s3_objects() -> None:
    assert parse_job(json.dumps(slack_message_job("C1", "1.2"))) == [Task("slack_message", channel="C1", ts="1.2")]
    assert parse_job('{"kind": "image", "image_id": 42}') == [Task("image", image_id=42)]
    notification = {"Records": [
        {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
         "s3": {"bucket": {"name": "uploads"}, "object": {"key": "summer/50%25+off%21.png", "size": 10}}},
        {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
         "s3": {"bucket": {"name": "uploads"}, "object": {"key": "gone.png"}}},
    ]}
    assert parse_job(json.dumps(notification)) == [Task("s3_object", bucket="uploads", key="summer/50% off!.png"),
                                                   Task("ignore")]
    via_sns = {"Type": "Notification", "Message": json.dumps(notification)}
    assert parse_job(json.dumps(via_sns))[0].key == "summer/50% off!.png"
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-01-01T00:00:00.000Z",
                  "Bucket": "uploads", "RequestId": "X", "HostId": "Y"}
    assert parse_job(json.dumps(test_event)) == [Task("ignore")]


@pytest.mark.parametrize("body", ["not json", "[]", '{"kind": "nonsense"}', '{"kind": "image", "image_id": "7"}',
                                  '{"Records": []}', '{"Records": [{"eventSource": "aws:sqs"}]}'])
def test_bodies_nobody_understands_are_malformed(body: str) -> None:
    with pytest.raises(MalformedJob):
        parse_job(body)


# -- the consumer's rules, on the in-memory queue ---------------------------------------------------


def test_done_jobs_are_deleted_retries_wait_and_what_raises_ends_in_the_dead_letter_queue() -> None:
    dead = MemoryQueue()
    queue = MemoryQueue(visibility_timeout=1, dead_letter=dead, max_receive_count=2)
    attempts: dict[int, int] = {}

    def image(task: Task) -> Any:
        attempts[task.image_id] = attempts.get(task.image_id, 0) + 1
        if task.image_id == 3:
            raise RuntimeError("a bug in a handler")
        return "retry" if task.image_id == 2 and attempts[2] == 1 else "done"

    for image_id in (1, 2, 3):
        queue.send({"kind": "image", "image_id": image_id})
    queue.send_raw('{"kind": "nonsense"}')
    stop = threading.Event()
    worker = QueueWorker(queue, {"image": image}, concurrency=2, options=QUICK)
    runner = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    runner.start()
    sh.wait_until(lambda: len(queue) == 0, timeout=15)
    stop.set()
    runner.join(10)

    assert attempts[1] == 1 and attempts[2] == 2  # the retry came back once, after its delay
    assert sorted(dead.bodies()) == sorted([json.dumps({"kind": "image", "image_id": 3}), '{"kind": "nonsense"}'])
    assert worker.stats.done == 2 and worker.stats.retried == 1


def test_a_long_job_is_kept_hidden_while_it_runs() -> None:
    queue = MemoryQueue(visibility_timeout=1)
    runs: list[float] = []

    def slow(task: Task) -> Any:
        runs.append(time.monotonic())
        time.sleep(2.0)  # longer than the visibility timeout: the heartbeat must extend it
        return "done"

    queue.send({"kind": "image", "image_id": 1})
    stats = QueueWorker(queue, {"image": slow}, concurrency=2, options=QUICK).run(once=True)

    assert len(runs) == 1 and stats.done == 1 and len(queue) == 0


def test_a_stop_waits_only_for_the_short_poll_in_progress() -> None:
    queue = MemoryQueue()
    stop = threading.Event()
    worker = QueueWorker(queue, {}, concurrency=2, options=WorkerOptions(idle_interval=3600))
    runner = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    runner.start()
    time.sleep(0.5)  # inside a poll

    stopped_at = time.monotonic()
    stop.set()
    runner.join(10)

    assert not runner.is_alive() and time.monotonic() - stopped_at < 5.0  # a 2 s poll, not a 20 s one


def test_a_job_still_running_when_the_worker_stops_is_handed_back_at_once() -> None:
    queue = MemoryQueue(visibility_timeout=300)
    started, release = threading.Event(), threading.Event()

    def stuck(task: Task) -> Any:
        started.set()
        release.wait(30)
        return "done"

    queue.send({"kind": "image", "image_id": 1})
    stop = threading.Event()
    options = WorkerOptions(idle_interval=3600, stop_grace=0.3)
    runner = threading.Thread(target=QueueWorker(queue, {"image": stuck}, options=options).run, args=(stop,),
                              daemon=True)
    runner.start()
    assert started.wait(10)

    stop.set()
    runner.join(5)
    again = queue.receive(wait_seconds=0)  # visible again now, not after its 300 s visibility timeout
    release.set()

    assert not runner.is_alive()
    assert [job.receive_count for job in again] == [2]


# -- SQS (moto) ------------------------------------------------------------------------------------


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_server() as url:
        reset_moto(url)
        use_fake_aws(monkeypatch, tmp_path, sqs=url, s3=url)
        yield url


def reset_moto(url: str) -> None:
    """moto keeps its state per process, whichever server is asked: start every test empty."""
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10) as answer:
        answer.read()


def make_queue(name: str, *, visibility: int = 30, dead_letter_after: int | None = None
               ) -> tuple[SqsQueue, SqsQueue | None]:
    sqs = boto3.client("sqs")
    attributes = {"VisibilityTimeout": str(visibility)}
    dead = None
    if dead_letter_after:
        dead_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn,
                                                  "maxReceiveCount": str(dead_letter_after)})
        dead = SqsQueue(dead_url, sqs)
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return SqsQueue(url, sqs), dead


def test_the_sqs_adapter_sends_receives_hides_and_deletes(aws: str) -> None:
    queue, _ = make_queue("jobs", visibility=30)
    assert queue.visibility_timeout == 30

    queue.send(slack_message_job("C1", "1.2"))
    first = queue.receive(wait_seconds=1)
    assert [json.loads(job.body) for job in first] == [slack_message_job("C1", "1.2")]
    assert first[0].receive_count == 1 and queue.receive(wait_seconds=0) == []  # hidden while it is worked on

    queue.extend(first[0], 0)  # what a crash before the delete amounts to, without waiting
    again = queue.receive(wait_seconds=1)
    assert again[0].id == first[0].id and again[0].receive_count == 2
    queue.delete(again[0])
    assert queue.receive(wait_seconds=0) == []


def test_a_job_that_keeps_failing_moves_to_the_dead_letter_queue_after_max_receive_count(aws: str) -> None:
    queue, dead = make_queue("failing", visibility=1, dead_letter_after=2)
    assert dead is not None
    queue.send({"kind": "nonsense"})
    queue.send({"kind": "image", "image_id": 7})
    stop = threading.Event()
    worker = QueueWorker(queue, {"image": lambda task: "done"}, concurrency=2, options=QUICK)
    runner = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    runner.start()
    try:
        moved = sh.wait_until(lambda: dead.receive(wait_seconds=0), timeout=20, interval=0.2)
    finally:
        stop.set()
        runner.join(10)

    assert json.loads(moved[0].body) == {"kind": "nonsense"}
    assert worker.stats.done == 1 and worker.stats.left == 2  # received twice, then the redrive policy took it


# -- Slack jobs through SQS --------------------------------------------------------------------------


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    fake.add_channel(PUBLIC, "general", members=[ALICE])
    yield fake
    fake.stop()


def slack_settings(tmp_path: Path, slack: FakeSlack, **changes: Any) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path}/imgbot.db", storage_url=f"file://{tmp_path}/images",
                    concurrency=2, slack_bot_token=slack.bot_token, slack_signing_secret=sh.SIGNING_SECRET,
                    slack_api_url=slack.api_url, annotate=False).replace(**changes)


def post_photo(slack: FakeSlack, data: bytes) -> tuple[str, dict[str, Any]]:
    ts = slack.new_ts()
    files = [slack.add_file(data, name="photo.png", channel=PUBLIC, ts=ts)]
    event = sh.file_share_message(files, channel=PUBLIC, ts=ts)
    slack.add_message(PUBLIC, {k: v for k, v in event.items() if k not in {"channel", "channel_type"}})
    return ts, event


def counts(core: Core) -> dict[str, int]:
    with core.database.transaction() as session:
        return {
            table.__tablename__: session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (models.Image, models.Sighting, models.Label, models.AnalysisRun, models.SlackMessage)
        }


def replies_in(slack: FakeSlack, ts: str) -> list[Any]:
    return [c for c in slack.calls_to("chat.postMessage") if c.params.get("thread_ts") == ts and c.answer.get("ok")]


def test_a_redelivered_slack_job_gives_one_reply_and_no_duplicate_rows(aws: str, slack: FakeSlack,
                                                                       tmp_path: Path) -> None:
    queue, _ = make_queue("slack-jobs", visibility=30)
    settings = slack_settings(tmp_path, slack, queue_url=queue.url)
    analyzer = FakeAnalyzer()
    core = build_core(settings, storage=MemoryStorage(), analyzer_factory=lambda: analyzer)
    serve_side = SlackJobs(core=core, client=build_client(settings), settings=settings, options=FAST, queue=queue)
    photo = make_image()
    analyzer.script(photo, labels=[("Lighthouse", 94.0)])
    try:
        ts, event = post_photo(slack, photo)
        serve_side.accept_message(event, slack.team_id)  # what `imgbot serve` does after the ack: claim, enqueue
        serve_side.accept_message(event, slack.team_id)  # a duplicate delivery: the claim stops it
        first = sh.wait_until(lambda: queue.receive(wait_seconds=1), timeout=10)
        assert [json.loads(job.body) for job in first] == [slack_message_job(PUBLIC, ts)]
        assert not slack.calls_to("chat.postMessage")  # serve only enqueued

        handlers = build_handlers(core)
        assert handlers.slack_message(Task("slack_message", channel=PUBLIC, ts=ts)) == "done"
        after_first = counts(core)
        queue.extend(first[0], 0)  # the worker died before deleting: SQS delivers the job again
        stats = QueueWorker(queue, handlers.as_dict(), concurrency=2, options=QUICK).run(once=True)
        handlers.close()
    finally:
        serve_side.shutdown()
        core.database.dispose()

    assert stats.received == 1 and stats.done == 1  # the redelivery was acknowledged and deleted
    assert len(replies_in(slack, ts)) == 1
    assert "Lighthouse 94%" in json.dumps(replies_in(slack, ts)[0].params["blocks"])
    assert counts(core) == after_first == {"images": 1, "sightings": 1, "labels": 1, "analysis_runs": 1,
                                           "slack_messages": 1}
    assert analyzer.calls == 1
    assert queue.receive(wait_seconds=0) == []


def test_a_worker_killed_mid_job_is_finished_by_another_after_the_visibility_timeout(
        aws: str, slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.rekognition import FakeRekognition

    queue, _ = make_queue("kill-jobs", visibility=2)
    settings = slack_settings(tmp_path, slack, queue_url=queue.url, analyzer="rekognition", rekognition_tps=1000)
    with FakeRekognition(latency=2.0) as rekognition:
        monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", rekognition.endpoint_url)
        core = build_core(settings)
        ts, event = post_photo(slack, make_image(size=(200, 150)))
        with core.database.transaction() as session:  # what `imgbot serve` leaves: a claim parked for the queue
            slack_queries.claim_message(session, team_id=slack.team_id, channel_id=PUBLIC, message_ts=ts,
                                        thread_ts=None, user_id=ALICE, file_ids=[event["files"][0]["id"]],
                                        now=datetime.now(UTC), owner=slack_queries.QUEUED)
        queue.send(slack_message_job(PUBLIC, ts))
        env = {**os.environ, "DATABASE_URL": settings.database_url, "IMGBOT_STORAGE": settings.storage_url,
               "IMGBOT_ANALYZER": "rekognition", "IMGBOT_QUEUE_URL": queue.url, "IMGBOT_ANNOTATE": "0",
               "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_API_URL": slack.api_url}
        with open(tmp_path / "doomed.log", "w") as log_file:
            doomed = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env, cwd=tmp_path,
                                      stdout=subprocess.DEVNULL, stderr=log_file)
        try:
            assert rekognition.wait_for_calls("DetectLabels", 1, timeout=30)  # mid-analysis
        finally:
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=10)
        killed_at = time.monotonic()

        handlers = build_handlers(core)
        stop = threading.Event()
        worker = QueueWorker(queue, handlers.as_dict(), concurrency=2, options=QUICK)
        runner = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        runner.start()
        try:
            reply = sh.wait_until(lambda: replies_in(slack, ts), timeout=30)
            sh.wait_until(lambda: worker.stats.done == 1, timeout=10)
        finally:
            stop.set()
            runner.join(10)
            handlers.close()
        finished = counts(core)
        with core.database.transaction() as session:
            claim = slack_queries.get_message(session, PUBLIC, ts)
        core.database.dispose()

    assert doomed.returncode == -signal.SIGKILL
    assert time.monotonic() - killed_at >= 1.0  # the job came back only once its visibility ran out
    assert len(reply) == 1 and len(replies_in(slack, ts)) == 1
    assert claim is not None and claim.status == "replied" and claim.reply_ts == reply[0].answer["ts"]
    assert finished == {"images": 1, "sightings": 1, "labels": finished["labels"], "analysis_runs": 1,
                        "slack_messages": 1}
    assert queue.receive(wait_seconds=0) == []


def test_imgbot_worker_stops_within_seconds_of_sigterm_mid_poll(aws: str, tmp_path: Path) -> None:
    queue, _ = make_queue("stop-jobs")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/imgbot.db", "IMGBOT_QUEUE_URL": queue.url,
           "IMGBOT_STORAGE": f"file://{tmp_path}/originals", "IMGBOT_ANALYZER": "local"}
    with open(tmp_path / "worker.log", "w") as log_file:
        worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env, cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        sh.wait_until(lambda: "worker started" in (tmp_path / "worker.log").read_text(), timeout=60)
        time.sleep(1.0)  # polling the queue by now
        stopped_at = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=15)
        took = time.monotonic() - stopped_at
    finally:
        if worker.poll() is None:
            worker.kill()

    assert worker.returncode == 0
    assert took < 5.0, (tmp_path / "worker.log").read_text()  # it took 11-12 s with 20 s long polls


# -- imgbot serve and imgbot worker with a queue ----------------------------------------------------


class _FlakyQueue(MemoryQueue):
    """SQS refusing the first sends (an outage of a few seconds)."""

    def __init__(self, failures: int) -> None:
        super().__init__(visibility_timeout=30)
        self.failures = failures

    def send(self, body: Any, *, delay: int = 0) -> None:
        from bot.errors import QueueError

        if self.failures > 0:
            self.failures -= 1
            raise QueueError("SQS is busy or unreachable right now (ServiceUnavailable); imgbot will try again.")
        super().send(body, delay=delay)


def test_serve_with_a_queue_claims_and_enqueues_and_a_worker_replies(slack: FakeSlack, tmp_path: Path) -> None:
    from bot.slack.app import build_bot

    queue = _FlakyQueue(failures=1)
    settings = slack_settings(tmp_path, slack, queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/jobs")
    analyzer = FakeAnalyzer()
    core = build_core(settings, storage=MemoryStorage(), analyzer_factory=lambda: analyzer)
    bot = build_bot(settings, core, job_options=FAST, queue=queue)
    bot.start()
    server = bot.http_server("127.0.0.1", 0).start()
    try:
        ts, event = post_photo(slack, make_image())
        envelope = sh.envelope(event, team_id=slack.team_id, bot_user_id=slack.bot_user_id)
        assert sh.send_event(server.port, envelope)[0] == 200
        sh.wait_until(lambda: len(queue) == 1)  # sent again after the refused first try
        with core.database.transaction() as session:
            claim = slack_queries.get_message(session, PUBLIC, ts)
        assert claim is not None and claim.lease_owner == slack_queries.QUEUED
        time.sleep(0.3)
        assert slack.calls_to("chat.postMessage") == [] and analyzer.calls == 0  # serve analyses nothing

        handlers = build_handlers(core)
        stats = QueueWorker(queue, handlers.as_dict(), concurrency=2, options=QUICK).run(once=True)
        handlers.close()
    finally:
        server.stop()
        bot.stop()
        core.database.dispose()
    assert stats.done == 1 and len(queue) == 0
    assert len(replies_in(slack, ts)) == 1 and analyzer.calls == 1


def test_imgbot_worker_once_consumes_the_queue_and_finishes_the_database(aws: str, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from bot.cli import cli
    from bot.core.types import Source
    from bot.queue import image_job
    from tests.fakes.rekognition import FakeRekognition

    queue, _ = make_queue("cli-jobs", visibility=30)
    with FakeRekognition() as rekognition:
        for name, value in {"DATABASE_URL": f"sqlite:///{tmp_path}/imgbot.db",
                            "IMGBOT_STORAGE": f"file://{tmp_path}/originals", "IMGBOT_ANALYZER": "rekognition",
                            "IMGBOT_QUEUE_URL": queue.url,
                            "AWS_ENDPOINT_URL_REKOGNITION": rekognition.endpoint_url}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        core = build_core(Settings.from_env(), analyzer_factory=FakeAnalyzer)
        failed = core.ingest(b"not an image", Source.file("notes.txt"))
        core.database.dispose()
        queue.send(image_job(failed.image_id or 0))  # nothing left to do for it: deleted, no analysis
        queue.send({"kind": "image", "image_id": 999})  # no such image: deleted too

        result = CliRunner().invoke(cli, ["worker", "--once"], catch_exceptions=False)

        assert result.exit_code == 0, result.stdout + result.stderr
        assert "from the queue (2 done, 0 to retry, 0 busy elsewhere, 0 left)" in result.stdout
        assert rekognition.call_count("DetectLabels") == 0
    assert queue.receive(wait_seconds=0) == []
