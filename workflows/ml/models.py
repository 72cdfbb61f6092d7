"""Model architectures. One class each; attention weights are returned, never stashed.

Shapes: B = batch, T = window length (48), F = input features, H = hidden size.
Every model returns a `ModelOutput` whose `attention` holds, per sample, one
weight per input hour (B, T) summing to 1 (the Transformer also returns its
per-layer, per-head maps for the last query position in `attention_maps`).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class ModelOutput:
    ret: torch.Tensor  # (B,) next-hour return, in target-scale units
    attention: torch.Tensor  # (B, T) weight per input hour
    log_var: torch.Tensor | None = None  # (B,) predictive log-variance of ret (Gaussian NLL head)
    vol: torch.Tensor | None = None  # (B,) realised-volatility forecast, positive
    vol_next: torch.Tensor | None = None  # (B,) next-hour volatility (RMS of the next return), positive
    direction_logits: torch.Tensor | None = None  # (B, 3) DOWN / STABLE / UP
    attention_maps: torch.Tensor | None = None  # (B, L, heads, T) Transformer: last query, per layer/head
    scale_attention: torch.Tensor | None = None  # (B, S, T) multi-scale pools
    member_spread: torch.Tensor | None = None  # (B,) ensemble: std of member return forecasts
    member_attention: torch.Tensor | None = None  # (B, N, T) ensemble: each member's attention


@dataclass(frozen=True)
class Heads:
    """Which multi-task heads to attach. `gaussian` makes the return head predict a variance."""

    gaussian: bool = False
    volatility: bool = False
    direction: bool = False
    volatility_next: bool = False  # a second volatility head: the size of the next hour's return
    # The volatility heads output a log-variance s (vol = exp(s / 2)) instead of softplus(z): linear in the
    # log scale a volatility lives on, starting at s = 0, the training targets' mean variance (targets are in
    # units of the training returns' standard deviation). Trained by QLIKE, which is consistent for the
    # variance, the level is calibrated by the loss itself.
    log_variance: bool = False


class TaskHeads(nn.Module):
    """Return (mean [, log-variance]), volatility (softplus) and direction heads on a representation."""

    def __init__(self, in_dim: int, heads: Heads, hidden: tuple[int, ...] = ()):
        super().__init__()
        self.heads = heads
        layers: list[nn.Module] = []
        dim = in_dim
        for width in hidden:
            layers += [nn.Linear(dim, width), nn.GELU()]
            dim = width
        self.trunk = nn.Sequential(*layers)
        self.ret = nn.Linear(dim, 2 if heads.gaussian else 1)
        self.vol = nn.Linear(dim, 1) if heads.volatility else None
        self.vol_next = nn.Linear(dim, 1) if heads.volatility_next else None
        self.direction = nn.Linear(dim, 3) if heads.direction else None

    def forward(self, rep: torch.Tensor) -> dict:
        z = self.trunk(rep)
        out = self.ret(z)
        result = {"ret": out[:, 0]}
        if self.heads.gaussian:
            result["log_var"] = out[:, 1].clamp(-10.0, 10.0)
        if self.vol is not None:
            result["vol"] = self._positive(self.vol(z)[:, 0])
        if self.vol_next is not None:
            result["vol_next"] = self._positive(self.vol_next(z)[:, 0])
        if self.direction is not None:
            result["direction_logits"] = self.direction(z)
        return result

    def _positive(self, z: torch.Tensor) -> torch.Tensor:
        """A volatility from a head's raw output: exp(s / 2) of a log-variance s, or softplus(z)."""
        if self.heads.log_variance:
            return torch.exp(0.5 * z.clamp(-LOG_VAR_BOUND, LOG_VAR_BOUND))
        return F.softplus(z) + 1e-4


# A log-variance head's output is clamped to +-LOG_VAR_BOUND (a variance e^20 times the training mean's).
LOG_VAR_BOUND = 20.0


class ReferenceAttentionLSTM(nn.Module):
    """The reference design, kept to reproduce its analysis: an LSTM, a `Linear(H, 1)`
    score per step, softmax over the T steps, the weighted sum of LSTM outputs, a
    linear head. Its scores see each step's hidden state alone (no query)."""

    def __init__(self, n_features: int, hidden: int = 128, heads: Heads = Heads()):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.score = nn.Linear(hidden, 1)
        self.heads = TaskHeads(hidden, heads)

    def forward(self, x: torch.Tensor, uniform_attention: bool = False) -> ModelOutput:  # x: (B, T, F)
        outputs, _ = self.lstm(x)  # (B, T, H)
        weights = torch.softmax(self.score(outputs).squeeze(-1), dim=1)  # (B, T)
        if uniform_attention:  # ablation: every hour weighted 1/T
            weights = torch.full_like(weights, 1.0 / weights.shape[1])
        context = torch.bmm(weights.unsqueeze(1), outputs).squeeze(1)  # (B, H)
        return ModelOutput(attention=weights, **self.heads(context))


class QueryAttentionLSTM(nn.Module):
    """An attention LSTM that learns where to look.

    The LSTM's last hidden state forms a query (Luong-style); keys and values are
    encodings of each input hour *itself* plus a learned embedding of its lag, so
    a weight on position p means "the information of hour p", not an LSTM state
    that already mixes all earlier hours. Scores are scaled by 1/sqrt(d). The head
    reads the attended context next to the last state (a residual path), so the
    model is never worse off than an LSTM reading its last state. Multi-scale:
    one pool per scale over the most recent `s` hours (e.g. 6, 24, 48).
    """

    scale_mask: torch.Tensor  # a buffer: (S, T) which hours each pool sees

    def __init__(
        self,
        n_features: int,
        hidden: int = 64,
        d_attn: int = 32,
        window: int = 48,
        scales: tuple[int, ...] = (48,),
        dropout: float = 0.1,
        heads: Heads = Heads(),
    ):
        super().__init__()
        self.window = window
        self.scales = tuple(scales)
        self.d_attn = d_attn
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.query = nn.Linear(hidden, d_attn * len(self.scales))
        self.key = nn.Linear(n_features, d_attn)
        self.value = nn.Linear(n_features, d_attn)
        self.lag_embedding = nn.Parameter(torch.randn(window, d_attn) * 0.1)
        self.dropout = nn.Dropout(dropout)
        self.heads = TaskHeads(hidden + d_attn * len(self.scales), heads, hidden=(hidden,))
        masks = torch.stack([torch.arange(window) >= window - s for s in self.scales])  # (S, T)
        self.register_buffer("scale_mask", masks, persistent=False)

    def forward(self, x: torch.Tensor, uniform_attention: bool = False) -> ModelOutput:  # x: (B, T, F)
        b, t, _ = x.shape
        outputs, _ = self.lstm(x)
        last = outputs[:, -1]  # (B, H)
        keys = self.key(x) + self.lag_embedding[-t:]  # (B, T, D)
        values = self.value(x)  # (B, T, D)
        queries = self.query(last).view(b, len(self.scales), self.d_attn)  # (B, S, D)
        scores = torch.einsum("bsd,btd->bst", queries, keys) / math.sqrt(self.d_attn)  # (B, S, T)
        scores = scores.masked_fill(~self.scale_mask[:, -t:].unsqueeze(0), float("-inf"))
        if uniform_attention:  # ablation: equal weight on every hour of each pool
            scores = torch.where(torch.isinf(scores), scores, torch.zeros_like(scores))
        weights = torch.softmax(scores, dim=-1)  # (B, S, T)
        context = torch.einsum("bst,btd->bsd", weights, values).reshape(b, -1)  # (B, S*D)
        rep = self.dropout(torch.cat([last, context], dim=-1))
        # The per-hour attention reported is that of the widest pool.
        widest = max(range(len(self.scales)), key=lambda i: self.scales[i])
        return ModelOutput(attention=weights[:, widest], scale_attention=weights, **self.heads(rep))


class LastStateLSTM(nn.Module):
    """Control: the same LSTM reading its last hidden state, no attention (uniform
    weights are reported only so every model has the same output shape).

    With `head_hidden=(H,)` and `dropout` it is the exact twin of `QueryAttentionLSTM`
    minus the attended context: same LSTM, same dropout, same MLP head."""

    def __init__(
        self,
        n_features: int,
        hidden: int = 128,
        heads: Heads = Heads(),
        head_hidden: tuple[int, ...] = (),
        dropout: float = 0.0,
    ):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.heads = TaskHeads(hidden, heads, hidden=tuple(head_hidden))

    def forward(self, x: torch.Tensor, uniform_attention: bool = False) -> ModelOutput:
        outputs, _ = self.lstm(x)
        uniform = torch.full(x.shape[:2], 1.0 / x.shape[1], device=x.device, dtype=outputs.dtype)
        return ModelOutput(attention=uniform, **self.heads(self.dropout(outputs[:, -1])))


class PositionalEncoding(nn.Module):
    pe: torch.Tensor  # a buffer

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        return x + self.pe[: x.shape[1]]


class EncoderLayer(nn.Module):
    """Post-norm Transformer encoder layer that returns its per-head attention."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attn(x, x, x, need_weights=True, average_attn_weights=False)  # weights (B, h, T, T)
        x = self.norm1(x + self.drop(attended))
        x = self.norm2(x + self.drop(self.ff(x)))
        return x, weights


def supports_uniform_ablation(model: nn.Module) -> bool:
    """Whether `model(x, uniform_attention=True)` replaces its attention by uniform weights."""
    if isinstance(model, Ensemble):
        return all(supports_uniform_ablation(m) for m in model.members)
    return isinstance(model, (ReferenceAttentionLSTM, QueryAttentionLSTM, LastStateLSTM))


class AttentionTransformer(nn.Module):
    """Input projection, sinusoidal positions, encoder layers with `n_heads` heads,
    and an MLP head on the last position (reference: d_model 256, 4 layers, 8 heads,
    MLP 256-128-64-1)."""

    def __init__(
        self,
        n_features: int,
        d_model: int = 256,
        n_layers: int = 4,
        n_heads: int = 8,
        d_ff: int = 1024,
        dropout: float = 0.1,
        mlp: tuple[int, ...] = (128, 64),
        heads: Heads = Heads(),
    ):
        super().__init__()
        self.project = nn.Linear(n_features, d_model)
        self.position = PositionalEncoding(d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.heads = TaskHeads(d_model, heads, hidden=mlp)

    def forward(self, x: torch.Tensor) -> ModelOutput:  # x: (B, T, F)
        h = self.position(self.project(x))
        maps = []
        for layer in self.layers:
            h, weights = layer(h)
            maps.append(weights[:, :, -1, :])  # last query position: (B, heads, T)
        stacked = torch.stack(maps, dim=1)  # (B, L, heads, T)
        # One weight per hour: the last layer's heads averaged (rows still sum to 1).
        return ModelOutput(attention=stacked[:, -1].mean(dim=1), attention_maps=stacked, **self.heads(h[:, -1]))


ARCHITECTURES = {
    "reference_lstm": ReferenceAttentionLSTM,
    "query_attention_lstm": QueryAttentionLSTM,
    "last_state_lstm": LastStateLSTM,
    "transformer": AttentionTransformer,
}


@dataclass
class ArchConfig:
    """Everything needed to rebuild a model: stored in its checkpoint."""

    name: str
    n_features: int
    kwargs: dict = field(default_factory=dict)
    heads: dict = field(default_factory=dict)

    def build(self) -> nn.Module:
        cls = ARCHITECTURES[self.name]
        kwargs = dict(self.kwargs)
        for key in ("scales", "mlp", "head_hidden"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(self.n_features, heads=Heads(**self.heads), **kwargs)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "n_features": self.n_features,
            "kwargs": dict(self.kwargs),
            "heads": dict(self.heads),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ArchConfig":
        return cls(d["name"], int(d["n_features"]), dict(d.get("kwargs", {})), dict(d.get("heads", {})))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


REFERENCE_TRANSFORMER_PARAMS = 4_260_000


class Ensemble(nn.Module):
    """N members that differ by seed. Prediction = mean; uncertainty = member spread
    (and, where members predict a variance, the mean predicted variance)."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, uniform_attention: bool = False) -> ModelOutput:
        outs = [m(x, uniform_attention=True) if uniform_attention else m(x) for m in self.members]
        rets = torch.stack([o.ret for o in outs])  # (N, B)
        mean = rets.mean(0)
        spread_var = rets.var(0, unbiased=False)
        log_var = None
        if all(o.log_var is not None for o in outs):
            aleatoric = torch.stack([o.log_var.exp() for o in outs]).mean(0)
            log_var = torch.log(aleatoric + spread_var + 1e-12)
        vol = torch.stack([o.vol for o in outs]).mean(0) if all(o.vol is not None for o in outs) else None
        logits = None
        if all(o.direction_logits is not None for o in outs):
            probs = torch.stack([o.direction_logits.softmax(-1) for o in outs]).mean(0)
            logits = probs.clamp_min(1e-9).log()
        member_attention = torch.stack([o.attention for o in outs], dim=1)  # (B, N, T)
        return ModelOutput(
            ret=mean,
            attention=member_attention.mean(1),
            log_var=log_var,
            vol=vol,
            direction_logits=logits,
            member_spread=spread_var.sqrt(),
            member_attention=member_attention,
        )
