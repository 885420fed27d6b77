"""RE-MIMO paper, Fig. 8: SER vs SNR, i.i.d. Rayleigh, 64-QAM, Nr = 64, Nt = 16 and 32.

**What the paper reports** (§V-A; no numbers in its text, the figure is not in our copy): a single
RE-MIMO (16 EP blocks for 64-QAM) "performs almost at par with the optimal detectors for i.i.d.
channels trained separately for Nt = 16 and Nt = 32" (OAMPNet).

**What we get**: **not trained yet** — no Nr 64 64-QAM checkpoint ships (RE-MIMO, OAMPNet, DetNet);
the issue schedules this figure after the others' training. The script runs the classical
baselines (MMSE, AMP, ZF-PIC, MMSE-SIC, SDR on fewer symbols) and says which checkpoints are
missing. The SNR axes are ours (the paper's are not in its text): about 6 dB above Fig. 7's, the
usual 16→64-QAM gap at equal SER.

    python examples/remimo_paper/fig8_qam64.py [--quick] [--out DIR]
"""
import paper

#: SNR axes (dB) by Nt (ours, see the module doc)
GRIDS = {16: [15, 16, 17, 18, 19, 20], 32: [17, 18, 19, 20, 21, 22]}


def main() -> None:
    paper.iid_figure(__doc__, "fig8", 64, GRIDS, "remimo-nr64-nt16-32-qam64")


if __name__ == "__main__":
    main()
