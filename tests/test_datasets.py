"""Readers on small trees built in each dataset's real layout, quirks included."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from _data_helpers import tiny_frames, write_xlsx
from train.datasets import DATASETS, DatasetError, read_dataset

CASME2_HEADER = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", None,
                 "Action Units", "Estimated Emotion", None)


def _casme2_tree(root: Path, tree: str = "CASME2_RAW_selected", prefix: str = "img") -> Path:
    clips = {("sub01", "EP02_01f"): range(46, 57), ("sub01", "EP03_02"): range(10, 21),
             ("sub11", "EP19_05f"): range(100, 111)}
    for (subj, clip), frames in clips.items():
        tiny_frames(root / tree / subj / clip, [f"{prefix}{n}.jpg" for n in frames])
    rows = [
        (1, "EP02_01f", 46, 51, 56, "x", "12", "happiness", None),  # subject as a number
        ("01", "EP03_02", 10, "/", 20, "x", "4+7", "Disgust", "extra"),  # '01', apex '/'
        ("11", "EP19_05f", 100, 104, 110, None, "1+2", "surprise", None),
        ("sub01", "EP09_09", 5, 6, 9, None, "4", "others", None),  # no clip folder
        (11, "EP19_05", 100, 101, 110, None, "1+2", "surprise", None),  # folder is EP19_05f
        (None, "note: coded by two coders", None, None, None, None, None, None, None),
    ]
    write_xlsx(root / "CASME2-coding-20140508.xlsx", {"Sheet1": (CASME2_HEADER, rows)})
    return root


def test_casme2_raw_tree_with_quirks(tmp_path):
    samples = {s.sample: s for s in read_dataset("casme2", _casme2_tree(tmp_path))}
    assert set(samples) == {"EP02_01f", "EP03_02", "EP19_05f", "EP09_09", "EP19_05"}
    alias = samples["EP19_05"]
    assert alias.error is None and alias.frames[101].parent.name == "EP19_05f" and "EP19_05f" in alias.warnings[0]
    a = samples["EP02_01f"]
    assert (a.subject, a.emotion, a.kind, a.aus) == ("sub01", "happiness", "micro", "12")
    assert (a.onset_index, a.apex_index, a.offset_index) == (46, 51, 56)
    assert a.frames[46] == tmp_path / "CASME2_RAW_selected/sub01/EP02_01f/img46.jpg"
    assert a.error is None and a.warnings == []
    b = samples["EP03_02"]
    assert b.subject == "sub01" and b.emotion == "disgust"
    assert b.apex_index == 15 and len(b.warnings) == 1 and "middle frame 15" in b.warnings[0]
    assert samples["EP19_05f"].subject == "sub11"
    missing = samples["EP09_09"]
    assert missing.error and "EP09_09" in missing.error and "clip folder" in missing.error


def test_casme2_cropped_tree_reg_img_names(tmp_path):
    samples = read_dataset("casme2", _casme2_tree(tmp_path, "Cropped", "reg_img"))
    s = next(s for s in samples if s.sample == "EP02_01f")
    assert s.frames[51].name == "reg_img51.jpg" and s.error is None


def test_casme2_missing_frame_names_sample_and_file(tmp_path):
    root = _casme2_tree(tmp_path)
    (root / "CASME2_RAW_selected/sub01/EP02_01f/img51.jpg").unlink()
    s = next(s for s in read_dataset("casme2", root) if s.sample == "EP02_01f")
    assert s.error is not None
    assert "casme2/sub01/EP02_01f" in s.error and "img51.jpg" in s.error and "apex" in s.error


def test_casme2_without_coding_sheet_is_a_clear_error(tmp_path):
    tiny_frames(tmp_path / "CASME2_RAW_selected/sub01/EP01_01", ["img1.jpg", "img2.jpg"])
    with pytest.raises(DatasetError, match="CASME2-coding"):
        read_dataset("casme2", tmp_path)


SAMM_HEADER = ("Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
               "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes")


def _samm_tree(root: Path) -> Path:
    tiny_frames(root / "SAMM/006/006_1_2", [f"006_{n:05d}.jpg" for n in range(5562, 5580)])
    tiny_frames(root / "SAMM/011/011_2_3", [f"011_{n:05d}.jpg" for n in range(300, 320)])
    rows = [
        ("006", "006_1_2", 1, 5562, 5570, 5579, 18, "Micro - 1/2", "R12", "Happiness", 1, None),
        (11, "011_2_3", 2, 300, 340, 319, 20, "Micro - 1/2", "4+7", "Anger", 3, "apex after offset"),
        (11, "011_2_9", 2, 10, 12, 15, 6, "Micro - 1/2", "4", "Contempt", 3, None),  # no folder
    ]
    notes = ["SAMM micro-movement FACS codes v2", "Objective classes: see paper", "Frames are 200 fps"]
    write_xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", {"FACS": (SAMM_HEADER, rows)}, notes_above=notes)
    return root


def test_samm_header_below_notes_and_apex_clamped(tmp_path):
    samples = {s.sample: s for s in read_dataset("samm", _samm_tree(tmp_path))}
    a = samples["006_1_2"]
    assert (a.subject, a.emotion, a.onset_index, a.apex_index, a.offset_index) == ("006", "happiness", 5562, 5570, 5579)
    assert a.frames[5570].name == "006_05570.jpg" and a.error is None
    b = samples["011_2_3"]
    assert b.subject == "011" and b.apex_index == 319
    assert len(b.warnings) == 1 and "outside" in b.warnings[0] and "340" in b.warnings[0]
    assert "clip folder" in samples["011_2_9"].error


def test_samm_missing_onset_frame(tmp_path):
    root = _samm_tree(tmp_path)
    (root / "SAMM/006/006_1_2/006_05562.jpg").unlink()
    s = next(s for s in read_dataset("samm", root) if s.sample == "006_1_2")
    assert "samm/006/006_1_2" in s.error and "006_05562.jpg" in s.error and "onset" in s.error


def test_smic_hs_folders_give_labels_and_middle_apex(tmp_path):
    hs = tmp_path / "HS"
    tiny_frames(hs / "s01/micro/negative/s01_ne_01", [f"image{n:06d}.bmp" for n in range(59325, 59334)])
    tiny_frames(hs / "s01/micro/positive/s01_po_02", [f"image{n:06d}.bmp" for n in range(100, 104)])
    tiny_frames(hs / "s03/micro/surprise/s03_sur_01", [f"image{n:06d}.bmp" for n in range(7, 17)])
    tiny_frames(hs / "s03/micro/surprise/s03_sur_02", ["image000001.bmp"])
    samples = {s.sample: s for s in read_dataset("smic-hs", tmp_path)}
    a = samples["s01_ne_01"]
    assert (a.subject, a.emotion, a.onset_index, a.apex_index, a.offset_index) == ("s01", "negative", 59325, 59329, 59333)
    assert samples["s01_po_02"].emotion == "positive" and samples["s01_po_02"].apex_index == 102
    assert samples["s03_sur_01"].emotion == "surprise" and samples["s03_sur_01"].subject == "s03"
    assert "fewer than 2" in samples["s03_sur_02"].error


CASME3_HEADER = ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion")


def test_casme3_micro_and_macro_sheets(tmp_path):
    part = tmp_path / "part_A"
    tiny_frames(part / "spNO.1/a/color", [f"{n}.jpg" for n in range(0, 40)])
    tiny_frames(part / "spNO.2/b/color", [f"{n}.jpg" for n in range(100, 160)])
    write_xlsx(tmp_path / "cas(me)3_part_A_label.xlsx", {
        "micro": (CASME3_HEADER, [("spNO.1", "a", 3, 8, 14, "R12", 1, "happy"),
                                  ("spNO.1", "a", 20, 25, 30, "4", 2, "disgust")]),
        "macro": (CASME3_HEADER, [(2, "b", 110, 130, 150, "1+2", 3, "surprise")]),
    })
    # a release with one workbook per kind: the file name says macro (MaE)
    write_xlsx(tmp_path / "cas(me)3_part_A_MaE_label_JpgIndex_v2.xlsx",
               {"Sheet1": (CASME3_HEADER, [("spNO.1", "a", 0, 2, 39, "12", 1, "happy")])})
    samples = read_dataset("casme3", tmp_path)
    micro = [s for s in samples if s.kind == "micro"]
    macro = [s for s in samples if s.kind == "macro"]
    assert len(micro) == 2 and len(macro) == 2
    assert {(s.subject, s.onset_index, s.apex_index) for s in macro} == {("spNO.2", 110, 115), ("spNO.1", 0, 5)}
    macro = [s for s in macro if s.subject == "spNO.2"]
    assert (micro[0].subject, micro[0].emotion, micro[0].apex_index) == ("spNO.1", "happy", 8)
    m = macro[0]
    assert (m.subject, m.onset_index, m.apex_index, m.offset_index) == ("spNO.2", 110, 115, 150)
    assert m.frames[115] == part / "spNO.2/b/color/115.jpg" and m.error is None


def test_casme3_missing_frame(tmp_path):
    tiny_frames(tmp_path / "spNO.1/a/color", [f"{n}.jpg" for n in range(0, 10) if n != 6])
    write_xlsx(tmp_path / "label.xlsx", {"ME": (CASME3_HEADER, [(1, "a", 2, 6, 9, "4", 2, "fear")])})
    (s,) = read_dataset("casme3", tmp_path)
    assert "casme3/spNO.1/a" in s.error and "6.jpg" in s.error


def test_macro_folder_of_frame_folders_and_videos(tmp_path):
    root = tmp_path / "macro"
    tiny_frames(root / "alice" / "laugh", [f"frame{n}.png" for n in range(1, 13)])
    tiny_frames(root / "bob" / "frown", [f"f{n:03d}.jpg" for n in range(3, 8)])  # 5 frames: too short
    tiny_frames(root / "carol_clip", [f"{n}.jpg" for n in range(20, 30)])
    vid = root / "dave" / "talk.mp4"
    vid.parent.mkdir(parents=True)
    w = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    for i in range(15):
        w.write(np.full((48, 64, 3), i * 10, np.uint8))
    w.release()
    long_vid = root / "erin" / "long.mp4"
    long_vid.parent.mkdir(parents=True)
    w = cv2.VideoWriter(str(long_vid), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    for i in range(70):
        w.write(np.full((48, 64, 3), i, np.uint8))
    w.release()
    (root / "labels.csv").write_text("subject,sample,emotion,onset,apex,offset\nalice,laugh,Happiness,3,6,12\n")
    samples = {s.key: s for s in read_dataset("macro", root)}
    a = samples["macro/alice/laugh"]
    assert (a.kind, a.emotion, a.onset_index, a.apex_index, a.offset_index) == ("macro", "happiness", 3, 8, 12)
    assert "too short" in samples["macro/bob/frown"].error
    c = samples["macro/carol_clip/carol_clip"]
    assert (c.onset_index, c.apex_index, c.emotion) == (20, 25, None)
    d = samples["macro/dave/talk"]
    assert d.video == vid.resolve() and (d.onset_index, d.apex_index, d.offset_index) == (0, 5, 14)
    assert d.source(5).endswith("talk.mp4#frame=5")
    # an unlabelled long clip gives one onset per WINDOW_STEP (30) frames
    windows = [samples[f"macro/erin/long@{t}"] for t in (0, 30, 60)]
    assert [(w.onset_index, w.apex_index, w.offset_index) for w in windows] == [(0, 5, 29), (30, 35, 59), (60, 65, 69)]
    assert not any(k.startswith("macro/erin/long@9") for k in samples) and len(samples) == 7


def test_unknown_dataset_and_missing_root(tmp_path):
    assert set(DATASETS) == {"casme2", "samm", "smic-hs", "casme3", "macro"}
    with pytest.raises(DatasetError, match="unknown dataset 'casme9'"):
        read_dataset("casme9", tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset("samm", tmp_path / "nope")
    with pytest.raises(DatasetError, match="no SMIC-HS"):
        read_dataset("smic-hs", tmp_path)
