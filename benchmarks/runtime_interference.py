"""Does a runtime's timing depend on the runtime that ran just before it?

ONNX Runtime's intra-op threads busy-wait ("spin") for a while after each run by default. When
`bench infer` or `--runtime auto` times runtimes round-robin, OpenVINO runs right after ONNX
Runtime; on a 2-core machine the spinning threads take the cores it needs. This times OpenVINO
after OpenVINO, right after ONNX Runtime with and without spinning, and after pauses, and ONNX
Runtime itself with and without spinning, interleaved, median and best of `--repeats`.
Results: benchmarks/results/runtime_interference.json.

    python benchmarks/runtime_interference.py [--model efficientnet_lite0] [--batch-size 32] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    import onnxruntime as ort

    from reslab.inference import default_weights, load
    from reslab.inference.auto import calibration_batch
    from reslab.inference.runtimes import RuntimeChoice, build_session
    from reslab.inference.threads import intra_op_threads
    from reslab.provenance import save_benchmark

    loaded = load(args.model, default_weights(args.model))
    x = calibration_batch(loaded.preprocess, args.batch_size)
    openvino = build_session(loaded, RuntimeChoice("openvino", "fp32"))
    onnx_path = build_session(loaded, RuntimeChoice("onnxruntime", "fp32")).path

    def ort_session(spinning: bool):
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads()
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        return lambda: session.run(None, {"images": x})

    ort_spin, ort_quiet, ov = ort_session(True), ort_session(False), lambda: openvino.run(x)
    for fn in (ort_spin, ort_quiet, ov):
        fn(), fn()  # warm-up

    def after(before, pause: float, timed):
        before()
        time.sleep(pause)
        t0 = time.perf_counter()
        timed()
        return time.perf_counter() - t0

    cases = {
        "openvino after openvino": lambda: after(ov, 0, ov),
        "openvino right after onnxruntime (spinning)": lambda: after(ort_spin, 0, ov),
        "openvino 10 ms after onnxruntime (spinning)": lambda: after(ort_spin, 0.01, ov),
        "openvino 50 ms after onnxruntime (spinning)": lambda: after(ort_spin, 0.05, ov),
        "openvino 300 ms after onnxruntime (spinning)": lambda: after(ort_spin, 0.3, ov),
        "openvino right after onnxruntime (no spinning)": lambda: after(ort_quiet, 0, ov),
        "onnxruntime (spinning) after itself": lambda: after(ort_spin, 0, ort_spin),
        "onnxruntime (no spinning) after itself": lambda: after(ort_quiet, 0, ort_quiet),
        "onnxruntime (spinning) right after openvino": lambda: after(ov, 0, ort_spin),
        "onnxruntime (no spinning) right after openvino": lambda: after(ov, 0, ort_quiet),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved: a load spike from another process hits every case alike
        for name, case in cases.items():
            times[name].append(case())
    result = {
        "benchmark": "runtime_interference",
        "model": args.model,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "median_images_per_s": {k: args.batch_size / statistics.median(v) for k, v in times.items()},
        "best_images_per_s": {k: args.batch_size / min(v) for k, v in times.items()},
        "command": f"python benchmarks/runtime_interference.py --model {args.model} --batch-size {args.batch_size} --repeats {args.repeats}",
    }
    path = save_benchmark("runtime_interference", result)
    for name in cases:
        print(f"{name:>48}: median {result['median_images_per_s'][name]:7.1f}, best {result['best_images_per_s'][name]:7.1f} images/s")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
