"""The seed's synthetic scenes: object masks, model-like predictions and missing annotations.

Objects (as in the seed post, with ``skimage.draw``): class 1 is a rotated ellipse around
(H/4, W/4), class 2 a square around (3H/4, 3W/4), class 3 a disk around (H/2, W/2). Classes 4 and
up are further ellipses, squares and disks (in turn) of half the size at random places, so that
the cost of a loss can be measured as C grows. Shapes are clipped to the image.

Overlap rule: shapes are painted in class order, so where two objects overlap the higher class
index wins. Channel 0 of ``y_true`` is background.

Predictions are a softmax over C of logits that say "this object" inside a perturbed copy of each
shape (shifted centre, scaled size), with a blurred edge (half the confidence in a band around the
outline) and smooth plus per-pixel noise; ``quality`` in (0, 1] sets the confidence, the shift and
the noise. Missing annotations erase ``missing`` random (image, object) pairs to background in
``y_true`` while the prediction still shows the object.

Determinism: each image draws from its own ``PCG64`` stream spawned from ``seed`` (so images can
be drawn in parallel threads in any order), and the softmax is computed in float64, with an exp made of
basic IEEE operations only (numpy's np.exp differs in the last bit between CPUs), before rounding
once to ``dtype``, so the same arguments give byte-identical arrays on every machine.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

# Smooth noise, like a network's spatially correlated errors, is drawn on grids this many times
# coarser than the image (two octaves).
_NOISE_BLOCKS = (4, 16)
# Half-confidence band around each predicted outline, as a fraction of the object's size.
_EDGE_BAND = 0.1


@dataclass(frozen=True)
class Scene:
    """One batch of inputs, plus what is needed to explain it. The arrays are read-only."""

    y_true: np.ndarray
    """One-hot annotation (N, H, W, C) after missing annotations were erased."""
    y_pred: np.ndarray
    """Model-like softmax prediction (N, H, W, C)."""
    labels: np.ndarray
    """Complete label map (N, H, W): what an annotator who forgot nothing would give."""
    missing: tuple[tuple[int, int], ...] = field(default=())
    """The erased (image, class) pairs."""

    @functools.cached_property
    def y_true_complete(self) -> np.ndarray:
        """One-hot of ``labels``: the annotation before erasing (made on first use)."""
        if not self.missing:
            return self.y_true
        return _one_hot(self.labels, self.y_true.shape[-1], self.y_true.dtype)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _shape_pixels(
    kind: int, centre: tuple[float, float], radii: tuple[float, float], rotation: float, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of an ellipse (0), square (1) or disk (2), clipped to ``shape``."""
    from skimage import draw  # here, not at import: ``import segbench`` works without scikit-image

    r, c = centre
    rr_radius, cc_radius = max(radii[0], 0.5), max(radii[1], 0.5)
    if kind == 0:
        return draw.ellipse(r, c, rr_radius, cc_radius, shape=shape, rotation=rotation)
    if kind == 1:
        half = min(rr_radius, cc_radius)
        top, left = max(round(r - half), 0), max(round(c - half), 0)
        bottom, right = min(round(r + half), shape[0] - 1), min(round(c + half), shape[1] - 1)
        if top > bottom or left > right:  # entirely outside the image
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
        rr, cc = draw.rectangle((top, left), end=(bottom, right), shape=shape)
        return rr.ravel(), cc.ravel()
    return draw.disk((r, c), min(rr_radius, cc_radius), shape=shape)


def _layout(rng: np.random.Generator, classes: int, height: int, width: int) -> list[tuple]:
    """Kind, centre, radii and rotation of each object class 1..C-1 in one image."""
    size = min(height, width)
    rotation = np.deg2rad(rng.integers(90))
    objects = [
        (0, (height / 4, width / 4), (height / 6, width / 6), rotation),
        (1, (3 * height / 4, 3 * width / 4), (size / 6, size / 6), 0.0),
        (2, (height / 2, width / 2), (size / 6, size / 6), 0.0),
    ][: classes - 1]
    for k in range(4, classes):
        centre = (rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width)
        radius = size / 12 * rng.uniform(0.6, 1.2)
        objects.append(((k - 1) % 3, centre, (radius, radius), np.deg2rad(rng.integers(90))))
    return objects


def make_scene(
    batch: int = 8,
    height: int = 64,
    width: int = 64,
    classes: int = 4,
    *,
    missing: int = 0,
    quality: float = 0.8,
    seed: int = 0,
    dtype: str = "float32",
) -> Scene:
    """Make a batch of annotations and predictions; see the module docstring for what is drawn."""
    batch = _check_int("batch", batch, 1)
    height = _check_int("height", height, 1)
    width = _check_int("width", width, 1)
    classes = _check_int("classes", classes, 2)
    missing = _check_int("missing", missing, 0)
    seed = _check_int("seed", seed, 0)
    if not (isinstance(quality, (int, float)) and 0.0 < quality <= 1.0):
        raise ValueError(f"quality must be a number in (0, 1], got {quality!r}")
    np_dtype = _numpy_dtype(dtype)

    # One random stream per image (and one for the missing annotations), so that images can be
    # drawn in parallel threads and still come out the same whatever the scheduling.
    streams = np.random.SeedSequence(seed).spawn(batch + 1)
    labels = np.zeros((batch, height, width), dtype=np.uint8 if classes <= 256 else np.uint16)
    y_pred = np.empty((batch, height, width, classes), dtype=np_dtype)
    look = _Look(quality, height, width)
    workers = max(1, min(batch, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:  # numpy and skimage release the GIL
        list(
            pool.map(
                lambda n: _draw_image(
                    np.random.Generator(np.random.PCG64(streams[n])), classes, look, labels[n], y_pred[n]
                ),
                range(batch),
            )
        )
        rng = np.random.Generator(np.random.PCG64(streams[batch]))
        present = [(n, c) for n in range(batch) for c in np.unique(labels[n]).tolist() if c != 0]
        if missing > len(present):
            raise ValueError(f"missing must be <= {len(present)} (the objects present in the batch), got {missing}")
        chosen = sorted(present[i] for i in rng.choice(len(present), size=missing, replace=False))
        annotated = labels.copy() if chosen else labels
        for n, c in chosen:
            annotated[n][annotated[n] == c] = 0
        y_true = _one_hot(annotated, classes, np_dtype, pool)
    y_pred.flags.writeable = False  # scenes are shared between cells: nobody may change them
    return Scene(y_true=y_true, y_pred=y_pred, labels=labels, missing=tuple(chosen))


def _one_hot(labels: np.ndarray, classes: int, dtype: np.dtype, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
    """One-hot (N, H, W, C) of dtype, one image per task, in a single pass each; read-only."""
    out = np.empty((*labels.shape, classes), dtype=dtype)
    ids = np.arange(classes, dtype=labels.dtype)

    def one(n: int) -> None:
        np.equal(labels[n][..., None], ids, out=out[n], casting="unsafe")

    list(pool.map(one, range(len(labels)))) if pool else [one(n) for n in range(len(labels))]
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class _Look:
    """How the prediction departs from the truth, from ``quality``."""

    quality: float
    height: int
    width: int

    @property
    def strength(self) -> float:  # logit of "this object" inside a predicted shape
        return 3.0 + 9.0 * self.quality

    @property
    def shift_sd(self) -> float:  # pixels the predicted centre moves
        return (1.0 - self.quality) * 0.04 * min(self.height, self.width) + 0.5

    @property
    def noise_sd(self) -> float:  # smooth logit noise, per octave
        return 0.4 + 1.6 * (1.0 - self.quality)


_buffers = threading.local()


def _logit_buffer(classes: int, height: int, width: int) -> np.ndarray:
    """A per-thread float64 work array, reused across images to avoid page faults on every image."""
    step = _NOISE_BLOCKS[-1]
    shape = (classes, -(-height // step) * step, -(-width // step) * step)
    buffer = getattr(_buffers, "logits", None)
    if buffer is None or buffer.shape != shape:
        buffer = _buffers.logits = np.empty(shape, dtype=np.float64)
    return buffer


def _draw_image(rng: np.random.Generator, classes: int, look: _Look, labels: np.ndarray, y_pred: np.ndarray) -> None:
    """Draw one image's labels and prediction in place.

    Logits are channels-first and padded to whole noise blocks, so that reductions over classes are
    elementwise over C planes and block noise is added by broadcasting instead of repeating; the
    softmax is computed in float64 and rounded once to the output dtype.
    """
    height, width = labels.shape
    image = (height, width)
    logits = _logit_buffer(classes, height, width)
    _, pad_h, pad_w = logits.shape
    logits[...] = 0.0
    logits[0] = look.strength / 2
    for cls, (kind, centre, radii, rotation) in enumerate(_layout(rng, classes, height, width), start=1):
        rr, cc = _shape_pixels(kind, centre, radii, rotation, image)
        labels[rr, cc] = cls
        # The prediction: the same object, shifted and rescaled, with a blurred edge band.
        pred_centre = (centre[0] + rng.normal(0, look.shift_sd), centre[1] + rng.normal(0, look.shift_sd))
        scale = 1.0 + rng.normal(0, 0.05 * (1.0 - look.quality) + 0.01)
        for grow in (1.0 + _EDGE_BAND, 1.0 - _EDGE_BAND):
            pred_radii = (radii[0] * scale * grow, radii[1] * scale * grow)
            rr, cc = _shape_pixels(kind, pred_centre, pred_radii, rotation, image)
            logits[cls, rr, cc] += look.strength / 2
    for block in _NOISE_BLOCKS:
        noise = rng.standard_normal((classes, pad_h // block, 1, pad_w // block, 1))
        logits.reshape(classes, pad_h // block, block, pad_w // block, block)[...] += look.noise_sd * noise
    image_logits = logits[:, :height, :width]
    image_logits -= image_logits.max(axis=0)
    _exp_of_nonpositive(image_logits)
    image_logits /= image_logits.sum(axis=0)
    np.copyto(y_pred, np.moveaxis(image_logits.astype(y_pred.dtype), 0, -1))


# exp by Cody and Waite's reduction, x = k ln 2 + r with |r| <= ln 2 / 2, and a Taylor polynomial
# of degree 13 for exp(r) (truncation under 1e-17): basic IEEE operations only, each correctly
# rounded, so the same bits on every CPU. numpy's np.exp is not: it runs SIMD code chosen by CPU
# features, and its float64 results on an AMD EPYC without AVX-512 differed in the last bit from
# those on CPUs with it, which changed the float64 scenes' bytes (and their digests).
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in its high 32 bits: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_TAYLOR = tuple(1.0 / np.prod(np.arange(1, n + 1, dtype=np.float64)) for n in range(13, -1, -1))


def _exp_of_nonpositive(x: np.ndarray) -> None:
    """exp(x) in place for float64 ``x`` <= 0, bit for bit the same on every CPU."""
    k = np.rint(x / np.log(2.0))
    x -= k * _LN2_HI
    x -= k * _LN2_LO
    power = np.full_like(x, _TAYLOR[0])
    for coefficient in _TAYLOR[1:]:
        power *= x
        power += coefficient
    np.ldexp(power, k.astype(np.int32), out=x)


def _numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes  # shipped with TensorFlow; numpy has no bfloat16 of its own

        return np.dtype(ml_dtypes.bfloat16)
    if name not in ("float16", "float32", "float64"):
        raise ValueError(f"dtype must be one of float16, bfloat16, float32, float64, got {name!r}")
    return np.dtype(name)


def edge_scene(
    batch: int = 4, height: int = 32, width: int = 32, classes: int = 4, *, seed: int = 0, dtype: str = "float32"
) -> Scene:
    """A scene whose pixels exercise the edges of every loss (for ``segbench check``).

    Built from ``make_scene`` (one missing annotation), then, in image order:

    - image 0 has every object erased from its annotation (all background, objects predicted);
    - argmax ties: a band of background pixels predicts background and the first absent object
      class (or class 1) at exactly 0.5 each, another band predicts all classes at 1/C;
    - probabilities at the edges: pixels whose true class has probability exactly 1 (and 0
      elsewhere), exactly 0 (all mass on another class), EPSILON and 1 - EPSILON (the clip bounds).
    """
    from segbench._constants import EPSILON

    base = make_scene(batch, height, width, classes, missing=min(1, batch - 1), seed=seed, dtype="float64")
    y_pred = np.array(base.y_pred)
    labels = np.array(base.labels)
    annotated = np.argmax(base.y_true, axis=-1)
    annotated[0] = 0  # every object of image 0 forgotten by the annotator
    rows = np.arange(height)
    for n in range(batch):
        present = set(np.unique(annotated[n]).tolist())
        absent = [c for c in range(1, classes) if c not in present] or [1]
        band = rows % 8
        tie2 = (band[:, None] == 1) & (annotated[n] == 0)
        y_pred[n][tie2] = 0.0
        y_pred[n][tie2, 0] = 0.5
        y_pred[n][tie2, absent[0]] = 0.5
        y_pred[n][(band[:, None] == 2) & np.ones(width, bool)] = 1.0 / classes
        true = annotated[n]
        other = (true + 1) % classes
        for offset, p_true in ((3, 1.0), (4, 0.0), (5, EPSILON), (6, 1.0 - EPSILON)):
            mask = (band[:, None] == offset) & np.ones(width, bool)
            rr, cc = np.nonzero(mask)
            y_pred[n][rr, cc] = 0.0
            y_pred[n][rr, cc, true[rr, cc]] = p_true
            y_pred[n][rr, cc, other[rr, cc]] += 1.0 - p_true
    np_dtype = _numpy_dtype(dtype)
    y_true = _one_hot(annotated, classes, np_dtype)
    y_pred = y_pred.astype(np_dtype)
    y_pred.flags.writeable = False
    return Scene(y_true=y_true, y_pred=y_pred, labels=labels, missing=base.missing)


@dataclass(frozen=True)
class Scenario:
    """A named, seeded input: everything make_scene (or edge_scene, with ``edges``) needs."""

    name: str
    batch: int
    height: int
    width: int
    classes: int
    missing: int
    seed: int = 0
    dtype: str = "float32"
    edges: bool = False

    def scene(self) -> Scene:
        if self.edges:
            return edge_scene(self.batch, self.height, self.width, self.classes, seed=self.seed, dtype=self.dtype)
        return make_scene(
            self.batch, self.height, self.width, self.classes, missing=self.missing, seed=self.seed, dtype=self.dtype
        )


SEED_SCENARIO = Scenario("seed", batch=8, height=128, width=128, classes=4, missing=2)
"""The seed post's experiment: 8 images, background + ellipse, square, disk, two missing annotations."""

REFERENCE_SCENARIOS: tuple[Scenario, ...] = (
    SEED_SCENARIO,
    Scenario("complete", batch=8, height=128, width=128, classes=4, missing=0),
    Scenario("binary_nonsquare", batch=2, height=48, width=80, classes=2, missing=1),
    Scenario("nine_classes", batch=3, height=64, width=64, classes=9, missing=3, seed=1),
    Scenario("sixteen_classes_nonsquare", batch=2, height=96, width=64, classes=16, missing=4, seed=2),
    Scenario("thirty_two_classes", batch=2, height=48, width=48, classes=32, missing=6, seed=3),
    *(
        Scenario(f"edges_{dtype}", batch=4, height=32, width=32, classes=4, missing=1, dtype=dtype, edges=True)
        for dtype in ("float32", "float64", "float16", "bfloat16")
    ),
)
"""The scenarios whose float64 values are stored in results/reference_values.csv (segbench check):
the seed's, C from 2 to 32, non-square images, and the edge cases in every dtype."""
