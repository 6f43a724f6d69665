"""Networks: policies (HetStat, plain MLP), critics and shared layers."""

from csil_lite.nets.policy import HetStatPolicy, MLPPolicy, make_policy, policy_distribution

__all__ = ["HetStatPolicy", "MLPPolicy", "make_policy", "policy_distribution"]
