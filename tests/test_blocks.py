"""The block contract: declared reads and writes, per-instance key sets, the Chain, a read-only graph."""
import pytest
import torch

import zoo
from gnnmimo.blocks import Block, BlockContractError, Chain
from gnnmimo.blocks.amp import AMPLinear
from gnnmimo.blocks.denoiser import Denoiser, PAMPosterior, prior_state
from gnnmimo.blocks.ep import EPCavity, EPUpdate
from gnnmimo.blocks.gnn import PairwiseMRFGNN
from gnnmimo.blocks.mlp import PointwiseMLP
from gnnmimo.blocks.oamp import OAMPLinear
from gnnmimo.sampling import MIMOSampler

#: options a registered detector needs, and the fixed Nt of its batch (None: mixed)
OPTIONS = {"remimo": dict(nr=8), "detnet": dict(nr=8, nt=4)}
FIXED_NT = {"detnet": 4}


def batch(nt=(2, 4), size=3, seed=0):
    sampler = MIMOSampler(8, nt, 16, snr_db=(5.0, 15.0))
    return sampler.sample(size, sampler.generator(seed))


class Scale(Block):
    """``out = 2 · x``, returning what ``returned`` names (to break the contract on purpose)."""

    default_reads = ("x",)
    default_writes = ("out",)

    def __init__(self, returned=("out",), **keys):
        super().__init__(**keys)
        self.returned = returned

    def update(self, graph, state):
        return {key: 2 * state["x"] for key in self.returned}


def test_undeclared_write_raises_naming_the_block_and_key():
    with pytest.raises(BlockContractError, match=r"Scale.*undeclared \['extra'\]"):
        Scale(returned=("out", "extra"))(None, {"x": torch.ones(2)})


def test_omitted_declared_write_raises_naming_the_block_and_key():
    with pytest.raises(BlockContractError, match=r"Scale.*omitted \['out'\]"):
        Scale(returned=())(None, {"x": torch.ones(2)})
    with pytest.raises(BlockContractError, match=r"Scale.*omitted \['other'\]"):
        Scale(writes=("out", "other"))(None, {"x": torch.ones(2)})


def test_missing_read_raises_naming_the_block_and_the_state():
    with pytest.raises(KeyError, match=r"Scale reads \['x'\] but the state only has \['y'\]"):
        Scale()(None, {"y": torch.ones(2)})


def test_a_block_returns_a_new_state_with_its_writes():
    state = {"x": torch.ones(2)}
    out = Scale()(None, state)
    assert set(out) == {"x", "out"} and set(state) == {"x"}


def test_per_instance_key_sets_leave_the_class_defaults_alone():
    mlp = PointwiseMLP(4, 3, inputs=("a", "b"), output="c")
    assert (mlp.reads, mlp.writes) == (("a", "b"), ("c",))
    assert PointwiseMLP.default_reads == PointwiseMLP.default_writes == ()
    assert "reads" not in vars(mlp) and "writes" not in vars(mlp)
    gnn = PairwiseMRFGNN(16, observation=True, skip=True, refine=True)
    assert gnn.reads == ("obs_mean", "obs_var")
    assert gnn.writes == ("gnn_node", "gnn_state", "pam_logits", "obs_log_scale")
    assert PairwiseMRFGNN.default_reads == ()
    assert PairwiseMRFGNN.default_writes == ("gnn_node", "gnn_state", "pam_logits")
    assert PairwiseMRFGNN(16).reads == ()
    scale = Scale(reads=("y",))
    assert scale.reads == ("y",) and Scale.default_reads == ("x",) and Scale().reads == ("x",)


def test_optional_reads_are_declared():
    assert EPCavity().optional_reads == ("ep_lambda", "ep_gamma")
    assert AMPLinear().optional_reads == ("antenna_residual", "antenna_var")
    assert PairwiseMRFGNN(16).optional_reads == ("gnn_node", "gnn_state")


def test_key_sets_are_validated_and_cannot_be_class_attributes():
    with pytest.raises(ValueError, match="repeated"):
        Scale(writes=("out", "out"))
    with pytest.raises(ValueError, match="as reads and as optional reads"):
        Scale(optional_reads=("x",))
    with pytest.raises(TypeError, match="default_reads"):
        class Shadowing(Block):  # noqa: F841
            reads = ("x",)


def test_chain_rejects_a_misordered_pipeline_naming_block_and_key():
    with pytest.raises(ValueError, match=r"Denoiser \(block 0 of the chain\) reads 'obs_mean'"):
        Chain(Denoiser(16), AMPLinear(), given=("mean", "var"))
    with pytest.raises(ValueError, match=r"EPUpdate \(block 1 of the chain\) reads 'mean'"):
        Chain(EPCavity(), EPUpdate(), Denoiser(16), given=())
    with pytest.raises(TypeError, match="not a Block"):
        Chain(AMPLinear(), torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="at least one"):
        Chain()


def test_chain_accepts_a_valid_order_and_derives_its_keys():
    chain = Chain(EPCavity(), Denoiser(16), EPUpdate(), given=())
    assert chain.reads == ()
    assert chain.optional_reads == ("ep_lambda", "ep_gamma")
    assert set(chain.writes) == {"obs_mean", "obs_var", "ep_lambda", "ep_gamma", "pam_logits", "mean", "var",
                                 "logits"}
    assert Chain(Denoiser(16), AMPLinear()).reads == ("obs_mean", "obs_var")   # derived, unchecked
    graph = batch()
    cavity, denoiser, update = EPCavity(), Denoiser(16), EPUpdate()
    state = {}
    for _ in range(3):
        by_hand = update(graph, denoiser(graph, cavity(graph, state)))
        chained = Chain(cavity, denoiser, update)(graph, state)
        assert by_hand.keys() == chained.keys()
        assert all(torch.equal(by_hand[key], chained[key]) for key in by_hand)
        state = by_hand


def test_chain_registers_its_blocks_unless_told_not_to():
    linear, posterior = OAMPLinear(learnable=True), PAMPosterior(16)
    gnn = PairwiseMRFGNN(16, observation=True, skip=True)
    owning = Chain(linear, gnn, posterior, given=("mean",))
    assert len(owning) == 3 and owning[1] is gnn and list(owning) == [linear, gnn, posterior]
    assert {name.split(".")[0] for name in owning.state_dict()} == {"0", "1"}
    holder = torch.nn.Module()
    holder.gnn, holder.chain = gnn, Chain(linear, gnn, posterior, register=False)
    assert all(name.startswith("gnn.") for name in holder.state_dict())


def structure(graph):
    return (sorted(graph.node_types), sorted(graph.edge_types), sorted(graph.keys()),
            [sorted(store.keys()) for store in graph.node_stores],
            [sorted(store.keys()) for store in graph.edge_stores])


@pytest.mark.parametrize("name", zoo.list())
def test_detectors_leave_the_batch_unchanged(name, one_thread):
    graph = batch(FIXED_NT.get(name, (2, 4)), size=2)
    before = structure(graph)
    with torch.no_grad():
        zoo.create(name, 16, **OPTIONS.get(name, {}))(graph)
    assert structure(graph) == before


def test_graph_attention_and_gnn_blocks_leave_the_batch_unchanged():
    graph = batch()
    before = structure(graph)
    remimo = zoo.create("remimo", 16, nr=8, blocks=1, d_model=8, attention="graph")
    with torch.no_grad():
        remimo(graph)
        PairwiseMRFGNN(16)(graph, prior_state(graph))
    assert structure(graph) == before


def test_user_edges_match_the_materialised_ones():
    graph = batch()
    edge_index, gram = graph.user_edges()
    assert graph.user_edges()[0] is edge_index                               # memoised
    graph.add_user_edges()
    assert torch.equal(graph.user_edges()[0], edge_index) and torch.equal(graph.user_edges()[1], gram)
    assert graph.user_batch[edge_index[0]].equal(graph.user_batch[edge_index[1]])
    assert edge_index.shape[1] == int((graph.num_users * (graph.num_users - 1)).sum())
