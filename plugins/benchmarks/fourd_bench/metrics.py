"""Caption scoring for ``4dbench-caption``: n-gram metrics, model-based similarities, the GPT rubric and the human
baseline (``docs``: ``/work/shared/specs/benchmarks.md`` Part C.4-C.8).

Every metric is named after the implementation that computes it, because two of the official ones cannot run here:

* ``bleu{1..4}_4dbench``, ``rouge_l_4dbench``: exactly the official computation of
  ``other_metrics/get_other_metrics_scores.py``: pycocoevalcap's ``Bleu(4)`` and ``Rouge`` on one object at a time,
  on the *untokenised* caption against its references, then 100 x the mean over objects. Given the same captions
  these reproduce the official per-object scores and means exactly.
* ``bleu{1..4}_pycocoevalcap``, ``meteor_java``, ``rouge_l_pycocoevalcap``, ``cider_pycocoevalcap``: the COCO
  caption-evaluation convention: every caption tokenised with pycocoevalcap's Java ``PTBTokenizer`` (lower case,
  punctuation removed), then each scorer's ``compute_score`` over the whole set (corpus BLEU, METEOR 1.5's aggregate,
  mean ROUGE-L, CIDEr-D with document frequencies from the evaluated references), x 100.
  They differ from 4D-Bench's numbers on purpose and cannot match them here: 4D-Bench's CIDEr is ``cidereval``
  (original CIDEr, not CIDEr-D, with document frequencies from a COCO-val pickle; GitHub-only, not installable
  offline) and its METEOR is NLTK's ``meteor_score`` (needs the WordNet corpus, a download), not Java METEOR 1.5.
* ``bertscore_f1`` (``bert_score``, layer 9, no IDF, no rescaling, max over references) and ``sbert_cosine``
  (``sentence_transformers``, max cosine over references): the official definitions, computed only when a local
  model folder is given (bert-base-uncased and all-MiniLM-L6-v2 reproduce the official setting); off by default.
* ``gpt_appearance`` / ``gpt_action``: the official 0-5 rubrics (system prompts verbatim), sent by a judge plugin
  through :func:`gpt_judge_messages` and read back with :func:`parse_gpt_score`.

Scores are 100 x means (the README's scale), except the GPT rubrics (0-5).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import random
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from vdpm_harness import MetricValue, clustered_mean

#: Hidden layer bert_score uses for bert-base-uncased (its ``model2layers`` table); the official setting.
BERTSCORE_LAYER = 9
GPT_ASPECTS = ("appearance", "action")


def _spaced(text: str) -> str:
    """Expand the ``⟨n⟩`` notation of benchmarks.md (n space characters) used to transcribe the official prompts."""
    return re.sub(r"⟨(\d+)⟩", lambda m: " " * int(m.group(1)), text)


# --- GPT-Appearance and GPT-Action (llm_score/score_appearance.py, score_action.py) -----------------------------------

APPEARANCE_SYSTEM = _spaced(
    "You are an expert in evaluating the quality of video captions.⟨17⟩Your task is to rate the predicted caption in "
    "terms of recall and precision of visual elements(appearance and shape) in the video with reference to the "
    "human-annotated caption.⟨17⟩Focus only on whether the predicted caption accurately and completely contains the "
    "information from the human-annotated caption.⟨17⟩Note you just need to focus on the visual elements.⟨17⟩"
    "Consider synonyms or paraphrases as valid matches.⟨16⟩Provide your evaluation as a matching score where the "
    "score is an integer value between 0 and 5. Here is the rating scale:⟨1⟩\n"
    "⟨17⟩Score 5: The predicted caption accurately identifies the object in the video, including its appearance and "
    "shape. The caption provides a precise and complete description of the object without missing any significant "
    "visual details.⟨1⟩\n"
    "⟨17⟩Score 4: The predicted caption mostly identifies the object accurately, with minor omissions or differences "
    "in the description of the appearance or shape. Paraphrases are acceptable, and the overall description is "
    "correct, though it may lack some finer details.⟨1⟩\n"
    "⟨17⟩Score 3: The caption identifies some key aspects of the object but misses or incorrectly describes certain "
    "visual elements, such as the appearance or shape. There are noticeable gaps, but the overall object is still "
    "somewhat recognizable in the caption.⟨1⟩\n"
    "⟨17⟩Score 2: The predicted caption contains several inaccuracies in describing the object’s appearance or "
    "shape. While some parts may be correct, the overall description is incomplete or misleading. Precision and "
    "recall of visual elements are low.⟨1⟩\n"
    "⟨17⟩Score 1: The caption provides an incorrect description of the object, with major inaccuracies in "
    "identifying the appearance and shape. The object is either misidentified or described in a way that does not "
    "match the video.⟨1⟩\n"
    "⟨17⟩Score 0: The caption is entirely incorrect, failing to identify the object or its appearance and shape. No "
    "valid matches to the human-annotated caption are present.⟨18⟩Here are some rating examples:⟨1⟩\n"
    "⟨17⟩Example 1:{ Human_Caption: 'A red wrecking ball with black chains swings into a big brown cube sitting on a "
    "metallic surface that scatters into smaller cubes after being hit'. Predicted Caption: 'a cube and ball "
    "connected by a chain'. Score: {'appearance_score': 1} }⟨1⟩\n"
    "⟨17⟩Example 2:{ Human_Caption: 'A woman wearing a pair of combat pants and a tank top throwing a punch'. "
    "Predicted Caption: 'a woman in a boxing outfit, wearing a hat, hoodie, and camouflage pants, holding a gun'. "
    "Score: {'appearance_score': 3} }⟨1⟩\n"
    "⟨17⟩Example 3:{ Human_Caption: 'Azerbaijan flag that moves with the wind'. Predicted Caption: 'the Azerbaijan "
    "flag waving in the wind and a colorful kite'. Score: {'appearance_score': 2} }⟨1⟩\n"
    "⟨17⟩Example 4:{ Human_Caption: '3D model of arms with gray sleeves carrying a gray pistol with brown grip and "
    "gray barrel that loads it, fires two bullets, then unloads it'. Predicted Caption: 'A pair of human-like arms in "
    "a dark grey sweater holding a handgun with a brown grip and black barrel'. Score: {'appearance_score': 4} }⟨1⟩\n"
    "⟨17⟩Example 5:{ Human_Caption: '3D model of a boy wearing glasses dancing dressed in a grey hood, black pants, "
    "gray shoes, he puts on a red cap and a blue backpack'. Predicted Caption: 'a person wearing a pink hat, holding "
    "a sword, and surrounded by a glider, bird, and windmill, all adorned with pink hats'. Score: "
    "{'appearance_score': 0} }⟨1⟩\n"
    "⟨17⟩Example 6:{ Human_Caption: 'A 3D model of a lightsaber which is emitting blue saber'. Predicted Caption: "
    "'light saber, and flashlight'. Score: {'appearance_score': 5} }⟨1⟩"
)

ACTION_SYSTEM = _spaced(
    "You are an expert in evaluating the quality of video captions.⟨25⟩Your task is to rate the predicted caption in "
    "terms of recall and precision of the object's actions in the video with reference to the human-annotated "
    "caption.⟨24⟩Note you just need to focus on the action descriptions in the captions.⟨25⟩Consider synonyms or "
    "paraphrases as valid matches.⟨25⟩Provide your evaluation as a matching score where the score is an integer "
    "value between 0 and 5. Here is the rating scale:⟨1⟩\n"
    "⟨25⟩Score 5: The predicted caption accurately identifies the actions of the object in the video, including the "
    "sequence, timing, and details of the actions. Synonyms or paraphrases are valid matches. The caption provides a "
    "precise and complete description of the actions without missing any significant aspects.\n"
    "⟨25⟩Score 4: The predicted caption mostly identifies the actions accurately, with minor omissions or "
    "differences in the description of the actions. Paraphrases are acceptable, and the overall description is "
    "correct, though it may lack some finer details.⟨1⟩\n"
    "⟨25⟩Score 3: The caption identifies some key actions but misses or incorrectly describes certain details, such "
    "as timing, order, or subtle movements. There are noticeable gaps, but the overall actions are still somewhat "
    "recognizable in the caption.⟨1⟩\n"
    "⟨25⟩Score 2: The predicted caption contains several inaccuracies in describing the object's actions. While some "
    "parts may be correct, the overall description is incomplete or misleading. Precision and recall of actions are "
    "low.⟨1⟩\n"
    "⟨25⟩Score 1: The caption provides an incorrect description of the object's actions, with major inaccuracies in "
    "identifying the actions or their sequence. The actions are either misidentified or described in a way that "
    "does not match the video.⟨1⟩\n"
    "⟨25⟩Score 0: The caption is entirely incorrect, failing to identify the object's actions. No valid matches to "
    "the human-annotated caption are present.⟨1⟩\n"
    "⟨25⟩Here are some rating examples:⟨1⟩\n"
    "⟨25⟩Example 1:{ Human_Caption: '3D model of a woman covered in white and purple mesh is warming up and shadow "
    "boxing'. Predicted Caption:' a figure with a purple and black grid-like texture is running in place, their arms "
    "swinging at their sides and their legs lifting up alternately.' Score: {'action_score': 1} }⟨1⟩\n"
    "⟨25⟩Example 2:{ Human_Caption: 'A white and yellow star wars sitting on his knees squatting,stretches his right "
    "arm and back'. Predicted Caption:' this is a 3d model of a clone trooper with yellow markings on his helmet, "
    "shoulders, knees, and shins. he is crouching down on one knee, wearing white armor with grey accents and a "
    "utility belt. the 327th star corps emblem is visible on his left shoulder.' Score: {'action_score': 3} }⟨1⟩\n"
    "⟨25⟩Example 3:{ Human_Caption: 'Black puppy with white nose wiggling its tail.' Predicted Caption: 'a low-poly "
    "dog with a black body and white paws and face stands still. its tail is black, and its ears are floppy. the dog "
    "is rendered in a minimalist style. it remains stationary throughout the scene.' Score: {'action_score': 2} }"
    "⟨1⟩\n"
    "⟨25⟩Example 4:{ Human_Caption: 'A ninja-looking robot in black and red armor with a shield and sword is jumping "
    "up, twisting and slashing the air with his sword before landing down.' Predicted Caption: 'a red and black "
    "armored warrior, adorned with a demonic mask, engages in a display of martial prowess, wielding both a gleaming "
    "sword and a circular shield with a blue emblem. they leap, twirl, and strike dynamic poses, their movements "
    "fluid and controlled.' Score: {'action_score': 4} }⟨1⟩\n"
    "⟨25⟩Example 5:{ Human_Caption: 'A 3D model of a green turtle with a brown shell swimming.' Predicted Caption: "
    "'a low-poly 3d model of a green sea turtle with a brown shell.' Score: {'action_score': 0} }⟨1⟩\n"
    "⟨25⟩Example 6:{ Human_Caption: 'An animated bearded man with brown hair, red beanie and a flannel shirt is "
    "wielding an axe in his right hand while running.' Predicted Caption: 'a cartoon lumberjack with a big black "
    "beard, wearing a red beanie hat, red and black plaid shirt, blue pants, brown boots, and brown gloves runs while "
    "carrying an axe.' Score: {'action_score': 5} }⟨1⟩"
)


def gpt_judge_messages(aspect: str, human_caption: str, predicted_caption: str) -> list[dict]:
    """The official chat messages of one GPT-Appearance or GPT-Action request (C.5.2), in OpenAI format."""
    if aspect not in GPT_ASPECTS:
        raise ValueError(f"unknown GPT aspect {aspect!r}; expected one of {', '.join(GPT_ASPECTS)}")
    system = APPEARANCE_SYSTEM if aspect == "appearance" else ACTION_SYSTEM
    label = "Human-annotated Caption" if aspect == "appearance" else "Human_Caption"
    key = f"{aspect}_score"
    user = (
        "Please evaluate the following video-based captions:\n\n"
        f"{label}: {human_caption}\n"
        f"Predicted Caption: {predicted_caption}\n\n"
        f"Please generate the response in the form of a dictionary string with keys '{key}', where its value is the "
        "factual accuracy score in INTEGER, not STRING."
        "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. You must follow this command!"
        f"For example, your response should look like this: {{'{key}': 4}}."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_FENCE = re.compile(r"^```[\w-]*\s*(.*?)\s*```$", re.S)


def parse_gpt_score(aspect: str, reply: str | None) -> tuple[float | None, str]:
    """The score in a judge's reply, or ``(None, why)``.

    As the official scripts: ``ast.literal_eval`` of the reply, then its ``'<aspect>_score'`` key. Unlike them, a
    Markdown code fence around the dictionary is removed first (C.8), and a value that is not a number in [0, 5] is
    refused; a refused reply is counted (``unparsed_rate``) instead of silently dropped.
    """
    if not isinstance(reply, str) or not reply.strip():
        return None, "empty reply"
    text = reply.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    key = f"{aspect}_score"
    try:
        value = ast.literal_eval(text)[key]
    except (ValueError, SyntaxError, TypeError, KeyError, IndexError, MemoryError, RecursionError) as exc:
        return None, f"not a dictionary with key {key!r} ({type(exc).__name__})"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 5:
        return None, f"{key} is {value!r}, not a number in [0, 5]"
    return float(value), ""


# --- captions and references ------------------------------------------------------------------------------------------


def caption_from_response(text: str | None) -> str:
    """The official post-processing (``handle_llm_caption_no_index``): the text after the first ``caption:``
    (case-insensitive), stripped; the whole response when there is none. A missing response is the empty caption."""
    if text is None:
        return ""
    start = text.lower().find("caption:")
    return text[start + len("caption:") :].strip() if start != -1 else text


def require_coco_tools() -> None:
    """Fail early, with what to install, when pycocoevalcap or Java is missing."""
    if importlib.util.find_spec("pycocoevalcap") is None:
        raise RuntimeError("4D-Bench caption metrics need pycocoevalcap: pip install 'vdpm-harness[captions]'")
    if shutil.which("java") is None:
        raise RuntimeError("4D-Bench caption metrics need Java on PATH (pycocoevalcap's PTB tokenizer and METEOR 1.5)")


def check_local_model(option: str, path: str, package: str, pip_name: str, official: str) -> None:
    """Raise a clear ``ValueError`` when ``package`` is missing or ``path`` is not a local model folder."""
    if importlib.util.find_spec(package) is None:
        raise ValueError(f"{option}={path!r} needs the '{package}' package, not installed (pip install {pip_name})")
    if not Path(path).is_dir():
        raise ValueError(
            f"{option}: {path!r} is not a local model folder (models are never downloaded here; copy {official} "
            "to a folder and pass that folder)"
        )


def ptb_tokenize(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[dict, dict]:
    """Tokenise with pycocoevalcap's PTBTokenizer: ``(gts, res)`` keyed by position, as every COCO scorer expects.

    Line breaks (any that ``str.splitlines`` knows) become spaces first: the Java tokenizer splits lines on them and
    would shift every later caption onto the wrong key.
    """
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    def one_line(text: str) -> str:
        return " ".join(text.splitlines())

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": one_line(r)} for r in refs] for i, refs in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": one_line(c)}] for i, c in enumerate(candidates)})
    if len(res) != len(candidates) or len(gts) != len(references):
        raise RuntimeError("PTBTokenizer returned a different number of captions than it was given")
    return gts, res


@functools.lru_cache(maxsize=1)
def _meteor():
    """One METEOR 1.5 Java process per Python process (its start costs seconds); it serialises calls itself."""
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


def coco_scores(gts: dict, res: dict) -> dict[str, tuple[float, list[float] | None]]:
    """Each pycocoevalcap scorer's ``compute_score`` on tokenised ``gts``/``res``: name -> (corpus value, per-item
    values or ``None`` where the corpus value is not their mean)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    meteor, _ = _meteor().compute_score(gts, res)
    rouge, rouge_each = Rouge().compute_score(gts, res)
    cider, cider_each = Cider().compute_score(gts, res)
    out: dict[str, tuple[float, list[float] | None]] = {
        f"bleu{n}_pycocoevalcap": (float(value), None) for n, value in enumerate(bleu, 1)
    }
    out["meteor_java"] = (float(meteor), None)
    out["rouge_l_pycocoevalcap"] = (float(rouge), [float(x) for x in rouge_each])
    out["cider_pycocoevalcap"] = (float(cider), [float(x) for x in cider_each])
    return out


def official_sentence_scores(candidate: str, references: Sequence[str]) -> dict[str, float]:
    """BLEU-1..4 and ROUGE-L of one object exactly as ``get_other_metrics_scores.py`` computes them (untokenised,
    case-sensitive text; pycocoevalcap ``Bleu(4)`` and ``Rouge`` on a one-item set), on the 0-1 scale."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.rouge.rouge import Rouge

    gts, res = {0: list(references)}, {0: [candidate]}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    scores = {f"bleu{n}_4dbench": float(value) for n, value in enumerate(bleu, 1)}
    scores["rouge_l_4dbench"] = float(rouge)
    return scores


def bertscore_f1(model_path: str, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """BERTScore F1 per candidate, max over its references (``bert_score.score`` with a list of reference lists),
    layer 9, no IDF, no baseline rescaling; the model is loaded once for the whole set."""
    from bert_score import score

    _, _, f1 = score(list(candidates), [list(r) for r in references], model_type=str(model_path),
                     num_layers=BERTSCORE_LAYER, lang="en")  # fmt: skip
    return [float(x) for x in f1]


def sbert_cosine(model_path: str, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Sentence-transformers cosine similarity per candidate, max over its references (the official "MiniLM")."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path))
    flat = [r for refs in references for r in refs]
    cand = model.encode(list(candidates), normalize_embeddings=True)
    refs = model.encode(flat, normalize_embeddings=True)
    scores, start = [], 0
    for i, group in enumerate(references):
        scores.append(float((refs[start : start + len(group)] @ cand[i]).max()))
        start += len(group)
    return scores


def caption_metrics(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    clusters: Sequence[str],
    bertscore_model: str | None = None,
    sbert_model: str | None = None,
) -> dict[str, MetricValue]:
    """Every offline caption metric of a set of candidates, x 100, with 95% CIs clustered by ``clusters`` where the
    value is a mean of per-object scores (corpus BLEU and METEOR have no per-object decomposition: no CI).

    ``references[i]`` are the reference captions of ``candidates[i]``; each needs at least one.
    """
    if not candidates:
        raise ValueError("no captions to score")
    for i, refs in enumerate(references):
        if not refs:
            raise ValueError(f"caption {i} (object {clusters[i]}) has no reference captions")
    n = len(candidates)
    metrics: dict[str, MetricValue] = {}
    official = [official_sentence_scores(c, r) for c, r in zip(candidates, references)]
    for name in official[0]:
        metrics[name] = clustered_mean([o[name] for o in official], clusters)
    gts, res = ptb_tokenize(candidates, references)
    for name, (value, each) in coco_scores(gts, res).items():
        if each is None:
            metrics[name] = MetricValue(value=100 * value, n=n)
        else:
            metrics[name] = clustered_mean(each, clusters, bounds=None if name.startswith("cider") else (0.0, 1.0))
    if bertscore_model:
        metrics["bertscore_f1"] = clustered_mean(bertscore_f1(bertscore_model, candidates, references), clusters,
                                                 bounds=None)  # fmt: skip
    if sbert_model:
        metrics["sbert_cosine"] = clustered_mean(sbert_cosine(sbert_model, candidates, references), clusters,
                                                 bounds=None)  # fmt: skip
    return metrics


def human_baseline(
    references: dict[str, Sequence[str]], seed: int = 0, **options
) -> tuple[dict[str, MetricValue], dict[str, int]]:
    """The leave-one-out human baseline (C.5.1, C.8): per object one human caption is the candidate and the others
    are its references, scored with :func:`caption_metrics` (``options``: ``bertscore_model``, ``sbert_model``).

    The official script draws the held-out caption with an unseeded ``random.randint(1, 5)``; here the draw is
    ``random.Random(seed).randint(1, k)`` over the objects in sorted order (``k`` captions), and returned with the
    metrics as ``{uid: 1-based index}`` so the run can be repeated.
    """
    rng = random.Random(seed)
    draws: dict[str, int] = {}
    candidates, refs, clusters = [], [], []
    for uid in sorted(references):
        captions = list(references[uid])
        if len(captions) < 2:
            raise ValueError(f"object {uid}: {len(captions)} human caption(s); leave-one-out needs at least 2")
        k = rng.randint(1, len(captions))
        draws[uid] = k
        candidates.append(captions[k - 1])
        refs.append(captions[: k - 1] + captions[k:])
        clusters.append(uid)
    return caption_metrics(candidates, refs, clusters, **options), draws
