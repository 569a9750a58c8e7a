"""Behaviour suite: does the model read sentiment, or the topic? CheckList-style tests with a per-capability runner.

Holdout macro-F1 cannot show a model that learned the corpus's topics instead of sentiment: the holdout has the
same topic mix as training (airlines mostly negative, self-driving cars and allergy medicine mostly neutral,
Coachella mostly positive, ...). This suite asks plain sentences, written for it and not taken from the corpus,
in three kinds of test (Ribeiro et al., "Beyond Accuracy: Behavioral Testing of NLP Models with CheckList", 2020):

- **MFT** (minimum functionality): one text, the label it must get (or the labels it may get);
- **INV** (invariance): several texts that differ only in an entity or in noise; they must all get one label;
- **DIR** (directional): a text and an edit of it (an intensifier, a complaint, a praise); the probability of
  one class must not move the wrong way by more than :data:`DIR_TOLERANCE`.

The cases are grouped into :data:`CAPABILITIES`; :func:`run` scores any ``predict_proba`` on all of them in one
batch and returns the pass rate per capability (what the gate compares and MLflow records). The suite needs a
model whose classes include ``negative``, ``neutral`` and ``positive``; for any other label set :func:`run`
returns a report that says it does not apply.

The cases were written before the model that passes them was chosen, and are not edited to make a model pass.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import numpy as np

NEG, NEU, POS = "negative", "neutral", "positive"
LABELS = (NEG, NEU, POS)
DIR_TOLERANCE = 0.05
"""How far the probability of the expected class may move the wrong way in a directional case (CheckList used 0.1
for sentiment)."""

Kind = Literal["mft", "inv", "dir"]


@dataclass(frozen=True)
class Case:
    """One test. ``mft``: ``texts[0]`` must get a label in ``labels``; ``inv``: every text gets the same label;
    ``dir``: ``p(labels[0] | texts[1]) >= p(labels[0] | texts[0]) - DIR_TOLERANCE``."""

    capability: str
    kind: Kind
    texts: tuple[str, ...]
    labels: tuple[str, ...] = ()


CAPABILITIES: dict[str, str] = {
    "sentiment_corpus_topics": "MFT: clear positive and negative sentences about the corpus's own topics "
    "(airlines, Apple and phones, self-driving cars, the Patriots and DeflateGate, Coachella, allergy medicine)",
    "sentiment_other_topics": "MFT: clear positive and negative sentences about topics the corpus lacks "
    "(restaurants, films, hotels, books, weather, games, banks, trains, shops, ...)",
    "neutral_facts": "MFT: neutral statements (times, places, announcements) about the corpus's topics and others",
    "negation": "MFT: a negated positive is negative; a negated negative is positive or neutral",
    "invariance_entity": "INV: swapping the airline, phone, city, person, product or topic keeps the label",
    "invariance_noise": "INV: a link, an @mention or a retweet prefix keeps the label",
    "direction_intensifier": "DIR: an intensifier does not lower the probability of the sentence's class",
    "direction_complaint": "DIR: an added complaint does not lower the probability of negative",
    "direction_praise": "DIR: an added praise does not lower the probability of positive",
}


# --- MFT: sentiment on the corpus's topics ----------------------------------------------------------------------

_CORPUS_TOPICS: list[tuple[str, str]] = [
    # airlines (the corpus: 63% negative)
    ("The flight attendants on my United flight were wonderful", POS),
    ("Thank you JetBlue, best flight I have had in years", POS),
    ("Southwest got me home early and the crew was lovely", POS),
    ("Delta upgraded me for free, I am so happy", POS),
    ("Great service from American Airlines today, thanks!", POS),
    ("Virgin America has the most comfortable seats, loved it", POS),
    ("The pilot was friendly and the landing was smooth, great job", POS),
    ("United lost my bag again, worst airline ever", NEG),
    ("Delayed three hours and nobody from Delta told us anything. Awful.", NEG),
    ("JetBlue cancelled my flight and the agent was rude", NEG),
    ("Southwest, your customer service is terrible", NEG),
    ("American Airlines charged me twice, I am furious", NEG),
    ("The seat was broken and the plane was filthy", NEG),
    ("Stuck on the tarmac for two hours, this is miserable", NEG),
    # Apple and phones (the corpus: 57% neutral, 32% negative)
    ("I love my new iPhone, the camera is amazing", POS),
    ("The new MacBook is fast and beautiful", POS),
    ("My iPad is the best thing I bought this year", POS),
    ("Apple support fixed my phone in ten minutes, great service", POS),
    ("this phone is good", POS),
    ("The battery life on this phone is excellent", POS),
    ("My iPhone battery dies by noon, so frustrating", NEG),
    ("The latest iOS update ruined my phone", NEG),
    ("Apple Maps sent me to the wrong place again, useless", NEG),
    ("this phone is awful", NEG),
    ("The screen cracked after one week, terrible quality", NEG),
    ("I regret buying this phone, it is so slow", NEG),
    # self-driving cars (the corpus: 88% neutral)
    ("I hate driverless cars", NEG),
    ("driverless cars are terrifying and dangerous", NEG),
    ("Autonomous cars scare me, I would never trust one", NEG),
    ("The Tesla autopilot is a disaster waiting to happen", NEG),
    ("Self-driving cars are a horrible idea", NEG),
    ("I rode in a Waymo today and it was amazing", POS),
    ("Google's self-driving car is brilliant", POS),
    ("I love the idea of a car that drives itself", POS),
    ("Self-driving cars are exciting, the future looks great", POS),
    ("My first ride in a driverless car was fantastic", POS),
    # football and DeflateGate (the corpus: 53% negative)
    ("Tom Brady is a cheater and the Patriots should be ashamed", NEG),
    ("The NFL handled deflategate terribly", NEG),
    ("The Super Bowl halftime show was boring and awful", NEG),
    ("That referee was a disgrace, what a horrible call", NEG),
    ("What a fantastic game by the Patriots, so proud of this team", POS),
    ("Great win for New England tonight!", POS),
    ("Brady played brilliantly, best quarterback ever", POS),
    ("I loved watching the Super Bowl with my family", POS),
    # Coachella and festivals (the corpus: 61% positive)
    ("Coachella was the best weekend of my life", POS),
    ("I had so much fun at the festival, amazing music", POS),
    ("The festival lineup this year is incredible", POS),
    ("Coachella tickets sold out in minutes and I am so upset", NEG),
    ("The festival was overcrowded, hot and miserable", NEG),
    ("The sound at the main stage was terrible this year", NEG),
    ("Coachella was a waste of money, never again", NEG),
    # allergy medicine (the corpus: 84% neutral)
    ("Claritin works great, my allergies are finally gone", POS),
    ("So thankful for Claritin during pollen season", POS),
    ("My allergies are under control and I feel wonderful", POS),
    ("This allergy medicine made me feel awful", NEG),
    ("Claritin did nothing for me, total waste of money", NEG),
    ("Zyrtec gives me horrible headaches", NEG),
    ("My allergies are killing me and this medicine is useless", NEG),
]

# --- MFT: sentiment on topics the corpus lacks ------------------------------------------------------------------

_OTHER_TOPICS: list[tuple[str, str]] = [
    ("I absolutely loved the movie", POS),
    ("The film was a masterpiece, beautiful from start to finish", POS),
    ("That movie was boring and way too long", NEG),
    ("Worst film I have seen in years", NEG),
    ("The pasta at this restaurant is delicious", POS),
    ("Lovely dinner, friendly waiters and great wine", POS),
    ("The food was cold and the waiter was rude", NEG),
    ("This restaurant is disgusting, I got sick", NEG),
    ("Our hotel room was clean, quiet and comfortable", POS),
    ("The hotel staff were so helpful, highly recommend", POS),
    ("The hotel room smelled awful and the bed was dirty", NEG),
    ("Terrible hotel, noisy and overpriced", NEG),
    ("This book is wonderful, I could not put it down", POS),
    ("A brilliant novel with unforgettable characters", POS),
    ("The book was dull and badly written", NEG),
    ("I hated the ending of that book", NEG),
    ("What a beautiful sunny day, I love this weather", POS),
    ("Gorgeous weather for a walk in the park", POS),
    ("This rain is depressing, I hate winter", NEG),
    ("The weather is awful, cold and miserable", NEG),
    ("This game is so much fun, best purchase of the year", POS),
    ("The new update made the game amazing", POS),
    ("The game keeps crashing, total garbage", NEG),
    ("Boring game, I want a refund", NEG),
    ("My bank resolved the problem quickly, very happy", POS),
    ("The bank charged me hidden fees, what a scam", NEG),
    ("The train was on time and spotless, great trip", POS),
    ("The train was late again and packed, horrible commute", NEG),
    ("The delivery arrived early and the package was perfect", POS),
    ("My package never arrived and support ignored me", NEG),
    ("The doctor was kind and patient, I feel much better", POS),
    ("The clinic made me wait four hours, unacceptable", NEG),
    ("My teacher is amazing and the class is so interesting", POS),
    ("This course is a waste of time", NEG),
    ("The coffee here is excellent", POS),
    ("The coffee tasted burnt and awful", NEG),
    ("The concert last night was incredible", POS),
    ("The show was a huge disappointment", NEG),
    ("This app is great, so easy to use", POS),
    ("This app is buggy and slow, I deleted it", NEG),
    ("I love my new laptop, it is super fast", POS),
    ("My new laptop broke after two days, so angry", NEG),
    ("The museum was fascinating, we had a wonderful time", POS),
    ("The museum was boring and overpriced", NEG),
    ("Our vacation in Italy was perfect", POS),
    ("The vacation was ruined by the awful weather", NEG),
    ("The customer support team was fantastic and solved everything", POS),
    ("Customer support hung up on me twice, pathetic", NEG),
    ("My dog is the sweetest, he makes me so happy", POS),
    ("The new season of the show is brilliant", POS),
    ("The new season of the show is painfully bad", NEG),
    ("Our team played beautifully and won the match", POS),
    ("Our team played horribly and lost again", NEG),
    ("The gym is clean and the trainers are great", POS),
    ("The internet has been down all day, so annoying", NEG),
    ("Happy birthday! Hope you have a wonderful day", POS),
    ("I am so sad and tired today", NEG),
    ("Best day ever, I got the job!", POS),
    ("I failed the exam and I feel terrible", NEG),
    ("The new shoes are comfortable and look great", POS),
]

# --- MFT: neutral facts ----------------------------------------------------------------------------------------

_NEUTRAL_FACTS: list[str] = [
    # the corpus's topics
    "my flight is at 5pm",
    "The flight to Denver leaves from gate B12",
    "United flight 455 lands in Chicago at 9:40",
    "I am flying Delta to Atlanta on Monday",
    "JetBlue flies from Boston to Orlando",
    "Southwest announced a new route to Hawaii",
    "Check-in opens two hours before departure",
    "Which terminal does American Airlines use at JFK?",
    "The iPhone 7 comes out in September",
    "Apple will hold its event on Tuesday in Cupertino",
    "The new iPad has a ten inch screen",
    "Apple released iOS 9.2 today",
    "I switched my phone to airplane mode",
    "Apple's headquarters are in California",
    "Google is testing self-driving cars in Mountain View",
    "Nevada issued a license for autonomous vehicles",
    "The self-driving car conference starts at 10am",
    "Waymo operates a driverless taxi service in Phoenix",
    "Audi showed an automated car at the auto show",
    "The Patriots play the Colts on Sunday",
    "The NFL released its report on the footballs",
    "Tom Brady will speak to reporters at 3pm",
    "The Super Bowl is on February 1st in Arizona",
    "Coachella takes place in Indio, California, in April",
    "The festival lineup will be announced on Monday",
    "Tickets for weekend two go on sale Friday at noon",
    "Claritin is sold over the counter",
    "Claritin contains loratadine",
    "Take one allergy tablet a day with water",
    "The pollen count is published every morning",
    # other topics
    "The meeting is at noon",
    "The train to Berlin leaves at 8:15",
    "The museum is on Fifth Avenue",
    "The store opens at 9am on weekdays",
    "Our office moved to the third floor",
    "The library closes at 6pm on Saturdays",
    "The report is due on Friday",
    "The bus stops at the corner of Main Street and Elm",
    "She works as a nurse in Toronto",
    "The package was shipped on Tuesday",
    "The conference will be held in Madrid in May",
    "The hotel is two miles from the airport",
    "Water boils at 100 degrees Celsius",
    "The restaurant serves breakfast until 11",
    "I am reading a book about the history of Rome",
    "The game starts at 7:30 tonight",
    "The new bridge will open next year",
    "Paris is the capital of France",
    "The meeting was moved to Thursday",
    "I had pasta for lunch",
    "The city council votes on the budget tomorrow",
    "The film is two hours long",
]

# --- MFT: negation ---------------------------------------------------------------------------------------------

_THINGS = ("flight", "phone", "movie", "hotel", "food", "concert")
_NEGATED_POSITIVE = (
    "The {} was not good",
    "I did not enjoy the {}",
    "I would not recommend this {}",
    "The {} is not worth the money",
    "I was not happy with the {}",
)
_NEGATED_NEGATIVE = (
    "The {} was not bad at all",
    "I have no complaints about the {}",
    "The {} was not terrible",
    "Nothing wrong with the {}",
    "The {} wasn't bad",
)
_NEGATION_EXTRA: list[tuple[str, tuple[str, ...]]] = [
    ("not bad at all", (NEU, POS)),
    ("not good", (NEG,)),
    ("I don't like it", (NEG,)),
    ("I never liked this airline", (NEG,)),
    ("This is not a good phone", (NEG,)),
    ("Not impressed with the service", (NEG,)),
    ("It doesn't work and nobody helps", (NEG,)),
    ("Never had a problem with them", (NEU, POS)),
    ("Can't complain, the trip was fine", (NEU, POS)),
    ("Not a bad way to spend a Sunday", (NEU, POS)),
]

# --- INV: entities and topics swapped ---------------------------------------------------------------------------

_ENTITY_SWAPS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (
        ("United", "Delta", "JetBlue", "Southwest", "Lufthansa", "Ryanair", "Emirates"),
        ("I just flew {} and the crew was amazing", "{} lost my luggage again, so annoying",
         "I am flying {} to Chicago tomorrow", "Thanks {}, that was a great flight"),
    ),
    (
        ("iPhone", "Samsung Galaxy", "Google Pixel", "Nokia", "Motorola"),
        ("I love my new {}", "My {} keeps crashing, I hate it", "I got the new {} yesterday",
         "The camera on the {} is terrible"),
    ),
    (
        ("Boston", "Chicago", "Paris", "Tokyo", "Lagos", "Mumbai"),
        ("I had a great time in {}", "The traffic in {} is awful", "I am moving to {} next month",
         "The people in {} were so rude to us"),
    ),
    (
        ("driverless cars", "my iPhone", "United Airlines", "Coachella", "Claritin", "the Patriots", "my new laptop",
         "this restaurant"),
        ("I hate {}", "I really like {}", "{} made my day, thank you", "I am so disappointed with {}",
         "Everyone is talking about {} today"),
    ),
    (
        ("Tom Brady", "my manager", "the waiter", "the pilot", "Taylor Swift", "the new coach"),
        ("{} did a fantastic job", "{} was rude to me", "{} arrived at 9am", "I can't stand {}"),
    ),
    (
        ("Coachella", "Glastonbury", "the Super Bowl", "the concert", "the conference", "the wedding"),
        ("{} was incredible", "{} was a waste of money", "{} starts on Friday", "I had a miserable time at {}"),
    ),
    (
        ("Claritin", "Zyrtec", "this allergy pill", "the new medicine", "ibuprofen"),
        ("{} works great for me", "{} made me feel sick", "I take {} every morning"),
    ),
    (
        ("a self-driving car", "a Tesla", "a taxi", "an Uber", "a bus"),
        ("I rode in {} today and loved it", "Riding in {} was a terrifying experience",
         "I took {} to the airport"),
    ),
    (
        ("Apple", "Microsoft", "Amazon", "Netflix", "Spotify"),
        ("{} support was wonderful and solved my problem", "{} support was useless, I am furious",
         "{} announced its results on Thursday"),
    ),
]

# --- INV: noise --------------------------------------------------------------------------------------------------

_NOISE_BASES = (
    "The crew was so friendly, great flight",
    "My phone died again, this is terrible",
    "The conference starts at 10am",
    "I love this festival",
    "The hotel was dirty and loud",
    "The new update is fantastic",
    "The train leaves at 8:15",
    "This medicine works great",
    "Worst customer service ever",
    "Tickets go on sale on Friday",
)
_NOISE_EDITS: tuple[Callable[[str], str], ...] = (
    lambda t: f"{t} https://t.co/x7Yq2LmP",
    lambda t: f"@jsmith {t}",
    lambda t: f"RT @newsdesk: {t}",
)

# --- DIR: intensifiers, complaints, praise ----------------------------------------------------------------------

_DIR_THINGS = ("flight", "phone", "hotel", "movie", "meal", "car")
_INTENSIFIABLE = (("good", POS), ("nice", POS), ("great", POS), ("bad", NEG), ("awful", NEG), ("disappointing", NEG))
_INTENSIFIERS = ("really", "very", "extremely", "absolutely", "so", "incredibly")
_EXCLAIMED = (
    ("I love this phone", POS), ("The service was great", POS), ("What a fantastic concert", POS),
    ("I hate waiting in line", NEG), ("The food was awful", NEG), ("This flight is a disaster", NEG),
)
_COMPLAINTS = (
    ", but the staff was rude",
    ". I want my money back.",
    " and I waited two hours for nothing",
    ". Never again.",
    ", which is really annoying",
)
_PRAISES = (
    ". The staff was wonderful.",
    " and I loved every minute",
    ". Thank you so much!",
    ", which made me very happy",
    ". Highly recommended!",
)
_EDIT_BASES = (
    "I flew to Denver on Monday",
    "I bought a new phone today",
    "We stayed at the hotel near the station",
    "We watched the new movie last night",
    "The festival was this weekend",
    "I picked up my allergy medicine",
    "The food was okay",
    "The flight was fine",
)


def _mft(capability: str, text: str, labels: Iterable[str]) -> Case:
    return Case(capability, "mft", (text,), tuple(labels))


@cache
def cases() -> tuple[Case, ...]:
    """Every case of the suite, in a fixed order."""
    out: list[Case] = []
    out += [_mft("sentiment_corpus_topics", text, (label,)) for text, label in _CORPUS_TOPICS]
    out += [_mft("sentiment_other_topics", text, (label,)) for text, label in _OTHER_TOPICS]
    out += [_mft("neutral_facts", text, (NEU,)) for text in _NEUTRAL_FACTS]
    for thing in _THINGS:
        out += [_mft("negation", t.format(thing), (NEG,)) for t in _NEGATED_POSITIVE]
        out += [_mft("negation", t.format(thing), (NEU, POS)) for t in _NEGATED_NEGATIVE]
    out += [_mft("negation", text, labels) for text, labels in _NEGATION_EXTRA]
    for entities, templates in _ENTITY_SWAPS:
        for template in templates:
            texts = tuple(template.format(e) for e in entities)
            out.append(Case("invariance_entity", "inv", tuple(t[0].upper() + t[1:] for t in texts)))
    out += [
        Case("invariance_noise", "inv", (base, edit(base))) for base in _NOISE_BASES for edit in _NOISE_EDITS
    ]
    for thing, (adjective, label) in itertools.product(_DIR_THINGS, _INTENSIFIABLE):
        intensifier = _INTENSIFIERS[(_DIR_THINGS.index(thing) + _INTENSIFIABLE.index((adjective, label))) % 6]
        base = f"The {thing} was {adjective}"
        out.append(Case("direction_intensifier", "dir", (base, f"The {thing} was {intensifier} {adjective}"),
                        (label,)))
    out += [Case("direction_intensifier", "dir", (text, text + "!!!"), (label,)) for text, label in _EXCLAIMED]
    for i, base in enumerate(_EDIT_BASES):
        for j in (i % 5, (i + 2) % 5, (i + 4) % 5):
            out.append(Case("direction_complaint", "dir", (base, base + _COMPLAINTS[j]), (NEG,)))
            out.append(Case("direction_praise", "dir", (base, base + _PRAISES[j]), (POS,)))
    out += [
        Case("direction_complaint", "dir", (text, text + _COMPLAINTS[k % 5]), (NEG,))
        for k, (text, _) in enumerate(_CORPUS_TOPICS[::6])
    ]
    out += [
        Case("direction_praise", "dir", (text, text + _PRAISES[k % 5]), (POS,))
        for k, (text, _) in enumerate(_OTHER_TOPICS[1::6])
    ]
    return tuple(out)


def fingerprint() -> str:
    """SHA-256 of the suite's cases: two reports with the same fingerprint come from the same tests."""
    digest = hashlib.sha256()
    for case in cases():
        digest.update(repr((case.capability, case.kind, case.texts, case.labels)).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Failure:
    """A case the model failed, with what it answered (the labels, and for a DIR case the two probabilities)."""

    capability: str
    kind: Kind
    texts: tuple[str, ...]
    expected: tuple[str, ...]
    got: tuple[str, ...]
    probabilities: tuple[float, ...] = ()


@dataclass(frozen=True)
class BehaviourReport:
    """Pass rates of one model on the suite. ``applicable`` is false when the model's classes do not include the
    three sentiment labels (then there are no rates)."""

    applicable: bool
    pass_rates: dict[str, float]
    counts: dict[str, int]
    failures: list[Failure] = field(repr=False)
    fingerprint: str = ""
    reason: str = ""

    @property
    def overall(self) -> float:
        """Share of all cases passed (each case counts once, whatever its capability)."""
        total = sum(self.counts.values())
        if not total:
            return float("nan")
        return sum(self.pass_rates[c] * n for c, n in self.counts.items()) / total

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """``behaviour.overall`` and ``behaviour.<capability>`` pass rates for MLflow (empty when not applicable)."""
        if not self.applicable:
            return {}
        out = {"behaviour.overall": self.overall} | {f"behaviour.{c}": r for c, r in self.pass_rates.items()}
        return {f"{prefix}{k}": float(v) for k, v in out.items()}

    def report(self) -> dict[str, Any]:
        """JSON-able report: rates, counts, the suite's fingerprint and every failure."""
        return {
            "applicable": self.applicable,
            "reason": self.reason,
            "fingerprint": self.fingerprint,
            "overall": self.overall if self.applicable else None,
            "pass_rates": self.pass_rates,
            "counts": self.counts,
            "dir_tolerance": DIR_TOLERANCE,
            "failures": [
                {"capability": f.capability, "kind": f.kind, "texts": list(f.texts), "expected": list(f.expected),
                 "got": list(f.got), "probabilities": list(f.probabilities)}
                for f in self.failures
            ],
        }


def _passes(case: Case, labels: list[str], probs: list[np.ndarray], classes: list[str]) -> tuple[bool, tuple]:
    if case.kind == "mft":
        return labels[0] in case.labels, ()
    if case.kind == "inv":
        return len(set(labels)) == 1, ()
    column = classes.index(case.labels[0])
    before, after = float(probs[0][column]), float(probs[1][column])
    return after >= before - DIR_TOLERANCE, (before, after)


def run(predict_proba: Callable[[list[str]], np.ndarray], classes: Sequence[str]) -> BehaviourReport:
    """Score a model on every case: ``predict_proba`` maps texts to probabilities in ``classes`` order."""
    classes = [str(c) for c in classes]
    if not set(LABELS) <= set(classes):
        return BehaviourReport(
            applicable=False, pass_rates={}, counts={}, failures=[], fingerprint=fingerprint(),
            reason=f"the suite needs the classes {list(LABELS)}; the model has {classes}",
        )
    suite = cases()
    texts = list(dict.fromkeys(t for case in suite for t in case.texts))
    probabilities = np.asarray(predict_proba(texts), dtype=np.float64)
    row = {text: i for i, text in enumerate(texts)}
    predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
    passed = dict.fromkeys(CAPABILITIES, 0)
    counts = dict.fromkeys(CAPABILITIES, 0)
    failures: list[Failure] = []
    for case in suite:
        labels = [str(predicted[row[t]]) for t in case.texts]
        probs = [probabilities[row[t]] for t in case.texts]
        ok, detail = _passes(case, labels, probs, classes)
        counts[case.capability] += 1
        passed[case.capability] += ok
        if not ok:
            failures.append(Failure(case.capability, case.kind, case.texts, case.labels, tuple(labels), detail))
    return BehaviourReport(
        applicable=True,
        pass_rates={c: passed[c] / counts[c] for c in CAPABILITIES},
        counts=counts,
        failures=failures,
        fingerprint=fingerprint(),
    )
