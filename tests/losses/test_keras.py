"""A segbench loss works where Keras uses it: inside model.fit's traced train step, validation on."""

import numpy as np
import pytest

import segbench


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_a_keras_model_trains_a_step_with_a_segbench_loss(mode, jit_compile):
    keras = pytest.importorskip("keras")
    scene = segbench.make_scene(4, 16, 16, 4, missing=1)
    loss = segbench.loss_fn("missing_annotation_crossentropy", mode)  # validate=True, the default
    assert loss.validate
    model = keras.Sequential([keras.Input((16, 16, 4)), keras.layers.Conv2D(4, 1), keras.layers.Softmax()])
    model.compile(optimizer="sgd", loss=loss, jit_compile=jit_compile)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(scene.y_true, scene.y_true, epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))  # it learned


def test_validation_inside_a_users_tf_function_checks_what_it_can():
    tf = pytest.importorskip("tensorflow")
    scene = segbench.make_scene(2, 8, 8, 4)
    loss = segbench.loss_fn("categorical_crossentropy", "eager")

    @tf.function
    def step(y_true, y_pred):
        return loss(y_true, y_pred)

    assert float(step(scene.y_true, scene.y_pred)) == pytest.approx(
        float(segbench.loss_fn("categorical_crossentropy", "numpy")(scene.y_true, scene.y_pred)), rel=1e-5
    )
    with pytest.raises(ValueError, match="y_pred must have rank 4"):
        step(scene.y_true, scene.y_pred[0])
