"""What sltsearch relies on in torch's private API (`sltsearch.compat.torch`)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sltsearch.compat.torch import conv_forward, foreach_mul_, version


@pytest.mark.parametrize(
    ("conv", "shape", "op"),
    [
        (nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 9, 9), F.conv2d),
        (nn.Conv1d(4, 6, 3, padding=2, dilation=2, bias=False), (2, 4, 11), F.conv1d),
    ],
)
def test_conv_forward_is_the_convolution_with_another_weight(conv: nn.Module, shape: tuple[int, ...], op) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape)
    torch.testing.assert_close(conv_forward(conv, x, conv.weight), conv(x))
    other = torch.randn_like(conv.weight).sign()
    expected = op(x, other, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    torch.testing.assert_close(conv_forward(conv, x, other), expected)


def test_foreach_mul_multiplies_every_pair_in_place_and_version_counts_writes() -> None:
    weights = [torch.randn(3, 4), torch.randn(5)]
    masks = [torch.randint(0, 2, (3, 4)).float(), torch.randint(0, 2, (5,)).float()]
    expected = [w * m for w, m in zip(weights, masks, strict=True)]
    foreach_mul_(weights, masks)
    for got, want in zip(weights, expected, strict=True):
        assert torch.equal(got, want)
    mask = torch.ones(3, dtype=torch.bool)
    before = version(mask)
    mask.copy_(torch.tensor([True, False, True]))
    assert version(mask) != before
    after_copy = version(mask)
    nn.Linear(3, 3).register_buffer("m", mask)  # registering is no write
    assert version(mask) == after_copy
