"""The numbers of the lexicon rules (:mod:`model.lexicon`), apart so that the serving kernel (:mod:`serving.kernels`),
which reproduces those rules, can read them without importing scikit-learn. Imports nothing."""

FEATURES = ("positive", "negative", "negated_positive", "negated_negative", "no_sentiment")
APOSTROPHES = "'\u2019"
CLAUSE_PUNCTUATION = ".,;:!?"
BOOSTER_DECAY = (1.0, 0.95, 0.9)
CONTRAST = "but"
CONTRAST_BEFORE, CONTRAST_AFTER = 0.5, 1.5
EXCLAMATION, MAX_EXCLAMATIONS = 0.292, 4

# kinds of lexicon entries (also the kernel's); NO_WORD: "no", a negation before a valence token, else a valence
VALENCE, NEGATION, BOOSTER, CONTRAST_WORD, NO_WORD = 1, 2, 3, 4, 5
NO = "no"
