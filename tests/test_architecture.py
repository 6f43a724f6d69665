"""The architecture's promises: observation pytrees through BC, replay and updates; strings read only where the
configuration is assembled; a resume that never repeats BC or SARSA; BC and SARSA that resume themselves."""

import io
import re
import tokenize
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.configs import ALGORITHMS, preset
from csil_lite.data.transitions import Transitions

PACKAGE = Path(__file__).resolve().parents[1] / "csil_lite"
CORE = [*sorted((PACKAGE / "agents").glob("*.py")), PACKAGE / "loop.py"]
ACT = 2


def _dict_demos(n_episodes=3, t=20, seed=0, image_shape=(6, 6, 1)) -> Transitions:
    """Episodes whose observation is {"state": float32 [4], "image": uint8 `image_shape`} and whose action follows
    the state, so BC has something to fit."""
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n_episodes):
        state = rng.uniform(-1, 1, (t + 1, 4)).astype(np.float32)
        image = rng.integers(0, 256, (t + 1, *image_shape), dtype=np.uint8)
        obs = {"state": state, "image": image}
        eps.append({"obs": jax.tree.map(lambda x: x[:-1], obs), "next_obs": jax.tree.map(lambda x: x[1:], obs),
                    "actions": np.tanh(state[:-1, :ACT]).astype(np.float32), "terminal": False})
    from csil_lite.data.transitions import episodes_to_transitions

    return episodes_to_transitions(eps)


@pytest.mark.parametrize("algo", ["csil", "csilpp"])
def test_bc_and_updates_on_a_dict_observation_with_a_uint8_image(algo):
    from csil_lite.agents.core import make_update
    from csil_lite.loop import prepare
    from csil_lite.replay import ReplayBuffer, mixed_batch

    demos = _dict_demos()
    assert demos.obs["image"].dtype == np.uint8 and demos.obs["state"].dtype == np.float32
    cfg = preset("preview", algo=algo, bc_steps=300, critic_pretrain_steps=20, bc_batch=16,
                 agent=dict(n_demo=8, n_online=8),
                 nets=dict(policy_hidden=(16,), features=16, critic_hidden=(16,), critic_atoms=11))
    setup = prepare(cfg, demos, progress=False)
    assert setup.bc_losses[-50:].mean() < setup.bc_losses[:50].mean()  # BC learned from the dict observations
    assert np.all(np.isfinite(setup.critic_losses))
    replay = ReplayBuffer(100, demos.obs_spec, ACT)
    assert replay._frames["_0"].dtype == np.uint8 and replay._frames["_1"].dtype == np.float32  # "image", "state"
    assert replay.frame_capacity == 112  # an image leaf: capacity + capacity // 10 + 2 frames
    assert replay.memory_bytes == 112 * (36 + 4 * 4) + 100 * (4 * ACT + 3 * 4 + 2 * 8)
    online = demos.take(np.arange(30))
    replay.add(online.obs, online.action, online.reward, online.next_obs, online.terminal, online.last)
    with pytest.raises(TypeError, match="uint8"):  # a float image is not stored into uint8 silently
        replay.add({"state": online.obs["state"][0], "image": online.obs["image"][0].astype(np.float32)},
                   online.action[0], 0.0, jax.tree.map(lambda x: x[0], online.next_obs), False)
    batch = mixed_batch(demos, replay, 8, 8, np.random.default_rng(0), utd=cfg.agent.utd)
    assert batch.obs["image"].dtype == np.uint8 and batch.obs["image"].shape == (cfg.agent.utd, 16, 6, 6, 1)
    update, state = make_update(setup.agent), setup.state
    for i in range(3):
        state, metrics = update(state, jax.tree.map(jnp.asarray, batch), jax.random.PRNGKey(i))
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    moved = [float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(state.critic.params),
                                                          jax.tree.leaves(setup.state.critic.params))]
    assert max(moved) > 0


def _code_tokens(path: Path):
    """(line, token) of every name and string literal of a module, docstrings and comments left out."""
    src = path.read_text()
    tokens = list(tokenize.generate_tokens(io.StringIO(src).readline))
    prev = None
    for tok in tokens:
        if tok.type == tokenize.STRING and prev in (tokenize.INDENT, tokenize.NEWLINE, tokenize.NL, None):
            prev = tok.type  # a docstring (a string statement)
            continue
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            prev = tok.type
        if tok.type in (tokenize.NAME, tokenize.STRING):
            yield tok.start[0], tok


def _string_value(tok) -> str | None:
    if tok.type != tokenize.STRING or re.match(r"^[rbuRBU]*[fF]", tok.string):
        return None  # f-strings are messages
    try:
        return eval(tok.string)  # noqa: S307 - a literal from our own source
    except Exception:
        return None


COMPONENT_NAMES = {
    # every choice a configuration names: priors, rewards, KL estimators, critic norms and heads, supports, shifts,
    # densities, policies, encoders, and the named algorithms
    "bc", "uniform", "coherent", "env", "sparse", "mc", "exact", "layer", "none", "batch", "batch_weight",
    "scalar", "categorical", "floor", "demos", "bound", "action", "latent", "pos", "neg", "hetstat", "mlp",
    "flatten", *ALGORITHMS, "csil++", "xqc",
    "ensemble", "residual", "standin", "openpi",  # compositions and base sources (BaseConfig)
}


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_reads_no_component_or_algorithm_strings(path):
    """`loop.py` and `agents/` never compare with, look up or branch on a configuration's component or algorithm
    name: those strings are read in `assembly.py` only (the components arrive built)."""
    for line, tok in _code_tokens(path):
        value = _string_value(tok)
        assert value not in COMPONENT_NAMES, f"{path.name}:{line} names the component {value!r}"
        if path.parent.name == "agents":
            assert tok.string not in ("algo", "algorithm"), f"{path.name}:{line} reads the algorithm's name"
    # The loop copies `cfg.algo` into its logs as a label; it never compares with it or looks anything up by it.
    decides = re.compile(r"algo\s*(==|!=|\bin\b)|(==|!=)\s*[\w.]*algo\b|\[\s*[\w.]*algo\s*\]|get\([\w.]*algo")
    hits = [ln for ln in path.read_text().splitlines() if decides.search(ln)]
    assert not hits, f"{path.name}: {hits}"


OBS_KIND = re.compile(r"isinstance\([^)]*obs|obs[\w.]*\.(ndim|dtype)\b|hasattr\([^)]*obs|\"(image|rgb|pixels|state)\"")


@pytest.mark.parametrize("path", [*CORE, *sorted((PACKAGE / "pretrain").glob("*.py"))], ids=lambda p: p.name)
def test_core_never_asks_what_kind_of_observation_it_holds(path):
    """No `if` on observation kind: no isinstance/hasattr on observations, no look at their ndim or dtype, no
    observation key names in `agents/`, `pretrain/` or `loop.py` (the encoder and `csil_lite.obs` do that)."""
    code = "\n".join(tok.string if tok.type != tokenize.STRING or _string_value(tok) is not None else "''"
                     for _, tok in _code_tokens(path))
    hits = [m.group(0) for m in OBS_KIND.finditer(code)]
    assert not hits, f"{path.name}: {hits}"


TINY = dict(task="pointmass-reach", num_demos=3, bc_steps=60, critic_pretrain_steps=40, env_steps=300,
            learning_starts=64, eval_every=100, eval_episodes=2, replay_capacity=1000,
            agent=dict(n_demo=32, n_online=32), nets=dict(policy_hidden=(16,), features=16, critic_hidden=(16,)))


def test_a_resume_never_calls_bc_or_sarsa(tmp_path, monkeypatch):
    """Interrupted in the online phase, a run resumes from the prepared setup stored in its directory: BC and
    SARSA are not called again (they would raise here), and the run ends as an uninterrupted one does."""
    import csil_lite.loop as loop_mod
    from csil_lite.loop import read_metrics, train

    cfg = preset("preview", **TINY)
    first = train(cfg, tmp_path / "split", progress=False, stop_after=150)
    assert not first["completed"]
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(1)
        raise AssertionError("a resume must not pretrain")

    with monkeypatch.context() as m:
        m.setattr(loop_mod, "train_bc", forbidden)
        m.setattr(loop_mod, "pretrain_critic", forbidden)
        second = train(cfg, tmp_path / "split", progress=False)
    assert second["completed"] and not calls
    train(cfg, tmp_path / "full", progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]  # noqa: E731
    assert strip(read_metrics(tmp_path / "split")) == strip(read_metrics(tmp_path / "full"))


def test_bc_and_sarsa_killed_midway_resume_where_they_stopped(tmp_path, monkeypatch):
    """`prepare` with a run directory checkpoints BC and SARSA every chunk. A first call interrupted after 2 chunks
    of each (the step function raises, as a kill would end it) leaves those checkpoints; the next call restores
    them (from step 2 chunks on) and ends with exactly the params of an uninterrupted preparation."""
    import csil_lite.pretrain.bc as bc_mod
    from csil_lite.loop import prepare

    cfg = preset("preview", **{**TINY, "bc_steps": 2000, "critic_pretrain_steps": 1500})
    chunk = 500  # scan_in_chunks' default
    whole = prepare(cfg, progress=False)
    restored_at: list[int] = []
    real_restore = bc_mod.Checkpoints.restore

    def spy(self, like=None, step=None, **kw):
        restored_at.append(self.latest())
        return real_restore(self, like, step, **kw)

    real_scan = bc_mod.scan_in_chunks

    def killed_after_two_chunks(step, carry, key, steps, **kw):
        real_scan(step, carry, key, 2 * chunk, **kw)  # checkpoints at 1 and 2 chunks, then "dies"
        raise KeyboardInterrupt

    import csil_lite.pretrain.critic as critic_mod

    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(bc_mod, "scan_in_chunks", killed_after_two_chunks)
        with pytest.raises(KeyboardInterrupt):
            prepare(cfg, progress=False, run_dir=run_dir)  # dies in BC
    assert (run_dir / "prepare" / "behaviour_cloning").exists() and not (run_dir / "prepare" / "result").exists()
    with monkeypatch.context() as m:
        m.setattr(bc_mod.Checkpoints, "restore", spy)
        m.setattr(critic_mod, "scan_in_chunks", killed_after_two_chunks)
        with pytest.raises(KeyboardInterrupt):
            prepare(cfg, progress=False, run_dir=run_dir)  # BC resumes and ends; dies in SARSA
    assert restored_at == [2 * chunk]
    with monkeypatch.context() as m:
        m.setattr(bc_mod.Checkpoints, "restore", spy)
        resumed = prepare(cfg, progress=False, run_dir=run_dir)  # BC is read back, SARSA resumes and ends
    assert restored_at == [2 * chunk, cfg.bc_steps, 2 * chunk]  # BC's finished checkpoint: no BC step runs
    for a, b in zip(jax.tree.leaves((whole.state, whole.bc_losses, whole.critic_losses)),
                    jax.tree.leaves((resumed.state, resumed.bc_losses, resumed.critic_losses))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not (run_dir / "prepare" / "behaviour_cloning").exists() and (run_dir / "prepare" / "result").exists()
    with monkeypatch.context() as m:  # prepared: a third call trains nothing
        m.setattr(bc_mod, "scan_in_chunks", None)
        again = prepare(cfg, progress=False, run_dir=run_dir)
    for a, b in zip(jax.tree.leaves(whole.state), jax.tree.leaves(again.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert again.agent.setup() == whole.agent.setup()


def test_checkpoints_are_whole_and_keep_zero_size_arrays(tmp_path):
    """orbax saves no zero-size array (an empty replay, a run without SARSA): they come back with their shape and
    dtype; the newest `keep` steps are kept, a saved step is not written twice, meta comes back alone."""
    from csil_lite.checkpoints import Checkpoints

    tree = {"losses": np.zeros(0, np.float32), "replay": {"obs": np.zeros((0, 3), np.uint8)},
            "params": {"w": jnp.arange(6.0).reshape(2, 3)}}
    ckpts = Checkpoints(tmp_path / "c", keep=2)
    assert ckpts.latest() is None and not (tmp_path / "c").exists()  # asking creates nothing
    for step in (1, 2, 3):
        ckpts.save(step, jax.tree.map(lambda x: x + step if x.size else x, tree), {"step": step})
    ckpts.save(3, tree, {"step": -1})  # already saved: kept as it was
    assert ckpts.latest() == 3 and sorted(int(p.name) for p in (tmp_path / "c").iterdir()) == [2, 3]
    for like in (None, tree):
        back, meta = Checkpoints(tmp_path / "c").restore(like)
        assert meta == {"step": 3}
        assert back["losses"].shape == (0,) and back["losses"].dtype == np.float32
        assert back["replay"]["obs"].shape == (0, 3) and back["replay"]["obs"].dtype == np.uint8
        np.testing.assert_array_equal(np.asarray(back["params"]["w"]), np.arange(6.0).reshape(2, 3) + 3)
    assert Checkpoints(tmp_path / "c").restore(meta_only=True) == (None, {"step": 3})
