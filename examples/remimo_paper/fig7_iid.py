"""RE-MIMO paper, Fig. 7: SER vs SNR, i.i.d. Rayleigh, 16-QAM, Nr = 64, Nt = 16 and 32.

**What the paper reports** (§V-A; its text gives no numbers, the figure is not in our copy): the
single RE-MIMO (12 EP blocks, trained once for Nt 16…32) "performs on par with the OAMPNet",
which is trained per Nt and near-optimal on i.i.d. channels; both ahead of SDR, V-BLAST, AMP,
DetNet and MMSE. SNR axes 9–14 dB (Nt 16) and 11–16 dB (Nt 32).

**What we get** (examples/remimo_paper/results/fig7/results.md; reduced sizes: ≤ 500 errors or
~50 k symbols per point, SDR 64 symbols): SNR at SER 1e-2 for Nt 16 / 32, OAMPNet (trained per Nt,
14 min each) 9.93 / 13.20 dB, AMP 10.00 / 13.23, ZF-PIC 10.14 / 14.32, MMSE-SIC 10.30 / 14.26,
MMSE 10.84 / 15.64; SDR's 64 symbols give no crossing. RE-MIMO and DetNet at Nr 64 are **not
trained yet** (about 4 h of this machine per checkpoint): the script says so and runs the rest.

    python examples/remimo_paper/fig7_iid.py [--quick] [--out DIR] [--max-symbols N] [--sdr-symbols N]
"""
import paper

#: the paper's SNR axes (dB) by Nt
GRIDS = {16: [9, 10, 11, 12, 13, 14], 32: [11, 12, 13, 14, 15, 16]}


def main() -> None:
    paper.iid_figure(__doc__, "fig7", 16, GRIDS, "remimo-nr64-nt16-32-qam16")


if __name__ == "__main__":
    main()
