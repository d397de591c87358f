"""xlm_core.registry: the names a run chooses, readable without torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from xlm_core import XLMError
from xlm_core.registry import (
    ARCHITECTURES,
    LOSS_NAMES,
    canonical_arch,
    check_loss_name,
    decoder_is_current,
    decoder_name,
    softargmax_radius,
)


def test_the_profile_checker_and_the_study_runner_read_names_without_torch():
    code = ("import sys, xlm_core.registry, xlm_core.config, xlm_core.study.profile, "
            "xlm_core.study.execute, xlm_core.study.plan; "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_names_match_what_the_builders_build():
    from xlm_core.losses import _LOSSES

    assert tuple(_LOSSES) == LOSS_NAMES
    assert check_loss_name(" Spatial_CE ") == "spatial_ce"
    with pytest.raises(XLMError, match="mse, bce, spatial_ce, awing"):
        check_loss_name("dice")
    assert canonical_arch("UNet++") == "unetplusplus" and ARCHITECTURES["deeplabv3"].divisor == 8
    with pytest.raises(XLMError, match="deeplabv3, unet, unetplusplus"):
        canonical_arch("fpn")


def test_decoder_name_follows_the_softargmax_radius():
    assert softargmax_radius(1.5) == 5 and softargmax_radius(2.0) == 7
    assert decoder_name("spatial_ce", 2.0) == "softargmax-r7-sym"
    with pytest.raises(XLMError, match="sigma must be > 0"):
        softargmax_radius(0.0)


def test_decoder_is_current_reads_the_loss_and_sigma_of_the_run():
    def metrics(loss, sigma, decoder):
        return {"config": {"loss": loss, "sigma": sigma}, "decoder": decoder}

    assert decoder_is_current(metrics("spatial_ce", 1.5, "softargmax-r5-sym"))
    assert not decoder_is_current(metrics("spatial_ce", 1.5, "softargmax-r5"))  # before the border rule
    assert not decoder_is_current(metrics("spatial_ce", 2.0, "softargmax-r5-sym"))  # r7 now
    assert not decoder_is_current({"config": {"loss": "spatial_ce", "sigma": 1.5}})  # before decoders were named
    assert decoder_is_current(metrics("mse", 2.0, "newton"))
    assert decoder_is_current({"config": {"loss": "mse", "sigma": 2.0}})  # newton then and now
    assert not decoder_is_current(metrics("mse", 2.0, "softargmax-r7"))
    # cannot tell (or nothing to score it again with): left as it is
    assert decoder_is_current(metrics("dice", 2.0, "newton"))
    assert decoder_is_current({"decoder": "newton", "config": {}})
