"""Edit aspects and cumulative branch prompts of ParallelEdits (arXiv:2406.00985; PIE-Bench++ annotations).

An edit is described, as PIE-Bench++ does, by ``edit_action``: {phrase: {"position": word index in the source
prompt, "edit_type": PIE type id, "action": "+" (insert the phrase), "-" (delete it) or the source phrase it
replaces}} and ``aspect_mapping``: {object word: [its attribute words]}. :func:`parse_edit_action` reads the first,
:func:`edit_actions_from_captions` derives it from two captions (the word difference, for ShapesWorld),
:func:`aspects` pairs each action with the words whose attention maps locate it, and :func:`apply_edits` /
:func:`branch_prompts` build the prompts of the branches: p_0 the source, p_k = p_{k-1} with group k's actions
applied, the last one the full target.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["EditAction", "Aspect", "parse_edit_action", "resolve_positions", "edit_actions_from_captions", "aspects",
           "apply_edits",
           "branch_prompts", "shapes_aspect_mapping"]

ADD, DELETE = "+", "-"


def _words(text: str) -> list[str]:
    return text.split()


@dataclass(frozen=True)
class EditAction:
    """One edited phrase: ``phrase`` (the target's words, or the deleted words for "-"), ``position`` (its word
    index in the source prompt), ``action`` ("+", "-" or the replaced source phrase) and the PIE ``edit_type``."""

    phrase: str
    position: int
    action: str
    edit_type: int = -1

    @property
    def kind(self) -> str:
        """Return "add", "delete" or "swap"."""
        return {ADD: "add", DELETE: "delete"}.get(self.action, "swap")

    @property
    def source_words(self) -> list[str]:
        """Return the source-prompt words this action removes or replaces ([] for an insertion)."""
        if self.action == ADD:
            return []
        return _words(self.phrase) if self.action == DELETE else _words(self.action)

    @property
    def target_words(self) -> list[str]:
        """Return the words this action puts into the prompt ([] for a deletion)."""
        return [] if self.action == DELETE else _words(self.phrase)


def parse_edit_action(edit_action: str | Mapping[str, Any]) -> list[EditAction]:
    """Return the :class:`EditAction` list of a PIE-Bench++ ``edit_action`` (a JSON string or a dict), in source
    order. Missing keys or a non-integer position raise ``ValueError`` naming the phrase."""
    raw = json.loads(edit_action) if isinstance(edit_action, str) else edit_action
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"edit_action must be a non-empty mapping phrase -> {{position, edit_type, action}}, "
                         f"got {edit_action!r}")
    out = []
    for phrase, spec in raw.items():
        if not isinstance(spec, Mapping) or "position" not in spec or "action" not in spec:
            raise ValueError(f"edit_action[{phrase!r}] must hold 'position' and 'action', got {spec!r}")
        try:
            position = int(spec["position"])
        except (TypeError, ValueError):
            raise ValueError(f"edit_action[{phrase!r}]['position'] must be a word index, got "
                             f"{spec['position']!r}") from None
        action = str(spec["action"]).strip()
        if not phrase.strip() or not action:
            raise ValueError(f"edit_action[{phrase!r}]: empty phrase or action")
        out.append(EditAction(phrase.strip(), position, action, int(spec.get("edit_type", -1))))
    return sorted(out, key=lambda a: a.position)


def edit_actions_from_captions(source: str, target: str) -> list[EditAction]:
    """Return the edit actions that turn ``source`` into ``target``: the word difference (difflib's opcodes over
    words: a replaced run is a swap, an inserted run "+", a deleted run "-")."""
    s, t = _words(source), _words(target)
    if not s or not t:
        raise ValueError(f"source and target prompts must not be empty, got {source!r} and {target!r}")
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=s, b=t, autojunk=False).get_opcodes():
        if op == "replace":
            out.append(EditAction(" ".join(t[j1:j2]), i1, " ".join(s[i1:i2])))
        elif op == "insert":
            out.append(EditAction(" ".join(t[j1:j2]), i1, ADD))
        elif op == "delete":
            out.append(EditAction(" ".join(s[i1:i2]), i1, DELETE))
    return out


def resolve_positions(source: str, actions: Sequence[EditAction]) -> list[EditAction]:
    """Return ``actions`` with each swap's or deletion's ``position`` moved to where its source words really start
    in ``source`` (the occurrence nearest the given position). The authors' code locates these by string search,
    so annotations may point at the changed word inside the phrase rather than at the phrase's first word (ours
    do: "big white cross" -> "big green cross" at the index of "white"); insertions keep their index, which the
    code uses as given. A phrase that does not occur raises ``ValueError``."""
    import dataclasses

    words, out = _words(source), []
    for a in actions:
        src = a.source_words
        if src and words[a.position:a.position + len(src)] != src:
            starts = [i for i in range(len(words) - len(src) + 1) if words[i:i + len(src)] == src]
            if not starts:
                raise ValueError(f"the source prompt {source!r} does not contain {' '.join(src)!r} "
                                 f"(edit action {a.phrase!r})")
            a = dataclasses.replace(a, position=min(starts, key=lambda i: (abs(i - a.position), i)))
        out.append(a)
    return out


def _check_position(words: list[str], action: EditAction) -> None:
    n = len(words)
    if action.action == ADD:
        if not 0 <= action.position <= n:
            raise ValueError(f"insertion position {action.position} of {action.phrase!r} is outside the source "
                             f"prompt's {n} words")
        return
    src = action.source_words
    if words[action.position:action.position + len(src)] != src:
        raise ValueError(f"the source prompt has no {' '.join(src)!r} at word {action.position} "
                         f"(found {' '.join(words[action.position:action.position + len(src)])!r})")


def apply_edits(source: str, actions: Sequence[EditAction]) -> str:
    """Return ``source`` with ``actions`` applied; every position refers to the *source* prompt's words, so actions
    are applied from the last position back (earlier indices stay valid). Overlapping actions raise."""
    words = _words(source)
    if not words:
        raise ValueError("the source prompt is empty")
    spans = []
    for a in actions:
        _check_position(words, a)
        spans.append((a.position, a.position + len(a.source_words), a))
    spans.sort(key=lambda s: (s[0], s[1]))
    for (_, e0, a0), (s1, _, a1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise ValueError(f"edit actions {a0.phrase!r} and {a1.phrase!r} overlap in the source prompt")
    for start, end, a in reversed(spans):
        words[start:end] = a.target_words
    return " ".join(words)


def branch_prompts(source: str, groups: Sequence[Sequence[EditAction]], target: str | None = None) -> list[str]:
    """Return [p_0, p_1, ..., p_K]: p_0 = ``source`` and p_k = the source with the actions of groups 1..k applied
    (cumulative: each branch adds its group's edits to the previous branch's prompt). With ``target`` given, the
    last prompt must equal it (else ``ValueError``: the actions do not describe the edit)."""
    prompts, done = [source], []
    for g in groups:
        done.extend(g)
        prompts.append(apply_edits(source, done))
    if target is not None and _words(prompts[-1]) != _words(target):
        raise ValueError(f"the edit actions give {prompts[-1]!r}, not the target prompt {target!r}")
    return prompts


@dataclass(frozen=True)
class Aspect:
    """One aspect to edit: its ``action``, the ``words`` whose cross-attention maps locate it ([object] for an
    insertion or deletion, [source phrase, object] for a swap, the phrase itself for a global edit) and the
    ``objects`` to blend locally (none for a global edit)."""

    action: EditAction
    words: tuple[str, ...]
    objects: tuple[str, ...]
    is_global: bool = False


def aspects(actions: Sequence[EditAction], aspect_mapping: Mapping[str, Sequence[str]] | str | None) -> list[Aspect]:
    """Return one :class:`Aspect` per action: an action whose phrase contains an object of ``aspect_mapping`` (or
    one of its attribute words) edits that object (a swap "square" -> "triangle" edits the triangle, as in the
    authors' code; the replaced words are searched only when the phrase names no object); any other action is global
    (style, background)."""
    mapping = json.loads(aspect_mapping) if isinstance(aspect_mapping, str) else dict(aspect_mapping or {})
    out = []
    def objects_in(words: set[str]) -> tuple[str, ...]:
        return tuple(o for o, attrs in mapping.items() if o in words or words & set(attrs))

    for a in actions:  # the phrase's own words first (a swap's new object), then the words it replaces
        objs = objects_in(set(_words(a.phrase))) or objects_in(set(a.source_words))
        if not objs:
            out.append(Aspect(a, (a.phrase,), (), True))
        elif a.kind == "swap":
            out.append(Aspect(a, tuple(dict.fromkeys((a.action, *objs))), objs))
        else:
            out.append(Aspect(a, objs, objs))
    return out


def shapes_aspect_mapping(*captions: str) -> dict[str, list[str]]:
    """Return the PIE-Bench++-style ``aspect_mapping`` of ShapesWorld captions: each shape word with the size and
    colour words in front of it (the grammar puts them there)."""
    from kit.data.shapes import COLOURS, SHAPES, SIZES

    mapping: dict[str, list[str]] = {}
    for text in captions:
        words, attrs = _words(text), []
        for w in words:
            if w in SIZES or w in COLOURS:
                attrs.append(w)
            elif w in SHAPES:
                mapping.setdefault(w, [])
                mapping[w] += [a for a in attrs if a not in mapping[w]]
                attrs = []
    return mapping
