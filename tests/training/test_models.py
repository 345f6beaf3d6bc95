"""The built-in models: shapes, and the errors for inputs they cannot take."""

import pytest
import torch

from steplr.training.models import SmallCNN, build_model


@pytest.mark.parametrize(("side", "classes"), [(28, 10), (8, 4)])
def test_the_cnn_reads_flattened_square_images(side, classes):
    torch.manual_seed(0)
    model = build_model("cnn", side * side, classes)
    assert isinstance(model, SmallCNN)
    x = torch.rand(5, side * side)
    logits = model(x)
    assert logits.shape == (5, classes)
    # The flattened rows are images: the output of a row does not depend on its neighbours (eval mode: BatchNorm
    # uses its running statistics).
    model.eval()
    assert torch.allclose(model(x)[2:3], model(x[2:3]), atol=1e-6)


@pytest.mark.parametrize("features", [783, 2, 9])
def test_the_cnn_refuses_inputs_that_are_not_square_images(features):
    with pytest.raises(ValueError, match=f"square images of 4x4 pixels or more, got {features} features"):
        build_model("cnn", features, 10)


def test_unknown_models_are_named():
    with pytest.raises(ValueError, match="unknown model 'resnet'; expected one of qwerty, linear, cnn"):
        build_model("resnet", 4, 2)
