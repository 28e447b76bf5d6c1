"""The main job: a real classifier on real images through a simulation server.

Trains a classifier on scikit-learn's bundled handwritten digits (no download),
exports it to ONNX, starts ``blindai-server --simulation`` on free loopback ports,
uploads the model, classifies every held-out image through the server, compares
with local onnxruntime, saves one signed proof, loads and validates it, and stops
the server.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

N_FEATURES = 64


def train_digits_model(
    seed: int = 0,
) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """Train on the digits data set; returns (onnx bytes, X_test, y_test,
    scikit-learn's predictions on X_test)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(x_train, y_train)
    onx = to_onnx(model, x_train[:1], options={"zipmap": False}, target_opset=17)
    return onx.SerializeToString(), x_test, y_test, model.predict(x_test)


def main() -> int:
    import onnxruntime as ort

    import blindai
    from blindai.server.launcher import LocalServer

    t0 = time.perf_counter()
    print("training a classifier on scikit-learn's handwritten digits ...")
    onnx_bytes, x_test, y_test, _ = train_digits_model()
    local = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    out_dir = Path(tempfile.mkdtemp(prefix="blindai-demo-"))
    model_path = out_dir / "digits.onnx"
    model_path.write_bytes(onnx_bytes)

    with LocalServer(["--simulation"]) as server:
        print(
            f"blindai-server --simulation listening on 127.0.0.1 "
            f"(untrusted {server.untrusted_port}, attested {server.attested_port})"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", blindai.SimulationModeWarning)
            client = blindai.connect("127.0.0.1", simulation=True, **server.ports)
        with client:
            upload = client.upload_model(
                str(model_path),
                shape=(1, N_FEATURES),
                dtype=blindai.ModelDatumType.F32,
                dtype_out=blindai.ModelDatumType.I64,
                sign=True,
            )
            print(f"uploaded {model_path.name}: sha256 {upload.model_hash.hex()}")
            remote, agree = [], 0
            for image in x_test:
                row = image.reshape(1, N_FEATURES)
                label = client.run_model(row)
                remote.append(int(label.output[0]))
                expected = int(local.run(None, {local.get_inputs()[0].name: row})[0][0])
                agree += remote[-1] == expected
            proof_path = out_dir / "run.proof"
            signed = client.run_model(x_test[0].reshape(1, N_FEATURES), sign=True)
            signed.save_to_file(proof_path)
            key = client.enclave_signing_key

    accuracy = float(np.mean(np.array(remote) == y_test))
    print(f"classified {len(x_test)} held-out images through the server")
    print(f"accuracy: {accuracy:.4f}")
    print(f"agreement with local onnxruntime: {100 * agree / len(x_test):.1f} %")

    proof = blindai.RunModelResponse().load_from_file(proof_path)
    proof.validate(
        x_test[0].reshape(1, N_FEATURES),
        enclave_signing_key=key,
        allow_simulation_mode=True,
        model_hash=hashlib.sha256(onnx_bytes).digest(),
    )
    print(
        f"proof saved to {proof_path}, loaded and validated "
        f"(prediction {proof.output[0]}; simulation mode: signature and content "
        "checked, enclave NOT attested)"
    )
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0 if accuracy >= 0.95 and agree == len(x_test) else 1


if __name__ == "__main__":
    sys.exit(main())
