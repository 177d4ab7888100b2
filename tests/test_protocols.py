"""Protocol label maps and exclusions on annotation rows written in the official formats."""

from __future__ import annotations

from collections import Counter

import pytest

from _data_helpers import write_xlsx
from train.protocols import PROTOCOLS, apply_protocol, class_names, subject_key


def _rows(dataset, per_subject_emotions):
    """Manifest-like rows: {subject: [emotion, ...]} -> rows with sample names."""
    rows = []
    for subj, emotions in per_subject_emotions.items():
        for k, e in enumerate(emotions):
            rows.append({"dataset": dataset, "subject": subj, "sample": f"{subj}_{k:02d}", "emotion": e, "kind": "micro"})
    return rows


def _spread(counts: dict[str, int], subjects: list[str]) -> dict[str, list[str]]:
    """Deal emotions round-robin over subjects (so every subject gets some)."""
    out: dict[str, list[str]] = {s: [] for s in subjects}
    i = 0
    for emo, n in counts.items():
        for _ in range(n):
            out[subjects[i % len(subjects)]].append(emo)
            i += 1
    return out


def official_tables():
    """Rows with the released per-class counts of SMIC-HS (164), CASME II (255) and SAMM (159).

    CASME II: 26 subjects, of which sub25/sub26 have only `others` here, so 24 enter CDE;
    the two clips the MEGC 2019 list leaves out (sub04 EP12_01f, sub05 EP09_05f) are disgust.
    SAMM: 32 subjects, 4 of them with only `other`, so 28 enter CDE. SMIC-HS: 16 subjects.
    """
    smic = _rows("smic-hs", _spread({"negative": 70, "positive": 51, "surprise": 43},
                                    [f"s{i:02d}" for i in (1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 18, 19, 20)]))
    c2_subjects = [f"sub{i:02d}" for i in range(1, 25)]
    casme2 = _rows("casme2", _spread({"happiness": 32, "disgust": 61, "repression": 27, "surprise": 25,
                                      "others": 90, "fear": 2, "sadness": 7}, c2_subjects))
    casme2 += _rows("casme2", {"sub25": ["others"] * 5, "sub26": ["others"] * 4})
    casme2 += [{"dataset": "casme2", "subject": "sub04", "sample": "EP12_01f", "emotion": "disgust", "kind": "micro"},
               {"dataset": "casme2", "subject": "sub05", "sample": "EP09_05f", "emotion": "disgust", "kind": "micro"}]
    samm_subjects = [f"{i:03d}" for i in range(6, 38) if i not in (27, 29, 35, 36)]  # 28
    samm = _rows("samm", _spread({"anger": 57, "contempt": 12, "disgust": 9, "fear": 8, "sadness": 6,
                                  "happiness": 26, "surprise": 15, "other": 20}, samm_subjects))
    samm += _rows("samm", {"027": ["other"] * 2, "029": ["other"] * 2, "035": ["other"], "036": ["other"]})
    return smic, casme2, samm


def test_official_tables_have_the_released_sizes():
    smic, casme2, samm = official_tables()
    assert (len(smic), len(casme2), len(samm)) == (164, 255, 159)


def test_cde_gives_the_official_442_samples():
    smic, casme2, samm = official_tables()
    rows = apply_protocol("cde", smic + casme2 + samm)
    assert len(rows) == 442
    assert len({subject_key(r) for r in rows}) == 68
    assert Counter(r["class_name"] for r in rows) == {"negative": 250, "positive": 109, "surprise": 83}
    per = Counter(r["dataset"] for r in rows)
    assert per == {"smic-hs": 164, "casme2": 145, "samm": 133}
    kept = {(r["dataset"], r["subject"], r["sample"]) for r in rows}
    assert ("casme2", "sub04", "EP12_01f") not in kept and ("casme2", "sub05", "EP09_05f") not in kept
    assert all(r["label"] == ["negative", "positive", "surprise"].index(r["class_name"]) for r in rows)
    neg = Counter(r["emotion"] for r in rows if r["class_name"] == "negative" and r["dataset"] == "samm")
    assert set(neg) == {"anger", "contempt", "disgust", "fear", "sadness"}


def test_cde_from_the_real_coding_sheets(tmp_path):
    """The CASME II reader's rows (sheet in the official columns) feed the CDE table."""
    from train.datasets.casme2 import read_casme2
    from _data_helpers import tiny_frames

    header = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion")
    table = [(4, "EP12_01f", 1, 2, 3, "4", "disgust"), (4, "EP12_02f", 1, 2, 3, "4", "repression"),
             (5, "EP09_05f", 1, 2, 3, "4", "disgust"), (5, "EP09_06", 1, 2, 3, "12", "happiness"),
             (6, "EP01_01", 1, 2, 3, "1+2", "surprise"), (6, "EP01_02", 1, 2, 3, "R10", "others"),
             (7, "EP02_01", 1, 2, 3, "4", "fear")]
    for subj, ep, *_ in table:
        tiny_frames(tmp_path / "CASME2_RAW_selected" / f"sub{subj:02d}" / ep, ["img1.jpg", "img2.jpg", "img3.jpg"])
    write_xlsx(tmp_path / "CASME2-coding-20140508.xlsx", {"Sheet1": (header, table)})
    rows = [{"dataset": s.dataset, "subject": s.subject, "sample": s.sample, "emotion": s.emotion, "kind": s.kind}
            for s in read_casme2(tmp_path)]
    cde = {(r["subject"], r["sample"]): r["class_name"] for r in apply_protocol("cde", rows)}
    assert cde == {("sub04", "EP12_02f"): "negative", ("sub05", "EP09_06"): "positive", ("sub06", "EP01_01"): "surprise"}
    c5 = {r["sample"]: (r["label"], r["class_name"]) for r in apply_protocol("casme2-5", rows)}
    assert c5 == {"EP12_01f": (2, "disgust"), "EP12_02f": (1, "repression"), "EP09_05f": (2, "disgust"),
                  "EP09_06": (0, "happiness"), "EP01_01": (3, "surprise"), "EP01_02": (4, "others")}


def test_sde_protocols_relabel_and_drop():
    smic, casme2, samm = official_tables()
    c5 = apply_protocol("casme2-5", smic + casme2 + samm)
    assert {r["dataset"] for r in c5} == {"casme2"}
    assert Counter(r["class_name"] for r in c5) == {"others": 99, "disgust": 63, "happiness": 32, "repression": 27, "surprise": 25}
    s5 = apply_protocol("samm-5", samm + casme2)
    assert Counter(r["class_name"] for r in s5) == {"anger": 57, "other": 26, "happiness": 26, "surprise": 15, "contempt": 12}
    assert class_names("samm-5") == ["anger", "contempt", "happiness", "surprise", "other"]


def test_casme3_protocols_and_macro_rows_dropped():
    emotions = ["happy", "disgust", "fear", "anger", "sad", "surprise", "others", "disgust"]
    rows = [{"dataset": "casme3", "subject": "spNO.1", "sample": f"a{i}", "emotion": e, "kind": "micro"}
            for i, e in enumerate(emotions)]
    rows.append({"dataset": "casme3", "subject": "spNO.1", "sample": "m", "emotion": "happy", "kind": "macro"})
    three = apply_protocol("casme3-3", rows)
    assert [r["class_name"] for r in three] == ["positive", "negative", "negative", "negative", "negative",
                                                 "surprise", "negative"]
    four = apply_protocol("casme3-4", rows)
    assert Counter(r["class_name"] for r in four) == {"negative": 5, "positive": 1, "surprise": 1, "others": 1}
    seven = apply_protocol("casme3-7", rows)
    assert len(seven) == 8 and {r["label"] for r in seven} == set(range(7))
    assert all(r["label"] == class_names("casme3-7").index(r["class_name"]) for r in seven)
    assert rows[0].get("label") is None  # inputs are not modified


def test_every_protocol_is_a_table_and_unknown_is_keyerror():
    assert set(PROTOCOLS) == {"casme2-5", "samm-5", "casme3-3", "casme3-4", "casme3-7", "cde"}
    for p in PROTOCOLS.values():
        for table in p.maps.values():
            assert set(table.values()) <= set(p.classes)
    with pytest.raises(KeyError, match="unknown protocol"):
        apply_protocol("casme2-3", [])
