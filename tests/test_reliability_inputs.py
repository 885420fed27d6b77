"""Reliability of inputs: corrupt checkpoints give one clear error (issue 19 item 8)."""
import re

import pytest
import torch

import zoo
from gnnmimo.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, without_training_state
from gnnmimo.cli import main as cli_main
from helpers import quiet_trainer
from test_reliability import EVALUATE, TRAIN, tiny

pytestmark = pytest.mark.usefixtures("one_thread")

#: ``gnnmimo train`` arguments of the run :func:`tiny` configures (to resume it)
TRAIN_TINY = TRAIN + ["--lr", "0.003"]
PRETRAINED = zoo.weights.PRETRAINED_DIR / "remimo-nr16-nt4-8-qam4.pt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """A finished 2-step run of :func:`tiny` (checkpoint with training state), as loaded by torch."""
    out = tmp_path_factory.mktemp("trained") / "run.pt"
    quiet_trainer(tiny(), out).run()
    return torch.load(out, weights_only=True)


class NotPlainData:
    """An object that ``weights_only`` loading refuses."""


def changed(checkpoint: dict, **entries) -> dict:
    """``checkpoint`` with ``entries`` replaced (those given as ``...`` removed)."""
    payload = {**checkpoint, **entries}
    return {key: value for key, value in payload.items() if value is not ...}


# name: (what to write, given the trained checkpoint; what the error says)
CORRUPT = {
    "text": (lambda good: "some notes\n", r"not a torch.save file \(it begins with b'some'\)"),
    "empty": (lambda good: b"", r"empty file"),
    "truncated": (lambda good: PRETRAINED.read_bytes()[:PRETRAINED.stat().st_size // 2],
                  r"truncated or corrupt zip archive"),
    "foreign-dict": (lambda good: {"a": 1}, r"not a gnnmimo checkpoint: no 'format'.* \(its keys: 'a'\)"),
    "state-dict": (lambda good: good["model"], r"not a gnnmimo checkpoint: a bare state_dict of \d+ tensors"),
    "list": (lambda good: [1, 2], r"not a gnnmimo checkpoint: it holds a list"),
    "missing-model": (lambda good: changed(good, model=...), r"missing key 'model'"),
    "missing-version": (lambda good: changed(good, format_version=...), r"missing key 'format_version'"),
    "newer": (lambda good: changed(good, format_version=3),
              r"format_version 3 is newer than this gnnmimo \(.*\) reads \(2\); upgrade gnnmimo"),
    "detector-not-a-dict": (lambda good: changed(good, detector="remimo"), r"'detector' is a str, not dict"),
    "objects": (lambda good: changed(good, extra=NotPlainData()),
                r"it holds objects other than tensors and plain data \(test_reliability_inputs.NotPlainData\), "
                r"which are not unpickled \(weights_only\)"),
}


def write(path, content) -> None:
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)


# ------------------------------------------------------------- 8. corrupt checkpoints
@pytest.mark.parametrize("case", list(CORRUPT))
def test_a_corrupt_checkpoint_gives_one_clear_error_naming_the_file_everywhere(tmp_path, trained, case):
    """Before: KeyError: 101, EOFError, RuntimeError (zip), UnpicklingError, KeyError 'model',
    TypeError; a bare ValueError without the reason for the others."""
    content, reason = CORRUPT[case]
    path = tmp_path / f"{case}.pt"
    write(path, content(trained))
    message = rf"cannot read checkpoint {re.escape(str(path))}: {reason}"
    for load in (read_checkpoint, load_checkpoint, zoo.load):
        with pytest.raises(CheckpointError, match=message):
            load(path)
    with pytest.raises(SystemExit, match="^error: " + message):
        cli_main(EVALUATE + ["--checkpoint", str(path)])
    with pytest.raises(SystemExit, match="^error: " + message):
        cli_main(TRAIN_TINY + ["--out", str(path), "--resume"])


def test_weights_that_do_not_fit_the_rebuilt_detector_are_a_clear_error(tmp_path, trained):
    """Before: torch's multi-line RuntimeError text, listing every tensor."""
    path = tmp_path / "shapes.pt"
    model = {key: value[:1] if value.dim() else value for key, value in trained["model"].items()}
    torch.save(changed(trained, model=model), path)
    message = (rf"the weights in {re.escape(str(path))} do not fit this detector \(checkpoint vs detector\): "
               r"[\w.]+: shape \[1")
    with pytest.raises(CheckpointError, match=message + r".*more\)$"):
        zoo.load(path)
    with pytest.raises(SystemExit, match="^error: " + message):
        cli_main(EVALUATE + ["--checkpoint", str(path)])
    with pytest.raises(SystemExit, match="^error: " + message):
        cli_main(TRAIN_TINY + ["--out", str(path), "--resume"])


def test_a_detector_that_cannot_be_rebuilt_names_the_file(tmp_path, trained):
    """Before: the registry's ValueError, without the file."""
    path = tmp_path / "unknown.pt"
    torch.save(changed(trained, detector={**trained["detector"], "name": "no-such-detector"}, module=None), path)
    message = rf"cannot rebuild the detector of {re.escape(str(path))} \('no-such-detector'.*unknown detector"
    with pytest.raises(CheckpointError, match=message):
        zoo.load(path)


@pytest.mark.parametrize("case, damage, message", [
    ("weights-only", without_training_state, r"it holds weights only, no training state"),
    ("no-optimizer", lambda good: changed(good, state=changed(good["state"], optimizer=...)),
     r"missing key\(s\) 'state.optimizer'"),
    ("bad-rng", lambda good: changed(good, state={**good["state"], "rng": {**good["state"]["rng"],
                                                                           "torch": torch.zeros(3)}}),
     r"its training state does not load \(TypeError: RNG state must be a torch.ByteTensor\)"),
])
def test_resuming_from_a_checkpoint_without_a_usable_training_state_is_a_clear_error(tmp_path, trained, case,
                                                                                  damage, message):
    """Before: KeyError 'optimizer' and a RuntimeError from torch.set_rng_state, after the
    validation set was built; weights only was a ValueError without the same prefix."""
    path = tmp_path / f"{case}.pt"
    torch.save(damage(trained), path)
    message = rf"cannot resume from {re.escape(str(path))}: {message}"
    with pytest.raises(CheckpointError, match=message):
        quiet_trainer(tiny(), path, resume=True)
    with pytest.raises(SystemExit, match="^error: " + message):
        cli_main(TRAIN_TINY + ["--out", str(path), "--resume"])
