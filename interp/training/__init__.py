"""Bradley-Terry reward-model training: config, LoRA, pairs, rewards and loss, checkpoints, trainer."""

from interp.training.checkpoints import CHECKPOINT_META, Checkpoint, load_base_as_rm
from interp.training.config import METHODS, TrainConfig
from interp.training.pairs import EncodedPairs, PreferencePair, encode_pairs
from interp.training.rewards import PairwiseEval, bradley_terry_loss, evaluate_pairs
from interp.training.trainer import TrainResult, train_reward_model

__all__ = [
    "CHECKPOINT_META",
    "METHODS",
    "Checkpoint",
    "EncodedPairs",
    "PairwiseEval",
    "PreferencePair",
    "TrainConfig",
    "TrainResult",
    "bradley_terry_loss",
    "encode_pairs",
    "evaluate_pairs",
    "load_base_as_rm",
    "train_reward_model",
]
