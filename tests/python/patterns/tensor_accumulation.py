"""Tensor accumulation: the training loop keeps every loss tensor, and with it the autograd
graph (activations included) of every step. A tensor-like class in pure Python stands in for
torch: each result holds a `grad_fn` node that references its inputs.

Leaks about 1 MB/s of RSS; runs until killed and prints nothing.
"""

import time


class GradFn:
    def __init__(self, name, inputs):
        self.name = name
        self.inputs = inputs


class Tensor:
    def __init__(self, data, grad_fn=None):
        self.data = data
        self.grad_fn = grad_fn

    def item(self):
        return float(sum(self.data[:8]))


class Model:
    def __call__(self, batch):
        activations = bytearray(20_000)
        return Tensor(activations, GradFn("LinearBackward", (batch,)))


def criterion(output, target):
    return Tensor(bytearray(8), GradFn("MSELossBackward", (output, target)))


losses = []


def train_step(model, batch):
    output = model(batch)
    loss = criterion(output, batch)
    losses.append(loss)  # LEAK
    return loss


def main():
    model = Model()
    while True:
        batch = Tensor(bytearray(64))
        train_step(model, batch)
        time.sleep(0.02)


if __name__ == "__main__":
    main()
