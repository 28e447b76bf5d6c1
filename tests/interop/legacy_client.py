"""Runs under Python 3.9 with the published blindai==0.3.0 wheel (not our code).

Reads a JSON job on stdin, connects in simulation mode, uploads the model with a
signed response, runs every input with sign=True and prints the outputs as JSON.
"""

import json
import sys

from blindai.client import BlindAiClient, ModelDatumType

job = json.load(sys.stdin)
client = BlindAiClient()
client.connect_server(
    "127.0.0.1",
    simulation=True,
    untrusted_port=job["untrusted_port"],
    attested_port=job["attested_port"],
)
upload = client.upload_model(
    job["model"],
    shape=tuple(job["shape"]),
    dtype=ModelDatumType[job["dtype"]],
    dtype_out=ModelDatumType[job["dtype_out"]],
    sign=True,
)
outputs = []
for row in job["inputs"]:
    response = client.run_model(row, sign=True)
    outputs.append(response.output)
client.close_connection()
print(json.dumps({"server_version": "ok", "outputs": outputs}))
