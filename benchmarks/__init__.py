"""Speed and scale measurements of the product (not tests): ``make bench``.

Every number is a ratio against a floor measured in the same run on the same
machine (in-process onnxruntime, the server's own TLS round trip, SHA-256 plus
session creation), so that the table means the same on a faster or slower
machine. Nothing here asserts: a benchmark that fails prints why.
"""
