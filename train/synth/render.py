"""Rendering one identity's frames: expression field x amplitude, rigid pose, light, noise."""

from __future__ import annotations

import cv2
import numpy as np

from train.synth.identities import Identity


class Renderer:
    """Renders frames of one identity: expression field x amplitude, rigid pose, light, noise.

    Per-frame work is limited to the head's bounding box when the face is composited over
    a static background, and sensor noise comes from a bank drawn once (with random flips
    per frame): generating fresh Gaussian noise dominated the frame time.
    """

    NOISE_BANK = 12

    def __init__(self, ident: Identity, background: np.ndarray | None = None, seed: int = 0) -> None:
        self.ident = ident
        w, h = ident.size
        self.background = background
        gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.gx, self.gy = gx, gy
        self.xnorm = ((gx[:1] - w / 2) / w)[..., None]  # (1, W, 1) for a left-right light slope
        self.pivot = ident.landmarks[[1, 168]].mean(0)  # rotate the head about the nose
        if ident.alpha is not None and background is not None:
            ys, xs = np.nonzero(ident.alpha > 1e-3)
            self.layer_box = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.min()],
                                       [xs.min(), ys.max() + 1], [xs.max() + 1, ys.max() + 1]], np.float64)
        else:
            self.layer_box = None
        nrng = np.random.default_rng([seed, 99])
        self.noise = nrng.standard_normal((self.NOISE_BANK, h, w, 3), dtype=np.float32)

    def rigid(self, rot_deg: float, dx: float, dy: float, scale: float = 1.0, yaw_deg: float = 0.0) -> np.ndarray:
        """Forward head motion in frame pixels: (2, 3) roll / shift / scale about the nose,
        or (3, 3) when `yaw_deg` turns the face about its vertical axis as well.

        Yaw is a plane's perspective turn (one side of the face nearer, wider, the other
        narrower), seen by a camera ~8 IOD away: not a 3-D head (the nose does not move over
        the cheek), but the non-similarity change that face alignment cannot undo.
        """
        m = cv2.getRotationMatrix2D((float(self.pivot[0]), float(self.pivot[1])), rot_deg, scale)
        m[:, 2] += (dx, dy)
        if yaw_deg == 0.0:
            return m
        a = np.radians(yaw_deg)
        f = 8.0 * self.ident.iod
        cx, cy = float(self.pivot[0]), float(self.pivot[1])
        centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
        turn = np.array([[np.cos(a), 0, 0], [0, 1, 0], [np.sin(a) / f, 0, 1]], np.float64)
        return np.vstack([m, [0, 0, 1]]) @ np.linalg.inv(centre) @ turn @ centre

    @staticmethod
    def _apply(pose: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """(N, 2) points moved by a (2, 3) affine or (3, 3) homography."""
        if pose.shape[0] == 2:
            return pts @ pose[:, :2].T + pose[:, 2]
        h = np.hstack([pts, np.ones((len(pts), 1))]) @ pose.T
        return h[:, :2] / h[:, 2:]

    def _roi(self, rigid: np.ndarray | None) -> tuple[int, int, int, int]:
        w, h = self.ident.size
        if self.layer_box is None:
            return 0, 0, w, h
        box = self.layer_box if rigid is None else self._apply(rigid, self.layer_box)
        x0, y0 = np.floor(box.min(0)).astype(int) - 2
        x1, y1 = np.ceil(box.max(0)).astype(int) + 2
        return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)

    def frame(
        self,
        field: np.ndarray | None,
        amp_px_per_iod: float,
        rigid: np.ndarray | None,
        gain: float,
        gradient: float,
        noise_sigma: float,
        rng: np.random.Generator,
        shading: float = 0.0,
    ) -> np.ndarray:
        """One HWC uint8 BGR frame.

        Args:
            field: unit expression field (H, W, 2) (largest landmark move = 1 IOD), or None.
            amp_px_per_iod: expression amplitude as a fraction of the IOD.
            rigid: (2, 3) or (3, 3) forward head motion in frame pixels (`rigid()`), or None.
            gain, gradient: global brightness gain and left-right brightness slope.
            shading: skin shading that comes with the movement: the face darkens by
                `shading` x its compression (minus the divergence of the displacement,
                smoothed) and brightens where it stretches. A pure warp keeps every pixel's
                brightness; real skin folds and bulges where it bunches (brow furrows,
                nasolabial folds), which a network that reads frames can see. 0 = warp only.
        """
        ident = self.ident
        x0, y0, x1, y1 = self._roi(rigid)
        gx, gy = self.gx[y0:y1, x0:x1], self.gy[y0:y1, x0:x1]
        if rigid is None:
            qx, qy = gx, gy
        elif rigid.shape[0] == 3:  # yaw: backward map through the inverse homography
            inv = np.linalg.inv(rigid).astype(np.float32)
            den = inv[2, 0] * gx + inv[2, 1] * gy + inv[2, 2]
            qx = (inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]) / den
            qy = (inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]) / den
        else:  # backward map: output pixel p shows the resting face at A^-1 p
            # float32 like the grids: OpenCV 5's remap takes float32 maps only, and numpy 2
            # would promote float32 grids times float64 scalars to float64.
            inv = cv2.invertAffineTransform(rigid).astype(np.float32)
            qx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
            qy = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
        if field is not None and amp_px_per_iod != 0.0:
            if rigid is None:
                d = field[y0:y1, x0:x1]
            else:
                d = cv2.remap(field, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            # Content moves by +a*D: output p samples the resting face at p - a*D(p).
            mx, my = qx - amp_px_per_iod * d[..., 0], qy - amp_px_per_iod * d[..., 1]
        else:
            mx, my = qx, qy
        layer = cv2.remap(ident.face, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if shading > 0.0 and field is not None and amp_px_per_iod != 0.0:
            div = (cv2.Sobel(d[..., 0], cv2.CV_32F, 1, 0, ksize=3) + cv2.Sobel(d[..., 1], cv2.CV_32F, 0, 1, ksize=3)) / 8.0
            div = cv2.GaussianBlur(div, (0, 0), max(0.03 * ident.iod, 1.0)) * np.float32(amp_px_per_iod)
            factor = np.clip(1.0 + np.float32(shading) * div, 0.6, 1.4)
            layer = np.clip(layer.astype(np.float32) * factor[..., None] + 0.5, 0, 255).astype(np.uint8)
        if self.layer_box is not None:
            alpha = cv2.remap(ident.alpha, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            img = self.background.copy()
            img[y0:y1, x0:x1] = cv2.blendLinear(layer, self.background[y0:y1, x0:x1], alpha, 1.0 - alpha)
        else:
            img = layer
        out = img.astype(np.float32)
        out *= gain * (1.0 + gradient * self.xnorm)
        if noise_sigma > 0:
            k = int(rng.integers(self.NOISE_BANK * 4))
            noise = self.noise[k % self.NOISE_BANK]
            noise = noise[::-1] if k // self.NOISE_BANK % 2 else noise
            noise = noise[:, ::-1] if k // self.NOISE_BANK >= 2 else noise
            out += noise_sigma * noise
        out += 0.5  # round, not truncate
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)
