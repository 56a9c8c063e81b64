"""The networks and how they run: the sentence encoder on onnxruntime (`encoder`), its one-time
ONNX export and int8 quantisation (`export`), and the batching every network shares (`batches`).
The shipped span reader (`reader/`) and the abstention calibration (`calibration.json`) live
beside them as files."""
