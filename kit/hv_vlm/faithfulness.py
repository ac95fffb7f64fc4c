"""Faithfulness of an examiner's explanation: do the features it says differ truly differ between the writers?

VLM-HV (arXiv:2407.21788) argues that VLM explanations make writer verification trustworthy, but on CEDAR AND
nobody knows which features truly differ, so an explanation can only be read, not scored. Synthetic
writers (``kit.data.handwriting``) know their style, and ``style_differences`` gives the true gap per
attribute (slant, size, spacing, baseline, letter_shapes, pen_width, pressure, tremor; 1 = a typical gap
between two writers).

``claimed_attributes`` reads free text (the offline examiner's, or GPT-4o's) clause by clause: a keyword
lexicon per attribute says what a clause talks about and polarity words say whether it claims the samples
"differ" or are "similar", with negation ("not consistent" -> differ, "no significant difference" ->
similar). ``faithfulness`` scores those claims against ``true_differences``.

Limits of the reader (it is a lexicon, not a language model): a clause must name the attribute (or sit under
a heading that does) and carry a polarity word; descriptions without one ("the known sample leans right, the
questioned one is upright") make no claim. Negation looks three words back. Contrast ("vs", "whereas",
"absent", "malformed", comparatives) and agreement cues ("in both") count only when no explicit polarity word
is present. Connectedness ("joined", "connected") counts as spacing, since in the synthetic writers letters
separate when spacing grows. An attribute named as differing anywhere in the text is claimed to differ.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from kit.data.handwriting import ATTRIBUTES, WriterStyle, style_differences

__all__ = ["Claim", "ATTRIBUTE_TERMS", "claims", "claimed_attributes", "true_differences", "faithfulness",
           "faithfulness_summary"]

DIFFER, SIMILAR = "differ", "similar"

# Strong terms name an attribute; weak ones (a quoted letter, a bare comparative) count only when nothing
# strong does.
ATTRIBUTE_TERMS: dict[str, tuple[str, ...]] = {
    "slant": (r"slant\w*", r"lean(?:s|ing)?", r"inclin\w*", r"upright",
              r"angle of the (?:letters|writing|strokes)"),
    "size": (r"sizes?", r"x-height\w*", r"heights?", r"proportion\w*", r"scale", r"dimensions?",
             r"width of the word", r"word width", r"length of the word"),
    "spacing": (r"spacing", r"spaces?", r"gaps?", r"distances? between", r"intervals?", r"connect\w*",
                r"join(?:s|ed|ing|t)?", r"ligatures?", r"linkages?"),
    "baseline": (r"base ?lines?", r"alignment", r"aligned", r"tilt of the (?:base ?line|writing|word)"),
    "letter_shapes": (r"formation", r"forms?", r"form of the", r"shapes?", r"loops?", r"staff", r"stems?",
                      r"bowls?", r"ascenders?(?: heights?)?",
                      r"height of the (?:[\"'‘“]?[and][\"'’”]? )?ascender",
                      r"(?:exit|entry|terminal|ending|starting) strokes?", r"hooks?",
                      r"arch(?:es)?", r"construction", r"malformed", r"letter design", r"morpholog\w*"),
    "pen_width": (r"stroke (?:width|thickness)", r"line (?:width|thickness)", r"pen width", r"thickness",
                  r"thick(?:er)?", r"thin(?:ner)?", r"width of the (?:strokes?|lines?|pen)", r"bold\w*"),
    "pressure": (r"pressure", r"darkness", r"heav(?:y|ier)", r"shading", r"ink (?:density|intensity)"),
    "tremor": (r"tremors?", r"tremul\w*", r"smooth\w*", r"shak\w*", r"fluen\w*", r"line quality", r"rough\w*",
               r"jagged\w*", r"wobbl\w*", r"hesita\w*", r"(?:un)?stead\w*", r"rhythm\w*"),
}
_WEAK_ATTRIBUTE_TERMS = {"letter_shapes": (r"[\"'‘“][and][\"'’”]", r"letter [and]\b"),
                         "size": (r"larger", r"smaller", r"bigger", r"taller", r"shorter", r"wider",
                                  r"narrower")}
_POLARITY_TERMS = {  # (polarity, strong?) -> patterns; phrases first so that they win over their words
    (DIFFER, True): (r"beyond (?:the )?(?:range|natural variation)\w*", r"differ\w*", r"dissimilar\w*",
                     r"inconsisten\w*", r"distinct\w*", r"vary", r"varies", r"varied", r"varying",
                     r"mismatch\w*",
                     r"deviat\w*", r"discrepan\w*", r"unlike", r"diverg\w*", r"contrast\w*", r"unequal",
                     r"disagree\w*", r"change[sd]?"),
    (SIMILAR, True): (r"similar\w*", r"consisten(?:t|cy|tly)", r"same", r"match\w*", r"comparable", r"alike",
                      r"identical\w*", r"resembl\w*", r"uniform\w*", r"agree\w*", r"common", r"shared?",
                      r"within (?:the )?(?:range|natural variation)",
                      r"(?:slight|minor|small|subtle) (?:differences?|variations?)"),
    (DIFFER, False): (r"vs\.?", r"versus", r"whereas", r"while", r"compared (?:to|with)", r"in contrast",
                      r"malformed", r"absent", r"missing", r"\w+er than", r"more", r"less", r"only in",
                      r"(?:heavi|light|dark|faint|thick|thinn|larg|small|bigg|tall|short|wid|narrow|steep|high|low"
                      r"|shaki|smooth|rough)er"),
    (SIMILAR, False): (r"in both", r"both (?:samples|images|show|have|display|exhibit)", r"each sample"),
}
_NEGATORS = {"not", "no", "never", "without", "lack", "lacks", "hardly", "neither", "nor", "none", "cannot",
             "isn't", "aren't", "doesn't", "don't", "didn't", "wasn't", "weren't"}
_SENTENCE = re.compile(r"(?<!\d)[.!?](?!\d)|[;\n]|(?<=\d)\.(?=\s|$)")
_CLAUSE = re.compile(r"(,?\s*\b(?:but|whereas|while|however|although|though|yet)\b,?)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z']+")


def _compile(groups: dict) -> list[tuple[object, re.Pattern]]:
    """One whole-word regex per key; longer alternatives first so that a phrase wins over its first word."""
    return [(key, re.compile(r"(?<![\w-])(?:" + "|".join(sorted(pats, key=len, reverse=True)) + r")(?![\w-])",
                             re.IGNORECASE)) for key, pats in groups.items()]


_ATTR_RE = _compile(ATTRIBUTE_TERMS)
_WEAK_ATTR_RE = _compile(_WEAK_ATTRIBUTE_TERMS)
_POL_RE = _compile(_POLARITY_TERMS)


@dataclass(frozen=True)
class Claim:
    """One clause's claim: the ``attributes`` it talks about, its ``polarity`` ("differ" | "similar") and
    the clause ``text``."""

    attributes: tuple[str, ...]
    polarity: str
    text: str


def _matches(text: str, compiled: list) -> list[tuple[int, int, object]]:
    """Non-overlapping (start, end, key) matches, longest first on overlaps."""
    found = sorted(((m.start(), m.end(), key) for key, rx in compiled for m in rx.finditer(text)),
                   key=lambda t: (-(t[1] - t[0]), t[0]))
    kept: list[tuple[int, int, object]] = []
    for s, e, key in found:
        if all(e <= s2 or s >= e2 for s2, e2, _ in kept):
            kept.append((s, e, key))
    return sorted(kept)


def _attributes(text: str) -> tuple[str, ...]:
    found = _matches(text, _ATTR_RE) or _matches(text, _WEAK_ATTR_RE)
    return tuple(dict.fromkeys(key for _, _, key in found))


def _negated(text: str, start: int) -> bool:
    before = _WORD.findall(text[:start].lower())[-3:]
    return any(w in _NEGATORS or w.endswith("n't") for w in before)


def _polarity(text: str) -> str | None:
    votes = {True: set(), False: set()}
    for s, _, (pol, strong) in _matches(text, _POL_RE):
        if _negated(text, s):
            pol = SIMILAR if pol == DIFFER else DIFFER
        votes[strong].add(pol)
    for strong in (True, False):
        if len(votes[strong]) == 1:
            return next(iter(votes[strong]))
        if len(votes[strong]) == 2:
            return None  # both polarities in one clause: no claim
    return None


def _clauses(sentence: str) -> list[str]:
    """``sentence`` cut at contrast words (but, whereas, while, however...) where both sides name an
    attribute; a contrast between the two samples' values of one attribute stays in one clause."""
    parts = _CLAUSE.split(sentence)
    out = [parts[0]]
    for connector, piece in zip(parts[1::2], parts[2::2]):
        if _attributes(out[-1]) and _attributes(piece):
            out.append(piece)
        else:
            out[-1] += connector + piece
    return [c.strip() for c in out if c.strip()]


def _is_heading(line: str) -> bool:
    s = line.strip()
    words = s.split()
    return bool(words) and (s.startswith("#") or (s.startswith("**") and s.endswith(("**", "**:")))
                            or (len(words) <= 8 and s.endswith(":")))


def claims(explanation: str) -> list[Claim]:
    """The claims [n] of ``explanation`` in text order: one per clause that names an attribute (or sits under
    a heading that does) and carries a polarity; see the module docstring for the rules and their limits."""
    if not isinstance(explanation, str):
        raise TypeError(f"explanation must be a str, got {type(explanation).__name__}")
    out: list[Claim] = []
    for paragraph in re.split(r"\n\s*\n", explanation):
        context: tuple[str, ...] = ()
        for line in paragraph.split("\n"):
            if _is_heading(line):
                context = _attributes(line) or context
                continue
            head = re.match(r"\s*[*#\-\d.\s]*([^:.]{1,60}):\s", line)    # "Slant: ..." names the attribute
            if head and _attributes(head.group(1)):
                context = _attributes(head.group(1))
                line = line[head.end():]
            for sentence in _SENTENCE.split(line):
                for clause in _clauses(sentence):
                    if not clause:
                        continue
                    attrs = _attributes(clause) or context
                    pol = _polarity(clause)
                    if attrs and pol is not None:
                        out.append(Claim(attrs, pol, clause))
    return out


def claimed_attributes(explanation: str) -> dict[str, str]:
    """{attribute: "differ" | "similar"} for each style attribute the explanation makes a claim about.

    Attributes are the keys of ``kit.data.handwriting.ATTRIBUTES``; one named as differing in any clause is
    "differ", otherwise "similar"; attributes the text makes no claim about are absent."""
    out: dict[str, str] = {}
    for c in claims(explanation):
        for a in c.attributes:
            out[a] = DIFFER if DIFFER in (c.polarity, out.get(a)) else SIMILAR
    return {a: out[a] for a in ATTRIBUTES if a in out}


def true_differences(style_a: WriterStyle, style_b: WriterStyle, threshold: float = 1.0) -> dict[str, bool]:
    """{attribute: gap >= threshold} from ``style_differences`` (1 = a typical gap between two writers)."""
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    return {a: g >= threshold for a, g in style_differences(style_a, style_b).items()}


def faithfulness(explanation: str, style_a: WriterStyle, style_b: WriterStyle,
                 threshold: float = 1.0) -> dict:
    """Scores of one explanation's claims against the writers' true style gaps.

    Returns ``precision`` (claimed differ and truly differ / claimed differ), ``recall`` (truly differing
    attributes named as differing / truly differing), ``accuracy`` (correct claims / claims), counts
    ``n_claims``, ``n_differ_claims``, ``n_true_differ``, and ``rows``: one dict per attribute with ``gap``,
    ``truly_differs``, ``claim`` ("differ" | "similar" | None) and ``correct`` (None without a claim). A ratio
    with nothing to count (no differ claims, no truly differing attribute, no claims) is None, never NaN."""
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    claimed = claimed_attributes(explanation)
    gaps = style_differences(style_a, style_b)
    truth = {a: g >= threshold for a, g in gaps.items()}
    rows = [{"attribute": a, "gap": gaps[a], "truly_differs": truth[a], "claim": claimed.get(a),
             "correct": None if a not in claimed else (claimed[a] == DIFFER) == truth[a]} for a in ATTRIBUTES]
    return _scores(rows)


def _scores(rows: list[dict]) -> dict:
    claimed = [r for r in rows if r["claim"] is not None]
    differ = [r for r in claimed if r["claim"] == DIFFER]
    true = [r for r in rows if r["truly_differs"]]
    tp = sum(r["truly_differs"] for r in differ)
    ratio = lambda num, den: num / den if den else None  # noqa: E731
    return {"precision": ratio(tp, len(differ)),
            "recall": ratio(sum(r["claim"] == DIFFER for r in true), len(true)),
            "accuracy": ratio(sum(bool(r["correct"]) for r in claimed), len(claimed)),
            "n_claims": len(claimed), "n_differ_claims": len(differ), "n_true_differ": len(true),
            "n_attributes": len(rows), "rows": rows}


def faithfulness_summary(results: Sequence[dict]) -> dict:
    """Micro-averaged scores over many ``faithfulness`` results: every (pair, attribute) row pooled.

    Returns ``precision``, ``recall``, ``accuracy`` (None where nothing to count), ``chance_precision`` (the
    share of rows that truly differ: the precision of claims put on random attributes), ``claim_rate`` (rows
    with a claim / rows), ``n_pairs``, ``n_claims`` and ``per_attribute`` {attribute: same scores}."""
    results = list(results)
    if not results:
        raise ValueError("faithfulness_summary needs at least one faithfulness result")
    rows = [r for res in results for r in res["rows"]]
    out = {k: v for k, v in _scores(rows).items() if k != "rows"}
    out.update(n_pairs=len(results), claim_rate=out["n_claims"] / len(rows),
               chance_precision=sum(r["truly_differs"] for r in rows) / len(rows))
    out["per_attribute"] = {}
    for a in ATTRIBUTES:
        sub = [r for r in rows if r["attribute"] == a]
        if sub:
            s = {k: v for k, v in _scores(sub).items() if k != "rows"}
            s["chance_precision"] = sum(r["truly_differs"] for r in sub) / len(sub)
            out["per_attribute"][a] = s
    return out
