import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.nets import HetStatPolicy
from csil_lite.pretrain import bc_loss, train_bc


def test_faithful_loss_routes_gradients():
    """The MSE trains the mean path only; the NLL (with stop-gradients) trains only the Cholesky factors."""
    pol = HetStatPolicy(2, hidden=(16,), features=16)
    obs = jax.random.normal(jax.random.PRNGKey(0), (32, 3))
    act = jnp.tanh(jax.random.normal(jax.random.PRNGKey(1), (32, 2)))
    params = pol.init(jax.random.PRNGKey(2), obs)

    def part(which):
        def f(p):
            _, m = bc_loss(pol, p, obs, act, "faithful")
            return m[which]

        return jax.grad(f)(params)["params"]

    g_nll = part("nll")
    assert float(jnp.abs(g_nll["cholesky_raw"]).sum()) > 0
    for leaf in jax.tree.leaves(g_nll["trunk"]) + [g_nll["mean_weights"], g_nll["frequencies"]]:
        assert float(jnp.abs(leaf).sum()) == 0.0
    g_mse = part("mse")
    assert float(jnp.abs(g_mse["cholesky_raw"]).sum()) == 0.0
    assert float(jnp.abs(g_mse["mean_weights"]).sum()) > 0


def test_train_bc_fits_a_deterministic_map_and_is_seeded():
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (200, 2)).astype(np.float32)
    act = np.tanh(obs @ np.array([[0.8], [-0.5]], np.float32))
    pol = HetStatPolicy(1, hidden=(32, 32), features=32)
    a = train_bc(pol, obs, act, steps=1500, seed=3, progress=False)
    b = train_bc(pol, obs, act, steps=1500, seed=3, progress=False)
    assert a.losses.shape == (1500,)
    np.testing.assert_array_equal(a.losses, b.losses)
    mean, std = pol.apply(a.params, obs)
    assert float(jnp.mean((jnp.tanh(mean) - act) ** 2)) < 5e-3
    assert a.losses[-100:].mean() < a.losses[:100].mean()


@pytest.mark.parametrize(
    "obs,act,kw,msg",
    [
        (np.zeros((4, 2)), np.full((4, 1), 1.5), {}, r"\[-1, 1\]"),
        (np.zeros((4, 2)), np.zeros((3, 1)), {}, "expected obs"),
        (np.zeros((0, 2)), np.zeros((0, 1)), {}, "empty"),
        (np.zeros((4, 2)), np.zeros((4, 1)), {"learning_rate": -1.0}, "learning_rate"),
    ],
)
def test_train_bc_rejects_bad_input(obs, act, kw, msg):
    with pytest.raises(ValueError, match=msg):
        train_bc(HetStatPolicy(1, hidden=(8,), features=8), obs, act, steps=10, progress=False, **kw)
