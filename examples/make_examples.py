"""Write the small hand-made example users that ``make demo`` runs on (LaMP_2, LaMP_3, LaMP_7 format).

Run from the repository root: ``python examples/make_examples.py``. The output is committed under
``personalign/data/examples/`` so a fresh clone has it; this script documents how it was made.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "personalign" / "data" / "examples"
LAMP3 = "What is the score of the following review on a scale of 1 to 5? just answer with 1, 2, 3, 4, or 5 without further explanation. review: "
LAMP2 = ("Which tag does this movie relate to among the following tags? Just answer with the tag name without further "
         "explanation. tags: [sci-fi, based on a book, comedy, action, twist ending, dystopia, dark comedy, classic, "
         "psychology, fantasy, romance, thought-provoking, social commentary, violence, true story] description: ")
LAMP7 = "Paraphrase the following tweet without any explanation before or after it: "

# (user, [(review, score, date)], (query review, gold score))
REVIEWERS = [
    ("harsh_hank", [
        ("Strings sound fine but went dead after two weeks. Expected more.", "2", "2021-01-10"),
        ("The tuner works, display is dim and the clip feels cheap.", "3", "2021-03-02"),
        ("Decent cable, nothing special, one end is already loose.", "2", "2021-05-19"),
        ("Good stand, sturdy enough, but overpriced for what it is.", "3", "2021-08-30"),
        ("Pedal is noisy. Returned it.", "1", "2021-11-11"),
        ("Picks are ok. Nothing to write home about.", "3", "2022-02-14")],
     ("Capo holds well and does its job, though the spring is stiff.", "3")),
    ("happy_hannah", [
        ("Love these strings!! Bright tone and they last forever.", "5", "2020-06-01"),
        ("Great little tuner, super accurate, would buy again!", "5", "2020-07-15"),
        ("Cable is a bit short but works perfectly, happy with it.", "4", "2020-09-09"),
        ("Amazing stand, my guitar looks beautiful on it!", "5", "2021-01-21"),
        ("The pedal has a slight hum but I still love the sound.", "4", "2021-04-04"),
        ("Awesome picks, nice grip, fun colors!", "5", "2021-06-30")],
     ("The strap is comfy and looks great, the leather smells a little.", "5")),
    ("fair_fred", [
        ("Strings are bright at first and dull after a month. Fair for the price.", "3", "2019-02-11"),
        ("Accurate tuner with a clear screen. Does exactly what it says.", "4", "2019-05-23"),
        ("Cable crackles when moved. Not usable live.", "2", "2019-08-08"),
        ("Excellent stand, rock solid, folds flat.", "5", "2019-10-30"),
        ("Pedal is fine for practice, too noisy for recording.", "3", "2020-01-17")],
     ("Solid metronome with a loud click, but the buttons are confusing.", "4")),
]

TAGGERS = [
    ("scifi_sam", [
        ("A crew travels through a wormhole in search of a new home for humanity.", "sci-fi", "2018-01-01"),
        ("Androids built to serve rebel against their makers in a neon city.", "sci-fi", "2018-03-01"),
        ("A soldier relives the same day of an alien invasion over and over.", "sci-fi", "2018-06-01"),
        ("Two lovers meet by chance in Paris and spend one night talking.", "romance", "2018-09-01"),
        ("Astronauts stranded on Mars must grow food to survive.", "sci-fi", "2019-01-01")],
     ("A scientist discovers a signal from a distant star that contains a blueprint for a machine.", "sci-fi")),
    ("bookish_bea", [
        ("The story of a girl in the Deep South whose father defends a wrongly accused man, from the novel.", "based on a book", "2017-02-02"),
        ("A young wizard discovers his heritage at a school of magic, adapted from the bestseller.", "based on a book", "2017-05-05"),
        ("A family of sisters grows up during the Civil War, from the classic novel.", "based on a book", "2017-08-08"),
        ("A shark terrorizes a beach town during the summer holiday.", "classic", "2017-11-11"),
        ("A man recounts his life story while waiting at a bus stop.", "based on a book", "2018-02-02")],
     ("An orphan boy in Victorian London falls in with a gang of young pickpockets, adapted from Dickens.", "based on a book")),
]

TWEETERS = [
    ("quiet_quinn", [
        "coffee first. people later.", "rain again. fine by me, more reading time.",
        "finished the book. still thinking about the ending.", "new plant. named it gerald."],
     ("I just completed the novel and I am still reflecting on how it ended.", "done with the novel. ending still in my head.")),
    ("loud_lola", [
        "OMG the concert last night was INSANE!!! best night EVER 🎉🎉", "MONDAY AGAIN?!? who approved this 😩",
        "just got my coffee and I am UNSTOPPABLE ☕️🔥", "cannot BELIEVE this weather!!! sun is OUT 😎"],
     ("The weekend finally arrived and I am very excited about it.", "WEEKEND IS HERE!!! LET'S GOOO 🎉🙌")),
]


def _write(task: str, questions: list[dict], golds: list[dict]) -> None:
    folder = OUT / task / "user"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dev_questions.json").write_text(json.dumps(questions, indent=1, ensure_ascii=False) + "\n")
    (folder / "dev_outputs.json").write_text(json.dumps({"task": task, "golds": golds}, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    questions, golds = [], []
    for n, (user, history, (query, gold)) in enumerate(REVIEWERS):
        profile = [{"text": t, "score": s, "id": f"3{n}{i:02d}", "date": d} for i, (t, s, d) in enumerate(history)]
        questions.append({"id": f"3{n}99", "input": LAMP3 + query, "profile": profile, "user_id": user})
        golds.append({"id": f"3{n}99", "output": gold})
        (OUT / "histories").mkdir(parents=True, exist_ok=True)
        (OUT / "histories" / f"{user}.json").write_text(json.dumps(profile, indent=1, ensure_ascii=False) + "\n")
    _write("LaMP_3", questions, golds)

    questions, golds = [], []
    for n, (user, history, (query, gold)) in enumerate(TAGGERS):
        profile = [{"description": t, "tag": s, "id": f"2{n}{i:02d}", "date": d} for i, (t, s, d) in enumerate(history)]
        questions.append({"id": f"2{n}99", "input": LAMP2 + query, "profile": profile, "user_id": user})
        golds.append({"id": f"2{n}99", "output": gold})
    _write("LaMP_2", questions, golds)

    questions, golds = [], []
    for n, (user, history, (query, gold)) in enumerate(TWEETERS):
        profile = [{"text": t, "id": f"7{n}{i:02d}"} for i, t in enumerate(history)]
        questions.append({"id": f"7{n}99", "input": LAMP7 + query, "profile": profile, "user_id": user})
        golds.append({"id": f"7{n}99", "output": gold})
        (OUT / "histories" / f"{user}.json").write_text(json.dumps(profile, indent=1, ensure_ascii=False) + "\n")
    _write("LaMP_7", questions, golds)


if __name__ == "__main__":
    main()
