"""docs/leaderboard.{md,json} against the shipped checkpoints (no evaluation), and ``gnnmimo leaderboard``
on tiny samples: incremental regeneration, and a sync check that fails when a checkpoint changes."""
import json
import shutil

import pytest
import torch

from gnnmimo import leaderboard
from gnnmimo.cli import main
from zoo.weights import PRETRAINED_DIR

DOCS = PRETRAINED_DIR.parent.parent / "docs"
SMALL = "oampnet-nr16-nt4-8-qam16"         # 20 parameters: fast to load and to run
OTHER = "oampnet-nr16-nt4-8-qam16-kron"    # another trained system (Kronecker channel)


def test_the_docs_board_is_in_sync_with_the_shipped_checkpoints():
    board = leaderboard.load(DOCS / "leaderboard.json")
    assert board is not None, "docs/leaderboard.json is missing: run `make leaderboard`"
    assert leaderboard.out_of_sync(board, PRETRAINED_DIR) == [], "run `make leaderboard`"
    assert (DOCS / "leaderboard.md").read_text() == leaderboard.render(board)


def retrain(path):
    """What retraining does to a checkpoint file, for the sync check: other weights, another SHA-256."""
    payload = torch.load(path, weights_only=True)
    name = next(iter(payload["model"]))
    payload["model"][name] = payload["model"][name] + 0.01
    torch.save(payload, path)


def test_the_sync_check_fails_when_a_checkpoint_is_retrained_added_or_removed(tmp_path):
    directory = tmp_path / "pretrained"
    shutil.copytree(PRETRAINED_DIR, directory)
    board = leaderboard.load(DOCS / "leaderboard.json")
    assert leaderboard.out_of_sync(board, directory) == []
    retrain(directory / f"{SMALL}.pt")
    assert any(p.startswith(f"{SMALL}: sha256") for p in leaderboard.out_of_sync(board, directory))
    shutil.copy(PRETRAINED_DIR / f"{SMALL}.pt", directory / f"{SMALL}.pt")
    shutil.copy(directory / f"{SMALL}.pt", directory / "added.pt")
    assert leaderboard.out_of_sync(board, directory) == ["added: shipped but not on the board"]
    (directory / "added.pt").unlink()
    (directory / f"{OTHER}.pt").unlink()
    assert leaderboard.out_of_sync(board, directory) == [f"{OTHER}: on the board but not shipped"]


def test_the_sync_check_reads_the_card(tmp_path):
    board = leaderboard.load(DOCS / "leaderboard.json")
    for suffix in (".pt", ".md"):
        shutil.copy(PRETRAINED_DIR / f"{SMALL}{suffix}", tmp_path)
    small = {**board, "configurations": [entry for entry in board["configurations"] if SMALL in entry["checkpoints"]]}
    small["configurations"] = [{**entry, "checkpoints": {SMALL: entry["checkpoints"][SMALL]}}
                               for entry in small["configurations"]]
    assert leaderboard.out_of_sync(small, tmp_path) == []
    card = tmp_path / f"{SMALL}.md"
    steps = small["configurations"][0]["checkpoints"][SMALL]["training"]["steps"]
    card.write_text("\n".join(line for line in card.read_text().splitlines() if not line.startswith(f"| {steps} ")))
    assert leaderboard.out_of_sync(small, tmp_path) == [
        f"{SMALL}: the card's validation table has no row for the checkpoint's step {steps}"]


def test_quick_board_then_only_changed_configurations_are_measured(tmp_path, monkeypatch):
    directory, out = tmp_path / "pretrained", tmp_path / "out"
    directory.mkdir()
    for suffix in (".pt", ".md"):
        shutil.copy(PRETRAINED_DIR / f"{SMALL}{suffix}", directory)
    monkeypatch.setattr(leaderboard, "CLASSICAL", ("mmse", "ep", "ml"))
    assert main(["leaderboard", "--quick", "--quiet", "--pretrained-dir", str(directory), "--out-dir", str(out)]) == 0
    board = leaderboard.load(out / "leaderboard.json")
    assert (out / "leaderboard.md").read_text() == leaderboard.render(board)
    assert leaderboard.out_of_sync(board, directory) == []
    (entry,) = board["configurations"]
    assert entry["key"] == "nr16-nt4-8-step1-qam16-iid" and entry["provenance"]["threads"] == 1
    (block,) = entry["results"]
    assert block["nt"] == 8 and {row["detector"] for row in block["rows"]} == {"mmse", "ep", "ml", SMALL}
    assert {r["snr_db"] for r in entry["records"]} <= {float(snr) for snr in range(0, 40, 2)}  # the 2-dB grid
    ml = next(row for row in block["rows"] if row["detector"] == "ml")
    assert ml["targets"]["0.01"]["gap_to_ml_db"] in (0.0, None)

    measured = []
    real = leaderboard.measure_configuration
    monkeypatch.setattr(leaderboard, "measure_configuration",
                        lambda names, *args, **kwargs: measured.append(names) or real(names, *args, **kwargs))
    shutil.copy(PRETRAINED_DIR / f"{OTHER}.pt", directory)
    shutil.copy(PRETRAINED_DIR / f"{OTHER}.md", directory)
    assert main(["leaderboard", "--quick", "--quiet", "--pretrained-dir", str(directory), "--out-dir", str(out)]) == 0
    assert measured == [[OTHER]]   # the unchanged configuration is kept
    board = leaderboard.load(out / "leaderboard.json")
    assert board["configurations"][0] == entry
    retrain(directory / f"{SMALL}.pt")
    assert main(["leaderboard", "--check", "--pretrained-dir", str(directory), "--out-dir", str(out)]) == 1
    measured.clear()
    swept = []
    evaluate = leaderboard.evaluate
    monkeypatch.setattr(leaderboard, "evaluate", lambda detectors, *args, **kwargs:
                        swept.extend(detectors) or evaluate(detectors, *args, **kwargs))
    assert main(["leaderboard", "--quick", "--quiet", "--pretrained-dir", str(directory), "--out-dir", str(out)]) == 0
    assert measured == [[SMALL]] and set(swept) == {SMALL}   # the classical rows are kept too
    retrained = leaderboard.load(out / "leaderboard.json")["configurations"][0]
    rows = {row["detector"]: row for row in retrained["results"][0]["rows"]}
    assert {r["detector"] for r in retrained["records"]} == set(rows)
    assert rows["ml"] == next(row for row in entry["results"][0]["rows"] if row["detector"] == "ml")
    assert main(["leaderboard", "--check", "--pretrained-dir", str(directory), "--out-dir", str(out)]) == 0


def test_render_is_a_function_of_the_json():
    board = leaderboard.load(DOCS / "leaderboard.json")
    assert leaderboard.render(json.loads(json.dumps(board))) == leaderboard.render(board)


@pytest.mark.parametrize("system, nts", [({"nr": 8, "nt": [4, 8], "nt_step": 4}, [4, 8]),
                                         ({"nr": 16, "nt": [4, 8], "nt_step": 1}, [8]),
                                         ({"nr": 16, "nt": [8, 8]}, [8])])
def test_evaluated_user_counts(system, nts):
    assert leaderboard.evaluated_nts(system) == nts


def test_the_sweep_walks_a_common_grid_until_it_brackets_both_targets():
    """SER 10^(-(snr - 10) / 4): 1e-2 at 18 dB, 1e-3 at 22 dB; a start off the grid is snapped to it."""
    measured = []

    def point(snr):
        measured.append(snr)
        ser = 10 ** (-(snr - 10) / 4)
        return leaderboard.PointResult("d", 8, 8, 16, "iid", snr, 1000, round(ser * 1000), ser, ser, ser,
                                       0, 0, 0.0, 0.0, 0.0, 0.1, instances=125)

    curve = leaderboard.sweep(point, 19.5, leaderboard.Settings(step_db=1.0, max_points=16))
    assert [r.snr_db for r in curve] == [18.0, 19.0, 20.0, 21.0, 22.0, 23.0] == sorted(measured)
    assert leaderboard.summarize(curve, 1e-2)["snr_db"] == pytest.approx(18.0)
    assert leaderboard.summarize(curve, 1e-3)["snr_db"] == pytest.approx(22.0, abs=0.01)
    floor = leaderboard.sweep(lambda snr: point(min(snr, 20.0)), 20.0, leaderboard.Settings(max_points=5))
    assert len(floor) == 5 and leaderboard.summarize(floor, 1e-3)["snr_db"] is None   # an error floor stops
