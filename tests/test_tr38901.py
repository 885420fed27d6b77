"""3GPP TR 38.901 channels through Sionna as per-resource-element instances: normalisation, mixed
sizes, seeded draws, correlation inside a drop, the command line, and a coded run on UMi."""
import pytest
import torch

import zoo
from gnnmimo.checkpoint import read_checkpoint
from gnnmimo.cli import main as cli_main
from gnnmimo.sampling import MIMOSampler
from gnnmimo.tr38901 import LINK_LEVEL, TR38901Channel, channel_from_fields
from helpers import TINY_EVALUATE, sionna_module, with_option

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", autouse=True)
def sionna_channel():
    return sionna_module("channel")


def test_instances_have_the_library_normalisation_and_mixed_sizes():
    channel = TR38901Channel("umi", subcarriers=24, ofdm_symbols=14)
    num_antennas = torch.tensor([16, 8] * 400)
    num_users = torch.tensor([4, 2, 3, 1] * 200)
    H, seen, err_var = channel.sample(num_antennas, num_users, torch.Generator().manual_seed(0))
    assert seen is H and err_var is None and H.shape == (800, 16, 4)
    assert (H[1, 8:] == 0).all() and (H[1, :, 2:] == 0).all() and (H[0] != 0).all()
    energy = H.abs().square().sum(1)                                   # ‖h_i‖² per instance and user
    real = torch.arange(4) < num_users[:, None]
    assert energy[real].mean() == pytest.approx(1.0, abs=0.1)           # E|H_ai|² = 1/Nr_b


@pytest.mark.parametrize("kind", LINK_LEVEL)
def test_cdl_and_tdl_instances_have_the_layout_normalisation_and_seeding_of_umi(kind):
    channel = TR38901Channel(kind, subcarriers=24, delay_spread=300e-9, speed=10.0)
    num_antennas, num_users = torch.tensor([8, 4] * 336), torch.tensor([4, 2, 3, 1] * 168)
    H = channel.sample(num_antennas, num_users, torch.Generator().manual_seed(0))[0]
    assert H.shape == (672, 8, 4) and (H[1, 4:] == 0).all() and (H[1, :, 2:] == 0).all() and (H[0] != 0).all()
    real = torch.arange(4) < num_users[:, None]
    assert H.abs().square().sum(1)[real].mean() == pytest.approx(1.0, abs=0.15)   # E|H_ai|² = 1/Nr_b
    assert torch.equal(channel.sample(num_antennas, num_users, torch.Generator().manual_seed(0))[0], H)
    assert not torch.equal(channel.sample(num_antennas, num_users, torch.Generator().manual_seed(1))[0], H)


def test_tdl_lmmse_estimation_with_sionnas_closed_form_covariances_beats_ls():
    counts = torch.full((2 * 672,), 16), torch.full((2 * 672,), 4)
    noise_var = torch.full((2 * 672,), 4 / (16 * 10 ** 0.5))
    H, ls, _ = TR38901Channel("tdl-a", estimation="ls").sample(*counts, torch.Generator().manual_seed(6),
                                                               noise_var=noise_var)
    lmmse = TR38901Channel("tdl-a", estimation="lmmse").sample(*counts, torch.Generator().manual_seed(6),
                                                               noise_var=noise_var)[1]
    assert (lmmse - H).abs().square().mean() < 0.5 * (ls - H).abs().square().mean()


def test_seeded_draws_repeat_and_seeds_differ():
    channel = TR38901Channel("uma", speed=30.0)
    counts = torch.full((300,), 8), torch.full((300,), 3)
    first = channel.sample(*counts, torch.Generator().manual_seed(1))[0]
    assert torch.equal(channel.sample(*counts, torch.Generator().manual_seed(1))[0], first)
    assert not torch.equal(channel.sample(*counts, torch.Generator().manual_seed(2))[0], first)


def test_the_resource_elements_of_a_drop_are_correlated_in_frequency():
    channel = TR38901Channel("umi", subcarriers=48, ofdm_symbols=2)
    H = channel.sample(torch.full((96,), 8), torch.full((96,), 2), torch.Generator().manual_seed(3))[0]
    h = H[:48]                                                          # symbol 0 of drop 0, subcarrier-fastest
    adjacent = (h[1:] * h[:-1].conj()).sum().abs() / h[:-1].abs().square().sum()
    assert adjacent > 0.9                                                # 30 kHz apart: nearly the same channel
    iid = MIMOSampler(8, 2).sample(48, torch.Generator().manual_seed(3)).dense().H
    assert (iid[1:] * iid[:-1].conj()).sum().abs() / iid[:-1].abs().square().sum() < 0.3


def test_ls_estimates_from_pilots_err_by_the_noise_and_cost_the_detector():
    counts = torch.full((672,), 16), torch.full((672,), 4)
    errors = []
    for snr_db in (5.0, 15.0):
        noise_var = torch.full((672,), 4 / (16 * 10 ** (snr_db / 10)))
        H, H_hat, _ = TR38901Channel("umi", estimation="ls").sample(*counts, torch.Generator().manual_seed(4),
                                                                   noise_var=noise_var)
        assert torch.equal(H, TR38901Channel("umi").sample(*counts, torch.Generator().manual_seed(4))[0])
        errors.append(float((H_hat - H).abs().square().mean() / noise_var[0]))
    # LS at a pilot errs by σ²/|p|² per entry of H (|p|² = 4: each of 4 users on a quarter of the pilot
    # subcarriers); the linear interpolation between pilots averages some of it away; so does any SNR
    assert 0.1 < errors[0] < 0.25 and errors[1] == pytest.approx(errors[0], rel=0.3)
    sampler = MIMOSampler(16, 4, 16, snr_db=10.0, channel=TR38901Channel("umi", estimation="ls"))
    graph = sampler.sample(672, sampler.generator(0))
    perfect = MIMOSampler(16, 4, 16, snr_db=10.0, channel=TR38901Channel("umi")).sample(672, sampler.generator(0))
    ser = lambda g: float((zoo.create("mmse", 16).detect(g).hard != g["user"].y).float().mean())
    assert ser(graph) > 2 * ser(perfect)


def test_lmmse_estimation_errs_less_than_ls_on_the_same_pilots():
    counts = torch.full((4 * 672,), 16), torch.full((4 * 672,), 4)        # four drops
    noise_var = torch.full((4 * 672,), 4 / (16 * 10 ** 0.5))              # 5 dB
    H, ls, _ = TR38901Channel("umi", estimation="ls").sample(*counts, torch.Generator().manual_seed(5),
                                                             noise_var=noise_var)
    same, lmmse, err_var = TR38901Channel("umi", estimation="lmmse").sample(*counts, torch.Generator().manual_seed(5),
                                                                            noise_var=noise_var)
    assert torch.equal(H, same)
    mse = lambda estimate: float((estimate - H).abs().square().mean() * 16)   # relative to E|H_ai|² = 1/Nr
    # the filter uses the channel's correlation across 48 subcarriers and 14 symbols: far below LS
    assert mse(lmmse) < 0.5 * mse(ls)
    # the error variance Sionna's filter reports is that of the average channel statistics: the error
    # made on a few drops (each with its own delay spread) is within a factor of two of it
    assert err_var.shape == H.shape and 0.5 < float(err_var.mean()) * 16 / mse(lmmse) < 2


@pytest.mark.parametrize("options, message", [(dict(kind="cdl-f"), "unknown 3GPP scenario"),
                                              (dict(delay_spread=1e-7), "delay_spread applies to CDL and TDL only"),
                                              (dict(kind="tdl-a", delay_spread=0.0), "delay_spread must be"),
                                              (dict(estimation="mmse"), "unknown channel estimation"),
                                              (dict(estimation="ls", csi_error=0.1), "not both"),
                                              (dict(estimation="ls", pilot_symbols=(14,)), "pilot_symbols must be"),
                                              (dict(speed=-1.0), "speed must be"),
                                              (dict(subcarriers=0), "subcarriers must be a positive integer"),
                                              (dict(carrier_frequency=0.0), "carrier_frequency must be > 0")])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        TR38901Channel(**options)


def test_the_command_line_evaluates_coded_umi_and_checks_its_options(capsys):
    argv = with_option(with_option(TINY_EVALUATE, "--nr", "8"), "--snr", "10")
    assert cli_main(argv + ["--channel", "umi", "--speed", "10", "--code", "ldpc5g:k=128,n=256",
                            "--channel-estimation", "ls"]) == 0
    assert "umi(3.5GHz,10m/s)+ls" in capsys.readouterr().out
    assert cli_main(argv + ["--channel", "tdl-b", "--delay-spread", "300e-9", "--channel-estimation", "lmmse"]) == 0
    assert "tdl-b(3.5GHz,3m/s,300ns)+lmmse" in capsys.readouterr().out
    for extra, message in [(["--channel", "umi", "--rho", "0.5"], "--rho does not apply to the 3GPP channel umi"),
                           (["--speed", "3"], "--speed only applies to the 3GPP channels"),
                           (["--channel-estimation", "ls"], "--channel-estimation only applies to the 3GPP"),
                           (["--channel", "rma", "--carrier-frequency", "0"], "carrier_frequency must be > 0"),
                           (["--delay-spread", "1e-7"], "--delay-spread only applies to the 3GPP")]:
        with pytest.raises(SystemExit, match=message):
            cli_main(argv + extra)


def test_training_on_umi_stores_the_channel_and_resumes_only_on_it(tmp_path):
    out = tmp_path / "umi.pt"
    common = ["train", "--detector", "oampnet", "--nr", "4", "--nt", "2", "--qam", "4", "--snr", "5:15", "--eval-every",
              "2", "--batch-size", "16", "--val-size", "16", "--channel", "umi", "--channel-estimation", "ls",
              "--out", str(out), "--no-progress"]
    assert cli_main(common + ["--steps", "2"]) == 0
    channel = read_checkpoint(out)["system"]["channel"]
    assert channel_from_fields(channel) == TR38901Channel("umi", estimation="ls")
    assert cli_main(common + ["--steps", "3", "--resume"]) == 0 and read_checkpoint(out)["state"]["step"] == 3
    with pytest.raises(SystemExit, match="speed"):
        cli_main(common + ["--steps", "4", "--resume", "--speed", "30"])
