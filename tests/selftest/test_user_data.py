"""Accuracy cases on a user's image folder and checkpoint: a folder made from shipped photos, named by
ImageNet class index, scored with EfficientNet-Lite0's real weights saved as the user's own checkpoint."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.selftest


@pytest.fixture
def user_checkpoint(tmp_path):
    from safetensors.torch import save_file

    import models

    net = models.Subject.of("efficientnet_lite0").build()
    path = tmp_path / "my_lite0.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def test_accuracy_cases_run_on_a_user_folder(pytester_run, user_folder, user_checkpoint):
    out = pytester_run("-m", "accuracy", "-k", "onnx-fp32 or tflite-fp32", "--user-data", str(user_folder),
                       "--user-model", "efficientnet_lite0", "--user-checkpoint", str(user_checkpoint), "-rA")
    assert "2 passed" in out
    assert "efficientnet_lite0_user-onnx-fp32" in out and "efficientnet_lite0_user-tflite-fp32" in out


def test_a_checkpoint_that_does_not_fit_is_listed_key_by_key(tmp_path, user_folder):
    import torch

    import models
    from models.weights import Checkpoint, CheckpointError

    state = models.Subject.of("mobilenet_v2").build().state_dict()
    state.pop("head.2.bias")
    state["extra.weight"] = torch.zeros(1)
    state["head.2.weight"] = torch.zeros(10, 1280)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        models.Subject.of("mobilenet_v2", Checkpoint(path=str(path))).build()
    text = str(info.value)
    assert "missing keys (1): head.2.bias" in text and "unexpected keys (1): extra.weight" in text
    assert "head.2.weight: checkpoint (10, 1280) vs model (1000, 1280)" in text


def test_a_checkpoint_needing_full_unpickling_is_refused(tmp_path):
    import torch

    import models
    from models.weights import Checkpoint, CheckpointError

    path = tmp_path / "pickled.pth"
    torch.save({"model": models.Subject.of("mobilenet_v3_small").build()}, path)  # a whole nn.Module
    with pytest.raises(CheckpointError, match="needs full unpickling"):
        models.Subject.of("mobilenet_v3_small", Checkpoint(path=str(path))).build()
