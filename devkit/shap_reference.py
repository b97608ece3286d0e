"""shap's Exact explainer with an Independent masker over a background, on an ONNX model run by
onnxruntime: the reference the reasons are checked against. Reads a case as JSON (model file,
input and output tensor names, background and records as rows with null for missing, and the
output column to explain per record); writes {"values": [[...]], "base": [...], "seconds": ...} to
stdout, `seconds` being the explainer's own time (model loading and Python's start left out)."""
import json
import sys
import time

import numpy as np
import onnxruntime as ort
import shap

case = json.load(open(sys.argv[1]))
session = ort.InferenceSession(case["model"], providers=["CPUExecutionProvider"])
background = np.array(case["background"], dtype=float)
records = np.array(case["records"], dtype=float)
columns = case["columns"]
values = [None] * len(records)
base = [None] * len(records)
seconds = 0.0
for column in sorted(set(columns)):
    def f(rows, column=column):
        out = session.run([case["output"]], {case["input"]: rows.astype(np.float32)})[0]
        return out[:, column] if out.ndim == 2 else out
    explainer = shap.explainers.Exact(f, shap.maskers.Independent(background, max_samples=len(background)))
    at = [i for i, c in enumerate(columns) if c == column]
    started = time.perf_counter()
    explained = explainer(records[at])
    seconds += time.perf_counter() - started
    for k, i in enumerate(at):
        values[i] = explained.values[k].tolist()
        base[i] = float(np.atleast_1d(explained.base_values)[k] if np.ndim(explained.base_values) else explained.base_values)
json.dump({"values": values, "base": base, "seconds": seconds}, sys.stdout)
