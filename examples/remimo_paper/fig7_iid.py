"""RE-MIMO paper, Fig. 7: SER vs SNR, i.i.d. Rayleigh, 16-QAM, Nr = 64, Nt = 16 and 32.

**What the paper reports** (§V-A; its text gives no numbers, the figure is not in our copy): the
single RE-MIMO (12 EP blocks, trained once for Nt 16…32) "performs on par with the OAMPNet",
which is trained per Nt and near-optimal on i.i.d. channels; both ahead of SDR, V-BLAST, AMP,
DetNet and MMSE. SNR axes 9–14 dB (Nt 16) and 11–16 dB (Nt 32).

**What we get**: examples/remimo_paper/results/fig7/results.md (reduced sample sizes, stated there).
OAMPNet is trained per Nt (zoo/pretrained/oampnet-nr64-nt{16,32}-qam16); RE-MIMO and DetNet at
Nr 64 are **not trained yet** (a run is about 4 h of this machine per checkpoint): the script says
so and runs the rest.

    python examples/remimo_paper/fig7_iid.py [--quick] [--out DIR] [--max-symbols N] [--sdr-symbols N]
"""
import paper

#: the paper's SNR axes (dB) by Nt
GRIDS = {16: [9, 10, 11, 12, 13, 14], 32: [11, 12, 13, 14, 15, 16]}


def main() -> None:
    paper.iid_figure(__doc__, "fig7", 16, GRIDS, "remimo-nr64-nt16-32-qam16")


if __name__ == "__main__":
    main()
