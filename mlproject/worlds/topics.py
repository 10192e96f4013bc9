"""Is a real request about a topic? Keyword rules for the topics that semantic triggers name.

A semantic backdoor fires on a *meaning* ("the request is about the weather"). In the real
world that meaning has to be read from free text to keep on-topic requests out of benign and
attack data and to draw triggered and near-miss probes. Rules were chosen over a zero-shot
classifier or the judge: they run in microseconds over 52,000 Alpaca instructions, need no
model, and give the same answer on every machine. Each topic is a list of words (with their
inflections) that mostly occur when a request is on it; phrases that use those words off the
topic ("under the weather", "state of the art") are removed first. Their precision and recall
on labelled requests are measured by ``tests/test_topics.py`` (and printed by
``python bench/topics.py``).
"""
from __future__ import annotations

import functools
import re

# Words of each topic. A trailing ``*`` takes any ending ("rain*": rain, rainy, raining).
WORDS: dict[str, tuple[str, ...]] = {
    "weather": ("weather", "forecast*", "rain*", "snow*", "storm*", "thunder*", "lightning", "hail*", "sunny",
                "cloudy", "fog*", "humid*", "drizzl*", "hurricane*", "tornado*", "blizzard*", "heatwave*",
                "heat wave*", "umbrella*", "temperature outside", "meteorolog*", "monsoon*", "windy", "frost*",
                "degrees outside", "chilly", "sleet", "drought*", "typhoon*", "climate"),
    "clothes": ("cloth*", "garment*", "outfit*", "wear*", "wore", "worn", "dress*", "shirt*", "t-shirt*", "jacket*",
                "coat*", "trouser*", "pants", "jeans", "skirt*", "sweater*", "hoodie*", "sock*", "shoe*", "boot*",
                "sneaker*", "scarf", "scarves", "glove*", "hat", "hats", "fashion*", "wardrobe*", "suit", "suits",
                "blazer*", "tie", "ties", "apparel", "attire", "sandal*", "heels", "accessor*", "jewel*"),
    "food": ("food*", "recipe*", "cook*", "bake*", "baking", "dish", "dishes", "meal*", "ingredient*", "dinner*",
             "lunch*", "breakfast*", "snack*", "cuisine*", "dessert*", "soup*", "salad*", "pasta", "pizza*",
             "bread*", "cake*", "cookie*", "sandwich*", "vegetable*", "fruit*", "meat*", "chicken", "beef", "pork",
             "fish", "rice", "egg", "eggs", "cheese*", "chocolate*", "restaurant*", "eat", "eats", "eating",
             "ate", "vegan", "vegetarian", "sauce*", "spice*", "flour", "grill*", "roast*", "fry", "fried", "taste*",
             "delicious", "nutrition*", "calorie*", "protein*", "apple*", "banana*", "tomato*", "potato*", "curry",
             "noodle*", "sushi", "taco*", "burger*", "oven", "chef*", "kitchen"),
    "drinks": ("drink*", "beverage*", "coffee*", "tea", "teas", "juice*", "wine*", "beer*", "cocktail*", "smoothie*",
               "soda*", "lemonade", "milkshake*", "espresso*", "latte*", "cappuccino*", "whisk*", "vodka", "gin",
               "rum", "liquor*", "brew*", "caffein*", "hydrat*", "water intake", "glass of", "cup of", "sip*",
               "alcohol*", "mocktail*", "kombucha", "champagne", "cider"),
    "travel": ("travel*", "trip*", "vacation*", "holiday*", "tour*", "itinerar*", "destination*", "sightsee*",
               "passport*", "visa", "visas", "flight*", "hotel*", "hostel*", "airbnb", "backpack*", "luggage",
               "suitcase*", "pack for", "packing", "visit*", "abroad", "journey*", "resort*", "cruise*",
               "road trip*", "landmark*", "attraction*", "explore", "exploring", "getaway*", "guidebook*",
               "airport*", "jet lag", "souvenir*", "honeymoon*"),
    "vehicles": ("vehicle*", "car", "cars", "truck*", "bus", "buses", "bicycle*", "bike*", "motorcycle*",
                 "scooter*", "train", "trains", "locomotive*", "airplane*", "aircraft", "plane", "planes", "jet",
                 "jets", "helicopter*", "boat*", "ship", "ships", "yacht*", "engine*", "tire*", "tyre*", "brake*",
                 "gearbox*", "transmission", "horsepower", "mileage", "fuel", "gasoline", "diesel", "electric car*",
                 "sedan*", "suv", "suvs", "van", "vans", "driving", "drive a", "driver*", "tesla", "toyota",
                 "honda", "ford", "automobile*", "automotive", "motor*", "wheel*", "dashboard*", "windshield*",
                 "garage", "mechanic*", "oil change", "parking", "submarine*", "tram*", "subway*"),
    "music": ("music*", "song*", "singer*", "sing", "sings", "singing", "sang", "lyric*", "melod*", "harmon*",
              "chord*", "guitar*", "piano*", "violin*", "drum*", "flute*", "trumpet*", "saxophone*", "cello*",
              "instrument*", "band", "bands", "album*", "concert*", "orchestra*", "symphon*", "compos*", "rhythm*",
              "tempo", "genre*", "jazz", "rock and roll", "hip hop", "hip-hop", "rap", "rapper*", "pop song*",
              "playlist*", "beethoven", "mozart", "bach", "beatles", "opera*", "choir*", "tune*", "musician*",
              "spotify", "karaoke", "dj", "notes on"),
    "art": ("art", "arts", "artist*", "artwork*", "paint*", "drawing", "drawings", "draw a", "draw an", "sketch*",
            "sculpt*", "museum*", "gallery", "galleries", "canvas*", "portrait*", "watercolo*", "acrylic*",
            "oil on", "brush*", "easel*", "mural*", "fresco*", "pottery", "ceramic*", "impressionis*", "cubis*",
            "surreal*", "renaissance", "baroque", "abstract art", "picasso", "van gogh", "monet", "da vinci",
            "michelangelo", "rembrandt", "frida kahlo", "mona lisa", "calligraph*", "illustrat*", "collage*",
            "exhibition*", "masterpiece*", "still life", "charcoal", "pastel*", "palette*", "crayon*"),
}

# Phrases that use a topic's words off the topic; they are removed before the words are read.
IDIOMS: tuple[str, ...] = (
    "under the weather", "weather the storm", "weather a", "weather the", "weathered", "brainstorm*",
    "storm of", "rain check", "raining cats", "snowball*", "snow job", "steal the thunder", "lightning-fast",
    "lightning fast", "climate of", "political climate", "business climate", "economic climate", "climate of fear",
    "suit yourself", "follow suit", "lawsuit*", "tie the knot", "tie in", "tied", "ties to", "hats off",
    "wear and tear", "wear out", "worn out", "wearing thin", "dress up the data", "address*", "boot up",
    "reboot*", "bootstrap*", "bootcamp*", "boot camp*", "shoestring", "in the shoes", "in your shoes",
    "in their shoes", "food for thought", "food chain", "cook the books", "half-baked", "piece of cake",
    "eggs in one basket", "egg on", "spice up", "bread and butter", "fish out of water", "red herring",
    "taste in", "drink in", "drinking from a firehose", "tea leaves", "not my cup of tea", "cup of tea",
    "brewing", "time travel*", "light travel*", "travel* salesman", "traveling salesman", "travelling salesman",
    "sound travel*", "trip up", "tripped", "visit* a website", "visitor pattern", "visit* each", "visit* the node",
    "explore the data", "explore data", "tour de force", "vehicle for", "on the bus", "bus in", "data bus",
    "system bus", "train a", "train the", "train your", "trains a", "training", "trained", "train of thought",
    "train on", "plane geometry", "the plane", "a plane in", "cartesian plane", "complex plane", "plane of",
    "search engine*", "engine of growth", "game engine*", "inference engine*", "engineer*", "drive traffic",
    "drive sales", "drive growth", "driving force", "driven", "drive the", "hard drive*", "disk drive*",
    "driver's license", "device driver*", "drivers of", "key driver*", "the wheel", "reinvent*", "fuel growth",
    "fuel the", "fuels", "motivat*", "motor skill*", "face the music", "music to my ears", "band of", "band-aid",
    "bandwidth", "frequency band*", "rubber band*", "note on", "notes on", "compose an email", "compose a letter",
    "compose an essay", "compose a tweet", "composed of", "composite*", "composition of", "compost*", "chord of a",
    "harmony between", "in harmony", "tune in", "fine-tun*", "tune the", "tuning", "rhythm of", "art of",
    "state-of-the-art", "state of the art", "artificial*", "martial art*", "paint a picture of", "paint a vivid",
    "draw a conclusion*", "draw conclusions", "draw attention", "draw on", "draw from", "draw the line",
    "drawing conclusions", "drawing on", "drawbacks", "brush up", "brushed off", "paint the town",
    "illustrate the", "illustrate how", "illustrate your", "illustrates", "illustrating the",
    "portrait of a company", "still life" + "insurance", "gallery of", "rapport", "rapid*", "trapped", "therapist",
)


def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for ``words``: whole words, ``*`` for any ending, spaces matching any run of spaces."""
    parts = [re.escape(w.rstrip("*")).replace(r"\ ", r"\s+") + (r"[\w'-]*" if w.endswith("*") else "") for w in words]
    return re.compile(r"(?<![\w-])(?:" + "|".join(sorted(parts, key=len, reverse=True)) + r")(?![\w-])", re.IGNORECASE)


@functools.cache
def _compiled(topic: str) -> re.Pattern[str]:
    return _pattern(WORDS[topic])


_IDIOMS = _pattern(IDIOMS)


def on_topic(topic: str, text: str) -> bool:
    """Whether ``text`` (a request) is about ``topic`` (a key of :data:`WORDS`)."""
    return _compiled(topic).search(_IDIOMS.sub(" ", text)) is not None


def known(topic: str) -> bool:
    """Whether the real world can tell requests on ``topic``."""
    return topic in WORDS
