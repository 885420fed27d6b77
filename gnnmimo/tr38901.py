r"""3GPP TR 38.901 channels (UMi, UMa, RMa, CDL, TDL) through Sionna, cut into flat-fading MIMO instances.

Sionna's system-level models (``sionna.phy.channel.tr38901``) draw, per *drop*, a single-sector
topology (``gen_single_sector_topology``: ``Nt`` single-antenna users placed at random in the cell,
all moving at ``speed``), its large-scale parameters (delay and angle spreads, LoS state, K-factor)
and the clusters and rays; ``cir_to_ofdm_channel`` turns them into the uplink frequency response on
an OFDM grid of ``ofdm_symbols × subcarriers`` resource elements (subcarrier spacing
``subcarrier_spacing``, one OFDM symbol lasting ``1/subcarrier_spacing``: the cyclic prefix is
left out). The base station has a uniform linear array of ``Nr`` vertically polarised 38.901
elements at half-wavelength spacing.

The link-level models ``cdl-a`` … ``cdl-e`` and ``tdl-a`` … ``tdl-e`` (Sionna's ``CDL`` and
``TDL``) have no topology: their power-delay profile is the model's, scaled to ``delay_spread``
(default 100 ns), and every user moves at ``speed``. With **CDL** every user is an independent
draw of the model (its own random ray phases and couplings; the cluster delays and angles are the
model's, so users are spatially alike: a hard multi-user channel), through a single omni antenna to
the same base-station array as above. With **TDL** the ``Nr × Nt`` antenna pairs fade independently
(no spatial correlation), each with the model's power-delay profile. A *drop* of these models is
one such draw of all users over the grid. In the LoS models (D, E) the dominant path is the same
for every user (CDL: the model's arrival angle; TDL: one LoS coefficient for all antenna pairs), so
``HᴴH`` is close to rank one and no detector separates the users well there.

**One resource element = one instance** ``y = H x + n`` with ``H ∈ C^{Nr × Nt}``. The instances of
a batch are the resource elements of consecutive drops, subcarrier-fastest inside each OFDM
symbol (instance ``d·T·F + t·F + f`` is subcarrier ``f`` of symbol ``t`` of drop ``d``); so the
instances of one drop share their large-scale parameters and are correlated in frequency and time,
while drops are independent. A code block of :mod:`gnnmimo.link` (one user slot over consecutive
instances) therefore runs across the subcarriers of a few OFDM symbols, as a 5G transport block.

**Normalisation.** Path loss and shadow fading are off (every user arrives with the same average
power: ideal uplink power control) and Sionna normalises each user's response to unit energy per
resource element and antenna, averaged over the grid; we scale by ``1/√Nr_b`` so that
``E|H_ai|² = 1/Nr`` as for the other channels, and the SNR keeps its meaning
(docs/conventions.md §3).

**Mixed sizes.** Every drop is drawn with ``Nt_max`` users and ``Nr_max`` antennas; an instance with
fewer keeps the first ``Nt_b`` users and ``Nr_b`` antennas (the others are dropped, zero-padded).

**Channel estimation** (``estimation="ls"`` or ``"lmmse"``). Every user sends orthogonal pilots on
OFDM symbols ``pilot_symbols`` (Sionna's ``KroneckerPilotPattern``: user ``j`` on every ``Nt``-th
subcarrier of them), received through the drop's channel with the instances' noise
(``ApplyOFDMChannel``); the detectors see the estimate ``Ĥ`` at every resource element (the pilots'
resource elements are counted as data instances too: the pilot overhead is not modelled).

* ``"ls"``: Sionna's ``LSChannelEstimator`` estimates the channel at the pilots (``y_p p*/|p|²``)
  and interpolates it linearly over the grid.
* ``"lmmse"``: Sionna's ``LMMSEChannelEstimator`` filters the pilot estimates across subcarriers,
  then across OFDM symbols (``order="f-t"``), with the channel's frequency and time covariance
  matrices ``R_f [F, F]`` and ``R_t [T, T]`` (a separable model ``R = R_t ⊗ R_f``). As Sionna's
  tutorials do for the system-level models, they are estimated from the model's own channels:
  ``R_f = E[h_f h_fᴴ]`` over the subcarrier vectors and ``R_t = E[h_t h_tᴴ]`` over the OFDM-symbol
  vectors of :data:`COVARIANCE_DROPS` drops of unit-energy responses drawn with a fixed seed
  (computed once per configuration and array size: :func:`_covariances`); for TDL, whose
  covariances have closed forms, Sionna's ``tdl_freq_cov_mat`` and ``tdl_time_cov_mat``. The
  noise the filter assumes is the drop's mean σ² (the instances of a drop may have different SNRs).

Both estimators report the error variance ``E|H_ai − Ĥ_ai|²`` of every entry (LS: ``σ²/|p|²`` at
the pilots, interpolated; LMMSE: the diagonal of the filtered error covariance); the batch carries
it (``err_var``, scaled as ``H``) and the detectors that can use it fold it into their noise
(docs/conventions.md §2.4).

**Reproducibility.** Sionna draws from its own global generators (and partly from NumPy's global
one); each call seeds them (``sionna.phy.config.seed``, NumPy's restored afterwards) from the
caller's stream, so a seeded sampler gives the same channels.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gnnmimo.channels import ChannelModel, block_mask, with_estimation_error

#: the system-level scenarios (a topology per drop) and the link-level models (a power-delay profile)
SYSTEM_LEVEL = ("umi", "uma", "rma")
LINK_LEVEL = tuple(f"{family}-{letter}" for family in ("cdl", "tdl") for letter in "abcde")
SCENARIOS = SYSTEM_LEVEL + LINK_LEVEL
#: the delay spread of CDL and TDL when none is given, s (TR 38.901 Table 7.7.3-1: "nominal")
DEFAULT_DELAY_SPREAD = 100e-9
#: the channel estimators (``None``: the detector sees the channel, up to ``csi_error``)
ESTIMATORS = (None, "ls", "lmmse")
#: drops whose responses estimate the covariance matrices of LMMSE channel estimation (module doc)
COVARIANCE_DROPS = 64


@dataclass(frozen=True)
class TR38901Channel:
    """A TR 38.901 scenario as a random channel law of per-resource-element instances (module doc).

    Used like :class:`~gnnmimo.channels.ChannelModel` (``MIMOSampler(..., channel=TR38901Channel("umi"))``).

    Args:
        kind: ``"umi"``, ``"uma"``, ``"rma"``, ``"cdl-a"`` … ``"cdl-e"`` or ``"tdl-a"`` … ``"tdl-e"``.
        carrier_frequency: Hz (default 3.5 GHz).
        speed: every user's speed, m/s (default 3, pedestrian).
        subcarriers, ofdm_symbols: the grid of one drop (default 48 × 14: four PRBs, one slot).
        subcarrier_spacing: Hz (default 30 kHz).
        csi_error: ``ε²``, an additive estimation error (as :class:`ChannelModel`'s).
        estimation: ``None`` (the detector sees ``H``, up to ``csi_error``), ``"ls"`` or ``"lmmse"``
            (pilots and Sionna's LS or LMMSE estimator, module doc).
        pilot_symbols: the OFDM symbols carrying pilots (default 2 and 11).
        delay_spread: CDL and TDL: the delay spread the profile is scaled to, s (default
            :data:`DEFAULT_DELAY_SPREAD`); the system-level scenarios draw their own.
    """

    kind: str = "umi"
    carrier_frequency: float = 3.5e9
    speed: float = 3.0
    subcarriers: int = 48
    ofdm_symbols: int = 14
    subcarrier_spacing: float = 30e3
    csi_error: float = 0.0
    estimation: str | None = None
    pilot_symbols: tuple[int, ...] = (2, 11)
    delay_spread: float | None = None

    def __post_init__(self):
        if self.kind not in SCENARIOS:
            raise ValueError(f"unknown 3GPP scenario {self.kind!r}; use one of {SCENARIOS}")
        if self.kind in SYSTEM_LEVEL and self.delay_spread is not None:
            raise ValueError(f"delay_spread applies to CDL and TDL only ({self.kind} draws its own)")
        if self.kind in LINK_LEVEL:
            spread = DEFAULT_DELAY_SPREAD if self.delay_spread is None else self.delay_spread
            if not 0 < spread < math.inf:
                raise ValueError(f"delay_spread must be a finite number > 0 (s), got {spread}")
            object.__setattr__(self, "delay_spread", float(spread))
        for name in ("carrier_frequency", "subcarrier_spacing"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.speed < math.inf:
            raise ValueError(f"speed must be a finite number >= 0 (m/s), got {self.speed}")
        for name in ("subcarriers", "ofdm_symbols"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0.0 <= self.csi_error < math.inf:
            raise ValueError(f"csi_error (ε²) must be a finite number >= 0, got {self.csi_error}")
        if self.estimation not in ESTIMATORS:
            raise ValueError(f"unknown channel estimation {self.estimation!r}; use one of {ESTIMATORS}")
        if self.estimation and self.csi_error:
            raise ValueError("give either estimation (pilots) or csi_error (an additive error), not both")
        if self.estimation and (not self.pilot_symbols
                                or any(not 0 <= t < self.ofdm_symbols for t in self.pilot_symbols)):
            raise ValueError(f"pilot_symbols must be OFDM symbols in [0, {self.ofdm_symbols}), got {self.pilot_symbols}")

    @property
    def rho_range(self) -> tuple[float, float]:
        """No Kronecker correlation (the spatial correlation is the scenario's)."""
        return 0.0, 0.0

    @property
    def instances_per_drop(self) -> int:
        return self.subcarriers * self.ofdm_symbols

    def describe(self) -> str:
        """A short label such as ``umi(3.5GHz,3m/s)``."""
        spread = f",{self.delay_spread * 1e9:g}ns" if self.delay_spread is not None else ""
        label = f"{self.kind}({self.carrier_frequency / 1e9:g}GHz,{self.speed:g}m/s{spread})"
        return label + (f"+csi({self.csi_error:g})" if self.csi_error else "") + (
            f"+{self.estimation}" if self.estimation else "")

    def sample(self, num_antennas: Tensor, num_users: Tensor, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.complex64,
               noise_var: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """Draw true and estimated channels and the estimate's error variance, ``(H, H_hat,
        err_var)``, each ``[B, Nr_max, Nt_max]`` (as :meth:`ChannelModel.sample
        <gnnmimo.channels.ChannelModel.sample>`; ``err_var`` ``[B, 1, 1]`` with ``csi_error``, ``None``
        for perfect CSI); ``noise_var [B]``, the instances' σ², is needed with ``estimation``."""
        device = num_users.device
        batch, nr_max, nt_max = len(num_users), int(num_antennas.max()), int(num_users.max())
        seed = int(torch.randint(2 ** 31, (), generator=generator, device=device))
        grid = self.responses(-(-batch // self.instances_per_drop), nr_max, nt_max, seed, str(device))
        scale = num_antennas.to(grid.real.dtype).rsqrt()[:, None, None]
        mask = block_mask(num_antennas, num_users, nr_max, nt_max)

        def instances(grid: Tensor, power: int = 1) -> Tensor:
            """``[D, 1, Nr, Nt, 1, T, F]`` → ``[B, Nr, Nt]`` (module doc), scaled by ``scale^power``
            and masked."""
            h = grid[:, 0, :, :, 0].permute(0, 3, 4, 1, 2).reshape(-1, nr_max, nt_max)[:batch]
            return h.to(dtype if h.is_complex() else dtype.to_real()) * scale.to(h.real.dtype) ** power * mask

        h = instances(grid)
        if self.estimation is None:
            return (h, *with_estimation_error(h, scale, mask, self.csi_error, generator))
        if noise_var is None:
            raise ValueError("TR38901Channel with estimation needs the instances' noise_var")
        estimate, err_var = self._estimate(grid, noise_var * num_antennas, nt_max, str(device))
        return h, instances(estimate), instances(err_var.clamp(min=0), power=2)

    def responses(self, drops: int, antennas: int, users: int, seed: int, device: str) -> Tensor:
        """Sionna's unit-energy uplink frequency responses of ``drops`` drops with ``antennas``
        base-station antennas and ``users`` users, ``[D, 1, Nr, Nt, 1, T, F]`` (module doc), drawn from
        Sionna's generators seeded with ``seed``."""
        import sionna.phy
        from sionna.phy.channel import cir_to_ofdm_channel, gen_single_sector_topology, subcarrier_frequencies

        family, letter = self.kind.partition("-")[::2]
        model = (_scenario(self.kind, self.carrier_frequency, antennas, device) if family in SYSTEM_LEVEL else
                 _link_model(family, letter.upper(), self.delay_spread, self.carrier_frequency, self.speed, antennas,
                             users, device))                         # before seeding: building may draw
        frequencies = subcarrier_frequencies(self.subcarriers, self.subcarrier_spacing, device=device)
        with _numpy_seeded(seed):
            sionna.phy.config.seed = seed
            if family == "cdl":   # one draw per user, its single antenna as the transmitter
                a, tau = model(drops * users, self.ofdm_symbols, self.subcarrier_spacing)
                grid = cir_to_ofdm_channel(frequencies, a, tau, normalize=True)      # [D·U, 1, Nr, 1, 1, T, F]
                return grid.unflatten(0, (drops, users))[:, :, :, :, 0].permute(0, 2, 3, 1, 4, 5, 6)
            if family == "tdl":   # the users as the transmitter's antennas
                a, tau = model(drops, self.ofdm_symbols, self.subcarrier_spacing)
                grid = cir_to_ofdm_channel(frequencies, a, tau, normalize=True)      # [D, 1, Nr, 1, U, T, F]
                return grid.transpose(3, 4)
            model.reset_topology()  # a new drop count or user count (and a fresh state every call)
            model.set_topology(*gen_single_sector_topology(drops, users, self.kind, min_ut_velocity=self.speed,
                                                           max_ut_velocity=self.speed, device=device))
            a, tau = model(self.ofdm_symbols, self.subcarrier_spacing)
        return cir_to_ofdm_channel(frequencies, a, tau, normalize=True)

    def _estimate(self, grid: Tensor, noise_var: Tensor, users: int, device: str) -> tuple[Tensor, Tensor]:
        """Sionna's LS or LMMSE estimate (:attr:`estimation`) of the unit-energy response
        ``grid [D, 1, Nr, Nt, 1, T, F]`` from pilots received with noise ``noise_var [B]`` per instance
        (on that scale: ``σ² Nr_b``), and its error variance, both shaped as ``grid``."""
        from sionna.phy.channel import ApplyOFDMChannel
        from sionna.phy.ofdm import LMMSEChannelEstimator, LSChannelEstimator, ResourceGridMapper

        if self.subcarriers % users:
            raise ValueError(f"orthogonal pilots for {users} users need a multiple of {users} subcarriers, "
                             f"got {self.subcarriers}")
        resource_grid = _resource_grid(self.ofdm_symbols, self.subcarriers, self.subcarrier_spacing, users,
                                       self.pilot_symbols, device)
        drops = grid.shape[0]
        no = torch.nn.functional.pad(noise_var, (0, drops * self.instances_per_drop - noise_var.numel()),
                                     value=float(noise_var[-1]))
        no = no.to(grid.real.dtype).view(drops, 1, 1, self.ofdm_symbols, self.subcarriers)
        silent = torch.zeros(drops, users, 1, resource_grid.num_data_symbols, dtype=grid.dtype, device=grid.device)
        received = ApplyOFDMChannel(add_awgn=True, device=device)(ResourceGridMapper(resource_grid, device=device)(silent),
                                                                  grid, no)
        if self.estimation == "ls":
            estimator = LSChannelEstimator(resource_grid, interpolation_type="lin", device=device)
        else:
            time, frequency = _covariances(self, grid.shape[2], users, device)
            estimator = LMMSEChannelEstimator(resource_grid, time.to(grid.dtype), frequency.to(grid.dtype),
                                              order="f-t", device=device)
        return estimator(received, no.mean((-2, -1)))


@functools.lru_cache(maxsize=8)
def _covariances(channel: TR38901Channel, antennas: int, users: int, device: str) -> tuple[Tensor, Tensor]:
    """The time and frequency covariance matrices ``(R_t [T, T], R_f [F, F])`` of ``channel``'s
    unit-energy responses, estimated from :data:`COVARIANCE_DROPS` drops of a fixed seed (module doc):
    ``R[u, v] = E[h_u h_v*]`` averaged over drops, antennas, users and the other grid axis; TDL's
    from Sionna's closed forms."""
    if channel.kind.startswith("tdl"):
        from sionna.phy.ofdm import tdl_freq_cov_mat, tdl_time_cov_mat

        letter = channel.kind[-1].upper()
        return (tdl_time_cov_mat(letter, channel.speed, channel.carrier_frequency, 1 / channel.subcarrier_spacing,
                                 channel.ofdm_symbols, device=device),
                tdl_freq_cov_mat(letter, channel.subcarrier_spacing, channel.subcarriers, channel.delay_spread,
                                 device=device))
    grid = channel.responses(COVARIANCE_DROPS, antennas, users, seed=2 ** 31 - 1, device=device)[:, 0, :, :, 0]
    over_time = grid.transpose(-1, -2).reshape(-1, channel.ofdm_symbols)        # [D·Nr·Nt·F, T]
    over_frequency = grid.reshape(-1, channel.subcarriers)                       # [D·Nr·Nt·T, F]
    return tuple(x.T @ x.conj() / x.shape[0] for x in (over_time, over_frequency))


def channel_fields(channel: ChannelModel | TR38901Channel) -> dict:
    """A channel law as the plain dict that training configurations and checkpoints store (tuples as
    lists); :func:`channel_from_fields` rebuilds it."""
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(channel).items()}


def channel_from_fields(fields: dict) -> ChannelModel | TR38901Channel:
    """The channel law stored as ``fields`` (:func:`channel_fields`): a :class:`TR38901Channel` when
    ``fields["kind"]`` is a 3GPP scenario, else a :class:`~gnnmimo.channels.ChannelModel`."""
    law = TR38901Channel if fields.get("kind") in SCENARIOS else ChannelModel
    return law(**{key: tuple(value) if isinstance(value, list) else value for key, value in fields.items()})


@contextlib.contextmanager
def _numpy_seeded(seed: int):
    """NumPy's global stream seeded with ``seed`` inside the block (part of Sionna's 38.901 models draws
    from it), and restored after it, so the caller's NumPy stream is left as it was."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


@functools.lru_cache(maxsize=8)
def _resource_grid(ofdm_symbols: int, subcarriers: int, spacing: float, users: int, pilot_symbols: tuple[int, ...],
                   device: str):
    """Sionna's resource grid with Kronecker (orthogonal) pilots of ``users`` on ``pilot_symbols``."""
    from sionna.phy.ofdm import ResourceGrid

    return ResourceGrid(num_ofdm_symbols=ofdm_symbols, fft_size=subcarriers, subcarrier_spacing=spacing,
                        num_tx=users, num_streams_per_tx=1, pilot_pattern="kronecker",
                        pilot_ofdm_symbol_indices=list(pilot_symbols), device=device)


@functools.lru_cache(maxsize=8)
def _link_model(family: str, letter: str, delay_spread: float, carrier_frequency: float, speed: float,
                antennas: int, users: int, device: str):
    """Sionna's uplink CDL (single-antenna user, ``antennas`` at the base station: module doc) or TDL
    (``users`` transmit and ``antennas`` receive antennas) model ``letter``."""
    from sionna.phy.channel.tr38901 import CDL, TDL

    if family == "tdl":
        return TDL(letter, delay_spread, carrier_frequency, min_speed=speed, max_speed=speed, num_rx_ant=antennas,
                   num_tx_ant=users, device=device)
    bs, ut = _arrays(carrier_frequency, antennas, device)
    return CDL(letter, delay_spread, carrier_frequency, ut_array=ut, bs_array=bs, direction="uplink",
               min_speed=speed, max_speed=speed, device=device)


def _arrays(carrier_frequency: float, antennas: int, device: str):
    """The base station's ULA of ``antennas`` vertically polarised 38.901 elements and the user's
    single omni antenna (module doc)."""
    from sionna.phy.channel.tr38901 import PanelArray

    bs = PanelArray(num_rows_per_panel=1, num_cols_per_panel=antennas, polarization="single", polarization_type="V",
                    antenna_pattern="38.901", carrier_frequency=carrier_frequency, device=device)
    ut = PanelArray(num_rows_per_panel=1, num_cols_per_panel=1, polarization="single", polarization_type="V",
                    antenna_pattern="omni", carrier_frequency=carrier_frequency, device=device)
    return bs, ut


@functools.lru_cache(maxsize=8)
def _scenario(kind: str, carrier_frequency: float, antennas: int, device: str):
    """Sionna's uplink model of ``kind`` with ``antennas`` at the base station (built once per size)."""
    from sionna.phy.channel.tr38901 import RMa, UMa, UMi

    bs, ut = _arrays(carrier_frequency, antennas, device)
    options = dict(carrier_frequency=carrier_frequency, ut_array=ut, bs_array=bs, direction="uplink",
                   enable_pathloss=False, enable_shadow_fading=False, device=device)
    return RMa(**options) if kind == "rma" else {"umi": UMi, "uma": UMa}[kind](o2i_model="low", **options)
