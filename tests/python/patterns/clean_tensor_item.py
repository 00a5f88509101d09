"""Decoy: the training loop keeps only `loss.item()`, a float, so no graph survives a step.
Same pure-Python tensor stand-in as tensor_accumulation.py.

Runs until killed and prints nothing.
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


total_loss = 0.0


def train_step(model, batch):
    global total_loss
    output = model(batch)
    loss = criterion(output, batch)
    total_loss += loss.item()
    return loss


def main():
    model = Model()
    while True:
        batch = Tensor(bytearray(64))
        train_step(model, batch)
        time.sleep(0.02)


if __name__ == "__main__":
    main()
