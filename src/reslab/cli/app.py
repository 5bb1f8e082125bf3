"""The typer application and its command groups; command modules attach themselves to these."""

import typer

app = typer.Typer(
    name="reslab",
    help="Deep residual learning for image recognition: models, training, analysis, search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks: speed and memory as ratios against a baseline in the same process.", no_args_is_help=True)
experiment_app = typer.Typer(help="The ResNet paper's experiments, quick on a CPU or full on GPUs.", no_args_is_help=True)
viz_app = typer.Typer(help="Draw feature maps and filters.", no_args_is_help=True)

app.add_typer(bench_app, name="bench")
app.add_typer(experiment_app, name="experiment")
app.add_typer(viz_app, name="viz")
