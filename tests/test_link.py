"""Coded link simulation with Sionna's 5G LDPC code: the code spec, the block layout, a tiny coded
evaluation end to end, and the oracle: on identical bits, channels and noise, our pipeline with LMMSE
decodes like Sionna's own LinearDetector + LDPC5GDecoder chain."""
import itertools
import math

import pytest
import torch

import zoo
from gnnmimo.batch_sources import SampledBatches
from gnnmimo.cli import main as cli_main
from gnnmimo.evaluation import PointResult, clustered_interval, evaluate
from gnnmimo.graph import MIMOGraph
from gnnmimo.instances import InstanceSet
from gnnmimo.link import CodedLink, LDPC5GCode, parse_code, snr_db_of_ebno_db
from gnnmimo.constellation import QAM
from gnnmimo.sampling import MIMOSampler
from gnnmimo.report import load_json
from helpers import TINY_EVALUATE, sample_batch, sionna_module

pytestmark = pytest.mark.usefixtures("one_thread")

CODE = LDPC5GCode(k=128, n=256, iterations=20)


@pytest.fixture(scope="module")
def sionna_ldpc():
    return sionna_module("fec.ldpc")


def test_the_code_spec_is_parsed_and_checked():
    assert parse_code("ldpc5g:k=512,n=1024") == LDPC5GCode(512, 1024, 20)
    assert parse_code("ldpc5g:k=512,n=1024,iterations=8").spec == "ldpc5g:k=512,n=1024,iterations=8"
    for spec, message in [("turbo:k=1,n=2", "unknown code 'turbo'"), ("ldpc5g:k=512", "needs k and n"),
                          ("ldpc5g:k=512,n=1024,rate=2", "needs k and n"), ("ldpc5g:k=a,n=1024", "bad code option"),
                          ("ldpc5g:k=1024,n=512", "needs k < n"), ("ldpc5g:k=0,n=512", "k must be a positive")]:
        with pytest.raises(ValueError, match=message):
            parse_code(spec)


def test_a_pair_sionna_refuses_is_a_clear_error(sionna_ldpc):
    with pytest.raises(ValueError, match=r"n=1022 must be a multiple of log2 M = 4"):
        CodedLink(LDPC5GCode(512, 1022), 16)
    with pytest.raises(ValueError, match="Sionna's 5G LDPC encoder refuses k=9000"):
        CodedLink(LDPC5GCode(9000, 18000), 16)


def test_a_block_is_one_user_slot_over_consecutive_instances(sionna_ldpc):
    link = CodedLink(LDPC5GCode(16, 32), 4)                               # 16 symbols per block
    graph = sample_batch(nr=4, nt=(1, 3), qam=4, size=40, seed=0)
    users = link.block_users(graph)
    assert users.shape == (graph["user"].num_nodes // 16, 16) and users.unique().numel() == users.numel()
    slot, instance = graph.user_index[users], graph.user_batch[users]
    order = slot * graph.num_instances + instance
    assert (order.flatten().diff() > 0).all()                               # slot-major, instances ascending
    assert users.numel() > graph["user"].num_nodes - 16                      # only a partial block is left over


def test_snr_of_ebno_counts_users_bits_and_rate():
    assert snr_db_of_ebno_db(2.0, 4, QAM(16), 0.5) == pytest.approx(2.0 + 10 * math.log10(8))


def test_a_tiny_coded_evaluation_runs_end_to_end(sionna_ldpc):
    detectors = {"mmse": zoo.create("mmse", 16), "kbest": zoo.create("kbest", 16, k=8)}
    records = evaluate(detectors, MIMOSampler(nr=8, nt=4, qam=16), [4], [-8.0, 0.0], target_errors=10 ** 9,
                       max_symbols=4096, batch_size=512, code=CODE, target_block_errors=10, ebno=True,
                       progress=False)
    by_point = {(r.detector, r.ebno_db): r for r in records}
    low, high = by_point["mmse", -8.0].coded, by_point["mmse", 0.0].coded
    assert low.blocks >= 10 and low.block_errors >= 10 and low.bler > 0.5     # stopped on block errors
    assert high.block_errors == 0 and high.blocks == 4096 // 64               # 64 symbols per block
    assert high.coded_bits == high.blocks * CODE.k and high.bler_ci_high < 0.1
    assert by_point["mmse", 0.0].snr_db == pytest.approx(snr_db_of_ebno_db(0.0, 4, QAM(16), 0.5))
    assert by_point["kbest", 0.0].coded.soft_output.startswith("max-log") and high.soft_output == "app"
    assert records[0].provenance["code"] == CODE.spec
    assert PointResult(**records[0].to_dict()) == records[0]                  # the JSON form reads back


def test_lmmse_decodes_like_sionnas_linear_detector_and_ldpc_chain(sionna_ldpc):
    """Identical information bits, codewords, symbols, channels and noise through both chains."""
    mimo, mapping = sionna_module("mimo"), sionna_module("mapping")
    qam, nr, nt, batch, ebno_db = QAM(16), 8, 4, 1024, -4.0
    link = CodedLink(CODE, qam)
    generator = torch.Generator().manual_seed(0)
    shape = (batch, nr, nt)
    H = torch.complex(torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)) / math.sqrt(2 * nr)
    noise_var = nt / (nr * 10 ** (snr_db_of_ebno_db(ebno_db, nt, qam, CODE.rate) / 10))
    users = link.block_users(MIMOGraph.from_dense(torch.zeros(batch, nr, dtype=H.dtype), H, noise_var))
    info_bits = torch.randint(0, 2, (users.shape[0], CODE.k), generator=generator).float()
    # Sionna's chain: encode, map, (our channel), LinearDetector → bit LLRs, decode
    symbols = mapping.Mapper("qam", qam.num_bits)(link.encode(info_bits))      # [blocks, n/4]
    x = torch.zeros(batch * nt, dtype=H.dtype)
    x[users.flatten()] = symbols.flatten()                                  # user node b·Nt + i
    x = x.view(batch, nt)
    noise = torch.complex(torch.randn(batch, nr, generator=generator), torch.randn(batch, nr, generator=generator))
    y = (H @ x[..., None])[..., 0] + noise * math.sqrt(noise_var / 2)
    s = noise_var * torch.eye(nr, dtype=H.dtype).expand(batch, nr, nr)
    theirs_llr = mimo.LinearDetector("lmmse", "bit", "app", constellation_type="qam",
                                     num_bits_per_symbol=qam.num_bits)(y, H, s)   # [B, Nt, 4]
    theirs = link.decode(theirs_llr.reshape(batch * nt, -1)[users].reshape(users.shape[0], -1)) != info_bits
    # ours: the same instances as a graph, labelled with the transmitted symbols
    label = (x[..., None] - qam.points_as(x)).abs().argmin(-1)
    graph = MIMOGraph.from_dense(y, H, noise_var, label=label, qam=16)
    ours = link.count(graph, zoo.create("mmse", 16).detect(graph).llr(), info_bits)
    their_block_errors = int(theirs.any(-1).sum())
    assert 0.1 < their_block_errors / users.shape[0] < 0.9                  # a point on the waterfall
    low, high = clustered_interval(int(theirs.sum()), theirs.numel(), users.shape[0], int(theirs.sum(-1).square().sum()))
    assert low <= ours.bit_errors / ours.bits <= high, (ours, int(theirs.sum()))
    assert abs(ours.block_errors - their_block_errors) <= 2, (ours.block_errors, their_block_errors)


def test_the_command_line_runs_a_coded_evaluation_and_checks_its_arguments(sionna_ldpc, tmp_path, capsys):
    argv = TINY_EVALUATE + ["--code", "ldpc5g:k=128,n=256", "--target-block-errors", "2", "--json",
                            str(tmp_path / "coded.json")]
    assert cli_main(argv) == 0
    assert "| mmse | 4 | 2 | 4 | iid | 5 |  | ldpc5g:k=128,n=256,iterations=20 |" in capsys.readouterr().out
    records = load_json(tmp_path / "coded.json")
    assert all(r.coded.blocks >= 1 and r.coded.code == "ldpc5g:k=128,n=256,iterations=20" for r in records)
    ebno = [a for a in TINY_EVALUATE if a != "--snr" and a != "0,5"] + ["--ebno", "2", "--code", "ldpc5g:k=128,n=256"]
    assert cli_main(ebno) == 0
    for extra, message in [(["--ebno", "2"], "exactly one of --snr and --ebno"),
                           (["--target-block-errors", "3"], "--target-block-errors needs --code")]:
        with pytest.raises(SystemExit, match=message):
            cli_main(TINY_EVALUATE + extra)
    with pytest.raises(SystemExit):
        cli_main(TINY_EVALUATE + ["--code", "ldpc5g:k=128"])
    assert "needs k and n" in capsys.readouterr().err


def test_stored_instances_of_a_sampled_stream_decode_like_the_stream(sionna_ldpc):
    """The coded link on ``evaluate(InstanceSet)`` of a sampled point's first batches counts the
    block errors of the sampled run (same symbols, same information bits), and Eb/N0 is refused."""
    sampler, snr = MIMOSampler(nr=4, nt=2, qam=16), 2.0
    stream = SampledBatches(sampler, seed=3)
    stored = InstanceSet.from_graphs(list(itertools.islice(stream.batches(2, snr, 256), 4)), channel=sampler.channel)
    run = dict(target_errors=10 ** 9, max_symbols=4 * 256 * 2, batch_size=256, seed=3, code=CODE, progress=False)
    detectors = {"mmse": zoo.create("mmse", 16)}
    sampled, = evaluate(detectors, sampler, [2], [snr], **run)
    from_file, = evaluate(detectors, stored, **run)
    assert sampled.coded.blocks == from_file.coded.blocks > 0
    assert sampled.coded.block_errors == from_file.coded.block_errors > 0
    assert from_file.provenance["code"] == CODE.spec and "sha256" in from_file.provenance["data"]
    with pytest.raises(ValueError, match="ebno=True needs a sampler"):
        evaluate(detectors, stored, **run, ebno=True)
