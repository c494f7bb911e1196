"""examples/mlp.py: the hidden layer separates the spirals that the linear model cannot."""

from example_scripts import load_example


def test_the_mlp_beats_the_linear_model_on_the_spirals(capsys):
    result = load_example("mlp").main(["--points", "50", "--steps", "300"])
    assert result["mlp_accuracy"] >= 0.95
    assert result["linear_accuracy"] <= 0.7
    assert '"mlp_accuracy"' in capsys.readouterr().out.splitlines()[-1]
