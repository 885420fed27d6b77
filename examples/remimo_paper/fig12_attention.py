"""RE-MIMO paper, Fig. 12: what the attention attends to, in the controlled experiment of §V-C.2.

Nr = 32, Nt = 12, 16-QAM; the users form three sets of four whose channels are correlated within
a set and orthogonal across sets (``ChannelModel("orthogonal-sets", rho=...)``: an orthonormal
frame mixed within each set by the Cholesky factor of ρ^{|i−j|}, docs/conventions.md §2.2b).
RE-MIMO with 8 EP blocks and one attention head is trained on it; the figure is the heat map of
the third block's attention α_ij (``REMIMO.attention_maps``), and the number is the attention
mass each user puts on its own set, Σ_{j ∈ set(i)} α_ij (chance: 4/12), averaged over the users
of an instance, with its mean and spread over instances. Also: SER against MMSE and EP on the
same channel, paired on the same instances.

**What the paper reports**: a heat map in which each user attends "only to the users belonging to
the non-orthogonal (parent) set" (no number in the text).

**What we get** (zoo/pretrained/remimo-nr32-nt12-qam16-sets, 33 min of training on one CPU
thread; examples/remimo_paper/results/fig12/): own-set attention mass **0.945 ± 0.045** (mean ± std
over 2000 instances, chance 0.333) and a block-diagonal heat map as in the paper; the detector
itself is under-trained (LMMSE level at 14.5 dB, 1.4 dB behind LMMSE at SER 1e-2).

    python examples/remimo_paper/fig12_attention.py [--quick] [--out DIR] [--checkpoint PATH] [--instances N]
"""
import argparse
from pathlib import Path

import torch

import paper
import zoo
from gnnmimo.channels import SET_SIZE, ChannelModel
from gnnmimo.sampling import MIMOSampler

NAME = "remimo-nr32-nt12-qam16-sets"
NR, NT, BLOCK = 32, 12, 3          # BLOCK: the paper's third EP block
#: the channel and SNR range of the shipped checkpoint's training (used for the stand-in too)
CHANNEL = ChannelModel("orthogonal-sets", rho=(0.7, 0.9))
SNRS = [14.5, 16, 18, 20, 21.5]


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=NAME, help="a pretrained name or a checkpoint file")
    parser.add_argument("--instances", type=int, default=2000, help="instances for the attention statistics")


def own_set_mass(maps: torch.Tensor, set_size: int) -> torch.Tensor:
    """``[B, H, Nt, Nt]`` attention (one block) → ``[B]``: the mean over heads and users ``i`` of
    ``Σ_{j in set(i)} α_ij``."""
    users = torch.arange(maps.shape[-1])
    same = (users[:, None] // set_size == users[None, :] // set_size).to(maps.dtype)
    return (maps * same).sum(-1).mean((-1, -2))


def main() -> None:
    args = paper.arguments(__doc__, "fig12", add_options)
    instances = 16 if args.quick else args.instances
    if args.checkpoint == NAME:
        found = paper.learned("RE-MIMO", NAME, args.quick,
                              lambda: zoo.create("remimo", 16, nr=NR, d_model=8, heads=1, blocks=BLOCK))
    else:
        found = {"RE-MIMO": zoo.load(args.checkpoint)}
    results = paper.measure({"MMSE": zoo.create("mmse", 16), "EP": zoo.create("ep", 16), **found}, NT,
                            paper.grid(SNRS, args.quick), args, channel=CHANNEL, nr=NR, reference="MMSE")
    if not found:
        paper.write(results, args, "RE-MIMO Fig. 12 (not trained yet): baselines on the orthogonal-sets channel",
                    ["no RE-MIMO checkpoint: no attention map"])
        return
    (label, detector), = found.items()
    sampler = MIMOSampler(NR, NT, 16, channel=CHANNEL, snr_db=(SNRS[0], SNRS[-1]))
    graph = sampler.sample(instances, sampler.generator(args.seed + 1))
    maps = detector.attention_maps(graph)[BLOCK - 1].float()                     # [B, H, Nt, Nt]
    mass = own_set_mass(maps, SET_SIZE)
    summary = {"detector": label, "block": BLOCK, "instances": instances, "snr_db": [SNRS[0], SNRS[-1]],
               "channel": CHANNEL.describe(), "chance": SET_SIZE / NT, "own_set_mass_mean": mass.mean().item(),
               "own_set_mass_std": mass.std().item(),
               "own_set_mass_quantiles": dict(zip(("5%", "50%", "95%"),
                                                  mass.quantile(torch.tensor([0.05, 0.5, 0.95])).tolist())),
               "mean_map": maps.mean((0, 1)).tolist()}
    out = Path(args.out)
    paper.write_json(summary, out / "attention.json")
    print(f"own-set attention mass of block {BLOCK} ({label}): {summary['own_set_mass_mean']:.3f} ± "
          f"{summary['own_set_mass_std']:.3f} (std over {instances} instances; chance {SET_SIZE / NT:.3f})")
    heat_map(maps, out / "attention.png", f"{label}, block {BLOCK}")
    paper.write(results, args, "RE-MIMO Fig. 12: the orthogonal-sets channel, Nr 32, Nt 12, 16-QAM",
                [f"own-set attention mass, block {BLOCK}: {summary['own_set_mass_mean']:.3f} ± "
                 f"{summary['own_set_mass_std']:.3f} (mean ± std over {instances} instances, SNR uniform on "
                 f"{SNRS[0]}–{SNRS[-1]} dB; quantiles 5/50/95 %: "
                 + ", ".join(f"{v:.3f}" for v in summary["own_set_mass_quantiles"].values())
                 + f"; chance {SET_SIZE / NT:.3f})", "paired comparisons against MMSE on the same instances"])


def heat_map(maps: torch.Tensor, path: Path, title: str) -> None:
    """One instance's map (as the paper shows) next to the mean over instances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    for ax, (name, matrix) in zip(axes, (("instance 0", maps[0].mean(0)), ("mean over instances", maps.mean((0, 1))))):
        image = ax.imshow(matrix.numpy(), cmap="viridis", vmin=0)
        ax.set(title=f"{title}: {name}", xlabel="attended user j", ylabel="user i",
               xticks=range(NT), yticks=range(NT))
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
