"""QAM constellations: energy, 3GPP TS 38.211 labelling, mapping, LLRs."""
import math

import numpy as np
import pytest
import torch

from gnnmimo.constellation import QAM, SUPPORTED_ORDERS
from helpers import sionna_module

ORDERS = pytest.mark.parametrize("order", SUPPORTED_ORDERS)


def ts38211(bits: np.ndarray) -> complex:
    """TS 38.211 §5.1.2–5.1.6 modulation formulas, written out per order."""
    s = 1 - 2 * np.asarray(bits, dtype=float)  # (1 − 2 b_j)
    if len(bits) == 2:
        return (s[0] + 1j * s[1]) / math.sqrt(2)
    if len(bits) == 4:
        return (s[0] * (2 - s[2]) + 1j * s[1] * (2 - s[3])) / math.sqrt(10)
    if len(bits) == 6:
        return (s[0] * (4 - s[2] * (2 - s[4])) + 1j * s[1] * (4 - s[3] * (2 - s[5]))) / math.sqrt(42)
    if len(bits) == 8:
        return (s[0] * (8 - s[2] * (4 - s[4] * (2 - s[6])))
                + 1j * s[1] * (8 - s[3] * (4 - s[5] * (2 - s[7])))) / math.sqrt(170)
    raise AssertionError(len(bits))


@ORDERS
def test_unit_average_energy(order):
    qam = QAM(order)
    assert qam.points.abs().square().mean().item() == pytest.approx(1.0, abs=1e-12)
    assert qam.points.real.square().mean().item() == pytest.approx(0.5, abs=1e-12)


@ORDERS
def test_points_follow_ts_38211(order):
    qam = QAM(order)
    expected = np.array([ts38211(bits) for bits in qam.bits.numpy()])
    np.testing.assert_allclose(qam.points.numpy(), expected, atol=1e-12)


def test_16qam_table():
    """Spelled-out 16-QAM table of TS 38.211 (labels b0 b1 b2 b3), points ×√10."""
    table = {"0000": 1 + 1j, "0001": 1 + 3j, "0010": 3 + 1j, "0011": 3 + 3j,
             "0100": 1 - 1j, "0101": 1 - 3j, "0110": 3 - 1j, "0111": 3 - 3j,
             "1000": -1 + 1j, "1001": -1 + 3j, "1010": -3 + 1j, "1011": -3 + 3j,
             "1100": -1 - 1j, "1101": -1 - 3j, "1110": -3 - 1j, "1111": -3 - 3j}
    qam = QAM(16)
    for label, point in table.items():
        index = qam.index_of_bits(torch.tensor([int(c) for c in label]))
        assert int(index) == int(label, 2)
        assert complex(qam.points[index]) == pytest.approx(point / math.sqrt(10), abs=1e-12), label


@ORDERS
def test_gray_adjacency(order):
    """Horizontal and vertical nearest neighbours differ in exactly one bit."""
    qam = QAM(order)
    position = qam.pam_index  # [M, 2]
    step = (position[:, None, :] - position[None, :, :]).abs().sum(-1)  # grid (L1) distance
    neighbours = step == 1
    flips = (qam.bits[:, None, :] != qam.bits[None, :, :]).sum(-1)
    assert neighbours.sum() == 2 * 2 * math.isqrt(order) * (math.isqrt(order) - 1)
    assert (flips[neighbours] == 1).all()
    # and the grid distance is geometric: neighbours are the closest distinct points
    distance = (qam.points[:, None] - qam.points[None, :]).abs()
    assert torch.allclose(distance[neighbours], distance[neighbours].min())


@ORDERS
def test_pam_alphabet_and_index(order):
    qam = QAM(order)
    assert torch.all(qam.pam[1:] > qam.pam[:-1])
    assert torch.allclose(qam.pam[qam.pam_index[:, 0]], qam.points.real)
    assert torch.allclose(qam.pam[qam.pam_index[:, 1]], qam.points.imag)
    assert torch.equal(qam.index_of_pam(qam.pam_index[:, 0], qam.pam_index[:, 1]), torch.arange(order))


@ORDERS
def test_bits_index_round_trip(order):
    qam = QAM(order)
    index = torch.arange(order)
    assert torch.equal(qam.index_of_bits(qam.bits_of(index)), index)
    bits = torch.randint(0, 2, (50, 3, qam.num_bits), generator=torch.Generator().manual_seed(0))
    assert torch.equal(qam.bits_of(qam.index_of_bits(bits)), bits.to(torch.uint8))
    # the label of s is the binary representation of s, most significant bit first
    assert [str(b) for b in qam.bits[order - 2].tolist()] == list(np.binary_repr(order - 2, qam.num_bits))


@ORDERS
def test_nearest_equals_brute_force(order):
    qam = QAM(order)
    generator = torch.Generator().manual_seed(order)
    z = torch.randn(4000, dtype=torch.complex128, generator=generator) * 1.5  # also far outside
    brute = (z[:, None] - qam.points[None, :]).abs().argmin(-1)
    assert torch.equal(qam.nearest(z), brute)
    assert torch.equal(qam.nearest(z.to(torch.complex64)), brute)
    assert torch.equal(qam.nearest(qam.points), torch.arange(order))


def brute_force_llrs(logits: np.ndarray, bits: np.ndarray, method: str) -> np.ndarray:
    """``ln Σ_{s: b_j(s)=1} e^{ℓ_s} − ln Σ_{s: b_j(s)=0} e^{ℓ_s}`` (or max), one bit at a time."""
    out = np.empty(logits.shape[:-1] + (bits.shape[1],))
    for j in range(bits.shape[1]):
        one, zero = logits[..., bits[:, j] == 1], logits[..., bits[:, j] == 0]
        if method == "app":
            out[..., j] = np.logaddexp.reduce(one, axis=-1) - np.logaddexp.reduce(zero, axis=-1)
        else:
            out[..., j] = one.max(-1) - zero.max(-1)
    return out


@ORDERS
@pytest.mark.parametrize("method", ["app", "maxlog"])
def test_bit_llrs_match_brute_force(order, method):
    qam = QAM(order)
    logits = torch.randn(7, 5, order, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 6
    expected = brute_force_llrs(logits.numpy(), qam.bits.numpy(), method)
    np.testing.assert_allclose(qam.bit_llrs(logits, method).numpy(), expected, rtol=1e-10, atol=1e-10)
    single = qam.bit_llrs(logits.float(), method)
    assert single.dtype == torch.float32
    np.testing.assert_allclose(single.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_llr_sign_and_gaussian_logits():
    """LLR = ln P(b=1)/P(b=0): a confident observation of a point gives the sign of its bits."""
    qam = QAM(16)
    target = 0b1010
    logits = qam.gaussian_logits(qam.points[target][None], torch.tensor([0.01], dtype=torch.float64))
    assert int(logits.argmax()) == target
    llr = qam.bit_llrs(logits)[0]
    assert torch.equal((llr > 0).to(torch.uint8), qam.bits[target])


def test_errors():
    for order in (2, 8, 32, 1024):
        with pytest.raises(ValueError, match=f"unknown constellation: {order}-QAM"):
            QAM(order)
    qam = QAM(16)
    with pytest.raises(ValueError, match="unknown LLR method"):
        qam.bit_llrs(torch.zeros(3, 16), "exact")
    with pytest.raises(ValueError, match="needs logits over 16 points"):
        qam.bit_llrs(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="takes 4 bits per symbol"):
        qam.index_of_bits(torch.zeros(3, 2))


@pytest.fixture(scope="module")
def sionna_mapping():
    return sionna_module("mapping")


@ORDERS
def test_matches_sionna(order, sionna_mapping):
    """Sionna labels point ``s`` by the binary representation of ``s``, as we do."""
    qam = QAM(order)
    points = sionna_mapping.Constellation("qam", qam.num_bits, precision="double")()
    np.testing.assert_allclose(points.cpu().numpy(), qam.points.numpy(), atol=1e-12)
    llr_sionna = sionna_mapping.SymbolLogits2LLRs("app", qam.num_bits, precision="double")
    logits = torch.randn(6, order, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 4
    np.testing.assert_allclose(qam.bit_llrs(logits).numpy(), llr_sionna(logits).cpu().numpy(), atol=1e-9)
