"""Generated protocol modules (``make proto`` regenerates them from the .proto files).

The import paths ``blindai.pb.untrusted_pb2``, ``blindai.pb.securedexchange_pb2`` and
``blindai.pb.proof_files_pb2`` are those BlindAI 0.3 users have.
"""
