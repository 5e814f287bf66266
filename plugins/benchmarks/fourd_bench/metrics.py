"""Offline caption metrics for ``4dbench-caption``: n-gram metrics, model-based similarities and the human baseline.

Source: ``WenxuanZhu1103/4D-Bench`` at commit ``f40f49a``,
``4D_Object_Captioning/code/eval_metrics/other_metrics/get_other_metrics_scores.py``. It scores one object at a time,
the candidate against the object's human captions, and the README's numbers are consistent with 100 x the mean over
objects (there is no aggregation code).

Every metric is named after the implementation that computes it, because two of the official ones cannot run here:

* ``bleu{1..4}_4dbench``, ``rouge_l_4dbench``: exactly the official computation: pycocoevalcap's ``Bleu(4)`` and
  ``Rouge`` on one object at a time, on the *untokenised*, case-sensitive caption against its references, then 100 x
  the mean over objects. Given the same captions these reproduce the official per-object scores and means exactly.
* ``bleu{1..4}_pycocoevalcap``, ``meteor_java``, ``rouge_l_pycocoevalcap``, ``cider_pycocoevalcap``: the COCO
  caption-evaluation convention: every caption tokenised with pycocoevalcap's Java ``PTBTokenizer`` (lower case,
  punctuation removed), then each scorer's ``compute_score`` over the whole set (corpus BLEU, METEOR 1.5's aggregate,
  mean ROUGE-L, CIDEr-D with document frequencies from the evaluated references), x 100.
  They differ from 4D-Bench's numbers on purpose and cannot match them here: 4D-Bench's CIDEr is ``cidereval``
  (``michelecafagna26/cider``: original CIDEr, not CIDEr-D, with document frequencies from a COCO-val pickle; not on
  PyPI) and its METEOR is NLTK's ``meteor_score`` (needs the WordNet corpus, a download), not Java METEOR 1.5.
* ``bertscore_f1`` (``bert_score``, layer 9, no IDF, no rescaling, max over references) and ``sbert_cosine``
  (``sentence_transformers``, max cosine over references): the official definitions, computed only when a local
  model folder is given (bert-base-uncased and all-MiniLM-L6-v2 reproduce the official setting); off by default.

The GPT rubrics are in :mod:`.gpt_rubric`. Scores are 100 x means (the README's scale).
"""

from __future__ import annotations

import functools
import importlib.util
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

from vdpm_harness import MetricValue, clustered_mean

#: Hidden layer bert_score uses for bert-base-uncased (its ``model2layers`` table); the official setting.
BERTSCORE_LAYER = 9


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
    """The leave-one-out human baseline: per object one human caption is the candidate and the others are its
    references, scored with :func:`caption_metrics` (``options``: ``bertscore_model``, ``sbert_model``).

    The official ``mllm_gen_caption/human_caption_exp.py`` draws the held-out caption with an unseeded
    ``random.randint(1, 5)`` and ``get_other_metrics_scores.py`` scores it against the other four; here the draw is
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
