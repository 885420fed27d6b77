r"""The leaderboard: every shipped checkpoint beside the classical detectors, on the system it was trained for.

**Configurations.** The checkpoints of a directory (the zoo's ``zoo/pretrained``) are grouped by the
system their file stores (``checkpoint["system"]``: Nr, the Nt range and step, the constellation, the
channel law): one configuration per distinct system. A configuration is evaluated at its trained user
counts ``range(low, high + 1, step)`` when there are at most two of them (Nt ∈ {4, 8}), else at the
largest (the hardest), on a :class:`~gnnmimo.sampling.MIMOSampler` of that system.

**Rows.** Every checkpoint of the configuration and the classical detectors of :data:`CLASSICAL`;
a detector whose :meth:`~gnnmimo.detector.Detector.excessive_work` refuses the size (exact ML beyond
``2^36`` candidates) is skipped, with its reason kept.

**SNR walk.** Each detector gets its own sweep on a common grid of ``step_db`` (1 dB) from a start point:
for a checkpoint the centre of its training SNR range at that Nt, for a classical detector the centre of
the union of the configuration's ranges. From the start the sweep steps down until the SER is at least
the upper target (1e-2), then up from the start until it is below the lower target (1e-3), at most
``max_points`` points in all (an error floor stops there: "not reached"). Every point is one call of
:func:`gnnmimo.evaluation.evaluate`, whose batches depend only on ``(seed, Nt, SNR)`` and the batch
index: detectors that meet at an SNR are measured on the same instances.

**Summary** per detector and Nt, for each target SER: the SNR where the curve crosses it
(:func:`gnnmimo.report.ser_crossing`, log-linear between the bracketing points), the errors/symbols of
those two points, the SNRs where the 95 % interval bounds cross it (a pointwise range, not a joint
interval), and the gap to ML where ML ran (when the first point below the target has no errors there
is no log-interpolation, only the bound "at most that SNR"); the detector time per instance over the sweep
(instances/s, on the thread count of the run); for checkpoints the parameter count and the training cost
at the checkpoint's last validation (step, seconds of training steps, step × batch instances), read
from the file's training record.

**Incremental.** A configuration is measured again only when its inputs changed: the names and
SHA-256 of its checkpoint files, the classical detectors, the sample settings (:class:`Settings`);
otherwise its entry of the previous board is kept as it is. Within a configuration measured again,
a row whose own inputs (detector, checkpoint SHA-256, start SNR, settings) are unchanged keeps its
records: a retrained checkpoint costs its own sweeps only (the gaps to ML are recomputed).

**Sync.** :func:`out_of_sync` compares a board with a checkpoint directory without evaluating: the
same checkpoint names, each with its file's SHA-256, parameter count and training cost, and each card
(``<name>.md``) with a validation-table row of the checkpoint's step. :func:`render` is a pure function
of the board, so the markdown is in sync when it equals the rendering of the JSON.
"""
from __future__ import annotations

import copy
import json
import os
import platform
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from gnnmimo.channels import ChannelModel
from gnnmimo.tr38901 import TR38901Channel, channel_from_fields
from gnnmimo.checkpoint import detector_from_checkpoint, library_version, read_checkpoint
from gnnmimo.detector import Detector
from gnnmimo.evaluation import PointResult, evaluate
from gnnmimo.files import atomic_write
from gnnmimo.registry import create_from_spec
from gnnmimo.report import ser_crossing
from gnnmimo.sampling import MIMOSampler

FORMAT = "gnnmimo-leaderboard"
#: the target SERs, upper first
TARGETS = (1e-2, 1e-3)
#: the classical rows of every configuration (specs of :func:`gnnmimo.registry.create_from_spec`)
CLASSICAL = ("mmse", "vblast", "oamp", "amp", "ep", "kbest:k=32", "ml")
#: the command that regenerates the board in docs/ (README, docs/README.md)
COMMAND = "gnnmimo leaderboard --threads 1"


@dataclass(frozen=True)
class Settings:
    """The sample sizes and the SNR walk (module doc). A point stops at ``target_errors`` symbol errors
    or ``max_symbols`` symbols, whichever comes first."""

    seed: int = 123
    target_errors: int = 300
    max_symbols: int = 80_000
    batch_size: int = 1000
    step_db: float = 1.0
    max_points: int = 16


#: seconds, for a functional test
QUICK = Settings(seed=123, target_errors=20, max_symbols=800, batch_size=100, step_db=2.0, max_points=6)


# ---------------------------------------------------------------- checkpoints and configurations
def read_checkpoints(directory: str | os.PathLike) -> dict[str, dict]:
    """Every ``*.pt`` checkpoint of ``directory`` (:func:`~gnnmimo.checkpoint.read_checkpoint`), by stem."""
    return {path.stem: read_checkpoint(path) for path in sorted(Path(directory).glob("*.pt"))}


def channel_of(system: dict) -> ChannelModel | TR38901Channel:
    """The channel law a checkpoint was trained on (its stored fields, 3GPP scenarios included)."""
    return channel_from_fields(system.get("channel") or {})


def configuration_key(system: dict) -> str:
    """A stable name of a trained system, e.g. ``nr16-nt4-8-step1-qam16-iid``."""
    low, high = system["nt"]
    return (f"nr{system['nr']}-nt{low}-{high}-step{system.get('nt_step', 1)}-qam{system['qam']}-"
            f"{channel_of(system).describe()}")


def configuration_title(system: dict) -> str:
    low, high = system["nt"]
    step = system.get("nt_step", 1)
    nts = f"Nt {low}…{high}" + (f" (step {step})" if step != 1 else "")
    return f"Nr {system['nr']}, {nts}, {system['qam']}-QAM, {channel_of(system).describe()}"


def configurations(checkpoints: dict[str, dict]) -> dict[str, list[str]]:
    """Configuration key → the names of its checkpoints (module doc)."""
    grouped: dict[str, list[str]] = {}
    for name, checkpoint in sorted(checkpoints.items()):
        grouped.setdefault(configuration_key(checkpoint["system"]), []).append(name)
    return grouped


def evaluated_nts(system: dict) -> list[int]:
    """The trained user counts when there are at most two of them, else the largest."""
    low, high = system["nt"]
    trained = list(range(low, high + 1, system.get("nt_step", 1)))
    return trained if len(trained) <= 2 else [high]


def checkpoint_facts(checkpoint: dict, detector: Detector | None = None) -> dict:
    """What the board states of a checkpoint: the file's SHA-256, the parameter count and the training
    cost at its last validation (``None`` entries when the file keeps no validation history)."""
    detector = detector or detector_from_checkpoint(checkpoint)
    training = checkpoint.get("training") or {}
    history, batch = training.get("history") or [], training.get("batch_size")
    last = history[-1] if history else {}
    steps = last.get("step")
    return {"sha256": checkpoint["sha256"], "parameters": sum(p.numel() for p in detector.parameters()),
            "training": {"steps": steps, "seconds": None if "seconds" not in last else round(last["seconds"], 1),
                         "batch_size": batch, "instances": None if steps is None or batch is None else steps * batch}}


def start_snr(training: dict, nt: int) -> float | None:
    """The centre of a checkpoint's training SNR range at ``nt`` (``None`` when it stores none)."""
    ranges = training.get("snr_ranges") or {}
    span = ranges.get(str(nt))
    return None if span is None else (span[0] + span[1]) / 2


def _on_grid(snr: float, step: float) -> float:
    return round(round(snr / step) * step, 6)


# ---------------------------------------------------------------- measuring
def sweep(point: Callable[[float], PointResult], start: float, settings: Settings) -> list[PointResult]:
    """The SNR walk of one detector (module doc); ``point(snr)`` measures one SNR."""
    high, low = TARGETS
    records: dict[float, PointResult] = {}

    def at(snr: float) -> PointResult:
        snr = _on_grid(snr, settings.step_db)
        if snr not in records:
            records[snr] = point(snr)
        return records[snr]

    start = snr = _on_grid(start, settings.step_db)
    while at(snr).ser < high and len(records) < settings.max_points:
        snr -= settings.step_db
    snr = start
    while at(snr).ser >= low and len(records) < settings.max_points:
        snr += settings.step_db
    return sorted(records.values(), key=lambda r: r.snr_db)


def summarize(records: list[PointResult], target: float) -> dict:
    """One target of a detector's curve (module doc)."""
    crossing = ser_crossing(records, target)
    bounds = [ser_crossing(records, target, rate) for rate in (lambda r: r.ser_ci_low, lambda r: r.ser_ci_high)]
    below = next((r for r in records if r.ser < target), None)
    return {"snr_db": None if crossing is None else round(crossing[0], 3),
            "bracket": None if crossing is None else [{"snr_db": r.snr_db, "symbol_errors": r.symbol_errors,
                                                       "symbols": r.symbols} for r in crossing[1:]],
            "range_db": None if None in bounds else [round(bounds[0][0], 3), round(bounds[1][0], 3)],
            "swept_db": [records[0].snr_db, records[-1].snr_db],
            # no crossing because the first point below the target has no errors: an upper bound
            "no_errors": None if crossing is not None or below is None or below.symbol_errors else
            {"snr_db": below.snr_db, "symbols": below.symbols}}


def _row(name: str, kind: str, records: list[PointResult], facts: dict | None) -> dict:
    seconds = sum(r.seconds for r in records)
    return {"detector": name, "kind": kind,
            "targets": {f"{target:g}": summarize(records, target) for target in TARGETS},
            "instances_per_second": round(sum(r.instances for r in records) / seconds) if seconds else None,
            "parameters": None if facts is None else facts["parameters"],
            "training": None if facts is None else facts["training"]}


def _add_gaps(rows: list[dict]) -> None:
    """Each target's ``gap_to_ml_db``: the detector's SNR minus ML's (``None`` where either is missing)."""
    ml = next((row for row in rows if row["detector"] == "ml"), None)
    for row in rows:
        for target, summary in row["targets"].items():
            reference = None if ml is None else ml["targets"][target]["snr_db"]
            summary["gap_to_ml_db"] = (None if reference is None or summary["snr_db"] is None
                                       else round(summary["snr_db"] - reference, 3))


def machine() -> str:
    """The CPU model (``/proc/cpuinfo``) or the platform's processor name."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        if found:
            return found.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def inputs_of(names: list[str], checkpoints: dict[str, dict], settings: Settings) -> dict:
    """What decides a configuration's numbers (module doc: incremental regeneration)."""
    return {"checkpoints": {name: checkpoints[name]["sha256"] for name in names}, "classical": list(CLASSICAL),
            "settings": asdict(settings)}


def _reusable_rows(previous: dict | None) -> dict[tuple, tuple[dict, list[dict]]]:
    """``(Nt, row inputs)`` → the row and its records, of a previous entry of the configuration."""
    found = {}
    for block in (previous or {}).get("results", []):
        for row in block["rows"]:
            if "inputs" in row:
                records = [r for r in previous["records"] if r["detector"] == row["detector"] and r["nt"] == block["nt"]]
                found[(block["nt"], json.dumps(row["inputs"], sort_keys=True))] = row, records
    return found


def measure_configuration(names: list[str], checkpoints: dict[str, dict], settings: Settings,
                          log: Callable[[str], None] = lambda line: None, previous: dict | None = None) -> dict:
    """The board entry of one configuration: its checkpoints ``names`` and the classical detectors,
    swept at each evaluated Nt (module doc). A row of the ``previous`` entry whose inputs (detector,
    checkpoint SHA-256, start SNR, settings) are unchanged is kept with its records, not swept again:
    retraining one checkpoint re-measures its rows only."""
    began, cpu_began = time.perf_counter(), time.process_time()
    system = checkpoints[names[0]]["system"]
    qam, nr = system["qam"], system["nr"]
    sampler = MIMOSampler(nr, system["nt"][1], qam, channel=channel_of(system))
    learned = {name: detector_from_checkpoint(checkpoints[name]) for name in names}
    facts = {name: checkpoint_facts(checkpoints[name], learned[name]) for name in names}
    detectors = {**{spec: create_from_spec(spec, qam).eval() for spec in CLASSICAL}, **learned}
    reusable = _reusable_rows(previous)
    by_nt, records, skipped = [], [], []
    for nt in evaluated_nts(system):
        starts = {name: start_snr(checkpoints[name]["training"], nt) for name in names}
        spans = [s for s in starts.values() if s is not None]
        common = sum(spans) / len(spans) if spans else 10.0
        rows = []
        for name, detector in detectors.items():
            reason = detector.excessive_work(nr, nt)
            if reason:
                skipped.append({"detector": name, "nt": nt, "reason": reason})
                continue
            start = _on_grid(starts.get(name) if starts.get(name) is not None else common, settings.step_db)
            inputs = {"detector": name, "sha256": facts[name]["sha256"] if name in facts else None,
                      "start_db": start, "settings": asdict(settings)}
            kept = reusable.get((nt, json.dumps(inputs, sort_keys=True)))
            if kept is not None:
                log(f"{configuration_key(system)} Nt {nt} {name}: unchanged, kept")
                rows.append(copy.deepcopy(kept[0]))   # its gap to ML is recomputed below
                records += kept[1]
                continue

            def point(snr: float, name=name, detector=detector) -> PointResult:
                return evaluate({name: detector}, sampler, [nt], [snr], settings.target_errors,
                                settings.max_symbols, settings.batch_size, settings.seed, progress=False)[0]

            tick = time.perf_counter()
            curve = sweep(point, start, settings)
            log(f"{configuration_key(system)} Nt {nt} {name}: {len(curve)} points "
                f"{curve[0].snr_db:g}…{curve[-1].snr_db:g} dB, {time.perf_counter() - tick:.0f} s")
            rows.append({**_row(name, "learned" if name in learned else "classical", curve, facts.get(name)),
                         "inputs": inputs, "measured_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())})
            records += [{key: value for key, value in r.to_dict().items() if key != "provenance"} for r in curve]
        _add_gaps(rows)
        by_nt.append({"nt": nt, "rows": rows})
    return {"key": configuration_key(system), "title": configuration_title(system), "system": system,
            "inputs": inputs_of(names, checkpoints, settings), "checkpoints": facts, "results": by_nt,
            "skipped": skipped,
            "provenance": {**asdict(settings), "library_version": library_version(),
                           "torch_version": str(torch.__version__), "machine": machine(),
                           "threads": torch.get_num_threads(),
                           "generated_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                           "wall_seconds": round(time.perf_counter() - began),
                           "cpu_seconds": round(time.process_time() - cpu_began)},
            "records": records}


def build(directory: str | os.PathLike, previous: dict | None, settings: Settings, redo_all: bool = False,
          on_entry: Callable[[dict], None] = lambda board: None,
          log: Callable[[str], None] = lambda line: None) -> dict:
    """The board of the checkpoints in ``directory``, keeping the entries of ``previous`` whose inputs
    are unchanged unless ``redo_all``; ``on_entry(board)`` after each configuration (to save it)."""
    checkpoints = read_checkpoints(directory)
    kept = {entry["key"]: entry for entry in (previous or {}).get("configurations", [])}
    board = {"format": FORMAT, "command": COMMAND, "targets": list(TARGETS), "configurations": []}
    for key, names in configurations(checkpoints).items():
        old = kept.get(key)
        if not redo_all and old is not None and old["inputs"] == inputs_of(names, checkpoints, settings):
            log(f"{key}: unchanged, kept")
            board["configurations"].append(old)
        else:
            board["configurations"].append(measure_configuration(names, checkpoints, settings, log,
                                                                 previous=None if redo_all else old))
        on_entry(board)
    return board


# ---------------------------------------------------------------- sync
def out_of_sync(board: dict, directory: str | os.PathLike) -> list[str]:
    """How ``board`` differs from the checkpoints (and cards) of ``directory``; empty when in sync."""
    checkpoints = read_checkpoints(directory)
    listed = {name: (entry, facts) for entry in board.get("configurations", [])
              for name, facts in entry["checkpoints"].items()}
    problems = [f"{name}: shipped but not on the board" for name in checkpoints if name not in listed]
    problems += [f"{name}: on the board but not shipped" for name in listed if name not in checkpoints]
    for name in sorted(set(checkpoints) & set(listed)):
        entry, facts = listed[name]
        checkpoint = checkpoints[name]
        if entry["key"] != configuration_key(checkpoint["system"]):
            problems.append(f"{name}: trained for {configuration_key(checkpoint['system'])}, listed under {entry['key']}")
        current = checkpoint_facts(checkpoint)
        for field in ("sha256", "parameters", "training"):
            if facts[field] != current[field]:
                problems.append(f"{name}: {field} on the board {facts[field]} but {current[field]} in the file")
        card = Path(directory) / f"{name}.md"
        steps = current["training"]["steps"]
        if not card.is_file():
            problems.append(f"{name}: no card {card.name}")
        elif steps is not None and not re.search(rf"^\|\s*(\*\*)?{steps}(\*\*)?\s*\|", card.read_text(), re.MULTILINE):
            problems.append(f"{name}: the card's validation table has no row for the checkpoint's step {steps}")
    return problems


# ---------------------------------------------------------------- rendering
def _snr(summary: dict) -> str:
    if summary["snr_db"] is None and summary["no_errors"] is not None:
        return f"≤ {summary['no_errors']['snr_db']:g} (0/{summary['no_errors']['symbols']} errors there)"
    if summary["snr_db"] is None:
        low, high = summary["swept_db"]
        return f"not reached ({low:g}…{high:g} dB)"
    interval = "" if summary["range_db"] is None else f" [{summary['range_db'][0]:.2f}, {summary['range_db'][1]:.2f}]"
    return f"**{summary['snr_db']:.2f}**{interval}"


def _bracket(summary: dict) -> str:
    if summary["bracket"] is None:
        return "—"
    return " → ".join(f"{b['symbol_errors']}/{b['symbols']} @{b['snr_db']:g}" for b in summary["bracket"])


def _gap(summary: dict) -> str:
    return "—" if summary.get("gap_to_ml_db") is None else f"{summary['gap_to_ml_db']:+.2f}"


def _training(training: dict | None) -> str:
    if training is None:
        return "—"
    if training["steps"] is None:
        return "not recorded"
    minutes = "" if training["seconds"] is None else f", {training['seconds'] / 60:.0f} min"
    instances = "" if training["instances"] is None else f", {training['instances'] / 1e3:.0f}k inst."
    return f"{training['steps']} steps{minutes}{instances}"


def _order(row: dict) -> tuple:
    values = [row["targets"][f"{t:g}"]["snr_db"] for t in TARGETS]
    return tuple((v is None, v or 0.0) for v in values)


def render(board: dict) -> str:
    """The markdown of a board (a pure function of it: docs/leaderboard.md is ``render`` of the JSON)."""
    upper, lower = (f"{t:g}" for t in TARGETS)
    lines = ["# Leaderboard", "",
             "Every shipped checkpoint (`zoo/pretrained/*.pt`) beside the classical detectors, on the system it "
             "was trained for. Generated by `make leaderboard` (`" + board["command"] + "`; `--all` re-measures "
             "everything, otherwise only the rows of checkpoints that changed or were added); the data, with provenance, "
             "is in [leaderboard.json](leaderboard.json); the method in `gnnmimo/leaderboard.py`.", "",
             f"- **SNR @ SER {upper} / {lower}** (dB): log-interpolated between the two bracketing points of a "
             "sweep on fresh samples, on a common SNR grid (each detector's sweep starts at the centre of the training SNR range "
             "and widens until it brackets both targets; the samples of a point depend only on the seed, Nt and "
             "SNR, so all detectors of a configuration see the same instances at a shared SNR). In brackets: "
             "where the pointwise 95 % bounds (clustered Clopper–Pearson) cross the target, a rough range "
             "(absent where a bound does not cross within the swept points).",
             "- **errors/symbols**: the two points behind the interpolated value (above → below the target).",
             "- **gap to ML**: the SNR minus exact ML's (sphere decoder), where ML ran; ML is skipped where "
             "its search would exceed 2^36 candidates per instance (the skips are listed per configuration).",
             "- **≤ x**: the first point below the target had no errors, so there is no interpolation, only "
             "that bound; **not reached**: the sweep ended (error floor or its point budget) above the target.",
             "- **inst/s**: detector time only, averaged over the sweep's instances, fp32, on the thread "
             "count and machine below (a machine shared with other jobs: indicative).",
             "- **training**: at the checkpoint's last validation (its training record): steps, minutes of "
             "training steps, instances (steps × batch).", ""]
    for entry in board["configurations"]:
        p = entry["provenance"]
        lines += [f"## {entry['title']}", "",
                  f"Seed {p['seed']}; a point stops at {p['target_errors']} symbol errors or {p['max_symbols']} "
                  f"symbols; batches of {p['batch_size']}; grid step {p['step_db']:g} dB, at most {p['max_points']} "
                  f"points per curve; measured {p['generated_utc']} UTC on {p['machine']}, "
                  f"{p['threads']} thread{'s' * (p['threads'] > 1)}, gnnmimo {p['library_version']}, torch "
                  f"{p['torch_version']}, {p['wall_seconds'] / 60:.1f} min wall ({p['cpu_seconds'] / 60:.1f} min of CPU).", ""]
        for name, facts in entry["checkpoints"].items():
            lines.append(f"- `{name}`: sha256 `{facts['sha256'][:16]}…`")
        for skip in entry["skipped"]:
            lines.append(f"- {skip['detector']} skipped at Nt {skip['nt']}: {skip['reason']}")
        lines.append("")
        for block in entry["results"]:
            lines += [f"### Nt = {block['nt']}", "",
                      f"| detector | SNR @ {upper} | errors/symbols | gap to ML | SNR @ {lower} | errors/symbols "
                      "| gap to ML | inst/s | parameters | training |", "|---" * 10 + "|"]
            for row in sorted(block["rows"], key=_order):
                a, b = row["targets"][upper], row["targets"][lower]
                name = f"`{row['detector']}`" if row["kind"] == "learned" else row["detector"]
                speed = "—" if row["instances_per_second"] is None else f"{row['instances_per_second']:,}"
                parameters = "—" if row["parameters"] is None else f"{row['parameters']:,}"
                lines.append(f"| {name} | {_snr(a)} | {_bracket(a)} | {_gap(a)} | {_snr(b)} | {_bracket(b)} "
                             f"| {_gap(b)} | {speed} | {parameters} | {_training(row['training'])} |")
            lines.append("")
    return "\n".join(lines)


def save(board: dict, json_path: str | os.PathLike, markdown_path: str | os.PathLike) -> None:
    """Write the board as JSON (strict) and its :func:`render` (both atomically)."""
    payload = (json.dumps(board, indent=1, allow_nan=False) + "\n").encode()
    atomic_write(json_path, lambda handle: handle.write(payload))
    text = render(board).encode()
    atomic_write(markdown_path, lambda handle: handle.write(text))


def load(json_path: str | os.PathLike) -> dict | None:
    """A board written by :func:`save`, or ``None`` when there is no file."""
    if not Path(json_path).is_file():
        return None
    with open(json_path) as handle:
        board = json.load(handle)
    if board.get("format") != FORMAT:
        raise ValueError(f"{json_path} is not a leaderboard (format {board.get('format')!r})")
    return board
