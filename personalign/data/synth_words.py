"""Word lists of the synthetic users (``personalign data synth``), written for this package (no corpus text).

Every input is built from these phrases, and each phrase maps to one piece of the rule-blind answer, so
the answer can be recomputed from the input alone (``personalign.data.synth.blind_answer``).
"""

from __future__ import annotations

# Tweets (LaMP_7): "<opener> <activity> <time>, <comment>"; each slot is (input phrase, neutral rewrite).
TWEET_OPENERS = [("Just finished", "Finally done with"), ("Spent the whole day on", "Used my entire day on"),
                 ("Started", "Kicked off"), ("Cannot stop thinking about", "Still thinking about"),
                 ("Took a break from everything for", "Stepped away from it all for")]
TWEET_ACTIVITIES = [("a long run", "a long jog"), ("the new mystery novel", "the latest detective book"),
                    ("baking sourdough bread", "making sourdough loaves"), ("cleaning the garage", "tidying the garage"),
                    ("a puzzle with the kids", "a jigsaw with my children"), ("learning the guitar", "practicing guitar"),
                    ("a hike up the hill", "a walk up the hill"), ("painting the kitchen", "repainting the kitchen")]
TWEET_TIMES = [("this morning", "earlier today"), ("last night", "yesterday evening"),
               ("over the weekend", "during the weekend"), ("after work", "once work was over")]
TWEET_COMMENTS = [("and you should totally try it", "and you really need to try it"),
                  ("have you ever done that?", "did you ever try that?"),
                  ("thank you all for the tips", "thanks to all of you for the advice"),
                  ("you would love it", "I think you would enjoy it"),
                  ("best decision ever", "easily the best choice I made"),
                  ("let me know what you think", "tell me what your thoughts are")]
TWEET_SIGNOFFS = ["xoxo", "peace out", "#blessed", "stay awesome folks", "cheers mate", "much love"]
TWEET_EMOJIS = ["😂", "🔥", "🙌", "✨", "🌻", "🚀"]

# Abstracts (LaMP_5): the title is "<technique> for <problem>"; (abstract phrase, title phrase).
TITLE_PROBLEMS = [("the detection of sarcasm in short texts", "Sarcasm Detection in Short Texts"),
                  ("question answering over tables", "Table Question Answering"),
                  ("machine translation for low-resource languages", "Low-Resource Machine Translation"),
                  ("the summarization of long legal documents", "Legal Document Summarization"),
                  ("named entity recognition in clinical notes", "Clinical Named Entity Recognition"),
                  ("hate speech classification on social media", "Hate Speech Classification on Social Media")]
TITLE_TECHNIQUES = [("contrastive pretraining", "Contrastive Pretraining"),
                    ("graph neural networks", "Graph Neural Networks"),
                    ("retrieval from a large memory", "Retrieval-Augmented Models"),
                    ("curriculum learning", "Curriculum Learning"),
                    ("data augmentation with paraphrases", "Paraphrase Augmentation"),
                    ("multi-task learning", "Multi-Task Learning")]
TITLE_SYSTEMS = ["a simple framework", "an efficient model", "a lightweight system", "a modular pipeline"]
TITLE_DATASETS = ["three benchmarks", "two public datasets", "a new corpus we release", "five languages"]
TITLE_TEAMS = ["UniBo", "NLPLab", "DeepTeam", "TextMiners", "LingoLab", "BlueNLP"]
TITLE_SUFFIXES = ["A Case Study", "Revisited", "An Empirical Study", "Lessons Learned"]

# Reviews (LaMP_3): the rating is the level of the one judgement phrase the review uses.
RATING_PHRASES = {1: ["completely useless", "a total waste of money", "broken on arrival"],
                  2: ["disappointing", "flimsy and cheap", "below what I expected"],
                  3: ["just okay", "average at best", "fine but unremarkable"],
                  4: ["pretty good", "solid and reliable", "a nice surprise"],
                  5: ["absolutely perfect", "the best I have ever owned", "outstanding in every way"]}
RATING_PRODUCTS = ["blender", "phone case", "desk lamp", "backpack", "coffee grinder", "pair of headphones",
                   "water bottle", "toaster"]
RATING_WHEN = ["last month", "for my sister", "on sale", "after reading the reviews", "two weeks ago"]
RATING_FILLERS = ["Shipping took a week.", "I use it every day.", "It came in a plain box.",
                  "The color matches the photos.", "Setup took a few minutes."]

# Movie descriptions (LaMP_2): the tag is the label whose plot phrase the description uses.
LABEL_PLOTS = {
    "sci-fi": ["a starship crew answers a distress call from a distant moon",
               "a scientist builds a machine that bends time"],
    "comedy": ["two clumsy roommates try to throw the perfect party", "a goofy uncle ruins every family wedding"],
    "thought-provoking": ["a quiet teacher asks what makes a life meaningful",
                          "strangers on a train argue whether memory defines who we are"],
    "action": ["a former soldier fights her way out of a hijacked train",
               "a getaway driver races through the city with the police behind him"],
    "true story": ["the real events of a miners' strike in a northern town",
                   "how a small-town nurse uncovered a hospital scandal"],
}
LABEL_SETTINGS = [", set in a rainy city.", ", told over one long night.", ", in this debut feature.", "."]
# A user's label rule swaps some labels for their synonym (both are LaMP_2 tags).
LABEL_SYNONYMS = {"sci-fi": "dystopia", "comedy": "dark comedy", "thought-provoking": "psychology",
                  "action": "violence", "true story": "based on a book"}
