"""The README's example runs as written."""

import os
import re

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_readme_example_runs_and_learns():
    text = open(README).read()
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    namespace = {}
    import ember

    ember.manual_seed(0)  # the example builds its modules without rng: seeds their generators
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    net, ember = namespace["net"], namespace["ember"]
    x, y = ember.data.load_mnist(splits=("test",))["test"]
    scores = net.evaluate().forward(namespace["scaler"].transform(x[:2000]))
    assert (scores.argmax(axis=1) == y[:2000]).mean() > 0.95


def test_quickstart_has_exactly_two_commands():
    text = open(README).read()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```sh\n(.*?)```", section, re.S)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert commands == [
        "python3 dev.py train   # trains the lecture's 784-1000-10 MNIST network (bundled data), prints test accuracy",
        "python3 dev.py test    # runs the test suite",
    ]
