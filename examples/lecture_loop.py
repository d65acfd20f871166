"""The lecture's training loop, written out: a ``feval`` closure and ``optim.sgd``.

This is the primary way to train with ember (the Torch7 way): everything is explicit.
``ember train`` / ``ember.training.fit`` run the same loop with more options.

    python examples/lecture_loop.py    # about 1 minute (1 thread); 98.39% test accuracy after 5 epochs
"""

import numpy as np

from ember import nn, optim
from ember.data import Standardizer, load_mnist

rng = np.random.default_rng(0)

# -- data: normalize the inputs (zero mean, unit variance) with training statistics only
mnist = load_mnist()
(x_train, y_train), (x_test, y_test) = mnist["train"], mnist["test"]
scaler = Standardizer("global").fit(x_train)
x_train = scaler.transform(x_train).reshape(-1, 784)
x_test = scaler.transform(x_test).reshape(-1, 784)

# -- the model and the loss: ReLU, cross-entropy (LogSoftMax + ClassNLLCriterion)
model = nn.Sequential(nn.Linear(784, 1000, rng=rng), nn.ReLU(), nn.Linear(1000, 10, rng=rng), nn.LogSoftMax())
criterion = nn.ClassNLLCriterion()

# -- one flat vector of parameters and one of gradients (views into every module)
parameters, grad_parameters = model.get_parameters()
optim_state = {"learning_rate": 0.05, "momentum": 0.9, "dampening": 0.0, "learning_rate_decay": 2e-4}

batch_size = 64
for epoch in range(1, 6):
    order = rng.permutation(len(y_train))  # shuffle the training samples at every epoch
    model.training()
    total = 0.0
    for t in range(0, len(order), batch_size):
        index = order[t : t + batch_size]
        inputs, targets = x_train[index], y_train[index]  # get the next batch

        # the closure feval(x): the loss and its gradient on the batch
        def feval(x):
            if x is not parameters:
                parameters[...] = x
            grad_parameters.fill(0)  # gradParameters:zero()
            output = model.forward(inputs)
            loss = criterion.forward(output, targets)  # the criterion averages over the batch
            model.backward(inputs, criterion.backward(output, targets))
            return loss, grad_parameters

        _, (loss,) = optim.sgd(feval, parameters, optim_state)  # state = config, as in the lecture
        total += loss * len(index)

    # -- evaluation mode for testing (Dropout off), then a confusion matrix
    model.evaluate()
    confusion = optim.ConfusionMatrix(10)
    for t in range(0, len(y_test), 1000):
        confusion.batch_add(model.forward(x_test[t : t + 1000]), y_test[t : t + 1000])
    print(f"epoch {epoch}: train loss {total / len(order):.4f}, test accuracy {confusion.accuracy * 100:.2f}%")

print(confusion)
