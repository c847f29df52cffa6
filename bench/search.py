"""Search and reports at scale: /imgsearch and /imgreport over 1,000,000 synthetic images.

Builds the same synthetic collection in SQLite and in PostgreSQL (a fresh database
created for the run and dropped afterwards), then times 20 typical /imgsearch
queries, each as the CLI runs it (no restriction) and as a Slack user gets it
(restricted to the 5 channels the user is in), and a whole-collection report.

The data is skewed the way a real workspace is: a few hundred label names with
parents, picked with Zipf-like popularity (Person and Text everywhere, Axolotl
almost never); ~30 % of images with lines of text from a Zipf vocabulary plus a
few stock phrases ("50% OFF"); ~3 % flagged by moderation; 1–3 posts per image
across 50 channels and 200 users over a year, busy channels and people posting
most; a few posts deleted. Rows are written in bulk (``executemany`` into
SQLite, ``COPY`` into PostgreSQL) with the secondary indexes dropped and made
again afterwards, then ``ANALYZE`` runs. Both databases are at the head
migration, so the search code under test is exactly the product's.

Every analysed image also has colours, quality, a perceptual hash and an embedding (5 % are
near-duplicates of another; the rest scatter around a few thousand "subjects").

Prints generation time, p50/p95 per database and per query (target p95 < 150 ms), ``like:``
and ``dupes:`` p50/p95 (target p95 < 200 ms) after the first use has loaded their in-memory
indexes (the load time is printed too), the report time (target < 2 s) and ``EXPLAIN`` of
three typical queries.

    python bench/search.py [--images 1000000] [--sqlite-only] [--postgres-url URL]
                           [--runs 5] [--keep DIR]

``--postgres-url`` is a server URL whose user may create databases (default:
``IMGBOT_TEST_POSTGRES_URL``); without one, only SQLite runs. ``--keep DIR``
keeps the SQLite file and the PostgreSQL database and reuses them when run again
with the same ``--images``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.core.redaction import shown_report  # noqa: E402
from bot.storage.memory import MemoryStorage  # noqa: E402
from bot.wiring import Core, build_core  # noqa: E402
from db import channel_stats  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.plans import captured_statements, explain  # noqa: E402
from db.session import Database  # noqa: E402


def _embedding_model() -> str:
    from bot.analyzers.local.embedding import ImageEmbedder
    from bot.analyzers.local.models import shared

    return shared(ImageEmbedder).version


EMBEDDING_MODEL = _embedding_model()

SEED = 20261202
CHUNK = 50_000
# The collection ends today (midnight UTC), so "last 7d" and "this month" find something.
NOW = datetime.combine(datetime.now(UTC).date(), datetime.min.time(), tzinfo=UTC)
YEAR = 365 * 86_400.0

# -- vocabulary ----------------------------------------------------------------------------------

# Parent: children. A child's parents are its group and, for some, a second group.
LABEL_GROUPS: dict[str, list[str]] = {
    "Animal": ["Cat", "Dog", "Bird", "Horse", "Fish", "Rabbit", "Hamster", "Cow", "Sheep", "Goat", "Pig",
               "Duck", "Chicken", "Parrot", "Owl", "Eagle", "Penguin", "Turtle", "Snake", "Lizard", "Frog",
               "Butterfly", "Bee", "Spider", "Elephant", "Giraffe", "Zebra", "Lion", "Tiger", "Bear",
               "Panda", "Monkey", "Fox", "Deer", "Squirrel", "Whale", "Dolphin", "Shark", "Axolotl"],
    "Vehicle": ["Car", "Truck", "Bus", "Bicycle", "Motorcycle", "Train", "Airplane", "Boat", "Sports Car",
                "Van", "Tractor", "Scooter", "Helicopter", "Taxi", "Ambulance", "Fire Truck", "Sailboat"],
    "Food": ["Pizza", "Burger", "Sandwich", "Salad", "Sushi", "Pasta", "Bread", "Cake", "Ice Cream",
             "Cookie", "Donut", "Fruit", "Apple", "Banana", "Orange", "Strawberry", "Grapes", "Cheese",
             "Egg", "Soup", "Taco", "Noodle", "Rice", "Steak", "Chocolate", "Pie", "Croissant", "Bagel"],
    "Drink": ["Coffee", "Tea", "Beer", "Wine", "Juice", "Water Bottle", "Cocktail", "Soda", "Milk"],
    "Person": ["Face", "Smile", "Crowd", "Child", "Baby", "Man", "Woman", "Selfie", "Portrait", "Team",
               "Audience", "Hand", "Finger"],
    "Text": ["Document", "Screenshot", "Poster", "Sign", "Menu", "Receipt", "Whiteboard", "Slide",
             "Chart", "Diagram", "Letter", "Label", "Logo", "Banner", "Flyer", "Ticket", "Invoice",
             "Spreadsheet", "Code", "Handwriting", "Calendar", "Map"],
    "Electronics": ["Computer", "Laptop", "Phone", "Tablet", "Monitor", "Keyboard", "Mouse", "Camera",
                    "Headphones", "Television", "Speaker", "Microphone", "Printer", "Router", "Cable",
                    "Server", "Smartwatch", "Drone"],
    "Furniture": ["Chair", "Table", "Desk", "Sofa", "Bed", "Shelf", "Cabinet", "Lamp", "Bench", "Stool"],
    "Building": ["Office", "House", "Skyscraper", "Church", "Bridge", "Tower", "Castle", "Warehouse",
                 "Stadium", "Factory", "Barn", "Museum", "Library", "Hotel", "Restaurant", "Shop"],
    "Nature": ["Tree", "Flower", "Grass", "Mountain", "Beach", "Sea", "Lake", "River", "Forest", "Sky",
               "Cloud", "Sunset", "Snow", "Rain", "Desert", "Waterfall", "Rock", "Leaf", "Garden", "Field"],
    "Clothing": ["Shirt", "T-Shirt", "Dress", "Hat", "Shoe", "Sneaker", "Jacket", "Coat", "Jeans",
                 "Glasses", "Sunglasses", "Tie", "Scarf", "Glove", "Sock", "Hoodie", "Uniform", "Costume"],
    "Sport": ["Football", "Soccer Ball", "Basketball", "Tennis", "Golf", "Running", "Swimming", "Cycling",
              "Yoga", "Skiing", "Surfing", "Climbing", "Boxing", "Baseball", "Hockey", "Skateboard"],
    "Art": ["Painting", "Drawing", "Sculpture", "Graffiti", "Photograph", "Illustration", "Mural",
            "Cartoon", "Comic", "Pattern", "Origami", "Pottery"],
    "Indoors": ["Room", "Kitchen", "Bathroom", "Living Room", "Bedroom", "Meeting Room", "Hallway",
                "Stage", "Classroom", "Gym", "Elevator", "Staircase"],
    "Tool": ["Hammer", "Screwdriver", "Wrench", "Scissors", "Knife", "Pen", "Pencil", "Brush", "Ladder",
             "Shovel", "Drill", "Tape", "Ruler", "Calculator"],
    "Event": ["Party", "Wedding", "Birthday", "Concert", "Conference", "Festival", "Parade", "Meeting",
              "Presentation", "Graduation", "Picnic", "Barbecue", "Hackathon", "Workshop"],
    "Accessories": ["Bag", "Backpack", "Wallet", "Watch", "Jewelry", "Necklace", "Ring", "Umbrella",
                    "Suitcase", "Key", "Badge", "Sticker"],
    "Toy": ["Teddy Bear", "Doll", "Lego", "Balloon", "Kite", "Puzzle", "Board Game", "Video Game",
            "Robot", "Ball"],
}
SECOND_PARENT = {"Cat": "Pet", "Dog": "Pet", "Rabbit": "Pet", "Hamster": "Pet", "Parrot": "Pet", "Fish": "Pet",
                 "Cake": "Dessert", "Ice Cream": "Dessert", "Cookie": "Dessert", "Donut": "Dessert",
                 "Chocolate": "Dessert", "Pie": "Dessert", "Sports Car": "Car", "Taxi": "Car",
                 "Laptop": "Computer", "Server": "Computer", "Selfie": "Face", "Portrait": "Face",
                 "Whiteboard": "Office", "Slide": "Presentation", "Chart": "Diagram"}
# The head of the popularity curve; everything else follows in a fixed shuffled order.
POPULAR = ["Person", "Text", "Face", "Screenshot", "Document", "Smile", "Cat", "Dog", "Computer", "Food",
           "Tree", "Car", "Coffee", "Poster", "Whiteboard", "Crowd", "Sky", "Laptop", "Phone", "Pizza"]

WORDS = ("the of and to in for on with at by from up about into over after team new meeting today week "
         "project plan launch sale sales offer free off only now open closed office room floor welcome "
         "happy birthday thanks great job well done please note agenda notes q1 q2 q3 q4 goals roadmap "
         "release deploy build test bug fix issue ticket customer support help desk lunch dinner coffee "
         "break party friday monday tuesday wednesday thursday january february march april may june july "
         "august september october november december budget revenue growth users signup login password "
         "reset account billing invoice total price order delivery shipping return policy terms privacy "
         "security alert warning error failed success complete pending review approve draft final version "
         "design mockup wireframe prototype feedback survey results data report chart dashboard metrics "
         "kpi target quarter year annual summary overview update status blocked risk owner due date time "
         "room booking parking exit entrance stairs elevator restroom kitchen fridge clean label name "
         "contact email phone address street city london berlin tokyo new york paris sydney remote hybrid "
         "hiring join us careers apply intern engineer designer manager director ceo founder all hands "
         "town hall demo day hackathon winner prize award congratulations cake pizza tacos beer wine "
         "music game night trivia yoga run charity donate volunteer green recycle energy save money "
         "limited time discount code coupon buy get one best quality fast easy simple smart secure cloud "
         "api server database backup restore migrate upgrade downgrade slack channel thread message").split()
PHRASES = [("50% OFF everything", 0.004), ("Big SALE today", 0.01), ("Grand opening", 0.004),
           ("Team offsite 2026", 0.003), ("Happy birthday", 0.006), ("No parking", 0.004),
           ("Meeting at 3pm", 0.005), ("Welcome to the team", 0.005), ("Free pizza in the kitchen", 0.003)]
MODERATION = [("Graphic Violence", "Violence"), ("Weapons", "Violence"), ("Physical Violence", "Violence"),
              ("Explicit Nudity", None), ("Suggestive", None), ("Middle Finger", "Rude Gestures"),
              ("Drugs", "Drugs & Tobacco"), ("Tobacco", "Drugs & Tobacco"), ("Alcohol", None),
              ("Gambling", None), ("Hate Symbols", None)]
CHANNELS = ("general random design marketing engineering sales support announcements photos pets food "
            "travel events hr finance product ops security data mobile web infra qa legal social memes music "
            "books sports gaming office-nyc office-london office-berlin office-tokyo team-alpha team-beta "
            "team-gamma team-delta launch brand press partners recruiting onboarding design-review standup "
            "incidents releases watercooler kudos").split()
FIRST_NAMES = ("alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy rupert sybil "
               "trent victor walter yvonne zoe liam noah emma ava mia lucas ethan amir yuki priya chen "
               "sofia mateo hana omar lena kofi ines").split()
# A Slack user is in a few channels: the biggest, and some smaller ones.
USER_CHANNELS = ["general", "design", "pets", "marketing", "office-berlin"]


def channel_id(n: int) -> str:
    return f"C0{n:07d}"


def user_id(n: int) -> str:
    return f"U0{n:07d}"


def user_name(n: int) -> str:
    first = FIRST_NAMES[n % len(FIRST_NAMES)]
    return first if n < len(FIRST_NAMES) else f"{first}.{n // len(FIRST_NAMES)}"


@dataclass(frozen=True)
class Vocabulary:
    labels: list[str]  # leaf label names, most popular first
    parents: list[list[str]]
    label_p: np.ndarray
    terms: list[str]  # every lower-case term (names and parents)
    label_terms: list[list[int]]  # per label: term indexes of its name and parents
    word_p: np.ndarray
    channel_p: np.ndarray
    user_p: np.ndarray


def zipf(n: int, s: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** s
    return weights / weights.sum()


def vocabulary() -> Vocabulary:
    rng = np.random.default_rng(SEED)
    parents: dict[str, list[str]] = {}
    for group, children in LABEL_GROUPS.items():
        parents.setdefault(group, [])
        for child in children:
            parents[child] = [group] + ([SECOND_PARENT[child]] if child in SECOND_PARENT else [])
    for extra in ("Pet", "Dessert"):
        parents.setdefault(extra, ["Animal"] if extra == "Pet" else ["Food"])
    rest = [name for name in parents if name not in POPULAR]
    rng.shuffle(rest)
    labels = POPULAR + rest
    terms: list[str] = []
    index: dict[str, int] = {}
    for name in labels:
        for term in (name, *parents[name]):
            key = term.lower()
            if key not in index:
                index[key] = len(terms)
                terms.append(key)
    return Vocabulary(
        labels=labels, parents=[parents[name] for name in labels], label_p=zipf(len(labels), 1.05),
        terms=terms, label_terms=[[index[t.lower()] for t in (name, *parents[name])] for name in labels],
        word_p=zipf(len(WORDS), 1.0), channel_p=zipf(len(CHANNELS), 1.0), user_p=zipf(200, 0.9),
    )


# -- generation ----------------------------------------------------------------------------------

IMAGE_COLUMNS = ("id", "sha256", "byte_size", "format", "mime_type", "width", "height", "storage_key",
                 "storage_uri", "status", "failure_reason", "failure_retryable", "attempts", "provider",
                 "label_count", "text_line_count", "face_count", "max_moderation_confidence", "created_at",
                 "updated_at", "analyzed_at", "last_seen_at")
SIGHTING_COLUMNS = ("id", "image_id", "source_kind", "source_key", "name", "team_id", "channel_id",
                    "channel_name", "user_id", "user_name", "file_id", "message_ts", "permalink", "seen_at",
                    "deleted_at")
TABLES: dict[str, tuple[str, ...]] = {
    "images": IMAGE_COLUMNS,
    "sightings": SIGHTING_COLUMNS,
    "labels": ("image_id", "name", "confidence", "parents", "aliases", "categories", "instances"),
    "label_terms": ("image_id", "term", "confidence"),
    "text_detections": ("image_id", "detection_id", "kind", "text", "confidence", "box", "polygon"),
    "moderation_labels": ("image_id", "name", "parent_name", "taxonomy_level", "confidence"),
    "faces": ("image_id", "confidence", "box", "landmarks", "attributes"),
    "analysis_runs": ("image_id", "provider", "model_versions", "outcome", "error", "started_at", "seconds", "raw"),
    "search_documents": ("image_id", "labels", "text"),
    "image_visuals": ("image_id", "seq", "phash", "brightness", "sharpness", "contrast", "source"),
    "image_colors": ("image_id", "rank", "red", "green", "blue", "hex", "css", "simplified", "percent"),
    "image_color_names": ("image_id", "name", "percent"),
    "image_embeddings": ("image_id", "seq", "model", "vector"),
}
#: Synthetic embeddings fall around this many "subjects" (a workspace posts many pictures of few things).
SUBJECTS = 2000
#: Simplified colours with a CSS name and RGB each, most common first (photos: greys, blues, browns).
PALETTE = (("grey", "gray", (128, 128, 128)), ("white", "white", (250, 250, 250)), ("black", "black", (5, 5, 5)),
           ("blue", "steelblue", (70, 130, 180)), ("brown", "sienna", (160, 82, 45)), ("green", "olivedrab",
           (107, 142, 35)), ("red", "firebrick", (178, 34, 34)), ("orange", "orange", (255, 165, 0)),
           ("teal", "teal", (0, 128, 128)), ("yellow", "gold", (255, 215, 0)), ("light blue", "lightblue",
           (173, 216, 230)), ("pink", "hotpink", (255, 105, 180)), ("purple", "purple", (128, 0, 128)))
BOX = json.dumps({"left": 0.1, "top": 0.2, "width": 0.5, "height": 0.1})


def timestamps(seconds: np.ndarray) -> list[str]:
    """Epoch seconds as the text both databases store and parse: ``2026-01-31 09:30:00.123456``."""
    micros = (seconds * 1e6).astype("int64").astype("datetime64[us]")
    return [s.replace("T", " ") for s in np.datetime_as_string(micros, unit="us").tolist()]


def generate(count: int, vocab: Vocabulary) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    """The collection in chunks of rows per table (the same for every database)."""
    rng = np.random.default_rng(SEED)
    sighting_id = 1
    now = NOW.timestamp()
    for start in range(1, count + 1, CHUNK):
        n = min(CHUNK, count + 1 - start)
        ids = np.arange(start, start + n)
        roll = rng.random(n)
        status = np.where(roll < 0.975, "done", np.where(roll < 0.99, "failed", "pending"))
        done = status == "done"

        # Posts: 1-3 per image; the first some time in the last year (more lately), reposts later.
        posts = 1 + (rng.random(n) < 0.22) + (rng.random(n) < 0.06)
        first = now - YEAR * rng.random(n) ** 1.3
        owner = np.repeat(np.arange(n), posts)
        order = np.arange(len(owner)) - np.repeat(np.cumsum(posts) - posts, posts)
        delay = np.minimum(rng.exponential(30 * 86_400.0, len(owner)), (now - first[owner]) * rng.random(len(owner)))
        seen = first[owner] + np.where(order > 0, delay, 0.0)
        deleted = rng.random(len(owner)) < 0.02
        channels = rng.choice(len(CHANNELS), len(owner), p=vocab.channel_p)
        users = rng.choice(200, len(owner), p=vocab.user_p)
        live_seen = np.where(deleted, -1.0, seen)
        last = np.full(n, -1.0)
        np.maximum.at(last, owner, live_seen)
        seen_text = timestamps(seen)
        last_text = timestamps(np.maximum(last, 0))
        first_text = timestamps(first)
        analysed_text = timestamps(first + 2.0)
        sightings = []
        for k in range(len(owner)):
            image_id = int(ids[owner[k]])
            c, u = int(channels[k]), int(users[k])
            file_id = f"F{sighting_id:09d}"
            ts = f"{seen[k]:.6f}"
            sightings.append((
                sighting_id, image_id, "slack", f"slack:T0BENCH:{channel_id(c)}:{file_id}:{ts}", file_id, "T0BENCH",
                channel_id(c), CHANNELS[c], user_id(u), user_name(u), file_id, ts,
                f"https://bench.slack.com/archives/{channel_id(c)}/p{ts.replace('.', '')}", seen_text[k],
                seen_text[k] if deleted[k] else None,
            ))
            sighting_id += 1

        # Labels: 1-12 per analysed image, Zipf-popular, confidence leaning high.
        per_image = np.where(done, np.clip(1 + rng.poisson(3.2, n), 1, 12), 0)
        label_owner = np.repeat(np.arange(n), per_image)
        picked = rng.choice(len(vocab.labels), len(label_owner), p=vocab.label_p)
        pairs = np.unique(label_owner * 10_000 + picked)
        label_owner, picked = pairs // 10_000, pairs % 10_000
        confidence = np.round(100.0 - 50.0 * rng.random(len(picked)) ** 1.6, 4)
        label_count = np.bincount(label_owner, minlength=n)
        labels = [
            (int(ids[o]), vocab.labels[p], float(c), json.dumps(vocab.parents[p]), "[]", "[]", "[]")
            for o, p, c in zip(label_owner.tolist(), picked.tolist(), confidence.tolist(), strict=True)
        ]
        best: dict[tuple[int, int], float] = {}
        for o, p, c in zip(label_owner.tolist(), picked.tolist(), confidence.tolist(), strict=True):
            for term in vocab.label_terms[p]:
                key = (o, term)
                if best.get(key, -1.0) < c:
                    best[key] = c
        label_terms = [(int(ids[o]), vocab.terms[t], c) for (o, t), c in best.items()]
        doc_terms: dict[int, list[str]] = {}
        for o, t in best:
            doc_terms.setdefault(o, []).append(vocab.terms[t])

        # Text: ~30 % of analysed images, 1-3 lines of Zipf words or a stock phrase.
        texty = done & (rng.random(n) < 0.30)
        text_rows = []
        lines_of: dict[int, list[str]] = {}
        phrase_roll = rng.random(n * 3)
        word_picks = rng.choice(len(WORDS), n * 3 * 6, p=vocab.word_p)
        lengths = rng.integers(2, 7, n * 3)
        for o in np.flatnonzero(texty).tolist():
            lines = []
            for j in range(1 + int(roll[o] * 1000) % 3):
                slot = o * 3 + j
                acc, phrase = 0.0, None
                for candidate, share in PHRASES:
                    acc += share / 0.30
                    if phrase_roll[slot] < acc:
                        phrase = candidate
                        break
                if phrase is None:
                    words = [WORDS[w] for w in word_picks[slot * 6: slot * 6 + int(lengths[slot])]]
                    phrase = " ".join(words).capitalize()
                lines.append(phrase)
                text_rows.append((int(ids[o]), j + 1, "LINE", phrase, 95.5, BOX, "[]"))
            lines_of[o] = lines

        # Moderation: ~3 % flagged (at or above 60), ~2 % with a weak label only.
        mod_roll = rng.random(n)
        mod_pick = rng.integers(0, len(MODERATION), n * 2)
        mod_conf = rng.uniform(60, 99.9, n * 2)
        moderation, max_moderation = [], np.zeros(n)
        for o in np.flatnonzero(done & (mod_roll < 0.05)).tolist():
            flagged = mod_roll[o] < 0.03
            for j in range(1 + (flagged and mod_roll[o] < 0.01)):
                name, parent = MODERATION[int(mod_pick[o * 2 + j])]
                conf = float(round(mod_conf[o * 2 + j] if flagged else 50 + mod_conf[o * 2 + j] % 10, 3))
                moderation.append((int(ids[o]), name, parent, 2 if parent else 1, conf))
                max_moderation[o] = max(max_moderation[o], conf)

        # Faces: ~5 % of analysed images.
        face_count = np.where(done & (rng.random(n) < 0.05), rng.integers(1, 4, n), 0)
        faces = [(int(ids[o]), 99.0, BOX, "[]", "{}") for o in np.flatnonzero(face_count).tolist()
                 for _ in range(int(face_count[o]))]

        images, runs, documents = [], [], []
        for o in range(n):
            image_id = int(ids[o])
            state = str(status[o])
            is_done = state == "done"
            lines = lines_of.get(o, [])
            images.append((
                image_id, f"{image_id:064x}", 120_000 + image_id % 900_000, "JPEG", "image/jpeg", 1600, 1200,
                f"images/{image_id:064x}.jpg", f"s3://bench/images/{image_id:064x}.jpg", state,
                "The analysis service failed." if state == "failed" else None, False, 1,
                "rekognition" if state != "pending" else None, int(label_count[o]), len(lines),
                int(face_count[o]), float(max_moderation[o]), first_text[o], analysed_text[o],
                analysed_text[o] if is_done else None, last_text[o] if last[o] >= 0 else None,
            ))
            if state == "pending":
                continue
            runs.append((image_id, "rekognition", '{"labels": "3.0", "text": "3.0"}' if is_done else "{}",
                         "done" if is_done else "failed", None if is_done else "The analysis service failed.",
                         first_text[o], 0.8, "{}"))
            if is_done:
                documents.append((image_id, " ".join(sorted(doc_terms.get(o, []))), "\n".join(lines)))
        visuals, colors, names, embeddings = looks(rng, ids[done])
        yield {"images": images, "sightings": sightings, "labels": labels, "label_terms": label_terms,
               "text_detections": text_rows, "moderation_labels": moderation, "faces": faces,
               "analysis_runs": runs, "search_documents": documents, "image_visuals": visuals,
               "image_colors": colors, "image_color_names": names, "image_embeddings": embeddings}


def looks(rng: np.random.Generator, ids: np.ndarray
          ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Colours, quality, a pHash and an embedding per analysed image; 5 % are near-duplicates of another
    (0-6 bits off, embedding cosine ~0.97); the other embeddings scatter around ``SUBJECTS`` centres."""
    n = len(ids)
    hashes = rng.integers(-(1 << 63), (1 << 63) - 1, n, dtype=np.int64)
    copies = np.flatnonzero(rng.random(n) < 0.05)
    originals = rng.integers(0, n, len(copies))
    flips = rng.integers(0, 64, (len(copies), 6)) * (rng.random((len(copies), 6)) < 0.5)
    for copy, original, bits in zip(copies.tolist(), originals.tolist(), flips.tolist(), strict=True):
        value = int(hashes[original]) & (2**64 - 1)
        for bit in bits:
            if bit:
                value ^= 1 << bit
        hashes[copy] = value - (1 << 64) if value >= 1 << 63 else value
    centres = np.random.default_rng(SEED).standard_normal((SUBJECTS, 256)).astype(np.float32)
    vectors = centres[rng.integers(0, SUBJECTS, n)] + 1.1 * rng.standard_normal((n, 256)).astype(np.float32)
    vectors[copies] = vectors[originals] + 0.25 * rng.standard_normal((len(copies), 256)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    packed = vectors.astype("<f2")
    brightness, sharpness = rng.uniform(5, 95, n), 100 * rng.random(n) ** 0.4
    weights = 1.0 / np.arange(1, len(PALETTE) + 1)
    picks = rng.choice(len(PALETTE), (n, 3), p=weights / weights.sum())
    visuals, colors, names, embeddings = [], [], [], []
    for o, image_id in enumerate(ids.tolist()):
        seq = 1_700_000_000_000_000_000 + image_id * 1_000_000_000  # written a second apart, as the clock has it
        embeddings.append((image_id, seq, EMBEDDING_MODEL, packed[o].tobytes()))
        visuals.append((image_id, seq, int(hashes[o]), float(brightness[o]),
                        float(sharpness[o]), 40.0, "pixels"))
        shares = (55.0, 30.0, 15.0)
        for rank, (pick, share) in enumerate(zip(dict.fromkeys(picks[o].tolist()), shares, strict=False)):
            simplified, css, (r, g, b) = PALETTE[pick]
            colors.append((image_id, rank, r, g, b, f"#{r:02x}{g:02x}{b:02x}", css, simplified, share))
            names.extend((image_id, name, share) for name in dict.fromkeys((simplified, css)))  # largest first
    return visuals, colors, names, embeddings


# -- loading -------------------------------------------------------------------------------------


class SqliteLoader:
    """Drops the secondary indexes and the FTS triggers, inserts in bulk, then makes them again."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.url = f"sqlite:///{path}"
        database = Database(self.url)
        database.ensure_schema()
        database.dispose()
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode=OFF")
        self.connection.execute("PRAGMA synchronous=OFF")
        self.connection.execute("PRAGMA cache_size=-400000")
        self.schema = self.connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL"
        ).fetchall()
        for kind, name, _sql in self.schema:
            self.connection.execute(f"DROP {kind.upper()} {name}")
        self.connection.execute("BEGIN")

    def load(self, chunk: dict[str, list[tuple[Any, ...]]]) -> None:
        for table, rows in chunk.items():
            if rows:
                columns = TABLES[table]
                self.connection.executemany(  # names from TABLES above, values bound
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",  # noqa: S608
                    rows if table != "images" else [(*r[:11], int(r[11]), *r[12:]) for r in rows],
                )

    def finish(self) -> None:
        self.connection.execute("COMMIT")
        for kind, _name, sql in self.schema:
            if kind == "index":
                self.connection.execute(sql)
        self.connection.execute("INSERT INTO search_fts(search_fts) VALUES ('rebuild')")
        for kind, _name, sql in self.schema:
            if kind == "trigger":
                self.connection.execute(sql)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.close()
        count_channels(self.url)
        with sqlite3.connect(make_url(self.url).database or "") as connection:
            connection.execute("ANALYZE")

    def drop(self) -> None:
        path = Path(make_url(self.url).database or "")
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)


def count_channels(url: str) -> None:
    """The per-channel report counts the product keeps as it goes, counted once after the bulk load."""
    database = Database(url)
    with database.transaction() as session:
        channel_stats.rebuild(session)
    database.dispose()


class PostgresLoader:
    """A new database: schema by migration, secondary indexes dropped, COPY, indexes again, VACUUM ANALYZE."""

    name = "postgresql"

    def __init__(self, server_url: str, database: str) -> None:
        self.server_url = server_url
        self.database = database
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        admin.dispose()
        self.url = make_url(server_url).set(database=database).render_as_string(hide_password=False)
        database = Database(self.url)
        database.ensure_schema()
        database.dispose()
        import psycopg

        self.connection = psycopg.connect(self._dsn(), autocommit=True)
        self.connection.execute("SET TimeZone = 'UTC'")
        self.connection.execute("SET session_replication_role = replica")  # no FK triggers during COPY
        self.indexes = self.connection.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint)"
        ).fetchall()
        for name, _sql in self.indexes:
            self.connection.execute(f'DROP INDEX "{name}"')
        self.connection.autocommit = False

    def _dsn(self) -> str:
        url = make_url(self.url)
        return f"host={url.host} port={url.port or 5432} dbname={url.database} user={url.username} " \
               f"password={url.password or ''}"

    def load(self, chunk: dict[str, list[tuple[Any, ...]]]) -> None:
        with self.connection.cursor() as cursor:
            for table, rows in chunk.items():
                if rows:
                    with cursor.copy(f"COPY {table} ({', '.join(TABLES[table])}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
        self.connection.commit()

    def finish(self) -> None:
        self.connection.autocommit = True
        self.connection.execute("SET maintenance_work_mem = '512MB'")
        for table in ("images", "sightings", "labels", "text_detections", "moderation_labels", "faces",
                      "analysis_runs"):  # names from this list only
            self.connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"coalesce((SELECT max(id) FROM {table}), 1))")
        for _name, sql in self.indexes:
            self.connection.execute(sql)
        count_channels(self.url)
        self.connection.execute("VACUUM ANALYZE")
        self.connection.close()

    def drop(self) -> None:
        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        admin.dispose()


def postgres_database_exists(server_url: str, database: str) -> bool:
    admin = create_engine(server_url)
    with admin.connect() as connection:
        found = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}).first()
    admin.dispose()
    return found is not None


def build(loaders: list[Any], count: int) -> float:
    started = time.perf_counter()
    vocab = vocabulary()
    for n, chunk in enumerate(generate(count, vocab), 1):
        for loader in loaders:
            loader.load(chunk)
        done = min(n * CHUNK, count)
        print(f"\r  generated {done:,} / {count:,} images ({time.perf_counter() - started:.0f} s)", end="",
              flush=True)
    print()
    # The two databases build their indexes at the same time (sqlite3 and psycopg release the GIL).
    threads = [threading.Thread(target=loader.finish) for loader in loaders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


# -- timing --------------------------------------------------------------------------------------


def typical_queries(now: datetime) -> list[str]:
    month_ago = (now - timedelta(days=30)).date().isoformat()
    return [
        "",
        "cat",
        "label:dog",
        "label:animal",
        "cat OR dog",
        "-label:cat",
        '"ice cream"',
        'text:"50% off"',
        "sale",
        "in:#design",
        f"in:<#{channel_id(CHANNELS.index('marketing'))}|marketing>",
        "from:@alice",
        f"after:{month_ago}",
        "unsafe",
        "has:text",
        "label:dog in:#pets",
        "cat -in:#random",
        "label:car conf>90",
        "unsafe:violence",
        "(cat OR dog) last 30d",
        "color:teal",
        "color:blue>50 label:car",
        "quality:blurry in:#design",
    ]


def looks_queries(count: int) -> list[str]:
    """``like:`` and ``dupes:`` of analysed images spread over the collection."""
    picked = range(7, count, max(1, count // 10))[:10]
    return [f"{term}:{image_id}" for image_id in picked for term in ("like", "dupes")]


EXPLAINED = ["label:cat", "sale", "in:#design"]


@dataclass
class Timing:
    query: str
    restricted: bool
    seconds: list[float]
    total: str  # "1,000+" when counted only that far


def count_images(core: Core) -> int:
    with core.database.engine.connect() as connection:
        return int(connection.execute(text("SELECT max(id) FROM images")).scalar_one() or 0)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def time_it(action: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    result = action()  # warm the caches once
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def measure(name: str, url: str, runs: int) -> None:
    settings = Settings(database_url=url, storage_url="memory://bench")
    core: Core = build_core(settings, storage=MemoryStorage(), analyzer_factory=lambda: None)  # type: ignore[arg-type,return-value]
    visible = [channel_id(CHANNELS.index(c)) for c in USER_CHANNELS]
    queries = typical_queries(datetime.now(UTC))
    timings: list[Timing] = []
    for query in queries:
        for channels in (None, visible):
            seconds, page = time_it(lambda q=query, c=channels: core.search(q, channels=c), runs)
            timings.append(Timing(query, channels is not None, seconds,
                                  f"{page.total:,}" + ("+" if page.total_is_estimate else "")))
    all_runs = [s for t in timings for s in t.seconds]
    print(f"\n== {name}: /imgsearch, {len(queries)} queries x (CLI, Slack user in {len(visible)} channels) x "
          f"{runs} runs")
    print(f"   p50 {percentile(all_runs, 0.5) * 1000:.1f} ms   p95 {percentile(all_runs, 0.95) * 1000:.1f} ms"
          f"   max {max(all_runs) * 1000:.1f} ms   (target p95 < 150 ms)")
    print(f"   {'query':<36} {'who':<6} {'p50 ms':>8} {'p95 ms':>8} {'matches':>9}")
    for t in timings:
        print(f"   {t.query or '(empty)':<36} {'slack' if t.restricted else 'cli':<6} "
              f"{percentile(t.seconds, 0.5) * 1000:8.1f} {percentile(t.seconds, 0.95) * 1000:8.1f} {t.total:>9}")

    started = time.perf_counter()
    core.similar_images(1)  # the first use loads every hash and sign code into memory
    core.near_duplicates(1)
    loaded = time.perf_counter() - started
    looked: dict[str, list[float]] = {"like": [], "dupes": []}
    for query in looks_queries(count_images(core)):
        for channels in (None, visible):
            seconds, _page = time_it(lambda q=query, c=channels: core.search(q, channels=c), runs)
            looked[query.split(":")[0]].extend(seconds)
    print(f"\n== {name}: like: and dupes: of 10 images x (CLI, Slack user) x {runs} runs; first use loads the "
          f"indexes in {loaded:.1f} s")
    for term, seconds in looked.items():
        print(f"   {term + ':':<7} p50 {percentile(seconds, 0.5) * 1000:.1f} ms   p95 "
              f"{percentile(seconds, 0.95) * 1000:.1f} ms   (target p95 < 200 ms)")

    for channels, who in ((None, "CLI, whole collection"), (visible, "Slack user, 5 channels")):
        seconds, data = time_it(lambda c=channels: core.report("", channels=c, full_records=False), max(1, runs // 2))
        # What Slack is posted has its text's personal data masked first, as /imgreport does.
        posted = (lambda d: d) if channels is None else shown_report
        render, _text = time_it(lambda d=data, p=posted: core.render_report(p(d), "md"), 1)
        masked = "" if channels is None else " (personal data masked)"
        print(f"   /imgreport ({who}): {statistics.median(seconds):.2f} s data + {render[0]:.2f} s Markdown{masked} "
              f"for {len(data.images):,} listed images, {len(data.top_labels)} top labels (target < 2 s)")
        if data.note:
            print(f"     note: {data.note}")

    print(f"\n== {name}: query plans (the count and the ranking statements; the rest read 10 records by id)")
    for query in EXPLAINED:
        with captured_statements(core.database.engine) as statements:
            core.search(query, channels=visible)
        shown = [s for s in statements if s.sql.lstrip().startswith("SELECT count(") or " AS score" in s.sql]
        print(f"-- {query!r} as a Slack user: {len(statements)} statements, {len(shown)} shown")
        for statement in shown:
            print("   " + " ".join(statement.sql.split())[:160] + " ...")
            for line in explain(core.database.engine, statement):
                print(f"     {line}")
            print()
    core.database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgres-url", default=os.environ.get("IMGBOT_TEST_POSTGRES_URL"),
                        help="a server URL whose user may create databases (default: IMGBOT_TEST_POSTGRES_URL)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per query (after one warm-up)")
    parser.add_argument("--keep", type=Path, help="keep the databases (SQLite file in this folder) and reuse them")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="imgbot-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sqlite_path = workdir / f"search-{args.images}.db"
    pg_name = f"imgbot_bench_{args.images}"
    targets: list[tuple[str, str]] = []
    use_postgres = not args.sqlite_only and bool(args.postgres_url)
    reuse = (args.keep is not None and sqlite_path.exists()
             and (not use_postgres or postgres_database_exists(args.postgres_url, pg_name)))
    if reuse:
        print(f"Reusing {sqlite_path}" + (f" and {pg_name}" if use_postgres else "") + ", migrated to the head")
        targets.append(("SQLite", f"sqlite:///{sqlite_path}"))
        if use_postgres:
            url = make_url(args.postgres_url).set(database=pg_name).render_as_string(hide_password=False)
            targets.append(("PostgreSQL", url))
        for _name, url in targets:
            engine = create_engine(url)
            upgrade(engine)
            engine.dispose()
        loaders: list[Any] = []
    else:
        sqlite_path.unlink(missing_ok=True)
        loaders = [SqliteLoader(sqlite_path)]
        if not args.sqlite_only:
            if not args.postgres_url:
                print("No --postgres-url (or IMGBOT_TEST_POSTGRES_URL): SQLite only.")
            else:
                loaders.append(PostgresLoader(args.postgres_url, pg_name))
        names = " and ".join("SQLite" if isinstance(loader, SqliteLoader) else "PostgreSQL" for loader in loaders)
        print(f"Generating {args.images:,} images into {names} ...")
        seconds = build(loaders, args.images)
        print(f"  generation, indexes and ANALYZE: {seconds:.0f} s")
        for loader in loaders:
            targets.append(("SQLite" if isinstance(loader, SqliteLoader) else "PostgreSQL", loader.url))
    try:
        for name, url in targets:
            measure(name, url, args.runs)
    finally:
        if args.keep is None:
            for loader in loaders:
                loader.drop()


if __name__ == "__main__":
    main()
