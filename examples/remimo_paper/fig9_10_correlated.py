"""RE-MIMO paper, Figs. 9 and 10: SER vs SNR on correlated channels, 16-QAM, Nr = 64, Nt = 16 and 32.

* Fig. 9, correlated (Kronecker, exponential ρ on both sides, eq. 28): trained on ρ drawn from the
  triangular law on [0.55, 0.75] (mode 0.75), tested at ρ = 0.6 and 0.7.
* Fig. 10, partially correlated (receive side only): trained on ρ ∈ [0.65, 0.85], tested here at
  ρ = 0.7 and 0.8 (our choice: the paper's test values are not in its text).

**What the paper reports** (§V-B; no numbers in its text): the single RE-MIMO (16 EP blocks)
"outperforms the OAMPNet which is separately trained for Nt = 16 and Nt = 32", the gap growing with ρ.
Only OAMPNet and RE-MIMO are compared there; we add MMSE, AMP, ZF-PIC and MMSE-SIC as anchors.

**What we get**: **not trained yet** — the Nr 64 correlated checkpoints
(oampnet-nr64-nt{16,32}-qam16-kron / -kronrx, remimo-nr64-nt16-32-qam16-kron / -kronrx) do not
ship; the script says so and runs the classical baselines. SNR axes are ours.

    python examples/remimo_paper/fig9_10_correlated.py [--quick] [--out DIR]
"""
import paper
from gnnmimo.channels import ChannelModel

#: (figure, channel kind, checkpoint suffix, tested ρ values, SNR axes by Nt): ours, see the module doc
CASES = [("fig9", "kronecker", "-kron", (0.6, 0.7), {16: [12, 14, 16, 18, 20], 32: [16, 18, 20, 22, 24]}),
         ("fig10", "kronecker-rx", "-kronrx", (0.7, 0.8), {16: [10, 12, 14, 16], 32: [12, 14, 16, 18]})]


def main() -> None:
    args = paper.arguments(__doc__, "fig9_10")
    results = []
    for figure, kind, suffix, rhos, grids in CASES:
        for rho in rhos:
            results += paper.compare(args, 16, grids, f"remimo-nr64-nt16-32-qam16{suffix}",
                                     channel=ChannelModel(kind, rho=rho), suffix=suffix, detnet=False,
                                     with_sdr=False)
    paper.write(results, args, "RE-MIMO Figs. 9 and 10: correlated channels, 16-QAM, Nr 64",
                ["channel column: kronecker = Fig. 9 (correlated), kronecker-rx = Fig. 10 (partially)",
                 "paired comparisons against OAMPNet trained for the same Nt and channel family"])


if __name__ == "__main__":
    main()
