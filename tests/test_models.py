"""xlm_core.models (factory, input path), xlm_core.weights (encoder weight files, trap 1) and
xlm_core.transfer (verified transfer, trap 2)."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
import torchvision
from safetensors.torch import save_file

from xlm_core import XLMError, weights
from xlm_core.models import (
    build_model,
    check_combination,
    check_input_size,
    checkpoint_metadata,
    input_normalisation,
    pad_to_multiple,
    required_divisor,
    to_model_input,
)
from xlm_core.transfer import TransferReport, load_init

PAPER_PAIRS = [
    (arch, enc)
    for arch in ("unet", "unetplusplus", "deeplabv3")
    for enc in ("vgg19", "resnext101_32x8d", "efficientnet-b7")
    if not (arch == "deeplabv3" and enc == "vgg19")
]


def _encoder_tensors_equal(model: torch.nn.Module, state: dict) -> list[str]:
    """Names of encoder tensors that differ from ``state`` (file layout, no prefix)."""
    return [k for k, v in model.encoder.state_dict().items() if not torch.equal(v, state[k])]


# --------------------------------------------------------------------------- combinations


@pytest.mark.parametrize("encoder", ["vgg19", "vgg16", "vgg19_bn", "vgg11"])
def test_deeplabv3_with_vgg_is_refused_before_building(monkeypatch, encoder):
    def must_not_build(*args, **kwargs):
        raise AssertionError("smp.create_model called for a refused combination")

    monkeypatch.setattr(smp, "create_model", must_not_build)
    with pytest.raises(XLMError, match="dilated"):
        check_combination("deeplabv3", encoder)
    with pytest.raises(XLMError, match=f"deeplabv3 cannot use the encoder '{encoder}'"):
        build_model("deeplabv3", encoder, 5, encoder_weights="imagenet")


def test_dilated_encoders_are_accepted_for_deeplabv3():
    for encoder in ("resnext101_32x8d", "efficientnet-b7", "resnet18"):
        check_combination("deeplabv3", encoder)
    check_combination("unetplusplus", "vgg19")
    check_combination("unet", "vgg19")


def test_unknown_arch_and_encoder_list_allowed_values():
    with pytest.raises(XLMError, match="deeplabv3, unet, unetplusplus"):
        check_combination("segformer3000", "vgg19")
    with pytest.raises(XLMError, match="vgg19, resnext101_32x8d, efficientnet-b7") as err:
        check_combination("unet", "vgg20")
    assert "resnet18" in str(err.value)  # the full smp list is there too
    with pytest.raises(XLMError, match="n_landmarks"):
        build_model("unet", "resnet18", 0)


def test_paper_pairs_build_with_the_right_output_shape():
    """All 8 pairs of Table 1 build and map (B, 3, H, W) -> (B, L, H, W) (meta device: shapes only)."""
    for arch, encoder in PAPER_PAIRS:
        with torch.device("meta"):
            model = build_model(arch, encoder, 7)
            out = model.eval()(torch.empty(2, 3, 64, 96))
        assert tuple(out.shape) == (2, 7, 64, 96), (arch, encoder)
        assert checkpoint_metadata(model) == {
            "arch": arch,
            "encoder": encoder,
            "n_landmarks": 7,
            "encoder_weights": "none",
        }


def test_small_model_forward_non_square_and_arch_alias():
    model = build_model("UNet++", "resnet18", 3).eval()
    assert model.xlm_spec["arch"] == "unetplusplus"
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 32, 64))
    assert tuple(out.shape) == (1, 3, 32, 64)


# --------------------------------------------------------------------------- input path


def test_required_divisor_and_size_errors():
    assert required_divisor("unet", "vgg19") == 32
    assert required_divisor("unetplusplus", "efficientnet-b7") == 32
    assert required_divisor("deeplabv3", "resnext101_32x8d") == 8
    check_input_size("unet", "vgg19", (512, 416))
    with pytest.raises(XLMError, match=r"multiples of 32.*\(512, 384\)"):
        check_input_size("unetplusplus", "vgg19", (512, 368))  # the hand test size
    check_input_size("deeplabv3", "resnet18", (512, 368))


def test_forward_guard_turns_shape_errors_into_xlmerror():
    model = build_model("unet", "resnet18", 2).eval()
    with pytest.raises(XLMError, match="multiples of 32"):
        model(torch.zeros(1, 3, 48, 64))
    with pytest.raises(XLMError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(1, 1, 64, 64))


def test_deeplabv3_batch_of_one_in_train_mode_is_explained():
    """Trap 7: BatchNorm after global pooling cannot train on one sample."""
    model = build_model("deeplabv3", "resnet18", 2)
    with pytest.raises(XLMError, match="drop_last=True"):
        model.train()(torch.zeros(1, 3, 32, 32))
    model.train()(torch.zeros(2, 3, 32, 32))  # two samples train
    with torch.no_grad():
        assert tuple(model.eval()(torch.zeros(1, 3, 32, 32)).shape) == (1, 2, 32, 32)


def test_to_model_input_replicates_grey_and_normalises():
    mean, std = input_normalisation("vgg19")
    assert mean == pytest.approx((0.485, 0.456, 0.406)) and std == pytest.approx(
        (0.229, 0.224, 0.225)
    )
    grey = torch.rand(2, 1, 8, 12)
    x = to_model_input(grey, "vgg19")
    assert tuple(x.shape) == (2, 3, 8, 12) and x.dtype == torch.float32
    for c in range(3):  # undo the normalisation: every channel is the grey image
        torch.testing.assert_close(x[:, c] * std[c] + mean[c], grey[:, 0])
    assert float(
        to_model_input(torch.full((1, 4, 4), 0.5), "resnet18")[0, 1, 0, 0]
    ) == pytest.approx((0.5 - 0.456) / 0.224)
    # (B, H, W), (H, W) and numpy give the same
    torch.testing.assert_close(to_model_input(grey[:, 0].numpy(), "vgg19"), x)
    assert tuple(to_model_input(np.zeros((8, 12), np.float32), "vgg19").shape) == (1, 3, 8, 12)
    with pytest.raises(XLMError, match="0-255"):
        to_model_input(torch.full((1, 4, 4), 200.0), "vgg19")
    with pytest.raises(XLMError, match="grey"):
        to_model_input(torch.zeros(1, 3, 4, 4), "vgg19")
    assert input_normalisation("inceptionv4") == ((0.5,) * 3, (0.5,) * 3)


def test_pad_to_multiple_keeps_coordinates():
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).view(2, 1, 5, 7)
    y = pad_to_multiple(x, 4)
    assert tuple(y.shape) == (2, 1, 8, 8)
    torch.testing.assert_close(y[..., :5, :7], x)
    assert float(y[..., 5:, :].abs().sum()) == 0 and float(y[..., :, 7:].abs().sum()) == 0
    already = x[..., :4, :4]
    same = pad_to_multiple(already, 4)  # already a multiple: no padding, pixels unchanged
    assert tuple(same.shape) == (2, 1, 4, 4)
    torch.testing.assert_close(same, already)
    odd = pad_to_multiple(x, 3, value=-1.0)  # (5, 7) -> (6, 9), padded bottom and right only
    assert tuple(odd.shape) == (2, 1, 6, 9)
    torch.testing.assert_close(odd[..., :5, :7], x)
    assert bool((odd[..., 5:, :] == -1).all()) and bool((odd[..., :, 7:] == -1).all())


# --------------------------------------------------------------------------- encoder weights


def test_imagenet_offline_is_an_actionable_error(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(XLMError) as err:
        build_model("unet", "resnet18", 3, encoder_weights="imagenet")
    msg = str(err.value)
    assert "Hugging Face cache" in msg and "--encoder-weights" in msg and "automatically" in msg


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A torchvision-format stand-in: resnet18(weights=None) (same smp ResNetEncoder as resnext101)."""
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18-standin.pth"
    torch.save(state, path)
    return path, state


def test_torchvision_file_loads_strictly_and_survives_build(resnet18_file):
    """Trap 1: at step 0 the encoder equals the weights file (nothing re-initialises it)."""
    path, state = resnet18_file
    for arch in ("unet", "deeplabv3"):
        model = build_model(arch, "resnet18", 4, encoder_weights=str(path))
        assert _encoder_tensors_equal(model, state) == []
        report = model.encoder_weights_report
        assert report.loaded == report.expected == len(model.encoder.state_dict())
        assert report.dropped == ["fc.bias", "fc.weight"]
        assert "resnet18-standin.pth" in str(report)
    assert model.xlm_spec["encoder_weights"] == str(path)


def test_lukemelas_efficientnet_file_loads(tmp_path):
    from segmentation_models_pytorch.encoders._efficientnet import EfficientNet, get_model_params

    torch.manual_seed(2)
    blocks, params = get_model_params("efficientnet-b0", override_params=None)
    state = EfficientNet(blocks, params).state_dict()  # lukemelas' layout, with _fc
    assert "_fc.weight" in state
    path = tmp_path / "efficientnet-b0-standin.pth"
    torch.save(state, path)
    model = build_model("unet", "efficientnet-b0", 2, encoder_weights=str(path))
    assert _encoder_tensors_equal(model, state) == []
    assert model.encoder_weights_report.dropped == ["_fc.bias", "_fc.weight"]


@pytest.mark.slow
def test_vgg19_standin_pth_and_safetensors_equal_encoder_at_step_0(tmp_path):
    """The paper's encoder: torchvision vgg19 layout, .pth and .safetensors."""
    torch.manual_seed(3)
    state = torchvision.models.vgg19(weights=None).state_dict()
    assert any(k.startswith("classifier.") for k in state)
    pth = tmp_path / "vgg19-standin.pth"
    torch.save(state, pth)
    st = tmp_path / "vgg19-standin.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    for path in (pth, st):
        model = build_model("unetplusplus", "vgg19", 19, encoder_weights=str(path))
        assert _encoder_tensors_equal(model, state) == []
        assert model.encoder_weights_report.loaded == 32  # 16 conv layers x (weight, bias)


def test_paper_encoder_file_layouts_match_smp_encoders():
    """torchvision vgg19 / resnext101_32x8d and lukemelas efficientnet-b7 keys and shapes are
    exactly smp's encoders' plus the classifier (meta device: no memory, no time)."""
    from segmentation_models_pytorch.encoders import get_encoder
    from segmentation_models_pytorch.encoders._efficientnet import EfficientNet, get_model_params

    with torch.device("meta"):
        files = {
            "vgg19": torchvision.models.vgg19(weights=None).state_dict(),
            "resnext101_32x8d": torchvision.models.resnext101_32x8d(weights=None).state_dict(),
            "efficientnet-b7": EfficientNet(
                *get_model_params("efficientnet-b7", None)
            ).state_dict(),
        }
        for name, file_state in files.items():
            enc = {k: tuple(v.shape) for k, v in get_encoder(name).state_dict().items()}
            kept = {
                k: tuple(v.shape)
                for k, v in file_state.items()
                if not k.startswith(weights._CLASSIFIER_PREFIXES)
            }
            assert kept == enc, name


def test_weights_file_errors_name_the_file(tmp_path, resnet18_file):
    path, state = resnet18_file
    with pytest.raises(XLMError, match="not found.*nowhere.pth"):
        build_model("unet", "resnet18", 2, encoder_weights=str(tmp_path / "nowhere.pth"))
    # a file of another encoder: counts and first names
    with pytest.raises(XLMError) as err:
        build_model("unet", "resnet34", 2, encoder_weights=str(path))
    msg = str(err.value)
    assert "resnet18-standin.pth" in msg and "resnet34" in msg and "missing" in msg
    # same names, other shapes
    bad = dict(state)
    bad["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    torch.save(bad, tmp_path / "shapes.pth")
    with pytest.raises(XLMError, match=r"shapes.pth.*1 shape mismatches.*conv1.weight"):
        build_model("unet", "resnet18", 2, encoder_weights=str(tmp_path / "shapes.pth"))
    # corrupt / truncated
    (tmp_path / "junk.pth").write_bytes(b"\x00not a weights file" * 10)
    with pytest.raises(XLMError, match="junk.pth"):
        build_model("unet", "resnet18", 2, encoder_weights=str(tmp_path / "junk.pth"))
    raw = path.read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(XLMError, match="cut.pth"):
        build_model("unet", "resnet18", 2, encoder_weights=str(tmp_path / "cut.pth"))
    (tmp_path / "cut.safetensors").write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":')
    with pytest.raises(XLMError, match="cut.safetensors"):
        build_model("unet", "resnet18", 2, encoder_weights=str(tmp_path / "cut.safetensors"))


# --------------------------------------------------------------------------- transfer


class _Evil:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def source_checkpoint(tmp_path_factory):
    """An earlier run's checkpoint of unet/resnet18 with 3 landmarks, in this project's format."""
    torch.manual_seed(4)
    model = build_model("unet", "resnet18", 3)
    with torch.no_grad():  # make every tensor distinguishable from a fresh build
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.01 + 0.5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    folder = tmp_path_factory.mktemp("run")
    path = folder / "checkpoint.pt"
    torch.save({"model": state, **checkpoint_metadata(model), "epoch": 7}, path)
    return path, state


def _part(state: dict, prefix: str) -> dict:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def test_load_init_copies_encoder_and_decoder_and_reinitialises_head(source_checkpoint):
    path, source = source_checkpoint
    model = build_model("unet", "resnet18", 5)
    head_before = {k: v.clone() for k, v in _part(model.state_dict(), "segmentation_head.").items()}
    report = load_init(model, path, n_landmarks=5)
    now = model.state_dict()
    for prefix in ("encoder.", "decoder."):
        for k, v in _part(now, prefix).items():
            assert torch.equal(v, source[k]), k
    for k, v in head_before.items():
        assert torch.equal(now[k], v), k  # left as built
    assert report.head_reinitialised and report.source_n_landmarks == 3 and report.n_landmarks == 5
    assert report.encoder_matched == report.encoder_expected == len(_part(now, "encoder."))
    assert report.decoder_matched == report.decoder_expected == len(_part(now, "decoder."))
    assert report.head_matched == 0 and report.head_expected == 2
    assert report.unwrapped_from == "model" and report.source_arch == "unet"
    d = json.loads(json.dumps(report.as_dict()))
    assert d["source"] == str(path) and d["head_reinitialised"] is True
    assert f"encoder {report.encoder_matched}/{report.encoder_expected}" in str(report)


def test_load_init_same_landmark_count_copies_head(source_checkpoint):
    path, source = source_checkpoint
    model = build_model("unet", "resnet18", 3)
    report = load_init(model, path, 3)
    assert not report.head_reinitialised and report.head_matched == report.head_expected == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, source[k]), k


@pytest.mark.parametrize("wrap", ["model_state_dict", "state_dict", None, "module."])
def test_load_init_unwraps_other_checkpoint_shapes(tmp_path, source_checkpoint, wrap):
    """Trap 2: {"model_state_dict": ...} must load everything, never silently nothing."""
    _, source = source_checkpoint
    if wrap == "module.":
        obj = {"module." + k: v for k, v in source.items()}
    elif wrap is None:
        obj = dict(source)
    else:
        obj = {wrap: dict(source), "epoch": 3, "optimizer": {"lr": 1e-4}}
    torch.save(obj, tmp_path / "other.pt")
    model = build_model("unet", "resnet18", 4)
    report = load_init(model, tmp_path / "other.pt", 4)
    assert report.unwrapped_from == (wrap if wrap in ("model_state_dict", "state_dict") else None)
    assert (
        _encoder_tensors_equal(model, {k[8:]: v for k, v in _part(source, "encoder.").items()})
        == []
    )


def test_load_init_refuses_another_architecture(tmp_path, source_checkpoint):
    path, source = source_checkpoint
    with pytest.raises(XLMError, match=r"checkpoint.pt.*arch 'unet'.*unetplusplus"):
        load_init(build_model("unetplusplus", "resnet18", 3), path, 3)
    with pytest.raises(XLMError, match=r"checkpoint.pt.*encoder 'resnet18'"):
        load_init(build_model("unet", "resnet34", 3), path, 3)
    # without metadata the tensors themselves give it away
    torch.save(dict(source), tmp_path / "bare.pt")
    with pytest.raises(
        XLMError, match=r"bare.pt: transfer would load only \d+/\d+ encoder tensors"
    ):
        load_init(build_model("unet", "efficientnet-b0", 3), tmp_path / "bare.pt", 3)


def test_load_init_refuses_a_partial_checkpoint(tmp_path, source_checkpoint):
    _, source = source_checkpoint
    partial = {k: v for k, v in source.items() if k != "decoder.blocks.0.conv1.0.weight"}
    torch.save({"model": partial}, tmp_path / "partial.pt")
    with pytest.raises(
        XLMError, match=r"partial.pt.*decoder tensors: 1 missing \(decoder.blocks.0.conv1"
    ):
        load_init(build_model("unet", "resnet18", 3), tmp_path / "partial.pt", 3)
    torch.save({"weights": partial}, tmp_path / "nowhere.pt")
    with pytest.raises(XLMError, match="no model weights found.*weights"):
        load_init(build_model("unet", "resnet18", 3), tmp_path / "nowhere.pt", 3)
    with pytest.raises(XLMError, match="n_landmarks=4"):
        load_init(build_model("unet", "resnet18", 3), tmp_path / "partial.pt", 4)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_code_executing_pickle_is_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"model": {"encoder.x": _Evil(marker)}}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(payload, fh)
    assert not marker.exists()
    with pytest.raises(XLMError, match="evil.pt: refused"):
        load_init(build_model("unet", "resnet18", 3), path, 3)
    with pytest.raises(XLMError, match="evil.pt"):
        build_model("unet", "resnet18", 3, encoder_weights=str(path))
    assert not marker.exists()
    assert not os.path.exists(marker)


def test_transfer_report_is_a_dataclass_with_every_count():
    fields = set(TransferReport.__dataclass_fields__)
    for name in (
        "encoder_matched",
        "encoder_expected",
        "decoder_matched",
        "decoder_expected",
        "head_matched",
        "head_expected",
        "head_reinitialised",
        "source",
    ):
        assert name in fields


def test_batchnorm_running_statistics_follow_the_weights_at_pytorch_momentum():
    from xlm_core.models import BATCHNORM_MOMENTUM, build_model

    model = build_model("unet", "efficientnet-b0", 3)
    momenta = {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {BATCHNORM_MOMENTUM} == {0.1}
