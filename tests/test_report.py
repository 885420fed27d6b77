"""Evaluation reports: SNR-at-SER interpolation, tables, JSON round trip, CLI end to end."""
import json

import pytest
import torch
from scipy.stats import ttest_1samp

from gnnmimo.cli import main
from gnnmimo.evaluation import PointResult, clopper_pearson, clustered_interval, paired_comparison
from gnnmimo.report import load_json, markdown_table, paired_table, save_json, snr_at_ser, snr_at_ser_table


def point(snr, ser, detector="mmse", nt=4):
    symbols = 10_000
    errors = round(ser * symbols)
    low, high = clopper_pearson(errors, symbols)
    return PointResult(detector, 8, nt, 16, "iid", snr, symbols, errors, errors / symbols, low, high,
                       4 * symbols, errors, errors / symbols / 4, 0.0, 1.0, 0.1)


def test_snr_at_ser_interpolates_in_log_domain():
    curve = [point(10.0, 1e-1), point(12.0, 1e-3), point(8.0, 0.3)]
    assert snr_at_ser(curve, 1e-2) == pytest.approx(11.0)
    assert snr_at_ser(curve, 1e-4) is None  # never reached


def test_clopper_pearson_brackets_the_rate():
    low, high = clopper_pearson(50, 1000)
    assert low < 0.05 < high and clopper_pearson(0, 100)[0] == 0.0


def test_clustered_interval_widens_with_error_bursts():
    # 100 errors in 1250 instances of 8 symbols: isolated errors give the binomial interval …
    assert clustered_interval(100, 10_000, 1250, 100) == clopper_pearson(100, 10_000)
    # … bursts of 4 (25 instances with 4 errors each) quadruple the variance: about twice as wide
    binomial_low, binomial_high = clopper_pearson(100, 10_000)
    low, high = clustered_interval(100, 10_000, 1250, 25 * 4 ** 2)
    assert low < 0.01 < high
    assert (high - low) / (binomial_high - binomial_low) == pytest.approx(2.0, rel=0.1)
    assert clustered_interval(0, 10_000, 1250, 0) == clopper_pearson(0, 10_000)


def test_paired_comparison_is_a_t_interval_and_a_sign_test_on_instance_differences():
    errors, reference = torch.tensor([0, 1, 2, 0, 3, 0]), torch.tensor([1, 1, 0, 2, 4, 1])
    c = paired_comparison(errors, reference, symbols_per_instance=4, reference="ep")
    expected = ttest_1samp((errors - reference).double().numpy() / 4, 0.0).confidence_interval()
    assert (c.reference, c.instances, c.symbol_errors, c.reference_symbol_errors) == ("ep", 6, 6, 9)
    assert c.ser_difference == pytest.approx(-3 / 24)
    assert (c.ci_low, c.ci_high) == pytest.approx((expected.low, expected.high))
    assert (c.better, c.worse) == (4, 1) and c.p_value == pytest.approx(0.375)  # 2·P(X ≥ 4), X ~ B(5, ½)
    same = paired_comparison(errors, errors, 4, "ep")
    assert (same.ser_difference, same.better, same.worse, same.p_value) == (0.0, 0, 0, 1.0)


def test_tables_and_json_round_trip(tmp_path):
    results = [point(10.0, 1e-1), point(12.0, 1e-3), point(10.0, 2e-1, "zf"), point(12.0, 5e-3, "zf")]
    save_json(results, tmp_path / "r.json")
    assert load_json(tmp_path / "r.json") == results
    assert "| 8 | 4 | 16 | iid | 10 |" in markdown_table(results)
    assert "11.00" in snr_at_ser_table(results) and "zf" in snr_at_ser_table(results)


def test_evaluate_cli_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "out.json"
    args = ["evaluate", "--detector", "mmse", "--detector", "zf", "--nr", "4", "--nt", "2,3", "--qam", "4",
            "--snr", "0:5:10", "--target-errors", "20", "--max-symbols", "2000", "--batch-size", "200",
            "--json", str(out), "--plot", str(tmp_path / "p.png"), "--markdown", str(tmp_path / "t.md"),
            "--no-progress"]
    assert main(args) == 0
    records = json.loads(out.read_text())
    assert len(records) == 2 * 2 * 3
    assert set(records[0]) >= {"detector", "nr", "nt", "qam", "channel", "snr_db", "symbols", "symbol_errors",
                               "ser", "ser_ci_low", "ser_ci_high", "bits", "bit_errors", "ber", "seconds"}
    for r in (PointResult(**record) for record in records):
        assert r.instances * r.nt == r.symbols and r.symbol_errors <= r.symbol_error_squares
        assert r.ser_ci_low <= r.ser <= r.ser_ci_high and r.ber_ci_low <= r.ber <= r.ber_ci_high
    assert (tmp_path / "p.png").stat().st_size > 0 and "SER" in (tmp_path / "t.md").read_text()
    assert main(args + ["--resume"]) == 0  # nothing left to run: same records
    assert json.loads(out.read_text()) == records


def test_evaluate_cli_rejects_bad_options():
    with pytest.raises(SystemExit):
        main(["evaluate", "--detector", "nope", "--nr", "4", "--nt", "2", "--snr", "1"])
    with pytest.raises(SystemExit):
        main(["evaluate", "--detector", "mmse", "--nr", "4", "--nt", "2", "--snr", "1", "--rho", "0.5"])
    with pytest.raises(SystemExit):
        main(["evaluate", "--detector", "mmse", "--nr", "4", "--nt", "2", "--snr", "5:-1:1"])


def test_evaluate_cli_paired_with_a_reference(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["evaluate", "--detector", "mmse", "--detector", "zf", "--detector", "mf", "--nr", "4",
                 "--nt", "3", "--qam", "4", "--snr", "0,6", "--target-errors", "200", "--max-symbols", "6000",
                 "--batch-size", "100", "--json", str(out), "--paired-with", "mmse", "--no-progress"]) == 0
    results = load_json(out)
    by_key = {(r.detector, r.snr_db): r for r in results}
    for (name, snr), r in by_key.items():
        if name == "mmse":
            assert r.paired is None
            continue
        reference, c = by_key[("mmse", snr)], r.paired
        assert c.reference == "mmse" and c.instances == min(r.instances, reference.instances)
        own, theirs = (r, reference) if r.instances <= reference.instances else (reference, r)
        assert (c.symbol_errors if own is r else c.reference_symbol_errors) == own.symbol_errors
        assert c.better + c.worse <= c.instances and c.ci_low <= c.ser_difference <= c.ci_high
    assert by_key[("mf", 6.0)].paired.ci_low > 0  # the matched filter is far worse than LMMSE here
    table = paired_table(results)
    assert "| all | all | | | all | zf | mmse |" in table and table in capsys.readouterr().out
    with pytest.raises(SystemExit, match="names none of the detectors"):
        main(["evaluate", "--detector", "mmse", "--nr", "4", "--nt", "2", "--snr", "1", "--paired-with", "zf"])
