"""RE-MIMO paper, Fig. 11: interpolation and extrapolation in Nt, i.i.d. Rayleigh, 16-QAM, Nr = 64.

RE-MIMO-I is trained on even Nt in [16, 32] only (``gnnmimo train --nt 16:32 --nt-step 2``) and
tested at an odd Nt inside the range (23: interpolation) and beyond it (36, 40: extrapolation),
against RE-MIMO-II (trained on every Nt in [16, 44]) and OAMPNet trained for each tested Nt.
(The paper's text says 16-QAM, its caption 64-QAM; we follow the text.)

**What the paper reports** (§V-C.1; no numbers in its text): RE-MIMO-I "interpolates to
intermediate (odd) values of Nt without any performance degradation"; "the performance of RE-MIMO
degrades significantly when extrapolated to Nt values far beyond the training range".

**What we get**: **not trained yet** — no RE-MIMO-I/-II or OAMPNet checkpoint at Nt 23, 36, 40
ships; the script says so and runs the classical baselines. SNR axes are ours.

    python examples/remimo_paper/fig11_interpolation.py [--quick] [--out DIR]
"""
import paper
import zoo

#: SNR axes (dB) by tested Nt (ours)
GRIDS = {23: [10, 11, 12, 13, 14, 15], 36: [12, 13, 14, 15, 16, 17], 40: [13, 14, 15, 16, 17, 18]}


def main() -> None:
    args = paper.arguments(__doc__, "fig11")
    results = []
    for nt, snrs in GRIDS.items():
        detectors = {**paper.classical(16),
                     **paper.learned("OAMPNet", paper.per_nt_checkpoints("oampnet", nt, 16), args.quick,
                                     lambda: zoo.create("oampnet", 16)),
                     **paper.learned("RE-MIMO-I (even Nt 16…32)", "remimo-nr64-nt16-32even-qam16", args.quick,
                                     lambda: paper.tiny_remimo(16)),
                     **paper.learned("RE-MIMO-II (Nt 16…44)", "remimo-nr64-nt16-44-qam16", args.quick,
                                     lambda: paper.tiny_remimo(16))}
        reference = next(name for name in detectors if name.startswith("RE-MIMO-II"))
        results += paper.measure(detectors, nt, paper.grid(snrs, args.quick), args, reference=reference)
    paper.write(results, args, "RE-MIMO Fig. 11: interpolation (Nt 23) and extrapolation (Nt 36, 40), Nr 64",
                ["paired comparisons against RE-MIMO-II (the full-range model), on the same instances"])


if __name__ == "__main__":
    main()
