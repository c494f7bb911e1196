r"""A two-layer perceptron learns three interleaved spirals: the smallest net that needs backward.

What this teaches: the whole training loop on one screen, before any language model. Straight
lines cannot separate the spirals (the linear model below gets about half of the points right);
one hidden layer with a nonlinearity gets them all.

1. Data: N points per class on three spiral arms in the plane (cs231n's toy set), made from a
   seeded NumPy Generator: X (3N, 2), integer labels y (3N,).
2. Model: Linear(2, H) -> GELU -> Linear(H, 3), the logits of the three classes:
   ``logits = gelu(X W1^T + b1) W2^T + b2``.
3. Loss: softmax cross-entropy, the mean over the points. ``loss.backward()`` fills ``.grad`` of
   the four parameters W1, b1, W2, b2; Adam takes a step; ``zero_grad`` clears them.
4. Baseline: the same loop with no hidden layer (Linear(2, 3)): logistic regression.

    python examples/mlp.py                     # about 2 s on 2 CPU cores
    python examples/mlp.py --hidden 8 --steps 2000

The math of each step is in docs/autograd.md (backward) and docs/gpt.md (cross-entropy, GELU).
The last line printed is a JSON object with the final metrics.
"""

import argparse
import json

import numpy as np

import tinygrad_llm as tg
import tinygrad_llm.nn.functional as F
from tinygrad_llm import nn, optim

# Dimension letters: N points per class, H hidden units; 3 classes, 2 input coordinates.


def spirals(n, seed=0):
    """Three spiral arms of n points each: X (3n, 2) float32, y (3n,) int64."""
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.05, 1.0, n), 3)                            # (3n,)
    y = np.repeat(np.arange(3), n)                                            # (3n,)
    angle = y * 4.0 + radius * 4.0 + rng.normal(0.0, 0.2, 3 * n)              # (3n,)
    X = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)    # (3n, 2)
    return X.astype(np.float32), y.astype(np.int64)


def train(model, X, y, steps, lr):
    """Full-batch Adam on the cross-entropy; returns (final loss, accuracy)."""
    opt = optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        logits = model(tg.Tensor(X))                                          # (3N, 3)
        loss = F.cross_entropy(logits, tg.Tensor(y))                          # ()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with tg.no_grad():
        logits = model(tg.Tensor(X)).numpy()                                  # (3N, 3)
    return float(loss.item()), float((logits.argmax(axis=1) == y).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100, help="points per class")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units H")
    parser.add_argument("--steps", type=int, default=500, help="full-batch Adam steps")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    X, y = spirals(args.points, args.seed)
    tg.manual_seed(args.seed)
    mlp = nn.Sequential(nn.Linear(2, args.hidden), nn.GELU(), nn.Linear(args.hidden, 3))
    linear = nn.Linear(2, 3)
    mlp_loss, mlp_accuracy = train(mlp, X, y, args.steps, args.lr)
    linear_loss, linear_accuracy = train(linear, X, y, args.steps, args.lr)
    print(f"MLP (H={args.hidden}): loss {mlp_loss:.3f}, accuracy {mlp_accuracy:.3f}")
    print(f"linear baseline: loss {linear_loss:.3f}, accuracy {linear_accuracy:.3f}")
    result = {"mlp_loss": round(mlp_loss, 4), "mlp_accuracy": round(mlp_accuracy, 4),
              "linear_loss": round(linear_loss, 4), "linear_accuracy": round(linear_accuracy, 4)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
