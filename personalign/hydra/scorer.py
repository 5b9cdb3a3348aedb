"""HYDRA's factorized scorer (Zhuang et al., NeurIPS 2024): a shared backbone trained on every train
user, and a head per user fitted on that user's own profile items.

Inputs are feature vectors of (query, candidate) pairs built from frozen sentence embeddings
(``pair_features``); the backbone is a small MLP over them, a head is a linear map of its output.
Training is listwise: within a group (one query's candidates) the scores' softmax is fitted to the
softmax of the candidates' utilities. A user head starts at the shared head and is pulled back to it
by an L2 term, so a user with few items stays close to the shared model.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from tqdm import tqdm

from personalign.engine.progress import SHOW_AFTER_SECONDS

Group = tuple[np.ndarray, np.ndarray]  # (features: candidates x dim, utilities: candidates)


@dataclass
class ScorerConfig:
    """Hyperparameters of one factorized scorer."""

    hidden: int = 64
    epochs: int = 40
    lr: float = 3e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1    # of the utility softmax: lower means "only the best candidates"
    head_steps: int = 60
    head_lr: float = 0.05
    head_l2: float = 1.0        # pull of a user head towards the shared head
    seed: int = 0


def unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def pair_features(query: np.ndarray, candidates: np.ndarray, user: np.ndarray | None = None) -> np.ndarray:
    """``[q*c, |q-c|]`` per candidate row (unit vectors), plus ``c*u`` with a user centroid ``u``."""
    q, c = unit(query[None, :]), unit(candidates)
    parts = [q * c, np.abs(q - c)] + ([c * unit(user[None, :])] if user is not None else [])
    return np.concatenate(parts, axis=1).astype(np.float32)


def informative(groups: Sequence[Group]) -> list[Group]:
    """Groups that can teach a ranking: two or more candidates whose utilities differ."""
    return [(x, y) for x, y in groups if len(y) >= 2 and float(np.ptp(y)) > 1e-9]


class FactorizedScorer:
    """Shared MLP backbone + shared head; ``fit_head`` gives a user's head, ``score`` uses either."""

    def __init__(self, in_dim: int, config: ScorerConfig | None = None):
        import torch

        self.config = config or ScorerConfig()
        self.in_dim = in_dim
        generator = torch.Generator().manual_seed(self.config.seed)
        layer = torch.nn.Linear(in_dim, self.config.hidden)
        head = torch.nn.Linear(self.config.hidden, 1)
        with torch.no_grad():
            for param in (*layer.parameters(), *head.parameters()):
                param.copy_(torch.randn(param.shape, generator=generator) * (1.0 / np.sqrt(param.shape[-1])))
        self.backbone = torch.nn.Sequential(layer, torch.nn.Tanh())
        self.head = head
        self.losses: list[float] = []

    # ------------------------------------------------------------ training

    def _listwise(self, scores, utilities):
        import torch

        target = torch.softmax(utilities / self.config.temperature, dim=0)
        return -(target * torch.log_softmax(scores, dim=0)).sum()

    def fit_shared(self, groups: Sequence[Group], desc: str | None = None) -> list[float]:
        """Train backbone and shared head on every train user's groups; returns the loss per epoch.

        ``desc``: show a progress bar of epochs under this name (when training lasts over a second).
        """
        import torch

        usable = informative(groups)
        if not usable:
            return []
        tensors = [(torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))) for x, y in usable]
        params = [*self.backbone.parameters(), *self.head.parameters()]
        optimizer = torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        order = np.random.default_rng(self.config.seed)
        epochs = tqdm(range(self.config.epochs), desc=desc, unit="epoch", file=sys.stderr, disable=desc is None,
                      delay=SHOW_AFTER_SECONDS)
        for _ in epochs:
            total = 0.0
            for index in order.permutation(len(tensors)):
                x, y = tensors[index]
                loss = self._listwise(self.head(self.backbone(x)).squeeze(-1), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
            self.losses.append(total / len(tensors))
        return self.losses

    def shared_head(self) -> np.ndarray:
        return np.concatenate([self.head.weight.detach().numpy().ravel(), self.head.bias.detach().numpy()])

    def fit_head(self, groups: Sequence[Group]) -> np.ndarray | None:
        """A user's head (weights then bias) fitted on their own groups, or None without usable groups."""
        import torch

        usable = informative(groups)
        if not usable:
            return None
        shared = torch.from_numpy(self.shared_head().astype(np.float32))
        head = shared.clone().requires_grad_(True)
        with torch.no_grad():
            hidden = [(self.backbone(torch.from_numpy(x)), torch.from_numpy(y.astype(np.float32))) for x, y in usable]
        optimizer = torch.optim.Adam([head], lr=self.config.head_lr)
        for _ in range(self.config.head_steps):
            loss = sum(self._listwise(h @ head[:-1] + head[-1], y) for h, y in hidden) / len(hidden)
            loss = loss + self.config.head_l2 * ((head - shared) ** 2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return head.detach().numpy().copy()

    # ------------------------------------------------------------ use

    def score(self, features: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
        """Scores of candidate rows under ``head`` (the shared head when None)."""
        import torch

        weights = self.shared_head() if head is None else head
        with torch.no_grad():
            hidden = self.backbone(torch.from_numpy(features.astype(np.float32))).numpy()
        return hidden @ weights[:-1] + weights[-1]

    def to_bytes(self) -> bytes:
        import torch

        buffer = io.BytesIO()
        torch.save({"in_dim": self.in_dim, "config": vars(self.config), "backbone": self.backbone.state_dict(),
                    "head": self.head.state_dict(), "losses": self.losses}, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "FactorizedScorer":
        import torch

        state = torch.load(io.BytesIO(raw), weights_only=True)
        scorer = cls(state["in_dim"], ScorerConfig(**state["config"]))
        scorer.backbone.load_state_dict(state["backbone"])
        scorer.head.load_state_dict(state["head"])
        scorer.losses = list(state["losses"])
        return scorer
