r"""Coded link simulation: 5G NR LDPC code blocks over the detected user streams.

Behind a detector, each user's stream carries code blocks of Sionna's 5G LDPC code
(``sionna.phy.fec.ldpc.LDPC5GEncoder`` / ``LDPC5GDecoder``, TS 38.212: base graph, lifting,
puncturing and shortening chosen by Sionna from ``(k, n)``); this module only lays the blocks over
the batch and counts what the decoder gets wrong.

**Layout.** A code block of ``n`` coded bits fills ``n / log2 M`` symbols of *one user slot across
consecutive channel uses*: the user nodes of a batch are ordered by (position ``i`` inside its
instance, instance) and cut into blocks of ``n / log2 M`` symbols, so block 0 is user 0 of instances
0, 1, 2, …, and a block sees as many independent channels as it has symbols. With mixed user counts
slot ``i`` exists only in instances with ``Nt_b > i``; the blocks run over the slots that exist. The
symbols left over at the end of a batch (fewer than a block) carry no code block and count only in the
uncoded rates. Inside a symbol, bits map most significant first (TS 38.211, as
:class:`~gnnmimo.constellation.QAM` and Sionna's ``Mapper``).

**Interleaving.** The encoder is built with ``num_bits_per_symbol = log2 M``, so its output is the
TS 38.212 §5.4.2.2 bit interleaver's (rows of ``log2 M`` bits per symbol), and the decoder undoes it.

**Scrambling.** TS 38.211 §7.3.1.1 scrambles the coded bits with a pseudo-random sequence before
modulation. Here the sequence of a block is ``s = b ⊕ c``, with ``c`` the (interleaved) codeword of
fresh uniform information bits ``u`` and ``b`` the bits of the symbols the sampler drew: as ``b`` is
uniform and independent of ``u``, ``s`` is a uniform scrambling sequence independent of the codeword,
exactly the 3GPP model, and the transmitted symbols are the sampler's, so every detector sees the
same instances as in the uncoded evaluation. The receiver descrambles the detector's bit LLRs
(``ℓ_c = (1 − 2s) ℓ_b``) and decodes ``ℓ_c``.

**LLRs.** :meth:`Detection.llr <gnnmimo.detector.Detection.llr>` gives ``ln P(b=1)/P(b=0)``, the sign
Sionna's decoder takes (its "logits"), checked in tests/test_link.py; the decoder clips its
messages at ``llr_max = 20``. Detectors whose logits are max-log or clipped say so in
:attr:`Detector.soft_output <gnnmimo.detector.Detector.soft_output>`, which the records carry.

**Eb/N0.** With the library's SNR (``E‖Hx‖²/E‖n‖²``, per receive antenna, all ``Nt`` users) and
unit-energy symbols, each user's energy per *information* bit relative to the noise per receive
antenna is ``Eb/N0 = SNR / (Nt · log2 M · k/n)`` (Sionna's ``ebnodb2no`` convention):
:func:`snr_db_of_ebno_db`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gnnmimo.constellation import QAM
from gnnmimo.graph import USER, MIMOGraph

#: the code families ``--code`` knows (``ldpc5g:k=…,n=…[,iterations=…]``)
CODES = ("ldpc5g",)


@dataclass(frozen=True)
class LDPC5GCode:
    """A 5G NR LDPC code ``(k, n)`` and its belief-propagation decoder's ``iterations``.

    Any pair Sionna's ``LDPC5GEncoder`` accepts (TS 38.212: ``k ≤ 8448``, rate ``k/n`` from
    about 1/5 to about 0.95); checked when a :class:`CodedLink` is built.
    """

    k: int
    n: int
    iterations: int = 20

    def __post_init__(self):
        for name in ("k", "n", "iterations"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"code option {name} must be a positive integer, got {value!r}")
        if self.k >= self.n:
            raise ValueError(f"code needs k < n, got k={self.k}, n={self.n}")

    @property
    def rate(self) -> float:
        return self.k / self.n

    @property
    def spec(self) -> str:
        return f"ldpc5g:k={self.k},n={self.n},iterations={self.iterations}"


def parse_code(spec: str) -> LDPC5GCode:
    """``"ldpc5g:k=512,n=1024"`` (optionally ``,iterations=20``) → :class:`LDPC5GCode`.

    Raises:
        ValueError: naming the family, a missing or unknown option, or a bad value.
    """
    family, _, rest = spec.partition(":")
    if family.strip() not in CODES:
        raise ValueError(f"unknown code {family.strip()!r} in {spec!r}; use one of {CODES}, e.g. ldpc5g:k=512,n=1024")
    options = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise ValueError(f"bad code option {item!r} in {spec!r}; expected key=integer")
        options[key.strip()] = int(value)
    unknown = set(options) - {"k", "n", "iterations"}
    if unknown or not {"k", "n"} <= set(options):
        raise ValueError(f"code {spec!r} needs k and n (and optionally iterations), got {sorted(options)}")
    return LDPC5GCode(**options)


def snr_db_of_ebno_db(ebno_db: float, nt: int, qam: QAM, rate: float) -> float:
    """The SNR (dB, the library's convention) of ``Eb/N0`` (dB) for ``Nt`` users (module doc)."""
    return ebno_db + 10 * math.log10(nt * qam.num_bits * rate)


@dataclass
class CodedCounts:
    """Decoded code blocks and their information bits, summed over batches with ``+``.

    ``bit_error_squares`` is ``Σ e_m²`` over blocks ``m`` (``e_m`` its bit errors), the statistic
    of the clustered interval of the coded BER (the bits of a block fail together)."""

    blocks: int = 0
    block_errors: int = 0
    bits: int = 0
    bit_errors: int = 0
    bit_error_squares: int = 0

    def __add__(self, other: "CodedCounts") -> "CodedCounts":
        return CodedCounts(*(a + b for a, b in zip(vars(self).values(), vars(other).values())))


@dataclass
class CodedResult:
    """The coded part of an evaluation record: the ``code`` (:attr:`LDPC5GCode.spec`), the
    detector's ``soft_output`` (:attr:`Detector.soft_output <gnnmimo.detector.Detector.soft_output>`),
    the coded (information) bit and block error rates with their 95 % intervals."""

    code: str
    soft_output: str
    coded_bits: int
    coded_bit_errors: int
    coded_ber: float
    coded_ber_ci_low: float
    coded_ber_ci_high: float
    blocks: int
    block_errors: int
    bler: float
    bler_ci_low: float
    bler_ci_high: float


class CodedLink:
    """Encode, lay out, descramble and decode 5G LDPC code blocks over a batch (module doc).

    Args:
        code: the code.
        qam: the constellation (``n`` must be a multiple of ``log2 M``).
        device: where Sionna encodes and decodes.

    Raises:
        ValueError: for a ``(k, n)`` pair Sionna refuses, or ``n`` not a multiple of ``log2 M``.
        ImportError: when Sionna (the ``sionna`` extra) is not installed.
    """

    def __init__(self, code: LDPC5GCode, qam: QAM | int, device: str | torch.device = "cpu"):
        try:
            from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
        except ImportError as error:
            raise ImportError("coded evaluation needs Sionna: pip install 'gnnmimo[sionna]'") from error
        self.code, self.qam = code, qam if isinstance(qam, QAM) else QAM(qam)
        if code.n % self.qam.num_bits:
            raise ValueError(f"code n={code.n} must be a multiple of log2 M = {self.qam.num_bits} "
                             f"({self.qam.order}-QAM): a block fills whole symbols")
        device = str(torch.device(device))
        try:
            self.encoder = LDPC5GEncoder(code.k, code.n, num_bits_per_symbol=self.qam.num_bits, device=device)
        except (ValueError, AssertionError) as error:
            raise ValueError(f"Sionna's 5G LDPC encoder refuses k={code.k}, n={code.n}: {error}") from None
        self.decoder = LDPC5GDecoder(self.encoder, num_iter=code.iterations, hard_out=True,
                                     return_infobits=True, device=device)
        self.symbols_per_block = code.n // self.qam.num_bits

    def block_users(self, graph: MIMOGraph) -> Tensor:
        """``[blocks, n / log2 M]`` user nodes of each code block, in transmission order (module doc)."""
        order = torch.argsort(graph.user_index * graph.num_instances + graph.user_batch)
        blocks = order.numel() // self.symbols_per_block
        return order[:blocks * self.symbols_per_block].view(blocks, self.symbols_per_block)

    def encode(self, info_bits: Tensor) -> Tensor:
        """``[blocks, k]`` information bits (0/1) → ``[blocks, n]`` interleaved codewords (float 0/1)."""
        return self.encoder(info_bits.float())

    def decode(self, llr: Tensor) -> Tensor:
        """``[blocks, n]`` codeword LLRs ``ln P(1)/P(0)`` → ``[blocks, k]`` decided information bits."""
        return self.decoder(llr.float())

    def count(self, graph: MIMOGraph, llr: Tensor, info_bits: Tensor) -> CodedCounts:
        """Decode the blocks of a labelled batch from the detector's bit LLRs.

        Args:
            graph: the batch (its labels are the transmitted symbols).
            llr: ``[N_u, log2 M]`` the detector's bit LLRs ``ln P(b=1)/P(b=0)``.
            info_bits: ``[blocks, k]`` the information bits of its blocks (:meth:`draw_info_bits`).
        """
        users = self.block_users(graph)
        if info_bits.shape != (users.shape[0], self.code.k):
            raise ValueError(f"info_bits must be [blocks={users.shape[0]}, k={self.code.k}], got "
                             f"{tuple(info_bits.shape)}")
        if not users.numel():
            return CodedCounts()
        sent = self.qam.bits_of(graph[USER].y[users]).reshape(users.shape[0], -1).float()
        scrambling = (sent - self.encode(info_bits).to(sent.device)).abs()          # b ⊕ c
        decided = self.decode(llr[users].reshape(users.shape[0], -1) * (1 - 2 * scrambling))
        bit_errors = (decided.to(info_bits.device) != info_bits).sum(-1)
        return CodedCounts(users.shape[0], int((bit_errors > 0).sum()), info_bits.numel(), int(bit_errors.sum()),
                           int(bit_errors.square().sum()))

    def draw_info_bits(self, graph: MIMOGraph, generator: torch.Generator) -> Tensor:
        """``[blocks, k]`` uniform information bits for the blocks of ``graph``, from ``generator``."""
        blocks = graph[USER].num_nodes // self.symbols_per_block
        return torch.randint(0, 2, (blocks, self.code.k), generator=generator, device=generator.device).float()
