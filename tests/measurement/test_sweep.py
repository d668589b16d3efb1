import pytest

import segbench
from segbench.losses.registry import TENSORFLOW_MODES, builtin_losses
from segbench.measurement.sweep import (
    PASSES,
    PROFILES,
    Case,
    Sweep,
    get_profile,
    parse_ints,
    parse_resolutions,
)


def test_profiles_cover_every_loss_formulation_mode_and_pass():
    for profile in PROFILES.values():
        cases = profile.sweep.cases()
        assert {c.loss for c in cases} == set(builtin_losses())
        assert {c.pass_ for c in cases} == set(PASSES)
        if profile.name in ("tiny", "backends"):  # every backend: the keras formulation in every mode
            assert {c.mode for c in cases} == set(segbench.MODES)
            assert {(c.formulation, c.mode) for c in cases} >= {("keras", m) for m in segbench.MODES if m != "numpy"}
        else:  # numpy and TensorFlow only (the default sweep's time target)
            assert {c.formulation for c in cases} == {"reference", "fused", "blocked"}
            assert {c.mode for c in cases} == set(TENSORFLOW_MODES)
    assert {c.formulation for c in PROFILES["tiny"].sweep.cases()} == set(segbench.FORMULATIONS)


def test_only_the_keras_formulation_runs_on_jax_and_pytorch():
    cases = PROFILES["tiny"].sweep.cases()
    assert {c.formulation for c in cases if c.mode in ("jax", "jax-jit", "torch", "torch-compile")} == {"keras"}
    assert not [c for c in cases if c.formulation == "keras" and c.mode == "numpy"]


def test_full_profile_reaches_the_big_shapes():
    sweep = PROFILES["full"].sweep
    assert max(sweep.batches) == 64
    assert (1024, 1024) in sweep.resolutions
    assert max(sweep.classes) == 32


def test_cases_are_the_cross_product_minus_unsupported_dtypes():
    sweep = Sweep(
        losses=("categorical_crossentropy",),
        formulations=("reference",),
        batches=(1, 2),
        resolutions=((8, 8), (8, 16)),
        dtypes=("float32", "bfloat16"),
    )
    cases = sweep.cases()
    modes, passes = len(TENSORFLOW_MODES), len(PASSES)
    # bfloat16 has no numpy mode
    assert len(cases) == 2 * 2 * passes * (modes + modes - 1)
    assert not [c for c in cases if c.mode == "numpy" and c.dtype == "bfloat16"]
    assert len(set(cases)) == len(cases)
    # grouped by shape and dtype, so that inputs are built once per group
    groups = [(*c.shape, c.dtype) for c in cases]
    runs = [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    assert len(runs) == len(set(groups)) == 2 * 2 * 2


def test_case_identity_and_inputs():
    case = Case(2, 16, 24, 4, "float32", "marginal_crossentropy", "reference", "numpy", "forward+backward")
    assert case.gradient and case.pixels == 2 * 16 * 24
    assert case.name == "marginal_crossentropy/reference/numpy/forward+backward/b2/16x24/c4/float32"
    assert case.key()["pass"] == "forward+backward"
    scene = case.scene()
    assert scene.y_pred.shape == (2, 16, 24, 4)
    _, grad = case.build()(scene.y_true, scene.y_pred)
    assert grad.shape == scene.y_pred.shape


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("SEGBENCH_PROFILE", "quick")
    assert get_profile().name == "quick"
    assert get_profile("tiny").name == "tiny"
    monkeypatch.delenv("SEGBENCH_PROFILE")
    assert get_profile().name == "default"
    with pytest.raises(
        ValueError, match="unknown profile 'huge'; expected one of: tiny, quick, default, backends, full"
    ):
        get_profile("huge")


def test_grid_parsing():
    assert parse_ints("batch", "1,8, 32") == (1, 8, 32)
    assert parse_resolutions("128,256,512x1024") == ((128, 128), (256, 256), (512, 1024))
    with pytest.raises(ValueError, match="--batch takes comma-separated integers"):
        parse_ints("batch", "1,x")
    with pytest.raises(ValueError, match="--res takes comma-separated N or HxW"):
        parse_resolutions("128,abc")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"modes": ("mxnet",)},
            "unknown mode 'mxnet'; expected one of: numpy, eager, function, xla, jax, jax-jit, torch, torch-compile",
        ),
        ({"losses": ("dice",)}, "unknown loss 'dice'"),
        ({"passes": ("backward",)}, "unknown pass 'backward'"),
        ({"dtypes": ("int8",)}, "unknown dtype 'int8'"),
        ({"batches": (0,)}, "batch must be integers >= 1"),
        ({"classes": (1,)}, "classes must be integers >= 2"),
        ({"resolutions": ((0, 8),)}, "resolution must be"),
        ({"batches": ()}, "batch must not be empty"),
    ],
)
def test_bad_sweeps_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        Sweep(**changes)
