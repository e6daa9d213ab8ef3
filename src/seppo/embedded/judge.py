"""Two scikit-learn judges of Pick-a-Digit, fitted on the two disjoint halves of the real digits.

- `DigitJudge` ("our PickScore", evaluation): an MLP on raw pixels, fitted on the "judge"
  half. reward(x, prompt) = P(prompted digit | x).
- `Annotator` ("the Pick-a-Pic users", labels the preference pairs): a multinomial logistic
  regression on pixels + HOG-like gradient histograms, fitted on the "annotator" half. A
  different family and different features, so training on its labels and scoring with the
  judge is not grading one's own homework.

Both see an 11th class, "not a digit" (noise, smoothed noise, blank and full canvases), so
pure noise gets a low probability for every digit instead of an arbitrary confident one.
Both are fitted on the real digits plus mild augmentation (shifts of one pixel, slight blur,
a little pixel noise): a small diffusion model's digits are off-centre and soft, and the
judges should score which digit it is, not how crisp the scan was.

Fitted once (a few seconds) and cached under `$SEPPO_CACHE/embedded/` keyed by
`JUDGE_VERSION` and the scikit-learn version; bump `JUDGE_VERSION` whenever fitting changes.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable, Sequence

import joblib
import numpy as np
import sklearn
from PIL import Image
from scipy.ndimage import gaussian_filter, shift
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from seppo import paths
from seppo.embedded.digits import IMAGE_SIZE, from_pil, parse_digit, real_digits
from seppo.errors import DataError

JUDGE_VERSION = "1"
NOT_A_DIGIT = 10  # the 11th class
STROKE_LAMBDA = 0.2  # weight λ of the annotator's stroke-weight taste
STROKE_WIDTH = 0.15  # ink-fraction distance at which the stroke preference reaches 0


def _one_blas_thread():
    """Run BLAS on one thread: these matrices are tiny, and once torch's OpenMP pool is up
    a multi-threaded OpenBLAS fights it for the cores (fits measured 20x slower on 2 cores)."""
    return threadpool_limits(limits=1, user_api="blas")


def _cached(name: str, fit: Callable[[], object]) -> object:
    path = paths.judges() / f"{name}-v{JUDGE_VERSION}-sklearn{sklearn.__version__}.joblib"
    if path.exists():
        return joblib.load(path)
    with _one_blas_thread():
        model = fit()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    joblib.dump(model, tmp)
    os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    return model


# ---------------------------------------------------------------- training data


def _training_set(split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real digits of `split`, augmented, plus "not a digit" images: (N, 16, 16), (N,)."""
    rng = np.random.default_rng(seed)
    images, labels = real_digits(split)
    augmented = [images]
    for dy, dx in [(-1, 0), (1, 0), (0, -1), (0, 1)]:
        augmented.append(shift(images, (0, dy, dx), order=0, mode="constant", cval=-1.0))
    augmented.append(gaussian_filter(images, sigma=(0, 0.7, 0.7)))
    augmented.append(np.clip(images + rng.normal(0, 0.15, images.shape), -1, 1))
    x = np.concatenate(augmented).astype(np.float32)  # (7N, 16, 16)
    y = np.tile(labels, len(augmented))

    n = len(images)
    noise = rng.uniform(-1, 1, (n, IMAGE_SIZE, IMAGE_SIZE))
    smooth = gaussian_filter(rng.normal(0, 1, (n, IMAGE_SIZE, IMAGE_SIZE)), sigma=(0, 1.5, 1.5))
    smooth = np.clip(smooth / smooth.std() * 0.8 - 0.3, -1, 1)  # blobs on a dark background
    flat = np.repeat(rng.uniform(-1, 1, (n // 4, 1, 1)), IMAGE_SIZE**2).reshape(-1, 16, 16)
    garbage = np.concatenate([noise, smooth, flat]).astype(np.float32)
    x = np.concatenate([x, garbage])
    y = np.concatenate([y, np.full(len(garbage), NOT_A_DIGIT)])
    return x, y


def hog_features(images: np.ndarray) -> np.ndarray:
    """Pixels + unsigned gradient-orientation histograms (8 bins) on 4x4-pixel cells.

    (N, 16, 16) -> (N, 256 + 16*8). The annotator's features; the judge uses pixels only.
    """
    images = np.asarray(images, dtype=np.float32)
    gy, gx = np.gradient(images, axis=(1, 2))  # (N, 16, 16) each
    magnitude = np.hypot(gx, gy)
    bins = ((np.arctan2(gy, gx) % np.pi) / np.pi * 8).astype(int).clip(0, 7)
    one_hot = (bins[..., None] == np.arange(8)) * magnitude[..., None]  # (N, 16, 16, 8)
    cells = one_hot.reshape(len(images), 4, 4, 4, 4, 8).sum(axis=(2, 4))  # (N, 4, 4, 8)
    return np.concatenate([images.reshape(len(images), -1), cells.reshape(len(images), -1)], 1)


def _pixels(images: np.ndarray) -> np.ndarray:
    return np.asarray(images, dtype=np.float32).reshape(len(images), -1)  # (N, 256)


def ink_fraction(images: np.ndarray) -> np.ndarray:
    """Share of pixels that are ink (> 0 in [-1, 1] units), shape (N,)."""
    return (np.asarray(images) > 0).mean(axis=(1, 2))


def prompt_digits(prompts: Sequence[str]) -> np.ndarray:
    digits = [parse_digit(p) for p in prompts]
    for p, d in zip(prompts, digits):
        if d is None:
            raise DataError(f"the digit judge needs a prompt naming a digit 0..9, got {p!r}")
    return np.asarray(digits, dtype=np.int64)


def _check_pair(images: Sequence, other: Sequence) -> None:
    if len(images) != len(other):
        raise ValueError(f"{len(images)} images but {len(other)} prompts or digits")


# ---------------------------------------------------------------- evaluation judge


def _fit_digit_judge() -> MLPClassifier:
    x, y = _training_set("judge", seed=1)
    model = MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, max_iter=60, random_state=0)
    with warnings.catch_warnings():
        # 60 epochs is a deliberate budget (held-out accuracy ~99%), not a failure to converge.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(_pixels(x), y)


class DigitJudge:
    """Evaluation judge: reward = P(prompted digit | image), from an MLP on pixels.

    A prompt that names no digit raises `DataError`: scoring it 0 would silently drag a
    mean reward down instead of pointing at the bad prompt.
    """

    name = "digit"
    scale = "probability of the prompted class"

    def __init__(self, model: MLPClassifier):
        self.model = model

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, 16, 16) in [-1, 1] -> (N, 11) probabilities; column 10 is "not a digit"."""
        with _one_blas_thread():
            return self.model.predict_proba(_pixels(images))

    def score_arrays(self, images: np.ndarray, digits: np.ndarray) -> np.ndarray:
        """Reward for arrays: (N, 16, 16) in [-1, 1] and (N,) digits -> (N,) float."""
        _check_pair(images, digits)
        if len(images) == 0:
            return np.zeros(0)
        proba = self.predict_proba(images)
        return proba[np.arange(len(proba)), np.asarray(digits, dtype=np.int64)]

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        """One reward per (image, prompt), shape (len(images),)."""
        _check_pair(images, prompts)
        digits = prompt_digits(prompts)
        arrays = np.stack([from_pil(im) for im in images]) if len(images) else np.zeros((0, 16, 16))
        return self.score_arrays(arrays, digits)


def load_digit_judge() -> DigitJudge:
    """The evaluation judge, fitted on first use and cached."""
    return DigitJudge(_cached("digit_judge", _fit_digit_judge))


# ---------------------------------------------------------------- simulated annotator


def preference_label(u_a: np.ndarray, u_b: np.ndarray, tie_margin: float = 0.02) -> np.ndarray:
    """Pick-a-Pic `label_0` from two utilities: 1.0 a wins, 0.0 b wins, 0.5 a tie."""
    diff = np.asarray(u_a, dtype=np.float64) - np.asarray(u_b, dtype=np.float64)
    return np.where(np.abs(diff) < tie_margin, 0.5, (diff > 0).astype(np.float64))


def _fit_annotator() -> dict:
    x, y = _training_set("annotator", seed=2)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=300))
    model.fit(hog_features(x), y)
    images, labels = real_digits("annotator")
    ink = ink_fraction(images)
    target_ink = np.array([np.median(ink[labels == d]) for d in range(10)])
    return {"model": model, "target_ink": target_ink}


class Annotator:
    """Simulated Pick-a-Pic user. Its taste, for an image x prompted with digit d:

        u(x, d) = P_annot(d | x) + λ · stroke(x, d),    λ = STROKE_LAMBDA = 0.2
        stroke(x, d) = max(0, 1 − |ink(x) − ink*_d| / STROKE_WIDTH)

    where ink(x) is the share of ink pixels and ink*_d the median over real digits d of the
    annotator half: it likes a recognisable digit drawn with a typical pen, neither a faint
    sketch nor a blot.
    """

    def __init__(self, model, target_ink: np.ndarray):
        self.model = model
        self.target_ink = np.asarray(target_ink, dtype=np.float64)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, 16, 16) in [-1, 1] -> (N, 11) probabilities; column 10 is "not a digit"."""
        with _one_blas_thread():
            return self.model.predict_proba(hog_features(images))

    def utility(self, images: np.ndarray, digits: np.ndarray) -> np.ndarray:
        """u(x, d) for arrays (N, 16, 16) in [-1, 1] and (N,) digits -> (N,)."""
        _check_pair(images, digits)
        digits = np.asarray(digits, dtype=np.int64)
        p = self.predict_proba(images)[np.arange(len(digits)), digits]
        return p + STROKE_LAMBDA * self.stroke(images, digits)

    def stroke(self, images: np.ndarray, digits: np.ndarray) -> np.ndarray:
        """stroke(x, d) in [0, 1]: 1 at the typical ink share of digit d, 0 beyond STROKE_WIDTH."""
        _check_pair(images, digits)
        distance = np.abs(ink_fraction(images) - self.target_ink[np.asarray(digits, dtype=np.int64)])
        return np.maximum(0.0, 1.0 - distance / STROKE_WIDTH)

    def prefer(self, img_a: Image.Image, img_b: Image.Image, digit: int, *,
               tie_margin: float = 0.02) -> float:
        """1.0 if `img_a` is preferred for `digit`, 0.0 if `img_b`, 0.5 within `tie_margin`."""
        u = self.utility(np.stack([from_pil(img_a), from_pil(img_b)]), np.array([digit, digit]))
        return float(preference_label(u[:1], u[1:], tie_margin)[0])


def load_annotator() -> Annotator:
    """The simulated annotator, fitted on first use and cached."""
    fitted = _cached("annotator", _fit_annotator)
    return Annotator(fitted["model"], fitted["target_ink"])
