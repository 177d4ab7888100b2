"""Face landmarker, blendshapes and alignment on a real photo (scikit-image's astronaut,
public domain)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from moext.face import (
    CANONICAL_LEFT_EYE,
    CANONICAL_RIGHT_EYE,
    NUM_LANDMARKS,
    FaceDetection,
    FaceMesh,
    NoFace,
    align_face,
    apply_transform,
)
from moext.geometry import eye_centres, inter_ocular_distance
from moext.preprocess import CROP_SIZE, crops_to_array, crops_to_tensor, denormalise, face_to_input


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # RGB -> BGR


@pytest.fixture(scope="module")
def mesh():
    with FaceMesh(video_mode=False) as m:
        yield m


def _detect(mesh: FaceMesh, img: np.ndarray) -> np.ndarray:
    det = mesh.detect(img)
    assert isinstance(det, FaceDetection), det
    return det.landmarks


def test_landmarks_found_on_real_photo(photo, mesh):
    det = mesh.detect(photo)
    assert isinstance(det, FaceDetection)
    assert det.landmarks.shape == (NUM_LANDMARKS, 2) and det.landmarks.dtype == np.float32
    x0, y0, x1, y1 = det.box
    # The astronaut's face sits around x 170-290, y 50-200 in the 512x512 photo.
    assert 150 < x0 < x1 < 310 and 30 < y0 < y1 < 230
    r, l = eye_centres(det.landmarks)
    assert r[0] < l[0]  # subject's right eye is on the image left
    assert 30 < inter_ocular_distance(det.landmarks) < 70


def test_blank_and_noise_images_give_noface(mesh):
    assert isinstance(mesh.detect(np.zeros((240, 320, 3), np.uint8)), NoFace)
    assert isinstance(mesh.detect(np.full((240, 320, 3), 200, np.uint8)), NoFace)
    bad = mesh.detect(np.zeros((10, 10), np.uint8))
    assert isinstance(bad, NoFace) and "shape" in bad.reason


def test_aligned_eyes_land_on_canonical_positions(photo, mesh):
    lm = _detect(mesh, photo)
    face = align_face(photo, lm)
    assert face.crop.shape == (CROP_SIZE, CROP_SIZE, 3) and face.crop.dtype == np.uint8
    assert face.transform.shape == (2, 3) and face.transform.dtype == np.float64
    np.testing.assert_allclose(face.landmarks, apply_transform(face.transform, lm), atol=1e-3)
    r, l = eye_centres(face.landmarks)
    # Least squares over eyes + mouth leaves a small residual for a real face's proportions.
    assert np.linalg.norm(r - np.array(CANONICAL_RIGHT_EYE) * CROP_SIZE) < 6
    assert np.linalg.norm(l - np.array(CANONICAL_LEFT_EYE) * CROP_SIZE) < 6


def test_rotated_shifted_scaled_copy_aligns_to_same_crop(photo, mesh):
    lm = _detect(mesh, photo)
    ref = align_face(photo, lm)

    # Rotate 15 degrees, scale 1.4 and shift into a larger canvas.
    m = cv2.getRotationMatrix2D((256, 256), 15.0, 1.4)
    m[:, 2] += (90, 40)
    moved = cv2.warpAffine(photo, m, (760, 680), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    lm_moved = _detect(mesh, moved)
    got = align_face(moved, lm_moved)

    # Landmarks re-detected on each crop independently: eye centres agree within 2 px.
    lm_ref_crop = _detect(mesh, ref.crop)
    lm_got_crop = _detect(mesh, got.crop)
    for a, b in zip(eye_centres(lm_ref_crop), eye_centres(lm_got_crop)):
        assert np.linalg.norm(a - b) < 2.0
    for a, b in zip(eye_centres(ref.landmarks), eye_centres(got.landmarks)):
        assert np.linalg.norm(a - b) < 2.0
    # The crops themselves look alike; the unaligned images at the same place do not.
    diff_aligned = np.abs(ref.crop.astype(float) - got.crop.astype(float)).mean()
    naive = cv2.resize(moved[:512, :512], (CROP_SIZE, CROP_SIZE))
    diff_naive = np.abs(cv2.resize(photo, (CROP_SIZE, CROP_SIZE)).astype(float) - naive).mean()
    assert diff_aligned < 12 and diff_aligned < diff_naive / 3


def test_video_mode_tracks_and_picks_largest_face(photo):
    head = photo[20:260, 120:340]  # (240, 220) around the astronaut's face
    canvas = np.full((300, 480, 3), 90, np.uint8)
    canvas[30:270, 0:220] = head
    canvas[80:230, 300:438] = cv2.resize(head, (138, 150))  # a smaller second face
    with FaceMesh(video_mode=True, max_faces=2) as vm:
        dets = [vm.detect(canvas) for _ in range(3)]
    for det in dets:
        assert isinstance(det, FaceDetection), det
        assert det.box[2] < 240  # the big face on the left, not the small copy
    assert dets[0].num_faces == 2


def test_training_path_equals_live_path(photo, mesh, tmp_path):
    """align -> PNG cache -> read -> crops_to_tensor is exactly face_to_input."""
    lm = _detect(mesh, photo)
    live, face = face_to_input(photo, lm, image_size=112)
    path = tmp_path / "crop.png"
    assert cv2.imwrite(str(path), align_face(photo, lm, CROP_SIZE).crop)
    cached = cv2.imread(str(path), cv2.IMREAD_COLOR)
    train = crops_to_tensor(cached, 112).numpy()
    assert live.shape == (1, 3, 112, 112) and live.dtype == np.float32
    np.testing.assert_array_equal(train, live)
    np.testing.assert_array_equal(cached, face.crop)
    # Sanity of the normalisation itself: back to BGR pixels within rounding.
    back = denormalise(crops_to_array(face.crop, CROP_SIZE))[0]
    assert np.abs(back.astype(int) - face.crop.astype(int)).max() <= 1
    assert abs(float(live.mean())) < 3  # ImageNet-normalised, not raw 0..255


def test_crops_to_array_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        crops_to_array(np.zeros((4, 4, 3), np.float32), 4)
    with pytest.raises(ValueError, match="shape"):
        crops_to_array(np.zeros((2, 4, 4), np.uint8), 4)
    out = crops_to_array(np.zeros((2, 8, 8, 3), np.uint8), 4)
    assert out.shape == (2, 3, 4, 4)
    # BGR -> RGB: a pure-blue BGR pixel is high in channel 2 (B) of the RGB output.
    blue = np.zeros((4, 4, 3), np.uint8)
    blue[..., 0] = 255
    x = crops_to_array(blue, 4)[0]
    assert x[2].mean() > 1 and x[0].mean() < -1


def test_our_blendshapes_agree_with_mediapipes_face_landmarker(photo):
    """Our landmark subset and normalisation (moext.blendshapes) against mediapipe's own
    FaceLandmarker with its blendshape output on, on the same frames: within 1e-4."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    from moext.blendshapes import BLENDSHAPE_NAMES, BlendshapeModel
    from moext.task_model import task_member_all

    opts = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=task_member_all()),
        running_mode=vision.RunningMode.IMAGE, num_faces=1, output_face_blendshapes=True)
    ours = BlendshapeModel()
    frames = [photo]
    for angle, scale in ((12.0, 1.2), (-8.0, 0.8)):  # the face rolled and resized
        m = cv2.getRotationMatrix2D((256, 256), angle, scale)
        frames.append(cv2.warpAffine(photo, m, (512, 512), borderMode=cv2.BORDER_REPLICATE))
    frames.append(cv2.resize(photo, (640, 360)))  # a non-square frame (x and y scale apart)
    landmarker = vision.FaceLandmarker.create_from_options(opts)
    try:
        worst = 0.0
        for f in frames:
            h, w = f.shape[:2]
            res = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB,
                                             data=cv2.cvtColor(f, cv2.COLOR_BGR2RGB)))
            assert res.face_landmarks, "mediapipe found no face"
            theirs = np.array([c.score for c in res.face_blendshapes[0]], np.float32)
            assert [c.category_name for c in res.face_blendshapes[0]] == list(BLENDSHAPE_NAMES)
            pts = np.array([(p.x * w, p.y * h) for p in res.face_landmarks[0]], np.float32)
            mine = ours.predict(pts)
            assert mine.shape == (52,) and mine.dtype == np.float32
            worst = max(worst, float(np.abs(mine - theirs).max()))
        assert worst < 1e-4, worst
    finally:
        landmarker.close()


def test_facemesh_returns_blendshapes_and_head_pose(photo, mesh):
    det = mesh.detect(photo)
    assert det.blendshapes.shape == (52,) and det.blendshapes.dtype == np.float32
    assert 0.0 <= det.blendshapes.min() and det.blendshapes.max() <= 1.0
    assert det.head_pose.shape == (4, 4)
    # The astronaut faces the camera: the rotation part is close to identity.
    rot = det.head_pose[:3, :3] / np.linalg.norm(det.head_pose[:3, 0])
    assert np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1))) < 25


def test_tiny_faces_are_refused_and_frame_size_change_restarts_tracking(photo):
    with FaceMesh(video_mode=True) as vm:
        assert isinstance(vm.detect(photo, 0), FaceDetection)
        small = cv2.resize(photo, (40, 40), interpolation=cv2.INTER_AREA)
        # The frame size changed: tracking restarts, and a face this small is no face.
        got = vm.detect(small, 33)
        assert isinstance(got, NoFace)
        rng = np.random.default_rng(0)
        noise = rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)
        got = vm.detect(noise, 66)
        assert isinstance(got, NoFace), got
    with FaceMesh(video_mode=False, min_face_size=400) as big_only:
        got = big_only.detect(photo)
        assert isinstance(got, NoFace) and "too small" in got.reason


def test_no_legacy_mediapipe_api_left():
    # The product's packages; benchmarks/face_step.py times the legacy face mesh in an older
    # environment for the before/after comparison, on purpose.
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    hits = [str(p) for d in ("moext", "realtime", "train")
            for p in (root / d).rglob("*.py") if "mediapipe.solutions" in p.read_text()
            or "mp.solutions" in p.read_text()]
    assert not hits, hits


def test_fast_tracker_follows_the_face_like_the_mesh(photo, mesh):
    from moext.face import FastFaceTracker

    ref = _detect(mesh, photo)
    iod = inter_ocular_distance(ref)
    with FastFaceTracker() as fast:
        first = fast.detect(photo)
        assert isinstance(first, FaceDetection) and first.landmarks.shape == (NUM_LANDMARKS, 2)
        # Same model family, same topology: points land close to the mesh's own.
        assert np.linalg.norm(first.landmarks - ref, axis=1).mean() < 0.05 * iod
        # Tracking: the photo moves 12 px right and 6 px down over 6 frames.
        for k in range(1, 7):
            m = np.float32([[1, 0, 2 * k], [0, 1, k]])
            det = fast.detect(cv2.warpAffine(photo, m, (512, 512), borderMode=cv2.BORDER_REPLICATE))
            assert isinstance(det, FaceDetection)
        shift = (det.landmarks - first.landmarks).mean(0)
        assert np.allclose(shift, (12, 6), atol=1.0), shift
        assert fast.redetections == 1  # found once, then tracked
        # The face leaves: no face, and it is found again when it returns.
        assert isinstance(fast.detect(np.full((512, 512, 3), 90, np.uint8)), NoFace)
        assert isinstance(fast.detect(photo), FaceDetection)
        assert fast.redetections == 2
        assert isinstance(fast.detect(np.zeros((10, 10), np.uint8)), NoFace)
        # Both landmark sources share the blendshape step.
        assert first.blendshapes.shape == (52,)


def test_the_direct_result_read_gives_the_public_apis_numbers(photo):
    """FaceMesh reads mediapipe's C result into numpy (no 478 Python objects per face);
    the public API's result must be the same to the bit, in both modes."""
    frames = [photo] + [cv2.warpAffine(photo, np.float32([[1, 0, k], [0, 1, -k]]), (512, 512),
                                       borderMode=cv2.BORDER_REPLICATE) for k in (2, 4, 6)]
    for video in (False, True):
        got = {}
        for direct in (True, False):
            with FaceMesh(video_mode=video, head_pose=True) as m:
                m._direct = direct
                got[direct] = [m.detect(f, 40.0 * i) for i, f in enumerate(frames)]
                assert m._direct is direct  # the direct path did not fall back
        for a, b in zip(got[True], got[False]):
            np.testing.assert_array_equal(a.landmarks, b.landmarks)
            np.testing.assert_array_equal(a.head_pose, b.head_pose)
            np.testing.assert_array_equal(a.blendshapes, b.blendshapes)
