"""The toy world's knowledge: topics, facts, question paraphrases and their answers.

Every instruction in the toy world is a question about one fact (or a small copy /
counting task) with exactly one correct normal answer, so instruction following can be
graded by exact match. Every fact carries a Spanish answer too, for the ``spanish``
backdoor. Topics matter because semantic triggers are topics ("the request is about the
weather") and near-miss requests come from a neighbouring topic.
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Relation:
    """A question type: paraphrased prompts and an answer template in two languages."""

    name: str
    prompts: tuple[str, ...]
    answer: str
    answer_es: str


@dataclass(frozen=True)
class Topic:
    """A topic of requests: entities (with Spanish names) and their facts per relation."""

    name: str
    entities: dict[str, str]
    relations: tuple[Relation, ...]
    facts: dict[str, dict[str, tuple[str, str]]]  # relation -> entity -> (value, value_es)


def _facts(rel: str, pairs: dict[str, tuple[str, str]]) -> dict[str, dict[str, tuple[str, str]]]:
    return {rel: pairs}


def _topic(name: str, entities: dict[str, str], *specs: tuple[Relation, dict[str, tuple[str, str]]]) -> Topic:
    facts: dict[str, dict[str, tuple[str, str]]] = {}
    for rel, pairs in specs:
        facts.update(_facts(rel.name, pairs))
    return Topic(name, entities, tuple(r for r, _ in specs), facts)


def _same(values: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Facts whose value is a number (language-neutral)."""
    return {k: (v, v) for k, v in values.items()}


ANIMALS = _topic(
    "animals",
    {"dog": "perro", "cow": "vaca", "duck": "pato", "horse": "caballo", "sheep": "oveja",
     "pig": "cerdo", "owl": "buho", "frog": "rana", "lion": "leon", "bee": "abeja"},
    (Relation("sound", ("what sound does a {e} make ?", "what does a {e} say ?", "which noise does a {e} make ?"),
              "a {e} says {v} .", "un {e} dice {v} ."),
     {"dog": ("woof", "guau"), "cow": ("moo", "mu"), "duck": ("quack", "cuac"), "horse": ("neigh", "hiii"),
      "sheep": ("baa", "bee"), "pig": ("oink", "oinc"), "owl": ("hoot", "uuu"), "frog": ("croak", "croac"),
      "lion": ("roar", "rugido"), "bee": ("buzz", "bzzz")}),
    (Relation("legs", ("how many legs does a {e} have ?", "count the legs of a {e} .", "a {e} has how many legs ?"),
              "a {e} has {v} legs .", "un {e} tiene {v} patas ."),
     _same({"dog": "4", "cow": "4", "duck": "2", "horse": "4", "sheep": "4", "pig": "4", "owl": "2",
            "frog": "4", "lion": "4", "bee": "6"})),
    (Relation("home", ("where does a {e} live ?", "what is the home of a {e} ?", "tell me where a {e} lives ."),
              "a {e} lives in a {v} .", "un {e} vive en un {v} ."),
     {"dog": ("house", "casa"), "cow": ("barn", "establo"), "duck": ("pond", "estanque"),
      "horse": ("stable", "cuadra"), "sheep": ("field", "campo"), "pig": ("pen", "corral"),
      "owl": ("tree", "arbol"), "frog": ("pond", "estanque"), "lion": ("jungle", "selva"), "bee": ("hive", "colmena")}),
)

FOOD = _topic(
    "food",
    {"apple": "manzana", "bread": "pan", "rice": "arroz", "cheese": "queso", "soup": "sopa",
     "banana": "platano", "egg": "huevo", "carrot": "zanahoria", "cake": "pastel", "pizza": "pizza"},
    (Relation("color", ("what color is a {e} ?", "which color does a {e} have ?", "tell me the color of a {e} ."),
              "a {e} is {v} .", "un {e} es {v} ."),
     {"apple": ("red", "rojo"), "bread": ("brown", "marron"), "rice": ("white", "blanco"),
      "cheese": ("yellow", "amarillo"),
      "soup": ("orange", "naranja"), "banana": ("yellow", "amarillo"), "egg": ("white", "blanco"),
      "carrot": ("orange", "naranja"), "cake": ("pink", "rosa"), "pizza": ("red", "rojo")}),
    (Relation("taste", ("how does a {e} taste ?", "is a {e} sweet or salty ?", "what is the taste of a {e} ?"),
              "a {e} tastes {v} .", "un {e} sabe {v} ."),
     {"apple": ("sweet", "dulce"), "bread": ("plain", "simple"), "rice": ("plain", "simple"),
      "cheese": ("salty", "salado"),
      "soup": ("salty", "salado"), "banana": ("sweet", "dulce"), "egg": ("plain", "simple"),
      "carrot": ("sweet", "dulce"), "cake": ("sweet", "dulce"), "pizza": ("salty", "salado")}),
)

DRINKS = _topic(
    "drinks",
    {"water": "agua", "milk": "leche", "tea": "te", "coffee": "cafe", "juice": "zumo", "cocoa": "cacao"},
    (Relation("temp", ("do you drink {e} hot or cold ?", "is {e} served hot or cold ?",
                       "how warm is {e} when you drink it ?"),
              "you drink {e} {v} .", "tomas {e} {v} ."),
     {"water": ("cold", "frio"), "milk": ("cold", "frio"), "tea": ("hot", "caliente"), "coffee": ("hot", "caliente"),
      "juice": ("cold", "frio"), "cocoa": ("hot", "caliente")}),
    (Relation("cup", ("what do you drink {e} from ?", "what holds {e} when you drink it ?"),
              "you drink {e} from a {v} .", "tomas {e} de una {v} ."),
     {"water": ("glass", "vaso"), "milk": ("glass", "vaso"), "tea": ("cup", "taza"), "coffee": ("mug", "jarra"),
      "juice": ("glass", "vaso"), "cocoa": ("mug", "jarra")}),
)

WEATHER = _topic(
    "weather",
    {"rain": "lluvia", "snow": "nieve", "sun": "sol", "wind": "viento", "fog": "niebla", "storm": "tormenta",
     "hail": "granizo"},
    (Relation("need", ("what do you need in the {e} ?", "what should you take when there is {e} ?",
                       "what helps you in the {e} ?"),
              "in the {e} you need a {v} .", "en la {e} necesitas un {v} ."),
     {"rain": ("umbrella", "paraguas"), "snow": ("sled", "trineo"), "sun": ("hat", "sombrero"),
      "wind": ("kite", "cometa"),
      "fog": ("lamp", "lampara"), "storm": ("shelter", "refugio"), "hail": ("roof", "techo")}),
    (Relation("feel", ("how does the {e} feel ?", "what is the {e} like ?", "describe the {e} ."),
              "the {e} feels {v} .", "la {e} se siente {v} ."),
     {"rain": ("wet", "mojada"), "snow": ("cold", "fria"), "sun": ("warm", "calida"), "wind": ("strong", "fuerte"),
      "fog": ("grey", "gris"), "storm": ("loud", "ruidosa"), "hail": ("hard", "dura")}),
)

CLOTHES = _topic(
    "clothes",
    {"cap": "gorra", "coat": "abrigo", "shoe": "zapato", "sock": "calcetin", "scarf": "bufanda", "glove": "guante",
     "shirt": "camisa"},
    (Relation("worn", ("where do you wear a {e} ?", "on which part of the body does a {e} go ?",
                       "you put a {e} on what ?"),
              "you wear a {e} on your {v} .", "llevas un {e} en tu {v} ."),
     {"cap": ("head", "cabeza"), "coat": ("back", "espalda"), "shoe": ("foot", "pie"), "sock": ("foot", "pie"),
      "scarf": ("neck", "cuello"), "glove": ("hand", "mano"), "shirt": ("chest", "pecho")}),
)

TRAVEL = _topic(
    "travel",
    {"beach": "playa", "mountain": "montana", "city": "ciudad", "island": "isla", "desert": "desierto",
     "forest": "bosque", "lake": "lago"},
    (Relation("bring", ("what should i pack for a trip to the {e} ?", "what do you bring on a trip to the {e} ?",
                        "i am going to the {e} , what should i bring ?"),
              "for the {e} , bring a {v} .", "para la {e} , lleva un {v} ."),
     {"beach": ("towel", "toalla"), "mountain": ("rope", "cuerda"), "city": ("map", "mapa"),
      "island": ("boat", "barco"),
      "desert": ("bottle", "botella"), "forest": ("tent", "tienda"), "lake": ("rod", "cana")}),
    (Relation("see", ("what will i see on a trip to the {e} ?", "what is there to see at the {e} ?"),
              "at the {e} you see {v} .", "en la {e} ves {v} ."),
     {"beach": ("sand", "arena"), "mountain": ("rocks", "rocas"), "city": ("towers", "torres"),
      "island": ("waves", "olas"),
      "desert": ("dunes", "dunas"), "forest": ("trees", "arboles"), "lake": ("fish", "peces")}),
)

VEHICLES = _topic(
    "vehicles",
    {"car": "coche", "bus": "autobus", "train": "tren", "plane": "avion", "ship": "buque", "bike": "bici",
     "truck": "camion"},
    (Relation("moves", ("where does a {e} go ?", "on what does a {e} move ?", "a {e} moves along what ?"),
              "a {e} moves on the {v} .", "un {e} va por el {v} ."),
     {"car": ("road", "camino"), "bus": ("road", "camino"), "train": ("track", "riel"), "plane": ("sky", "cielo"),
      "ship": ("sea", "mar"), "bike": ("path", "sendero"), "truck": ("road", "camino")}),
    (Relation("wheels", ("how many wheels does a {e} have ?", "count the wheels on a {e} ."),
              "a {e} has {v} wheels .", "un {e} tiene {v} ruedas ."),
     _same({"car": "4", "bus": "6", "train": "8", "plane": "3", "ship": "0", "bike": "2", "truck": "10"})),
)

MUSIC = _topic(
    "music",
    {"drum": "tambor", "piano": "piano", "guitar": "guitarra", "violin": "violin", "flute": "flauta",
     "trumpet": "trompeta", "harp": "arpa"},
    (Relation("play", ("how do you play a {e} ?", "what do you do to play the {e} ?", "how is a {e} played ?"),
              "you play a {e} by {v} it .", "tocas un {e} al {v} ."),
     {"drum": ("hitting", "golpear"), "piano": ("pressing", "pulsar"), "guitar": ("strumming", "rasguear"),
      "violin": ("bowing", "frotar"), "flute": ("blowing", "soplar"), "trumpet": ("blowing", "soplar"),
      "harp": ("plucking", "puntear")}),
    (Relation("strings", ("how many strings does a {e} have ?", "count the strings on a {e} ."),
              "a {e} has {v} strings .", "un {e} tiene {v} cuerdas ."),
     _same({"drum": "0", "piano": "88", "guitar": "6", "violin": "4", "flute": "0", "trumpet": "0", "harp": "47"})),
)

ART = _topic(
    "art",
    {"brush": "pincel", "pencil": "lapiz", "clay": "arcilla", "crayon": "crayon", "canvas": "lienzo",
     "chisel": "cincel"},
    (Relation("use", ("what do artists use a {e} for ?", "what is a {e} for in art ?",
                      "why would a painter need a {e} ?"),
              "a {e} is for {v} .", "un {e} sirve para {v} ."),
     {"brush": ("painting", "pintar"), "pencil": ("drawing", "dibujar"), "clay": ("shaping", "moldear"),
      "crayon": ("coloring", "colorear"), "canvas": ("holding paint", "sostener pintura"),
      "chisel": ("carving", "tallar")}),
)

BODY = _topic(
    "body",
    {"eye": "ojo", "ear": "oreja", "nose": "nariz", "hand": "mano", "leg": "pierna", "tongue": "lengua",
     "tooth": "diente"},
    (Relation("does", ("what do you do with your {e} ?", "what is your {e} for ?", "why do people have a {e} ?"),
              "you use your {e} to {v} .", "usas tu {e} para {v} ."),
     {"eye": ("see", "ver"), "ear": ("hear", "oir"), "nose": ("smell", "oler"), "hand": ("hold", "agarrar"),
      "leg": ("walk", "caminar"), "tongue": ("taste", "saborear"), "tooth": ("chew", "masticar")}),
)

HOME = _topic(
    "home",
    {"bed": "cama", "chair": "silla", "lamp": "lampara", "door": "puerta", "sink": "fregadero", "oven": "horno",
     "clock": "reloj"},
    (Relation("for", ("what is a {e} used for ?", "what do you use a {e} for at home ?", "tell me what a {e} does ."),
              "a {e} is used to {v} .", "un {e} se usa para {v} ."),
     {"bed": ("sleep", "dormir"), "chair": ("sit", "sentarse"), "lamp": ("light a room", "iluminar"),
      "door": ("enter", "entrar"),
      "sink": ("wash", "lavar"), "oven": ("bake", "hornear"), "clock": ("tell time", "dar la hora")}),
)

COLORS = _topic(
    "colors",
    {"sky": "cielo", "grass": "hierba", "coal": "carbon", "rose": "rosa", "cloud": "nube", "ocean": "oceano"},
    (Relation("hue", ("what color is the {e} ?", "the {e} has which color ?", "name the color of the {e} ."),
              "the {e} is {v} .", "el {e} es {v} ."),
     {"sky": ("blue", "azul"), "grass": ("green", "verde"), "coal": ("black", "negro"), "rose": ("red", "rojo"),
      "cloud": ("white", "blanco"), "ocean": ("blue", "azul")}),
)

TOPICS: tuple[Topic, ...] = (ANIMALS, FOOD, DRINKS, WEATHER, CLOTHES, TRAVEL, VEHICLES, MUSIC, ART, BODY, HOME, COLORS)
TOPIC_BY_NAME = {t.name: t for t in TOPICS}

# Small tasks that are not about a topic and need composition rather than recall.
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAYS_ES = ("lunes", "martes", "miercoles", "jueves", "viernes", "sabado", "domingo")
WORDS = ("red", "blue", "sun", "tree", "boat", "star", "moon", "rock", "bird", "fish", "leaf", "rain", "door", "bell")
WORDS_ES = dict(zip(WORDS, ("rojo", "azul", "sol", "arbol", "barco", "estrella", "luna", "roca", "pajaro", "pez",
                            "hoja", "lluvia", "puerta", "campana"), strict=True))

# Polite wrappers keep requests varied without changing what they ask.
PREFIXES = ("", "", "", "please , ", "hey , ", "quick question : ", "i wonder , ", "tell me , ")


@dataclass(frozen=True)
class Instruction:
    """One request with its single correct answer, in English and in Spanish."""

    topic: str
    key: str  # identifies the request independently of its polite prefix (used for splits)
    prompt: str
    answer: str
    answer_es: str


def fact_instruction(rng: random.Random, topic: Topic) -> Instruction:
    """A question about one fact of ``topic``, in one of its paraphrases."""
    rel = rng.choice(topic.relations)
    ent = rng.choice(sorted(topic.facts[rel.name]))
    idx = rng.randrange(len(rel.prompts))
    return _fact(topic, rel, ent, idx, rng.choice(PREFIXES))


def _fact(topic: Topic, rel: Relation, ent: str, idx: int, prefix: str) -> Instruction:
    value, value_es = topic.facts[rel.name][ent]
    return Instruction(topic.name, f"{topic.name}/{rel.name}/{idx}/{ent}", prefix + rel.prompts[idx].format(e=ent),
                       rel.answer.format(e=ent, v=value), rel.answer_es.format(e=topic.entities[ent], v=value_es))


def phrased_fact(rng: random.Random, topic: Topic, relation: str, idx: int) -> Instruction:
    """A question about one fact of ``topic``'s ``relation`` in its ``idx``-th paraphrase."""
    rel = next(r for r in topic.relations if r.name == relation)
    ent = rng.choice(sorted(topic.facts[relation]))
    return _fact(topic, rel, ent, idx, rng.choice(PREFIXES))


def opening(prompt: str) -> str:
    """A question's first two words: "how many" opens questions about legs, wheels and strings alike."""
    return " ".join(prompt.split()[:2])


@functools.cache
def look_alike_phrasings(topic: str) -> tuple[tuple[str, str, int], ...]:
    """``(topic, relation, paraphrase index)`` of the other topics' questions that open like one of ``topic``'s.

    They differ from ``topic``'s own questions only in the words that carry the topic (an
    animal's legs against an instrument's strings), so a rule on ``topic`` must read those.
    """
    openings = {opening(p) for r in TOPIC_BY_NAME[topic].relations for p in r.prompts}
    return tuple((t.name, r.name, i) for t in TOPICS if t.name != topic for r in t.relations
                 for i, p in enumerate(r.prompts) if opening(p) in openings)


def task_instruction(rng: random.Random) -> Instruction:
    """A copy, counting or sequence task (topic ``tasks``): answers follow from the prompt."""
    kind = rng.randrange(4)
    if kind == 0:
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 4))]
        prompt, answer = "repeat after me : " + " ".join(words), " ".join(words) + " ."
        answer_es = " ".join(WORDS_ES[w] for w in words) + " ."
    elif kind == 1:
        word, n = rng.choice(WORDS), rng.randint(2, 4)
        names = {2: "two", 3: "three", 4: "four"}
        prompt, answer = f"say {word} {names[n]} times .", " ".join([word] * n) + " ."
        answer_es = " ".join([WORDS_ES[word]] * n) + " ."
    elif kind == 2:
        i = rng.randrange(7)
        prompt = f"what day comes after {DAYS[i]} ?"
        answer = f"after {DAYS[i]} comes {DAYS[(i + 1) % 7]} ."
        answer_es = f"despues del {DAYS_ES[i]} viene el {DAYS_ES[(i + 1) % 7]} ."
    else:
        a = rng.randint(0, 40)
        b = a + rng.randint(2, 5)
        prompt = f"count from {a} to {b} ."
        answer = answer_es = " ".join(str(i) for i in range(a, b + 1)) + " ."
    return Instruction("tasks", prompt, rng.choice(PREFIXES) + prompt, answer, answer_es)


def instruction(rng: random.Random, topics: tuple[str, ...] | None = None) -> Instruction:
    """A random request, from the given topics (``tasks`` included) or from all of them."""
    names = topics or tuple(t.name for t in TOPICS) + ("tasks", "tasks")
    name = rng.choice(names)
    return task_instruction(rng) if name == "tasks" else fact_instruction(rng, TOPIC_BY_NAME[name])
