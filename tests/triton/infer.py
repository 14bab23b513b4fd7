"""tritonclient.http with its defaults (binary tensors in and out) against cloudformer serve.

Reads {"url", "shape", "flat" (null = missing), "lengths"} on stdin, prints the answer as JSON:
{"degradation", "degradation_std", "out_of_distribution", "binary_in", "binary_out"}.
Driven by tests/triton_client.rs.
"""
import json
import sys

import numpy as np
import tritonclient.http as httpclient

req = json.load(sys.stdin)
x = np.array([np.nan if v is None else v for v in req["flat"]], dtype=np.float32)
x = x.reshape(req["shape"])
lengths = np.array(req["lengths"], dtype=np.int32)

client = httpclient.InferenceServerClient(req["url"])
assert client.is_server_live(), "server not live"
assert client.is_model_ready("cloudformer"), "model not ready"
meta = client.get_server_metadata()
assert "binary_tensor_data" in meta.get("extensions", []), meta

metrics = httpclient.InferInput("metrics", list(x.shape), "FP32")
metrics.set_data_from_numpy(x)  # binary_data=True is the default
lens = httpclient.InferInput("lengths", list(lengths.shape), "INT32")
lens.set_data_from_numpy(lengths)
binary_in = all(
    "binary_data_size" in i._get_tensor().get("parameters", {}) for i in (metrics, lens)
)
# No outputs named: the client asks for every output as binary data.
result = client.infer("cloudformer", [metrics, lens])
outputs = result.get_response()["outputs"]
print(
    json.dumps(
        {
            "degradation": result.as_numpy("degradation").tolist(),
            "degradation_std": result.as_numpy("degradation_std").tolist(),
            "out_of_distribution": result.as_numpy("out_of_distribution").tolist(),
            "binary_in": binary_in,
            "binary_out": all("binary_data_size" in o.get("parameters", {}) for o in outputs),
        }
    )
)
