"""Pretraining: behaviour cloning of the policy and SARSA evaluation of it by the critic."""

from csil_lite.pretrain.bc import BCResult, bc_loss, train_bc

__all__ = ["BCResult", "bc_loss", "train_bc"]
