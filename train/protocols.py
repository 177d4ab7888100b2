"""Label maps per evaluation protocol: one table each, no script per dataset.

A protocol says, for each dataset it draws on, which annotated emotion (lower-case, as the
dataset writes it) becomes which class, and which samples the official list leaves out.
`apply_protocol(name, rows)` keeps the micro-expression rows the table maps, adds `label`
(index into the protocol's classes) and `class_name`, and drops everything else. The LOSO
subject key is `f"{dataset}/{subject}"` (CDE pools datasets whose subject ids clash).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass(frozen=True)
class Protocol:
    """classes: class names in label order; maps: dataset -> {emotion: class};
    exclude: (dataset, subject, sample) left out by the official list."""

    name: str
    classes: tuple[str, ...]
    maps: dict[str, dict[str, str]]
    exclude: frozenset[tuple[str, str, str]] = field(default_factory=frozenset)
    description: str = ""


def _same(*names: str) -> dict[str, str]:
    return {n: n for n in names}


_CASME3_NEG = {"anger": "negative", "disgust": "negative", "fear": "negative", "sad": "negative",
               "sadness": "negative"}

PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "casme2-5",
            ("happiness", "repression", "disgust", "surprise", "others"),
            {"casme2": _same("happiness", "repression", "disgust", "surprise", "others")},
            description="CASME II 5-class (fear and sadness, too few samples, are dropped)",
        ),
        Protocol(
            "samm-5",
            ("anger", "contempt", "happiness", "surprise", "other"),
            {"samm": _same("anger", "contempt", "happiness", "surprise", "other")},
            description="SAMM 5-class (classes with at least 10 samples)",
        ),
        Protocol(
            "casme3-3",
            ("negative", "positive", "surprise"),
            {"casme3": {**_CASME3_NEG, "happy": "positive", "happiness": "positive", "surprise": "surprise"}},
            description="CAS(ME)^3 part A 3-class: negative = anger+disgust+fear+sad",
        ),
        Protocol(
            "casme3-4",
            ("negative", "positive", "surprise", "others"),
            {"casme3": {**_CASME3_NEG, "happy": "positive", "happiness": "positive", "surprise": "surprise",
                        "others": "others", "other": "others"}},
            description="CAS(ME)^3 part A 4-class",
        ),
        Protocol(
            "casme3-7",
            ("happy", "disgust", "fear", "anger", "sad", "surprise", "others"),
            {"casme3": {**_same("happy", "disgust", "fear", "anger", "sad", "surprise", "others"),
                        "happiness": "happy", "sadness": "sad", "other": "others"}},
            description="CAS(ME)^3 part A 7-class",
        ),
        Protocol(
            "cde",
            ("negative", "positive", "surprise"),
            {
                "smic-hs": _same("negative", "positive", "surprise"),
                "casme2": {"disgust": "negative", "repression": "negative", "happiness": "positive",
                           "surprise": "surprise"},
                "samm": {"anger": "negative", "contempt": "negative", "disgust": "negative", "fear": "negative",
                         "sadness": "negative", "happiness": "positive", "surprise": "surprise"},
            },
            # The official MEGC 2019 list leaves these two CASME II clips out.
            exclude=frozenset({("casme2", "sub04", "EP12_01f"), ("casme2", "sub05", "EP09_05f")}),
            description="MEGC 2019 composite: SMIC-HS 164 + CASME II 145 + SAMM 133 = 442 samples, 68 subjects",
        ),
    )
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise KeyError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def class_names(name: str) -> list[str]:
    """Class names of protocol `name`, indexed by label."""
    return list(get_protocol(name).classes)


def subject_key(row: dict[str, Any]) -> str:
    """The LOSO subject key."""
    return f"{row['dataset']}/{row['subject']}"


def apply_protocol(name: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows kept by protocol `name`, each a copy with `label` (int) and `class_name` added.

    Dropped: other datasets, macro-expression rows, emotions outside the map, and the
    samples the official list excludes. Raises KeyError for an unknown protocol.
    """
    p = get_protocol(name)
    out = []
    for r in rows:
        ds = r.get("dataset")
        table = p.maps.get(ds)
        if table is None or r.get("kind", "micro") != "micro":
            continue
        if (ds, str(r.get("subject")), str(r.get("sample"))) in p.exclude:
            continue
        emotion = (r.get("emotion") or "").strip().lower()
        cls = table.get(emotion)
        if cls is None:
            continue
        out.append({**r, "label": p.classes.index(cls), "class_name": cls})
    return out
